"""Pointer backends: pyautogui (a real pointer) and null (log the intended moves)."""

from __future__ import annotations

import logging
import os
from typing import Protocol

from gazeflow.shared.config import PointerConfig
from gazeflow.shared.errors import GazeflowError

log = logging.getLogger("gazeflow.pointer")


class Backend(Protocol):
    name: str
    size: tuple[int, int]

    def move(self, x: int, y: int) -> None: ...

    def click(self, button: str) -> None: ...

    def position(self) -> tuple[int, int] | None: ...


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
