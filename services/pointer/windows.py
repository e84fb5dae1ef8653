"""The pointer's own windows, where there is a display: the magnifier and the palette (Tk, as the calibration
window and the view; borderless and always on top, so that they sit over any application).

They only show what ``selection.py`` decided: the magnifier shows the real screen's pixels of its region
(mss takes them before the window appears, so it never magnifies itself), enlarged, with the dwell's progress
along its bottom edge; the palette shows the actions, the chosen one lit. The pointer's loop pumps them
(``pump``) on every turn. Esc while the magnifier is open closes it.
"""

from __future__ import annotations

import logging
from typing import Any

import cv2
import numpy as np

from .selection import ACTIONS, Selector, Zoom
from .settings import PointerConfig

log = logging.getLogger("gazeflow.pointer")
BAR_PX = 8  # the dwell's progress bar along the magnifier's bottom edge
BORDER_PX, BORDER_RGB = 4, (255, 204, 0)  # the magnifier's frame


class Windows:
    def __init__(self, cfg: PointerConfig, selector: Selector) -> None:
        import tkinter as tk

        self.tk, self.selector = tk, selector
        self.root = tk.Tk(className="gazeflow-pointer")
        self.root.withdraw()
        self.magnifier = self._borderless("gazeflow magnifier")
        self.image: Any = None
        self.label = tk.Label(self.magnifier, borderwidth=0, highlightthickness=0, background="black")
        self.label.pack()
        self.bar = tk.Frame(self.magnifier, height=BAR_PX, background="#ffcc00")
        self.magnifier.bind("<Escape>", lambda _e: self._escape())
        self.shown: Zoom | None = None
        self._esc = False
        self.buttons: dict[str, Any] = {}
        if cfg.palette:
            self._palette()
        self.pump()

    def _borderless(self, title: str) -> Any:
        window = self.tk.Toplevel(self.root)
        window.title(title)
        window.overrideredirect(True)  # no frame: a window manager neither moves nor decorates it
        window.attributes("-topmost", True)
        window.withdraw()
        return window

    def _palette(self) -> None:
        """The palette: a button per action where selection.py placed them, on one borderless window."""
        rects = self.selector.palette
        x0, y0 = min(r.x for r in rects.values()), min(r.y for r in rects.values())
        x1 = max(r.x + r.w for r in rects.values())
        y1 = max(r.y + r.h for r in rects.values())
        window = self._borderless("gazeflow palette")
        window.geometry(f"{x1 - x0}x{y1 - y0}+{x0}+{y0}")
        window.configure(background="#202020")
        for action in ACTIONS:
            r = rects[action]
            button = self.tk.Label(
                window,
                text=action,
                font=("DejaVu Sans", 14, "bold"),
                foreground="white",
                background="#404040",
                relief="raised",
                borderwidth=2,
            )
            button.place(x=r.x - x0, y=r.y - y0, width=r.w, height=r.h)
            self.buttons[action] = button
        window.deiconify()
        self.palette_window = window
        self._light()

    def _light(self) -> None:
        """The palette's chosen action lit."""
        for action, button in self.buttons.items():
            button.configure(background="#d08000" if action == self.selector.action else "#404040")

    def show(self, zoom: Zoom | None) -> None:
        """The magnifier for ``zoom`` (None: hidden); the palette's chosen action lit."""
        self._light()
        if zoom is self.shown:
            return
        self.shown = zoom
        if zoom is None:
            self.magnifier.withdraw()
            self.pump()
            return
        self._esc = False
        w = zoom.window
        self.image = self._photo(_grab(zoom), (w.w, w.h))
        self.label.configure(image=self.image)
        self.magnifier.geometry(f"{w.w}x{w.h}+{w.x}+{w.y}")
        self.magnifier.deiconify()
        self.magnifier.lift()
        self.magnifier.focus_force()  # Esc reaches it
        self.pump()

    def progress(self, fraction: float) -> None:
        """The dwell's progress inside the magnifier, as a bar along its bottom edge."""
        if self.shown is None:
            return
        width = round(self.shown.window.w * max(0.0, min(1.0, fraction)))
        if width:
            self.bar.place(x=0, y=self.shown.window.h - BAR_PX, width=width, height=BAR_PX)
        else:
            self.bar.place_forget()

    def _photo(self, image: np.ndarray, size: tuple[int, int]) -> Any:
        big = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
        edge = BORDER_PX  # a frame drawn on the image, so that the magnified view never passes for the screen
        big[:edge], big[-edge:], big[:, :edge], big[:, -edge:] = BORDER_RGB, BORDER_RGB, BORDER_RGB, BORDER_RGB
        ppm = f"P6 {size[0]} {size[1]} 255\n".encode() + big.tobytes()
        return self.tk.PhotoImage(data=ppm, format="PPM")

    def _escape(self) -> None:
        self._esc = True

    def escaped(self) -> bool:
        esc, self._esc = self._esc, False
        return esc and self.shown is not None

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


def _grab(zoom: Zoom) -> np.ndarray:
    """The real screen's pixels of the magnifier's region (RGB), black where it leaves the screen."""
    import mss

    r = zoom.region
    with mss.MSS() as shot:
        full = shot.monitors[0]  # the whole desktop
        x0, y0 = max(r.x, full["left"]), max(r.y, full["top"])
        x1, y1 = min(r.x + r.w, full["left"] + full["width"]), min(r.y + r.h, full["top"] + full["height"])
        out = np.zeros((r.h, r.w, 3), np.uint8)
        if x1 > x0 and y1 > y0:
            raw = np.asarray(shot.grab({"left": x0, "top": y0, "width": x1 - x0, "height": y1 - y0}))
            out[y0 - r.y : y1 - r.y, x0 - r.x : x1 - r.x] = raw[:, :, 2::-1]  # BGRA -> RGB
    return out
