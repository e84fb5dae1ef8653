"""Frame sources: a video file (paced or as fast as possible, optionally looped) or a camera."""

from __future__ import annotations

import os
import time
from collections import deque
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")  # keep OpenCV's own warnings off the terminal
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # and FFmpeg's (quiet)
import cv2
import numpy as np

from gazeflow.models.catalog import demo_video
from gazeflow.shared.errors import GazeflowError


def resolve_input(spec: str, assets_dir: str) -> str:
    """'cam:N' stays; 'demo' or a missing 'demo.mp4' mean the fetched demo video."""
    if spec.startswith("cam:"):
        return spec
    if spec in ("demo", "demo.mp4") and not Path(spec).exists():
        return str(demo_video(assets_dir))
    return spec


def ask_camera(cap: cv2.VideoCapture, want: Any) -> None:
    """Ask an open camera for a format, a size and a rate (in the order V4L2 wants: the format first). What
    it grants is what is read: its first frame says."""
    if want.camera_format != "any":
        cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*want.camera_format))
    cap.set(cv2.CAP_PROP_FRAME_WIDTH, want.camera_size[0])
    cap.set(cv2.CAP_PROP_FRAME_HEIGHT, want.camera_size[1])
    cap.set(cv2.CAP_PROP_FPS, want.camera_fps)


class Source:
    """Opens the input and yields (frame, grabbed wall time); raises GazeflowError when it cannot."""

    def __init__(self, spec: str, loop: bool = False, decode_threads: int = 0, camera: Any = None) -> None:
        """``decode_threads``: a file's decoder threads (0: FFmpeg's choice, one per core); ``camera``: what
        a camera is asked for (capture's settings: format, size, fps; None: the driver's defaults)."""
        self.spec = spec
        self.loop = loop
        self.camera = spec.startswith("cam:")
        if self.camera:
            index = spec[4:]
            if not index.isdigit():
                raise GazeflowError(f"bad camera {spec!r}: expected cam:N, e.g. cam:0")
            self.cap = cv2.VideoCapture(int(index))
            if not self.cap.isOpened():
                raise GazeflowError(f"camera {index} not found (cannot open /dev/video{index})")
            if camera is not None:
                ask_camera(self.cap, camera)
        else:
            path = Path(spec)
            if not path.is_file():
                raise GazeflowError(f"video not found: {spec}")
            if not os.access(path, os.R_OK):
                raise GazeflowError(f"video not readable: {spec}")
            threads = [cv2.CAP_PROP_N_THREADS, decode_threads] if decode_threads else []
            self.cap = cv2.VideoCapture(str(path), cv2.CAP_ANY, threads)
            if threads and not self.cap.isOpened():  # a reader that takes no thread count: without it
                self.cap = cv2.VideoCapture(str(path))
            if not self.cap.isOpened():
                raise GazeflowError(f"cannot decode video: {spec} (not a video OpenCV can read)")
        ok, first = self.cap.read()
        if not ok or first is None:
            raise GazeflowError(f"cannot read a frame from {spec}")
        self._first: np.ndarray | None = first
        self.grabbed_ns = time.time_ns()  # camera: wall time the driver handed over the last frame
        self.height, self.width = first.shape[:2]
        fps = float(self.cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if 0 < fps < 1000 else 30.0

    def read(self, into: np.ndarray | None = None) -> np.ndarray | None:
        """The next frame (decoded into `into` when given), or None at the end of a file that is not looped."""
        if self._first is not None:
            frame, self._first = self._first, None
            self.grabbed_ns = time.time_ns()  # read when opening: it counts from now
            if into is not None:
                into[...] = frame
                return into
            return frame
        if self.camera:  # grab (waits for the driver), stamp, then decode: the stamp is when the frame came
            ok = self.cap.grab()
            self.grabbed_ns = time.time_ns()
            ok, frame = self.cap.retrieve(into) if ok else (False, None)
            if ok:
                return frame
            raise GazeflowError(f"camera {self.spec} stopped delivering frames")
        ok, frame = self.cap.read(into)
        if ok:
            return frame
        if self.loop:
            self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = self.cap.read(into)
            if ok:
                return frame
        return None

    def skip(self) -> bool:
        """Advance one frame without converting it (a dropped frame); False at the end."""
        if self._first is not None:
            self._first = None
            return True
        if self.cap.grab():
            return True
        if self.loop:
            self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            return self.cap.grab()
        return False

    def info(self) -> dict[str, float | int]:
        return {"width": self.width, "height": self.height, "fps": self.fps}

    def close(self) -> None:
        self.cap.release()


def frame_count(video: str) -> int:
    """The frames of a video file (counted by reading when the container does not say)."""
    cap = cv2.VideoCapture(video)
    try:
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        if n <= 0:
            n = 0
            while cap.grab():
                n += 1
        return n
    finally:
        cap.release()


class Recorder:
    """Every frame capture reads, written to a video file (a session to replay: 'calibrate --record')."""

    def __init__(self, path: str, fps: float, size: tuple[int, int]) -> None:
        self.path = path
        fourcc = cv2.VideoWriter_fourcc(*"MJPG")  # a still-sharp image at a modest cost per frame
        self.writer = cv2.VideoWriter(path, fourcc, fps, size)
        if not self.writer.isOpened():
            raise GazeflowError(f"cannot write a video to {path} (MJPG in .avi)")
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        self.writer.write(frame)
        self.frames += 1

    def close(self) -> None:
        self.writer.release()


class Pacer:
    """Releases frame i at t0 + i / fps (no drift, no catch-up bursts).

    ``ahead(lead)`` sleeps until ``lead`` seconds before the next release, so that the
    frame can be decoded by then; ``wait()`` sleeps until the release itself.
    """

    def __init__(self, fps: float) -> None:
        self.period = 1.0 / fps if fps > 0 else 0.0
        self.t0: float | None = None
        self.i = 0

    def _due(self) -> float:
        now = time.monotonic()
        if self.t0 is None:
            self.t0 = now
        return self.t0 + self.i * self.period

    def ahead(self, lead: float) -> None:
        if self.period == 0:
            return
        start = self._due() - min(lead, self.period)
        now = time.monotonic()
        if start > now:
            time.sleep(start - now)

    def wait(self) -> None:
        if self.period == 0:
            return
        due = self._due()
        now = time.monotonic()
        self.i += 1
        if due > now:
            time.sleep(due - now)
        elif now - due > self.period:  # fell behind (blocked): re-anchor instead of bursting
            self.t0 = now - (self.i - 1) * self.period


class DecodeLead:
    """How long before its release time a frame should start decoding: the slowest recent decode, plus a margin."""

    def __init__(self, keep: int = 16, margin: float = 1.25, floor_s: float = 0.001) -> None:
        self.recent: deque[float] = deque([0.01], maxlen=keep)
        self.margin = margin
        self.floor_s = floor_s

    def add(self, seconds: float) -> None:
        self.recent.append(seconds)

    @property
    def seconds(self) -> float:
        return max(self.recent) * self.margin + self.floor_s
