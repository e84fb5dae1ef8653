"""What the eyes and the user ask of the pointer besides moving: clicks, pause and resume.

* ``Eyes`` follows the eye state frame by frame: a closure of both eyes that
  lasts ``blink_min_ms`` to ``blink_max_ms`` is a deliberate blink (a left
  click where the pointer was before the eyes closed; natural blinks last
  100-400 ms and never click), one eye closed that long while the other is
  open is a wink (a right click, when ``wink`` is on), and both eyes closed
  for ``pause_closed_s`` toggles pause (a gesture; it never also clicks). The pointer holds still
  while both eyes are closed, up to ``blink_max_ms`` (longer, with a gaze still found, is the lids
  lowered to look down: the model reads those as closed).
* ``Dwell``: the pointer held within ``dwell_radius_px`` for ``dwell_ms`` is a
  left click there, once, until the pointer has left the circle.
* ``Pause`` keeps the reasons apart: the user's (ctl, hotkey, gesture) and the
  automatic ones (the real mouse in use, the face lost). While paused, frames
  flow and are counted, nothing moves and nothing clicks.
* ``Hotkey``: a global hotkey (pynput) that toggles pause, where there is a display.

All of it is driven by the frames' own times, so a replay clicks and pauses the
same way in every run.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .settings import PointerConfig

log = logging.getLogger("gazeflow.pointer")
EPS = 1e-6  # frame times are sums of 1/fps: 2 s may come out as 1.9999999


@dataclass
class Eyes:
    cfg: PointerConfig
    closed_since: float | None = None  # both eyes closed from this frame time
    wink_since: float | None = None  # one eye closed, the other open, from this time
    wink_eye: str = ""
    gesture_done: bool = False  # this closure already toggled pause: it must not click as well
    closures: int = 0  # closures of both eyes seen, any length (blinks included)

    def state(self, eyes: dict[str, float] | None) -> str:
        """open | closed (both) | left | right (that eye alone closed) | unknown (no face)."""
        if eyes is None:
            return "unknown"
        shut = {side for side in ("left", "right") if eyes[side] < self.cfg.open_below}
        if len(shut) == 2:
            return "closed"
        return shut.pop() if shut else "open"

    def update(self, eyes: dict[str, float] | None, t: float) -> tuple[str, str | None]:
        """(the eyes' state, an event: "left" or "right" click, "toggle" pause, or None) for one frame."""
        state = self.state(eyes)
        event = None
        if state == "closed":
            if self.closed_since is None:
                self.closed_since, self.gesture_done = t, False
                self.closures += 1
            elif (
                self.cfg.pause_closed_s
                and not self.gesture_done
                and t - self.closed_since >= self.cfg.pause_closed_s - EPS
            ):
                self.gesture_done = True
                event = "toggle"
        elif self.closed_since is not None:
            held_ms = (t - self.closed_since) * 1000
            if state != "unknown" and not self.gesture_done and self._deliberate(held_ms):
                event = "left"
            self.closed_since = None
        if state in ("left", "right"):
            if self.wink_since is None or self.wink_eye != state:
                self.wink_since, self.wink_eye = t, state
        elif self.wink_since is not None:
            held_ms = (t - self.wink_since) * 1000
            if state == "open" and self.cfg.wink and self._deliberate(held_ms):
                event = "right"
            self.wink_since = None
        if self.cfg.click != "blink" and event in ("left", "right"):
            event = None
        return state, event

    def _deliberate(self, held_ms: float) -> bool:
        return self.cfg.blink_min_ms - EPS <= held_ms <= self.cfg.blink_max_ms + EPS


@dataclass
class Mean:
    """The running mean of points: constant work per frame however long a dwell lasts."""

    n: int = 0
    x: float = 0.0
    y: float = 0.0

    def add(self, point: Any) -> tuple[float, float]:
        self.n, self.x, self.y = self.n + 1, self.x + float(point[0]), self.y + float(point[1])
        return self.x / self.n, self.y / self.n

    @property
    def value(self) -> tuple[float, float] | None:
        return (self.x / self.n, self.y / self.n) if self.n else None


@dataclass
class Dwell:
    """A dwell: the pointer held within ``dwell_radius_px`` of where it dwells (the mean of its points since
    the dwell began: a pointer that trembles around a place dwells there) for ``dwell_ms``."""

    cfg: PointerConfig
    anchor: tuple[float, float] | None = None
    since: float = 0.0
    armed: bool = True  # False after a click, until the pointer leaves the circle
    looked: Mean = field(default_factory=lambda: Mean())  # the raw gaze points of this dwell
    held: Mean = field(default_factory=lambda: Mean())  # the pointer's points of this dwell

    def update(self, point: tuple[int, int] | None, t: float, raw: Any = None, ms: float = 0.0) -> tuple[float, bool]:
        """(progress 0..1 towards a click, whether to click now) for the pointer at ``point`` (``raw``: the
        unfiltered gaze point, whose mean over the dwell is where the user looked: ``where``)."""
        if point is None:
            self.anchor = None
            return 0.0, False
        if self.anchor is None or math.dist(point, self.anchor) > self.cfg.dwell_radius_px:
            self.anchor, self.since, self.armed = point, t, True
            self.looked, self.held = Mean(), Mean()
        self.anchor = self.held.add(point)
        if raw is not None:
            self.looked.add(raw)
        if self.since == t:
            return 0.0, False
        if not self.armed:
            return 0.0, False
        progress = min(1.0, (t - self.since) * 1000 / (ms or self.cfg.dwell_ms))
        if progress >= 1.0:
            self.armed = False
            return 1.0, True
        return progress, False

    @property
    def where(self) -> tuple[float, float] | None:
        """Where the user looked during this dwell: the mean of its raw gaze points (their jitter averaged out,
        where the pointer's filter would only smooth it)."""
        return self.looked.value

    def reset(self) -> None:
        self.anchor = None
        self.looked, self.held = Mean(), Mean()


@dataclass
class Pause:
    """Why the pointer is paused, if it is."""

    cfg: PointerConfig
    user: bool = False  # ctl pause, the hotkey, the gesture
    mouse: bool = False  # the real mouse is in use
    face: bool = False  # no face for face_lost_s
    calibrating: bool = False  # a calibration inside the run shows its targets
    last_face: float | None = None
    user_moved_at: float = 0.0  # wall clock (monotonic) of the last movement of the real mouse
    seen: tuple[int, int] | None = None  # where the real mouse was at the last look
    frames: int = 0  # frames that came while paused
    changes: list[str] = field(default_factory=list)

    @property
    def paused(self) -> bool:
        return self.user or self.mouse or self.face or self.calibrating

    def reason(self) -> str:
        reasons = [
            name
            for name, on in (
                ("by you", self.user),
                ("mouse in use", self.mouse),
                ("no face", self.face),
                ("calibrating", self.calibrating),
            )
            if on
        ]
        return ", ".join(reasons)

    def set_user(self, paused: bool, how: str) -> None:
        if paused != self.user:
            self.user = paused
            log.info("pointer %s (%s)", "paused" if paused else "resumed", how)

    def face_seen(self, seen: bool, t: float) -> None:
        if seen:
            self.last_face = t
            if self.face:
                self.face = False
                log.info("pointer resumed: the face is back")
        elif (
            self.cfg.face_lost_s
            and not self.face
            and self.last_face is not None
            and t - self.last_face >= self.cfg.face_lost_s
        ):
            self.face = True
            log.info("pointer paused: no face for %.1f s", self.cfg.face_lost_s)

    def mouse_check(self, where: tuple[int, int] | None, put: tuple[int, int] | None) -> None:
        """``where``: the real pointer now; ``put``: where gazeflow last put it. Pause while they differ because
        someone else moves it; resume once it has stayed still ``hands_off_s``."""
        if not self.cfg.auto_pause_mouse or where is None:
            return
        now = time.monotonic()
        if self.seen is not None and where != self.seen:
            moved_by_user = put is None or math.dist(where, put) > 2
            if moved_by_user:
                self.user_moved_at = now
                if not self.mouse:
                    self.mouse = True
                    log.info(
                        "pointer paused: the mouse is in use (resumes %.1f s after it stops)", self.cfg.hands_off_s
                    )
        self.seen = where
        if self.mouse and now - self.user_moved_at >= self.cfg.hands_off_s:
            self.mouse = False
            log.info("pointer resumed: hands off the mouse")

    def moved_to(self, where: tuple[int, int]) -> None:
        """gazeflow itself moved the pointer there: not a user's move."""
        self.seen = where


class Hotkey:
    """A global hotkey that asks for a pause toggle (read by the pointer's loop); off without a display."""

    def __init__(self, combination: str) -> None:
        self.pressed = threading.Event()
        self.listener: Any = None
        if not combination:
            return
        try:
            from pynput import keyboard
        except ImportError:
            log.warning("hotkey %s is off: pynput is not installed (pip install 'gazeflow[desktop]')", combination)
            return
        try:
            from .screen import quiet_xlib

            with quiet_xlib():
                self.listener = keyboard.GlobalHotKeys({combination: self.pressed.set})
                self.listener.daemon = True
                self.listener.start()
            log.info("hotkey %s toggles pause", combination)
        except Exception as exc:  # no X server, no permission (Wayland), a bad combination
            log.warning("hotkey %s is off: %s: %s", combination, type(exc).__name__, exc)
            self.listener = None

    def take(self) -> bool:
        if self.pressed.is_set():
            self.pressed.clear()
            return True
        return False

    def stop(self) -> None:
        if self.listener is not None:
            self.listener.stop()
