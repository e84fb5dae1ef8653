"""The monitors of the desktop (screeninfo: Xinerama/RandR on X11, the OS's own elsewhere) and which one is used."""

from __future__ import annotations

import contextlib
import io
import logging
import os
from collections.abc import Iterator
from typing import Any

from gazeflow.shared.errors import GazeflowError

from .gaze_model import Monitor
from .settings import PointerConfig

log = logging.getLogger("gazeflow.pointer")
NULL_MM = (527.0, 296.0)  # the null backend's screen: a 24" 16:9 monitor
FALLBACK_DPI = 96.0  # when the display reports no physical size


@contextlib.contextmanager
def quiet_xlib() -> Iterator[None]:
    """python-xlib prints "Xlib.xauth: warning, no xauthority details available" on stdout when the
    X authority file is empty or missing, which is harmless for a local display: kept off the output."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _enumerate() -> list[Any]:
    """screeninfo's monitors. On X11 both RandR (sizes in mm, from EDID) and Xinerama are asked, and the one
    that sees more heads wins: a Xinerama desktop (Xvfb +xinerama, some remote desktops) has one RandR output."""
    import screeninfo
    from screeninfo import Enumerator

    if not os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return list(screeninfo.get_monitors())
    found: dict[str, list[Any]] = {}
    for e in (Enumerator.Xrandr, Enumerator.Xinerama):
        try:
            found[e.name] = list(screeninfo.get_monitors(e))
        except Exception:  # this X server lacks the extension
            found[e.name] = []
    randr, xinerama = found["Xrandr"], found["Xinerama"]
    if len(xinerama) > len(randr):
        return xinerama
    return randr or list(screeninfo.get_monitors())


def monitors() -> list[Monitor]:
    """Every monitor of the display, in the order the display gives them; [] without one."""
    if not has_display():
        return []
    try:
        with quiet_xlib():
            found = _enumerate()
    except Exception as exc:  # no X server answering, no enumerator for this platform
        log.warning("cannot list the monitors: %s: %s", type(exc).__name__, exc)
        return []
    out = []
    for i, m in enumerate(found):
        width_mm, height_mm = float(m.width_mm or 0), float(m.height_mm or 0)
        if width_mm <= 0 or height_mm <= 0:  # set pointer.screen_mm for a true figure
            width_mm, height_mm = m.width * 25.4 / FALLBACK_DPI, m.height * 25.4 / FALLBACK_DPI
        primary = bool(m.is_primary) if m.is_primary is not None else i == 0
        out.append(Monitor(i, m.name or f"monitor {i}", m.x, m.y, m.width, m.height, width_mm, height_mm, primary))
    if out and not any(m.primary for m in out):
        out[0] = Monitor(**{**out[0].to_dict(), "primary": True})
    return out


def null_monitor(cfg: PointerConfig) -> Monitor:
    mm = cfg.screen_mm if min(cfg.screen_mm) > 0 else NULL_MM
    return Monitor(0, "null", 0, 0, cfg.screen[0], cfg.screen[1], mm[0], mm[1], True)


def choose(cfg: PointerConfig, found: list[Monitor]) -> Monitor:
    """The configured monitor (-1: the primary), its size in mm from the config when set there."""
    if not found:
        return null_monitor(cfg)
    if cfg.monitor == -1:
        monitor = next(m for m in found if m.primary)
    elif cfg.monitor < len(found):
        monitor = found[cfg.monitor]
    else:
        listed = "; ".join(f"{m.index}: {m.describe()}" for m in found)
        raise GazeflowError(f"monitor {cfg.monitor}: this display has {len(found)} ({listed})")
    if min(cfg.screen_mm) > 0:
        monitor = Monitor(**{**monitor.to_dict(), "width_mm": cfg.screen_mm[0], "height_mm": cfg.screen_mm[1]})
    return monitor


class PointerClaim:
    """One gazeflow drives the pointer of a display: a lock file (flock) in the runtime folder, held by the
    pointer stage; a second run on the same display is refused in one line unless ``pointer.share``."""

    def __init__(self, run_dir: str) -> None:
        import fcntl

        from gazeflow.shared.config import runtime_root

        display = (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or "none").replace("/", "_")
        self.path = os.path.join(runtime_root(), f"gazeflow-pointer-{display}.lock")
        while True:  # the holder removes the file when it lets go: a lock on a removed file is no claim
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.pread(self.fd, 200, 0).decode(errors="replace").strip() or "?"
                os.close(self.fd)
                raise GazeflowError(
                    f"another gazeflow already moves the pointer on display {display} ({holder}): stop it, or "
                    "pass --share-pointer to run a second one anyway"
                ) from None
            try:
                if os.stat(self.path).st_ino == os.fstat(self.fd).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(self.fd)
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"pid {os.getpid()}, run dir {run_dir}".encode(), 0)

    def release(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(OSError):  # removed while still held: no file is left behind
                os.unlink(self.path)
            os.close(self.fd)
            self.fd = -1
