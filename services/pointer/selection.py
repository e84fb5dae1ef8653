"""Selecting what you see: the magnifier, the palette of actions, drag and scroll, and clicks made safe.

A pointer placed by gaze lands within the gaze error of where the user looks (about 4 degrees: 170 px on a
24-inch 1080p screen); buttons are 16-40 px. So, as Windows Eye Control's precise mouse and OptiKey's
magnifier do, a selection takes two looks:

1. A dwell (or a blink click) opens a magnifier centred where the user looked, ``S`` (the mean of the raw
   gaze over the dwell: its jitter averaged out): a window showing the screen around ``S`` enlarged ``zoom``
   times, the region large enough to hold what the user looked at (twice the gaze error across, plus a
   margin; the zoom shrinks to fit the monitor). One the user looked away from (what they wanted was not
   in it) makes the next one, opened nearby soon after, 1.5 times wider.
2. The user looks at the target inside it; a second dwell there acts on the matching screen point.

The matching point cancels the user's gaze bias. Where the user looks at ``T`` the gaze reads ``T + b``, so
``S = T + b``; the target shows in the window at ``P = W + zoom (T - S)`` (``W``: the window's centre) and the
second look reads ``G = P + b``. Then ``T = S + (G - W) / (zoom - 1)`` exactly when the bias is the same at
both looks (a calibration's error changes slowly across the screen), where the plain inverse of the
magnification, ``S + (G - W) / zoom``, would leave ``b / zoom``. What remains is the gaze's jitter divided by
``zoom - 1``. Each completed selection is a labelled sample (the pointer was at ``S``, the user chose ``T``):
``adapt.py`` refits the profile's drift from them.

In head and hybrid modes the pointer keeps moving while the magnifier is open (the head steers it, finely:
the magnifier divides its moves by ``zoom``) and the chosen point is the plain inverse, ``S + (P - W) / zoom``
of the pointer's place ``P``: a head-steered pointer has no bias to cancel.

Looking outside the magnifier for a moment, Esc, or a time-out close it with no action. The palette (a
docked column of actions) sets what the next selection does: left, right, double or middle click, drag
(press at one selection, release at the next) or scroll (while the gaze stays in the window under the
pointer: above its middle scrolls up, below down, faster further out).

Clicks are safe: none within ``safe_ms`` of a lost face, a tracking reset or stale gaze, and none within
``click_cooldown_ms`` of the last one. Everything is driven by the frames' times and points, so a replay
selects the same way in every run (run-all, run-sync), with or without a display.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from gazeflow.shared.errors import GazeflowError

from .gaze_model import Monitor
from .settings import PointerConfig

ACTIONS = ("left", "right", "double", "middle", "drag", "scroll")
LOOK_AWAY_S = 0.3  # the gaze outside the magnifier this long closes it
OPEN_S = 10.0  # a magnifier open this long with no selection closes
DEFAULT_ERROR_PX = 170.0  # without a profile: about 4 degrees on a 24-inch 1080p screen at 60 cm


@dataclass(frozen=True)
class Rect:
    x: int
    y: int
    w: int
    h: int

    def __contains__(self, p: tuple[float, float]) -> bool:
        return self.x <= p[0] < self.x + self.w and self.y <= p[1] < self.y + self.h

    @property
    def centre(self) -> tuple[float, float]:
        return self.x + self.w / 2, self.y + self.h / 2

    def as_list(self) -> list[int]:
        return [self.x, self.y, self.w, self.h]


@dataclass(frozen=True)
class Zoom:
    """An open magnifier: the region around ``centre`` it shows, enlarged ``zoom`` times in ``window``, for a
    look that read ``source`` (the centre too, but where that would show beyond the monitor's edge)."""

    source: tuple[float, float]
    window: Rect
    zoom: float
    opened: float
    by_gaze: bool = True  # chosen by where the gaze reads (its bias cancelled), else by the pointer's place
    centre: tuple[float, float] = (-1.0, -1.0)  # (-1, -1): the source

    @property
    def middle(self) -> tuple[float, float]:
        return self.source if self.centre == (-1.0, -1.0) else self.centre

    @property
    def region(self) -> Rect:
        (cx, cy), w, h = self.middle, self.window.w / self.zoom, self.window.h / self.zoom
        return Rect(round(cx - w / 2), round(cy - h / 2), round(w), round(h))

    def shows(self, point: tuple[float, float]) -> tuple[float, float]:
        """Where a screen point shows in the window."""
        (cx, cy), (wx, wy) = self.middle, self.window.centre
        return wx + self.zoom * (point[0] - cx), wy + self.zoom * (point[1] - cy)

    def target(self, gaze: tuple[float, float]) -> tuple[int, int]:
        """The screen point the user chose, looking at ``gaze`` inside the window, in the region shown. By
        gaze the bias is cancelled: looking at T read S = T + b, and T shows at W + zoom (T - C), read with
        the same bias, so T = (G - W - S + zoom C) / (zoom - 1) (with C = S: S + (G - W) / (zoom - 1)). In
        head and hybrid modes the pointer (head-steered, no bias) is at ``gaze``: the plain inverse."""
        (cx, cy), (wx, wy), z = self.middle, self.window.centre, self.zoom
        if self.by_gaze:
            x = (gaze[0] - wx - self.source[0] + z * cx) / (z - 1)
            y = (gaze[1] - wy - self.source[1] + z * cy) / (z - 1)
        else:
            x, y = cx + (gaze[0] - wx) / z, cy + (gaze[1] - wy) / z
        r = self.region  # never a point the magnifier did not show
        return round(min(max(x, r.x), r.x + r.w - 1)), round(min(max(y, r.y), r.y + r.h - 1))


def on_monitor(m: Monitor, point: tuple[float, float]) -> tuple[float, float]:
    """The point kept one pixel inside the monitor (pyautogui's fail-safe corners are the user's)."""
    return min(max(point[0], m.x + 1.0), m.x + m.width - 2.0), min(max(point[1], m.y + 1.0), m.y + m.height - 2.0)


def magnifier(
    cfg: PointerConfig, monitor: Monitor, at: tuple[float, float], error_px: float, t: float, area: Rect | None = None
) -> Zoom:
    """A magnifier for a look at ``at``: its region twice the error across plus a margin, enlarged ``zoom``
    times or less to fit 90% of ``area`` (the monitor, less a docked palette: never over it); the window
    centred on ``at`` and moved inside ``area`` near an edge; the region kept on the monitor."""
    area = area or Rect(monitor.x, monitor.y, monitor.width, monitor.height)
    side = 2 * error_px * 1.15 + 48
    fit = 0.9 * min(area.w, area.h) / side
    zoom = max(1.5, min(cfg.zoom, fit))
    size = round(min(side * zoom, 0.9 * min(area.w, area.h)))
    x = min(max(round(at[0] - size / 2), area.x), area.x + area.w - size)
    y = min(max(round(at[1] - size / 2), area.y), area.y + area.h - size)
    half = size / zoom / 2
    cx = min(max(at[0], monitor.x + half), monitor.x + monitor.width - half)
    cy = min(max(at[1], monitor.y + half), monitor.y + monitor.height - half)
    return Zoom(at, Rect(x, y, size, size), zoom, t, cfg.mode == "gaze", (cx, cy))


def palette_layout(cfg: PointerConfig, monitor: Monitor) -> dict[str, Rect]:
    """The palette's buttons, one per action, in order: docked on ``palette_side`` of the monitor (down its
    left or right edge, across its top or bottom), or from ``palette_at`` in the same direction."""
    n, px = len(ACTIONS), cfg.palette_px
    vertical = cfg.palette_side in ("left", "right")
    length = monitor.height if vertical else monitor.width
    step = min(length // (n + 1), 3 * px)
    if cfg.palette_at != (-1, -1):
        x0, y0 = cfg.palette_at
    elif vertical:
        x0 = monitor.x if cfg.palette_side == "left" else monitor.x + monitor.width - px
        y0 = monitor.y + (length - step * n) // 2
    else:
        x0 = monitor.x + (length - step * n) // 2
        y0 = monitor.y if cfg.palette_side == "top" else monitor.y + monitor.height - px
    if vertical:
        return {a: Rect(x0, y0 + i * step, px, step - 4) for i, a in enumerate(ACTIONS)}
    return {a: Rect(x0 + i * step, y0, step - 4, px) for i, a in enumerate(ACTIONS)}


def check_palette(cfg: PointerConfig, monitor: Monitor) -> None:
    """Before anything starts: a palette the gaze cannot reach (off the monitor the pointer moves on)."""
    if not cfg.palette:
        return
    rects = palette_layout(cfg, monitor).values()
    x0, y0 = min(r.x for r in rects), min(r.y for r in rects)
    x1, y1 = max(r.x + r.w for r in rects), max(r.y + r.h for r in rects)
    inside = (
        monitor.x <= x0 and monitor.y <= y0 and x1 <= monitor.x + monitor.width and y1 <= monitor.y + monitor.height
    )
    if not inside:
        raise GazeflowError(
            f"pointer.palette_at {list(cfg.palette_at)}: the palette ({x1 - x0}x{y1 - y0} px) would leave the "
            f"monitor the pointer moves on ({monitor.describe()} at {monitor.x}, {monitor.y}), where the gaze "
            "cannot reach it"
        )


@dataclass
class Safety:
    """When a click may happen: not within ``safe_ms`` of trouble, not within the cooldown of the last one."""

    cfg: PointerConfig
    trouble_at: float = -1e9
    clicked_at: float = -1e9
    blocked: int = 0

    def see(self, header: dict[str, Any], t: float, stale: bool, detect_every: int) -> None:
        """Trouble in this frame: no face, a tracking reset (a detection off the schedule), stale gaze."""
        reset = header.get("tracked") is False and detect_every > 1 and header["frame"] % detect_every != 0
        if header.get("face") is None or reset or stale:
            self.trouble_at = t

    def allows(self, t: float) -> bool:
        ok = t - self.trouble_at >= self.cfg.safe_ms / 1e3 and t - self.clicked_at >= self.cfg.click_cooldown_ms / 1e3
        if ok:
            self.clicked_at = t
        else:
            self.blocked += 1
        return ok


@dataclass
class Scroll:
    """Scrolling the window under the pointer while the gaze stays in it."""

    window: Rect
    away_since: float | None = None
    carry: float = 0.0

    def step(self, point: tuple[float, float], t: float, dt: float, lines_per_s: float) -> int | None:
        """Lines to scroll this frame (+ up), or None when the gaze has left the window."""
        if point not in self.window:
            self.away_since = t if self.away_since is None else self.away_since
            return None if t - self.away_since >= LOOK_AWAY_S else 0
        self.away_since = None
        mid = self.window.y + self.window.h / 2
        self.carry += lines_per_s * dt * (mid - point[1]) / (self.window.h / 2)
        lines = int(self.carry)
        self.carry -= lines
        return lines


@dataclass
class Selector:
    """The selection's state between frames: the open magnifier, the chosen action, a drag in progress,
    scrolling; the samples for the drift correction."""

    cfg: PointerConfig
    monitor: Monitor
    error_px: float
    action: str = ""
    zoom: Zoom | None = None
    away_since: float | None = None
    dragging: bool = False
    scroll: Scroll | None = None
    palette: dict[str, Rect] = field(default_factory=dict)
    widen: int = 0  # magnifiers that missed in a row: each one looked away from, the next one 1.5 times wider
    missed: tuple[float, tuple[float, float]] | None = None  # when and where the last one was looked away from
    counts: dict[str, int] = field(default_factory=lambda: {"opened": 0, "acted": 0, "closed": 0})
    area: Rect | None = None  # where a magnifier may open (set from the monitor and the palette)

    def __post_init__(self) -> None:
        self.action = self.action or self.cfg.action
        m = self.monitor
        self.area = Rect(m.x, m.y, m.width, m.height)  # where a magnifier may open: not over a docked palette
        if self.cfg.palette:
            self.palette = palette_layout(self.cfg, m)
            if self.cfg.palette_at == (-1, -1):
                px, side = self.cfg.palette_px, self.cfg.palette_side
                self.area = Rect(
                    m.x + px * (side == "left"),
                    m.y + px * (side == "top"),
                    m.width - px * (side in ("left", "right")),
                    m.height - px * (side in ("top", "bottom")),
                )

    def on_palette(self, point: tuple[float, float]) -> str:
        return next((a for a, rect in self.palette.items() if point in rect), "")

    def trigger(self, point: tuple[float, float], t: float) -> dict[str, Any]:
        """A dwell (or a blink click) at ``point``: open the magnifier; or, with none, choose an action on the
        palette or act right there."""
        if self.cfg.select != "zoom" and (chosen := self.on_palette(point)):
            return self._choose_action(chosen)
        if self.cfg.select == "zoom":  # the palette's buttons too are chosen in the magnifier
            again = (
                self.missed is not None
                and t - self.missed[0] < 5.0
                and math.dist(point, self.missed[1]) < 2 * self.error_px
            )
            self.widen = min(self.widen + 1, 3) if again else 0
            self.zoom = magnifier(self.cfg, self.monitor, point, self.error_px * 1.5**self.widen, t, self.area)
            self.away_since = None
            self.counts["opened"] += 1
            return {
                "event": "open",
                "at": [round(point[0]), round(point[1])],
                "zoom": round(self.zoom.zoom, 2),
                "window": self.zoom.window.as_list(),
                "region": self.zoom.region.as_list(),
            }
        return self._act((round(point[0]), round(point[1])), None)

    def watch(self, point: tuple[float, float] | None, t: float) -> dict[str, Any] | None:
        """While the magnifier is open: close it when the gaze has left it a moment, or after OPEN_S."""
        if self.zoom is None:
            return None
        if point is not None and point in self.zoom.window:
            self.away_since = None
        else:
            self.away_since = t if self.away_since is None else self.away_since
        if t - self.zoom.opened >= OPEN_S or (self.away_since is not None and t - self.away_since >= LOOK_AWAY_S):
            self.missed = (t, self.zoom.source)  # what the user looked for was not in it: the next one is wider
            return self.close("looked away" if t - self.zoom.opened < OPEN_S else "timed out")
        return None

    def choose(self, point: tuple[float, float]) -> dict[str, Any]:
        """The second dwell, inside the magnifier: act on the screen point the user looked at."""
        assert self.zoom is not None
        zoom, self.zoom = self.zoom, None
        self.missed, self.widen = None, 0
        x, y = on_monitor(self.monitor, zoom.target(point))
        at = round(x), round(y)
        if chosen := self.on_palette(at):  # a button of the palette: never a click on our own window
            return self._choose_action(chosen)
        return self._act(at, zoom)

    def _choose_action(self, chosen: str) -> dict[str, Any]:
        self.action = chosen
        event = {"event": "palette", "action": chosen}
        if self.dragging and chosen != "drag":  # a drag left half-done: the button goes up where it is
            self.dragging = False
            event["do"] = "release"
        return event

    def close(self, why: str) -> dict[str, Any]:
        self.zoom = None
        self.counts["closed"] += 1
        return {"event": "close", "why": why}

    def _act(self, at: tuple[int, int], zoom: Zoom | None) -> dict[str, Any]:
        """What the chosen action does at ``at``: the event, with what the backend must do (``do``)."""
        self.counts["acted"] += 1
        event: dict[str, Any] = {"event": "act", "at": list(at), "action": self.action}
        if zoom is not None:
            event["from"] = [round(zoom.source[0]), round(zoom.source[1])]
        if self.action == "drag":
            event["do"] = "release" if self.dragging else "press"
            self.dragging = not self.dragging
        elif self.action == "scroll":
            event["do"] = "scroll"
        else:
            event["do"] = self.action
        return event
