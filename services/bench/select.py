"""gazeflow bench select: how well a person selects what they see, closed loop, under Xvfb.

A target window (Tk, full screen) shows one target at a time, 16, 32 or 64 px across, on an ISO 9241-411 ring
(each target across the ring from the last). The pointer stage runs as it does for a user (``gazeflow stage
pointer``, pyautogui on the virtual display, its magnifier and clicks real), and a simulated user plays the
rest of the pipeline: it sends the pointer the frames the gaze stage would send, on the real link.

The simulated user looks at the target as it finds it on a screenshot of the display: on the screen, or
inside the magnifier when it is open (where it is hidden by the magnifier and not in it, the user looks away,
closing the magnifier, and tries again). Its gaze reads the point looked at plus a bias drawn per trial at
the profile's error (a random direction, the error's size +-10%), jitter replayed from the demo's fixations
(the raw gaze of its steady segments, measured from a run of the demo), an optional slow drift, and a blink
every few seconds; in head and hybrid modes it turns its head to bring the pointer it sees onto the target.
Time is the frames' time (30 fps), so the figures do not depend on this machine's speed.

Per mode and size: success (the first click lands on the target), median time per selection, wrong clicks
(clicks beside the target, of all clicks), trials. And the drift: a 3-degree drift injected, the pointer's
live error estimate over the selections.
"""

from __future__ import annotations

import json
import logging
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gazeflow.shared.errors import GazeflowError

log = logging.getLogger("gazeflow.bench")
FPS = 30.0
SCREEN = (1920, 1080)
SIZES = (16, 32, 64)
RING_PX = 640  # the ISO ring's diameter
RING_N = 12
TIMEOUT_S = 15.0  # a trial with no click by then has failed
TARGET_RGB = (255, 0, 255)  # magenta, on grey: found by its colour in a screenshot
CAMERA = (1280, 720)  # the simulated camera's frame
EYES_PX = 90.0  # the eye centres' distance in that frame: the user sits about 60 cm away
MODES = {  # label -> pointer settings
    "dwell": {"mode": "gaze", "select": "none"},
    "zoom": {"mode": "gaze", "select": "zoom"},
    "head": {"mode": "head", "select": "none"},
    "hybrid": {"mode": "hybrid", "select": "none"},
    "head+zoom": {"mode": "head", "select": "zoom"},
    "hybrid+zoom": {"mode": "hybrid", "select": "zoom"},
}


@dataclass
class Geometry:
    """The simulated face and the inverse of the pointer's geometric model (gaze_model.py): the gaze vector
    that lands on a screen point, for a still head in front of the camera."""

    width_mm: float
    height_mm: float
    landmarks: list[list[float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        cx, cy = CAMERA[0] / 2, CAMERA[1] / 2 - 40
        self.landmarks = [
            [cx - EYES_PX / 2, cy],
            [cx + EYES_PX / 2, cy],
            [cx, cy + 45],
            [cx - 35, cy + 90],
            [cx + 35, cy + 90],
        ]
        self.f = (CAMERA[0] / 2) / math.tan(math.radians(70.0) / 2)  # camera.hfov_deg's default
        self.distance_mm = self.f * 63.0 / EYES_PX  # camera.ipd_mm's default
        self.eyes = (cx, cy)

    @classmethod
    def virtual(cls) -> Geometry:
        """On the virtual display: SCREEN at 96 dpi."""
        return cls(SCREEN[0] * 25.4 / 96, SCREEN[1] * 25.4 / 96)

    def px(self, degrees: float) -> float:
        """A visual angle at this distance, in screen pixels."""
        return math.tan(math.radians(degrees)) * self.distance_mm * SCREEN[0] / self.width_mm

    def gaze(self, point: tuple[float, float], shift: tuple[float, float] = (0.0, 0.0)) -> list[float]:
        """The unit gaze vector whose ray meets the screen at ``point`` (pixels; the camera at the top's middle,
        the image mirrored: the user's right is the image's left), from eyes moved by ``shift`` in the image."""
        mm_x, mm_y = point[0] * self.width_mm / SCREEN[0], point[1] * self.height_mm / SCREEN[1]
        plane = np.array([-(mm_x - self.width_mm / 2), -mm_y, 0.0])
        u, v, z = self.eyes[0] + shift[0], self.eyes[1] + shift[1], self.distance_mm
        g = plane - np.array([(u - CAMERA[0] / 2) * z / self.f, -(v - CAMERA[1] / 2) * z / self.f, z])
        return [round(float(v), 6) for v in g / np.linalg.norm(g)]

    def face(self, shift: tuple[float, float] = (0.0, 0.0)) -> list[float]:
        cx, cy = CAMERA[0] / 2 + shift[0], CAMERA[1] / 2 + shift[1]
        return [cx - 110, cy - 150, cx + 110, cy + 150]

    def marks(self, shift: tuple[float, float] = (0.0, 0.0)) -> list[list[float]]:
        return [[x + shift[0], y + shift[1]] for x, y in self.landmarks]


def _face_move(move_px: float, gain: float, accel: float, dead: float) -> float:
    """The face's move in a frame (mm) that moves the pointer ``move_px``: head.py's response inverted."""
    m = abs(move_px)
    if m < 0.5:
        return 0.0
    s = (math.sqrt(1 + 4 * accel * m / gain) - 1) / (2 * accel) if accel else m / gain
    return math.copysign(min(s + dead, 4.0), move_px)


@dataclass
class Jitter:
    """What the models add to a still user's signals, from the demo: the gaze's jitter (screen pixels) and
    the face box centre's (in eye distances: the face's size in the image), one array per fixation."""

    gaze: list[np.ndarray]
    head: list[np.ndarray]


def demo_jitter(px_per_deg: float) -> Jitter:
    """The jitter in the demo's fixations: the gaze angles and head pose of a run of the demo, each fixation's
    minus their linear trend (fixations by dispersion, I-DT as steadiness.py finds them, 5 degrees across, at
    least 10 frames; the trend: the person's own slow movement)."""
    from gazeflow.shared.geometry import gaze_angles

    from ..pointer.steadiness import DISPERSION_PX, fixations
    from .common import run_command

    rows = run_command("run-sync", ["--input", "demo", "--max-speed"], results=True)["results"]
    rows = [r for r in rows if r.get("gaze") and r.get("face") and r.get("landmarks")]
    degrees = np.array([gaze_angles(r["gaze"]) for r in rows], dtype=float)
    centre = np.array([[(r["face"][0] + r["face"][2]) / 2, (r["face"][1] + r["face"][3]) / 2] for r in rows])
    eyes = np.array([math.dist(r["landmarks"][0], r["landmarks"][1]) for r in rows])
    windows = [(a, b) for a, b in fixations(degrees * DISPERSION_PX / 5.0) if b - a >= 10]
    if not windows:
        raise GazeflowError("bench select: no fixation in the demo's gaze to take the jitter from")
    gaze = [_detrended(degrees[a:b]) * px_per_deg for a, b in windows]
    gaze = [np.column_stack([d[:, 0], -d[:, 1]]) for d in gaze]  # gaze up is the screen's y down
    head = [_detrended(centre[a:b]) / eyes[a:b].mean() for a, b in windows]
    log.info(
        "bench select: jitter from %d fixations of the demo: gaze %.1f px rms, face centre %.2f mm rms per axis",
        len(windows),
        float(np.sqrt(np.mean(np.concatenate(gaze) ** 2) * 2)),
        float(np.sqrt(np.mean(np.concatenate(head) ** 2)) * 63.0),
    )
    return Jitter(gaze, head)


def _detrended(values: np.ndarray) -> np.ndarray:
    """Each column minus its least-squares line."""
    t = np.arange(len(values), dtype=float)
    fit = np.polynomial.polynomial.polyfit(t, values, 1)
    return values - (fit[0] + np.outer(t, fit[1]))


@dataclass
class User:
    """The simulated person: where it looks, how its gaze and head pose read, how it turns its head."""

    rng: np.random.Generator
    geometry: Geometry
    error_px: float
    jitter: Jitter
    drift_px: tuple[float, float] = (0.0, 0.0)
    bias: np.ndarray = field(default_factory=lambda: np.zeros(2))
    noise: np.ndarray = field(default_factory=lambda: np.zeros((1, 2)))
    head_noise: np.ndarray = field(default_factory=lambda: np.zeros((1, 2)))
    step: int = 0
    face_mm: tuple[float, float] = (0.0, 0.0)  # how far the user has moved its face: right, up
    blink_at: int = 90
    plan: list[tuple[float, ...]] = field(default_factory=list)  # the head's turn for each coming frame

    def new_trial(self) -> None:
        angle = self.rng.uniform(0, 2 * math.pi)
        size = self.error_px * self.rng.uniform(0.9, 1.1)
        self.bias = np.array([math.cos(angle), math.sin(angle)]) * size
        self.noise = self.jitter.gaze[int(self.rng.integers(len(self.jitter.gaze)))]
        self.head_noise = self.jitter.head[int(self.rng.integers(len(self.jitter.head)))]
        self.step = 0

    def reads(self, looking_at: tuple[float, float]) -> tuple[tuple[float, float], tuple[float, float]]:
        """What the models make of this frame: where the face is in the image (moved, mirrored, with the
        tracker's jitter) and where the gaze lands for a look at ``looking_at`` (bias, jitter, drift)."""
        n, h = self.noise[self.step % len(self.noise)], self.head_noise[self.step % len(self.head_noise)]
        self.step += 1
        px_per_mm = EYES_PX / 63.0
        shift = (-self.face_mm[0] * px_per_mm + h[0] * EYES_PX, -self.face_mm[1] * px_per_mm + h[1] * EYES_PX)
        gaze = (
            looking_at[0] + self.bias[0] + n[0] + self.drift_px[0],
            looking_at[1] + self.bias[1] + n[1] + self.drift_px[1],
        )
        return (float(shift[0]), float(shift[1])), gaze

    def turn_head(self, target: tuple[int, int], seen: deque[tuple[int, int]], size: int, response: Any) -> None:
        """Steer the pointer onto the target as a person steers a laggy one: a quick move of the head (a
        submovement, 3-10 frames) sized to bring the pointer to the target, then wait until the pointer is
        seen still (a reaction time late: ``seen[0]``) and correct with another, until it is on the target.
        The move's size inverts the pointer's response per frame (gain, acceleration, dead zone: head.py)
        as a practised user has learnt it; what the filter and the dead zone swallow is left for the next
        correction. A tremor on top."""
        if not self.plan and len(seen) == seen.maxlen:
            xs, ys = [p[0] for p in seen], [p[1] for p in seen]
            still = max(xs) - min(xs) <= 6 and max(ys) - min(ys) <= 6
            error = (target[0] - seen[0][0], -(target[1] - seen[0][1]))  # right, up
            if still and math.hypot(*error) > max(size / 3, 3):
                frames = min(max(round(math.hypot(*error) / 40), 3), 10)
                self.plan = [tuple(_face_move(e / frames, *response) for e in error)] * frames
        move = self.plan.pop() if self.plan else (0.0, 0.0)
        tremor = self.rng.normal(0, 0.02, 2)
        self.face_mm = (self.face_mm[0] + move[0] + tremor[0], self.face_mm[1] + move[1] + tremor[1])

    def eyes(self, frame: int) -> dict[str, float]:
        """Open, but for a natural blink (150 ms) every three to five seconds."""
        if frame >= self.blink_at + 5:
            self.blink_at = frame + int(self.rng.integers(90, 150))
        closed = self.blink_at <= frame < self.blink_at + 5
        return {"left": 0.05 if closed else 0.95, "right": 0.05 if closed else 0.95}


class Scene:
    """The target window: the whole screen grey, one magenta target; every button press recorded."""

    def __init__(self) -> None:
        import tkinter as tk

        self.tk = tk
        self.root = tk.Tk(className="gazeflow-targets")
        self.root.title("gazeflow targets")
        self.root.overrideredirect(True)
        self.root.geometry(f"{SCREEN[0]}x{SCREEN[1]}+0+0")
        self.canvas = tk.Canvas(
            self.root, width=SCREEN[0], height=SCREEN[1], background="#808080", highlightthickness=0
        )
        self.canvas.pack()
        self.presses: list[tuple[int, int, int]] = []
        self.canvas.bind("<ButtonPress>", lambda e: self.presses.append((e.x_root, e.y_root, e.num)))
        self.pump()

    def show(self, at: tuple[int, int], size: int) -> None:
        self.canvas.delete("target")
        r = size / 2
        colour = "#{:02x}{:02x}{:02x}".format(*TARGET_RGB)
        self.canvas.create_oval(at[0] - r, at[1] - r, at[0] + r, at[1] + r, fill=colour, outline=colour, tags="target")
        self.pump()

    def pointer(self) -> tuple[int, int]:
        return self.root.winfo_pointerxy()

    def pump(self) -> None:
        self.root.update()

    def wait_press(self, timeout_s: float = 1.0) -> tuple[int, int, int] | None:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            self.pump()
            if self.presses:
                return self.presses.pop(0)
            time.sleep(0.002)
        return None

    def close(self) -> None:
        self.root.destroy()


def ring(size: int, n: int = RING_N) -> list[tuple[int, int]]:
    """ISO 9241-411's ring: n targets on a circle, visited across it (0, n/2, 1, n/2 + 1, ...)."""
    cx, cy, r = SCREEN[0] / 2, SCREEN[1] / 2, RING_PX / 2
    points = [
        (round(cx + r * math.sin(2 * math.pi * i / n)), round(cy - r * math.cos(2 * math.pi * i / n))) for i in range(n)
    ]
    order = [j for i in range(n // 2) for j in (i, i + n // 2)]
    return [points[j] for j in order]


def _grab(box: list[int]) -> np.ndarray:
    import mss

    with mss.MSS() as shot:
        return np.asarray(shot.grab({"left": box[0], "top": box[1], "width": box[2], "height": box[3]}))


def _magenta(image: np.ndarray, box: list[int]) -> tuple[float, float, int] | None:
    b, g, r = image[:, :, 0].astype(int), image[:, :, 1].astype(int), image[:, :, 2].astype(int)
    mask = (r > 200) & (b > 200) & (g < 80)
    if mask.sum() < 4:
        return None
    ys, xs = np.nonzero(mask)
    return box[0] + float(xs.mean()), box[1] + float(ys.mean()), int(mask.sum())


def _framed(image: np.ndarray) -> bool:
    """Whether the magnifier is on the screen: its frame (windows.py's BORDER_RGB) at the box's corners."""
    corners = image[[1, 1, -2, -2], [1, -2, 1, -2], :3].astype(int)  # BGR
    return bool(np.all(np.abs(corners - np.array([0, 204, 255])) < 40))


class Pointer:
    """The pointer stage as a user runs it (``gazeflow stage pointer``), fed on its real input link; its
    results file read back frame by frame, so the simulated user sees what it did before the next frame."""

    def __init__(self, folder: Path, settings: dict[str, Any], display: str) -> None:
        import zmq

        from gazeflow.shared import senders
        from gazeflow.shared.endpoint import Endpoint

        self.run_dir = folder / "run"
        self.run_dir.mkdir(mode=0o700, parents=True)
        self.results = folder / "results.jsonl"
        pointer = {
            "backend": "pyautogui",
            "profile": "",
            "fail_safe": False,
            "hotkey": "",
            "auto_pause_mouse": False,
            "share": True,
            "dead_zone_px": 2,
            **settings,
        }
        config = {"pace": "max-speed", "log_interval": 0.0, "results": str(self.results), "pointer": pointer}
        (folder / "pointer.json").write_text(json.dumps(config))
        self.ctx = zmq.Context()
        self.sender = senders.PushSender(self.ctx, Endpoint.parse(f"push+bind:ipc://{self.run_dir}/gaze"), 64)
        cmd = [
            sys.executable,
            "-m",
            "gazeflow.services.cli",
            "--log-level",
            "WARNING",
            "stage",
            "pointer",
            "--config",
            str(folder / "pointer.json"),
            "--run-dir",
            str(self.run_dir),
        ]
        env = {**os.environ, "DISPLAY": display}
        self.proc = subprocess.Popen(
            cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        self.fh: Any = None
        self.pending = ""

    def frame(self, header: dict[str, Any]) -> dict[str, Any]:
        """Send one frame; its results line (the pointer's decision) once the pointer has acted on it."""
        from gazeflow.shared.messages import Message

        msg = Message("frame", header)
        while not self.sender.send(msg):
            self._alive()
            self.sender.wait(0.05)
        return self._line(header["frame"])

    def _line(self, frame: int, timeout_s: float = 60.0) -> dict[str, Any]:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if self.fh is None and self.results.exists():
                self.fh = self.results.open()
            self.pending += self.fh.readline() if self.fh is not None else ""
            if self.pending.endswith("\n"):
                row, self.pending = json.loads(self.pending), ""
                if row["frame"] == frame:
                    return row
                continue
            self._alive()
            time.sleep(0.0005)
        raise GazeflowError(f"bench select: the pointer did not answer frame {frame}")

    def _alive(self) -> None:
        if self.proc.poll() is not None:
            raise GazeflowError(f"bench select: the pointer stage exited: {self.proc.stderr.read()[-500:]}")

    def close(self) -> None:
        from gazeflow.shared.messages import Message

        self.sender.send_end(Message.eos({}), lambda: self.proc.poll() is not None)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.sender.close()
        self.ctx.term()
        if self.fh is not None:
            self.fh.close()


def _head_response() -> tuple[float, float, float]:
    """The pointer's response to the head, at its defaults: head_gain, head_accel, head_dead_mm."""
    from ..pointer.settings import PointerConfig

    cfg = PointerConfig()
    return cfg.head_gain, cfg.head_accel, cfg.head_dead_mm


REACTION_FRAMES = 6  # 200 ms: a person's eyes follow what they see this much later
T0 = 1.7e9  # the frames' capture times start here (seconds since the epoch)


@dataclass
class Session:
    """One mode at one gaze error: trials, one after the other, the frame count running on."""

    scene: Scene
    pointer: Pointer
    user: User
    geometry: Geometry
    mode: str
    head: tuple[float, float, float] = field(default_factory=lambda: _head_response())
    frame: int = 0
    live_error: float | None = None  # the pointer's own estimate, from its last selection
    seen: deque[tuple[int, int]] = field(default_factory=lambda: deque(maxlen=REACTION_FRAMES))

    def _header(self, shift: tuple[float, float], gaze_point: tuple[float, float]) -> dict[str, Any]:
        u = self.user
        return {
            "frame": self.frame,
            "t_capture": T0 + self.frame / FPS,
            "source": {"width": CAMERA[0], "height": CAMERA[1], "fps": FPS},
            "face": self.geometry.face(shift),
            "landmarks": self.geometry.marks(shift),
            "head_pose": {"yaw": 0.0, "pitch": 0.0, "roll": 0.0},
            "gaze": self.geometry.gaze(gaze_point, shift),
            "eyes": u.eyes(self.frame),
            "trace": [],
        }

    def step(self, look_at: tuple[float, float], target: tuple[int, int], size: int = 32) -> dict[str, Any]:
        """One frame: the user's head turns (head, hybrid) and its gaze reads; the pointer's decision."""
        if MODES[self.mode]["mode"] != "gaze":  # the head steers the pointer
            self.seen.append(self.scene.pointer())
            aim = (round(look_at[0]), round(look_at[1]))  # the pointer where the user looks (in the magnifier too)
            self.user.turn_head(aim, self.seen, size, self.head)
        row = self.pointer.frame(self._header(*self.user.reads(look_at)))
        self.frame += 1
        self.scene.pump()
        decision = row.get("pointer") or {}
        if "error_px" in decision:
            self.live_error = decision["error_px"]
        return decision.get("select") or {}

    def trial(self, target: tuple[int, int], size: int) -> dict[str, Any]:
        """Select one target: until the first click on the target window, or TIMEOUT_S."""
        self.scene.show(target, size)
        self.user.new_trial()
        start, look_at, after = self.frame, (float(target[0]), float(target[1])), None
        while (self.frame - start) / FPS < TIMEOUT_S:
            event = self.step(look_at, target, size)
            kind = event.get("event")
            if kind:
                log.debug("frame %d, target %s: %s; looking at %s", self.frame, target, event, look_at)
            if kind == "open":
                after = self._in_magnifier(event["window"], size)
            elif kind == "close":
                after = (float(target[0]), float(target[1]))
            elif kind == "act" and not event.get("blocked"):
                press = self.scene.wait_press()
                if press is not None:
                    hit = math.dist(press[:2], target) <= size / 2
                    s = (self.frame - start) / FPS
                    return {
                        "hit": hit,
                        "s": s,
                        "wrong": not hit,
                        "clicks": 1,
                        "live_error": self.live_error,
                        "first_look_px": math.dist(event["from"], target) if "from" in event else None,
                        "button": press[2],
                    }
                after = (float(target[0]), float(target[1]))
            if after is not None:  # the eyes follow what they saw REACTION_FRAMES later
                for _ in range(REACTION_FRAMES):
                    self.step(look_at, target, size)
                look_at, after = after, None
        return {"hit": False, "s": TIMEOUT_S, "wrong": False, "clicks": 0, "live_error": self.live_error}

    def _in_magnifier(self, window: list[int], size: int) -> tuple[float, float]:
        """Where the user looks once the magnifier is open: at the target inside it, or, when it is not in
        it (hidden under it), away from it, to close it."""
        real = math.pi * (size / 2) ** 2
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            self.scene.pump()
            image = _grab(window)
            found = _magenta(image, window)
            if found is not None and found[2] > 1.5 * real:  # the magnified target, not the real one under it
                return found[0], found[1]
            if _framed(image):  # the magnifier is up and the target is not in it
                break
            time.sleep(0.01)
        cx, cy = window[0] + window[2] / 2, window[1] + window[3] / 2
        return (60.0 if cx > SCREEN[0] / 2 else SCREEN[0] - 60.0), (60.0 if cy > SCREEN[1] / 2 else SCREEN[1] - 60.0)


def _xvfb() -> tuple[subprocess.Popen[bytes], str]:
    """A virtual display of SCREEN's size (96 dpi: 508 x 286 mm), on a free number."""
    import shutil

    if not shutil.which("Xvfb"):
        raise GazeflowError("bench select runs on a virtual display: install Xvfb (apt-get install xvfb)")
    read, write = os.pipe()
    size = f"{SCREEN[0]}x{SCREEN[1]}x24"
    cmd = ["Xvfb", "-displayfd", str(write), "-screen", "0", size, "-dpi", "96", "-noreset", "-nolisten", "tcp"]
    server = subprocess.Popen(cmd, stderr=subprocess.DEVNULL, pass_fds=(write,))
    os.close(write)
    with os.fdopen(read) as fh:
        number = fh.readline().strip()
    if not number:
        server.kill()
        raise GazeflowError("bench select: Xvfb did not start")
    Path.home().joinpath(".Xauthority").touch()  # python-xlib will not connect without it
    return server, f":{number}"


def _condition(
    scene: Scene,
    folder: Path,
    mode: str,
    error_deg: float,
    sizes: tuple[int, ...],
    trials: int,
    jitter: Jitter,
    display: str,
    drift_deg: float = 0.0,
    seed: int = 1,
) -> dict[str, Any]:
    """``trials`` selections per size in one mode at one gaze error: success, time, wrong clicks; the
    pointer's live error estimate after each selection."""
    geometry = Geometry.virtual()
    error_px = geometry.px(error_deg)
    settings = {**MODES[mode], "click": "dwell", "magnifier_error_px": round(error_px, 1)}
    pointer = Pointer(folder / f"{mode}-{error_deg:g}-{drift_deg:g}", settings, display)
    drift = geometry.px(drift_deg) / math.sqrt(2)
    user = User(np.random.default_rng(seed), geometry, error_px, jitter, (drift, drift))
    session = Session(scene, pointer, user, geometry, mode)
    out: dict[str, Any] = {"error_px": round(error_px, 1), "sizes": {}}
    try:
        for size in sizes:
            rows = []
            targets = ring(size)
            for i in range(trials):
                rows.append(session.trial(targets[i % len(targets)], size))
            out["sizes"][str(size)] = _summary(rows)
            out["live_error_px"] = [r["live_error"] for r in rows]
            out["first_look_px"] = [r.get("first_look_px") for r in rows]
            log.info("bench select: %s at %g deg, %d px: %s", mode, error_deg, size, out["sizes"][str(size)])
    finally:
        pointer.close()
    return out


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    clicks = sum(r["clicks"] for r in rows)
    hits = [r for r in rows if r["hit"]]
    return {
        "trials": len(rows),
        "success": round(len(hits) / max(len(rows), 1), 3),
        "median_s": round(statistics.median(r["s"] for r in hits), 2) if hits else None,
        "wrong_clicks": round(sum(r["wrong"] for r in rows) / max(clicks, 1), 3),
        "timeouts": sum(r["clicks"] == 0 for r in rows),
    }


def bench_select(trials: int = 100, out_dir: Path | None = None, quick: bool = False) -> dict[str, Any]:
    """Every mode and size at 4 degrees; dwell and zoom at 2 and 6; the drift (3 degrees) corrected by use."""
    jitter = demo_jitter(Geometry.virtual().px(1.0))
    server, display = _xvfb()
    os.environ["DISPLAY"] = display
    scene = Scene()
    plan = [(mode, 4.0) for mode in MODES] + [(m, e) for e in (2.0, 6.0) for m in ("dwell", "zoom")]
    if quick:
        plan = [(mode, 4.0) for mode in MODES]
    out: dict[str, Any] = {"trials_per_size": trials, "fps": FPS, "modes": {}}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for mode, error in plan:
                out["modes"].setdefault(mode, {})[f"{error:g}deg"] = _condition(
                    scene, Path(tmp), mode, error, SIZES, trials, jitter, display
                )
            drift = _condition(scene, Path(tmp), "zoom", 2.0, (32,), max(trials, 30), jitter, display, drift_deg=3.0)
            out["drift"] = _drift(drift)
    finally:
        scene.close()
        server.terminate()
        server.wait(5)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "select.json").write_text(json.dumps(out, indent=1) + "\n")
    return out


def _drift(result: dict[str, Any]) -> dict[str, Any]:
    """The pointer's live error over the selections with a 3-degree drift injected, against the profile's."""
    errors = [e for e in result["live_error_px"] if e is not None]
    profile = result["error_px"]
    at = {n: errors[n - 1] for n in (5, 10, 20, 30) if len(errors) >= n}
    looks = [e for e in result["first_look_px"] if e is not None]  # where the first look fell, corrected
    return {
        "profile_px": profile,
        "live_px": at,
        "first_look_px": {
            "selections 1-5": round(statistics.median(looks[:5]), 1) if looks else None,
            "selections 21-30": round(statistics.median(looks[20:30]), 1) if len(looks) > 20 else None,
        },
        "after_20_vs_profile": round(at[20] / profile, 3) if 20 in at else None,
        "success": result["sizes"]["32"]["success"],
    }
