"""Pointer backends: pyautogui (a real pointer) and null (log the intended moves)."""

from __future__ import annotations

import logging
import os
from typing import Protocol

from gazeflow.shared.errors import GazeflowError

from .settings import PointerConfig

log = logging.getLogger("gazeflow.pointer")


class Backend(Protocol):
    name: str
    size: tuple[int, int]

    def move(self, x: int, y: int) -> None: ...

    def click(self, button: str) -> None: ...

    def position(self) -> tuple[int, int] | None: ...

    def do(self, what: str) -> None: ...

    def scroll(self, lines: int) -> None: ...

    def window_at(self, x: int, y: int) -> tuple[int, int, int, int] | None: ...


class NullBackend:
    """Moves nothing; logs each intended move at debug level."""

    name = "null"

    def __init__(self, size: tuple[int, int]) -> None:
        self.size = size

    def move(self, x: int, y: int) -> None:
        log.debug("pointer to (%d, %d)", x, y)

    def click(self, button: str) -> None:
        log.debug("%s click", button)

    def position(self) -> tuple[int, int] | None:
        return None  # no real pointer: nobody else moves it

    def do(self, what: str) -> None:
        log.debug("pointer: %s", what)

    def scroll(self, lines: int) -> None:
        log.debug("scroll %+d", lines)

    def window_at(self, x: int, y: int) -> tuple[int, int, int, int] | None:
        return None  # no windows: the monitor stands for the window under the pointer


class PyAutoGuiBackend:
    """Absolute moves with no tween and no pause, so the stream never waits on the pointer."""

    name = "pyautogui"

    def __init__(self, fail_safe: bool) -> None:
        from .screen import quiet_xlib

        try:
            with quiet_xlib():
                import pyautogui  # needs a display even to import
        except Exception as exc:
            raise GazeflowError(f"pyautogui unavailable: {type(exc).__name__}: {exc}") from None
        pyautogui.PAUSE = 0
        pyautogui.MINIMUM_DURATION = 0
        pyautogui.FAILSAFE = fail_safe
        self._pyautogui = pyautogui
        width, height = pyautogui.size()
        self.size = (int(width), int(height))

    def click(self, button: str) -> None:
        """A click where the pointer is: a click never moves it."""
        self._pyautogui.click(button=button, _pause=False)

    def position(self) -> tuple[int, int] | None:
        x, y = self._pyautogui.position()
        return int(x), int(y)

    def do(self, what: str) -> None:
        """An action where the pointer is: a click of a button, a double click, a drag's press or release."""
        p = self._pyautogui
        if what in ("left", "right", "middle"):
            p.click(button=what, _pause=False)
        elif what == "double":
            p.doubleClick(_pause=False)
        elif what == "press":
            p.mouseDown(_pause=False)
        elif what == "release":
            p.mouseUp(_pause=False)

    def scroll(self, lines: int) -> None:
        self._pyautogui.scroll(lines, _pause=False)

    def window_at(self, x: int, y: int) -> tuple[int, int, int, int] | None:
        """The top-level window under the pointer (x, y, width, height), from the X server; None elsewhere."""
        try:
            from Xlib import display

            d = display.Display()
            root = d.screen().root
            child = root.query_pointer().child
            if not child:
                return None
            g = child.get_geometry()
            pos = child.translate_coords(root, 0, 0)
            d.close()
            return -pos.x, -pos.y, g.width, g.height
        except Exception:  # not X11, no permission: the monitor stands for it
            return None

    def move(self, x: int, y: int) -> None:
        try:
            self._pyautogui.moveTo(x, y, _pause=False)
        except self._pyautogui.FailSafeException:
            raise GazeflowError(
                "pyautogui fail-safe: the pointer was moved into a screen corner, stopping "
                "(set pointer.fail_safe = false to disable)"
            ) from None


def make_backend(cfg: PointerConfig) -> Backend:
    if cfg.backend == "null":
        return NullBackend(cfg.screen)
    has_display = bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    if cfg.backend == "pyautogui":
        if not has_display:
            raise GazeflowError("pointer backend pyautogui needs a display (DISPLAY is not set)")
        return PyAutoGuiBackend(cfg.fail_safe)
    if not has_display:
        log.warning("no display (DISPLAY not set): pointer moves are logged, not made (backend null)")
        return NullBackend(cfg.screen)
    try:
        return PyAutoGuiBackend(cfg.fail_safe)
    except GazeflowError as exc:
        log.warning("%s: pointer moves are logged, not made (backend null)", exc)
        return NullBackend(cfg.screen)
