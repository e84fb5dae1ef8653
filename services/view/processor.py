"""The view: after the pointer, it draws each frame's findings on the frame (from the frame ring: no copy
between processes on one host) and shows it in a window (--show) and/or writes it to a video (--output).

Live, the view never holds up the pointer: it comes after it, and its inbox keeps only the newest frame
(older ones are skipped and counted, their slots given back at once). In a replay every frame is written.
The window is Tk (as the calibration window; the stages' OpenCV is the headless build): keys toggle the
overlays (each stage's manifest names its own: f face, l landmarks, h head pose, g gaze, e eyes, p pointer,
s figures), Space pauses the pointer, Esc stops the run as Ctrl-C does.
"""

from __future__ import annotations

import logging
import os
import signal
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from gazeflow.shared import registry
from gazeflow.shared.errors import GazeflowError
from gazeflow.shared.messages import Message
from gazeflow.shared.process import CONTROL_ENV
from gazeflow.shared.stage import Outputs, Processor

from .draw import annotate

if TYPE_CHECKING:
    from gazeflow.shared.config import Config

log = logging.getLogger("gazeflow.view")


def check_display(cfg: Config) -> None:
    """--show without a display: one line before anything starts."""
    if cfg.view.show and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise GazeflowError(
            "--show needs a display (DISPLAY is not set): write the annotated video with --output FILE.mp4 instead"
        )


class Window:
    """A Tk window showing frames, scaled to ``width``; keys are handed to ``on_key``."""

    def __init__(self, width: int, on_key: Any) -> None:
        import tkinter as tk

        self.tk = tk
        self.width = width
        self.root = tk.Tk(className="gazeflow-view")
        self.root.title("gazeflow view")
        self.label = tk.Label(self.root, background="black", borderwidth=0, highlightthickness=0)
        self.label.pack()
        self.root.bind("<Key>", lambda e: on_key(e.keysym))
        self.root.protocol("WM_DELETE_WINDOW", lambda: on_key("Escape"))
        self.image: Any = None

    def show(self, frame: np.ndarray) -> None:
        h, w = frame.shape[:2]
        size = (self.width, max(1, round(h * self.width / w)))
        small = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
        ppm = f"P6 {size[0]} {size[1]} 255\n".encode() + cv2.cvtColor(small, cv2.COLOR_BGR2RGB).tobytes()
        self.image = self.tk.PhotoImage(data=ppm, format="PPM")
        self.label.configure(image=self.image)
        self.pump()

    def pump(self) -> None:
        try:
            self.root.update()
        except self.tk.TclError:  # closed
            pass

    def close(self) -> None:
        try:
            self.root.destroy()
        except self.tk.TclError:
            pass


class View(Processor):
    def __init__(self, cfg: Config) -> None:
        super().__init__(cfg)
        check_display(cfg)
        self.chain = tuple(cfg.chain)
        self.keys = {o.key: o.layer for o in registry.overlays(self.chain)}  # the stages' overlays, by key
        self.overlays = set(cfg.view.overlays)
        self.writer: cv2.VideoWriter | None = None
        self.window = Window(cfg.view.width, self._key) if cfg.view.show else None
        self.drawn = self.written = 0
        self.fps = 0.0
        self.last_t: float | None = None
        self.stopping = False
        log.info(
            "view: %s%s",
            "a window" if self.window else "",
            (" and " if self.window and cfg.view.output else "") + (cfg.view.output or ""),
        )

    def _key(self, key: str) -> None:
        if key in self.keys:
            self.overlays ^= {self.keys[key]}
        elif key == "space":
            from gazeflow.services.pointer.control import send

            try:
                send("toggle", self.cfg.run_dir)
            except GazeflowError as exc:
                log.warning("view: cannot pause the pointer: %s", exc)
        elif key == "Escape" and not self.stopping:  # as Ctrl-C: the stream ends, results are written
            self.stopping = True
            os.kill(os.getppid() if os.environ.get(CONTROL_ENV) else os.getpid(), signal.SIGINT)

    def finish(self, msg: Message, outputs: Outputs) -> Message:
        if msg.kind == "eos":
            self._end()
            return msg
        h = msg.header
        t = float(h["t_capture"])
        if self.last_t is not None and t > self.last_t:
            self.fps = 0.9 * self.fps + 0.1 / (t - self.last_t) if self.fps else 1 / (t - self.last_t)
        self.last_t = t
        frame = msg.arrays.get("frame")
        if frame is None:  # the frames do not come to this host (tcp without the frame ring): draw on black
            source = h.get("source") or {}
            frame = np.zeros((int(source.get("height", 480)), int(source.get("width", 640)), 3), np.uint8)
        canvas = annotate(frame.copy(), h, self.overlays, self.fps, self.chain).image  # not on the ring's slot
        self.drawn += 1
        if self.cfg.view.output:
            if self.writer is None:
                self.writer = self._open_writer(canvas.shape[1], canvas.shape[0], float(h["source"].get("fps", 30)))
            self.writer.write(canvas)
            self.written += 1
        if self.window is not None:
            self.window.show(canvas)
        return msg

    def _open_writer(self, width: int, height: int, fps: float) -> cv2.VideoWriter:
        fourcc = cv2.VideoWriter_fourcc(*("mp4v" if self.cfg.view.output.lower().endswith(".mp4") else "MJPG"))
        writer = cv2.VideoWriter(self.cfg.view.output, fourcc, fps if 0 < fps < 1000 else 30.0, (width, height))
        if not writer.isOpened():
            raise GazeflowError(f"cannot write the video {self.cfg.view.output}")
        return writer

    def tick(self) -> None:
        if self.window is not None:
            self.window.pump()

    def _end(self) -> None:
        if self.writer is not None:
            self.writer.release()
            self.writer = None
        if self.window is not None:
            self.window.close()
            self.window = None
        log.info(
            "view: %d frames drawn%s",
            self.drawn,
            f", {self.written} written to {self.cfg.view.output}" if self.cfg.view.output else "",
        )
