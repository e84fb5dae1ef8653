"""The calibration window: full screen on one monitor, one target at a time (Tk, from Python's standard library).

A target is a white disc that shrinks to a small ring around a red centre, so
that the eye settles on its middle; a line at the bottom says which target it is
and that Esc cancels. The window has no frame and covers exactly its monitor,
so it needs no window manager (it works under Xvfb too).
"""

from __future__ import annotations

import tkinter as tk

from ..pointer.gaze_model import Monitor

BACKGROUND = "#262626"
START_RADIUS = 36  # px, when a target appears
END_RADIUS = 9  # px, once it has shrunk
SHRINK = 0.6  # the part of a target's time it takes to shrink


class TargetWindow:
    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor
        self.cancelled = False
        self.root = tk.Tk(className="gazeflow-calibrate")
        self.root.title("gazeflow calibrate")
        self.root.overrideredirect(True)  # no frame, no window manager needed: exactly the monitor
        self.root.geometry(f"{monitor.width}x{monitor.height}+{monitor.x}+{monitor.y}")
        self.root.configure(background=BACKGROUND)
        self.canvas = tk.Canvas(
            self.root,
            width=monitor.width,
            height=monitor.height,
            background=BACKGROUND,
            highlightthickness=0,
            cursor="none",
        )
        self.canvas.pack()
        self.root.bind("<Escape>", self._cancel)
        self.root.lift()
        self.root.attributes("-topmost", True)
        self.root.focus_force()
        self.pump()

    def _cancel(self, _event: object = None) -> None:
        self.cancelled = True

    def text(self, line: str, sub: str = "") -> None:
        self.canvas.delete("all")
        w, h = self.monitor.width, self.monitor.height
        self.canvas.create_text(w / 2, h / 2 - 20, text=line, fill="white", font=("Helvetica", 22))
        if sub:
            self.canvas.create_text(w / 2, h / 2 + 20, text=sub, fill="#b0b0b0", font=("Helvetica", 14))

    def target(self, x: float, y: float, progress: float, caption: str) -> None:
        """A target at (x, y) on the monitor, ``progress`` (0..1) through its time."""
        self.canvas.delete("all")
        shrink = min(1.0, progress / SHRINK)
        r = START_RADIUS + (END_RADIUS - START_RADIUS) * shrink
        self.canvas.create_oval(x - r, y - r, x + r, y + r, fill="white", outline="white")
        self.canvas.create_oval(x - 3, y - 3, x + 3, y + 3, fill="#e02020", outline="#e02020")
        self.canvas.create_text(
            self.monitor.width / 2, self.monitor.height - 24, text=caption, fill="#909090", font=("Helvetica", 12)
        )

    def pump(self) -> None:
        """Draw and take the keys; call it often (every few tens of ms)."""
        self.root.update()

    def close(self) -> None:
        try:
            self.root.destroy()
        except tk.TclError:
            pass
