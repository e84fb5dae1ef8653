"""From one frame's gaze to the pointer's position: the gaze model, the filter, the dead zone, holding still."""

from __future__ import annotations

import math
from collections import deque
from typing import TYPE_CHECKING, Any

from .filters import make_filter
from .gaze_model import Correction, GazeMapper, Monitor
from .head import HeadMotion, Placement, place

if TYPE_CHECKING:
    from gazeflow.shared.config import Config


class PointerController:
    """Where the pointer goes for each frame, in the desktop's pixels.

    The gaze model gives the raw point (unclamped, reported as ``raw``); the
    filter steadies it; it is kept one pixel inside the monitor (pyautogui's
    fail-safe corners are the user's); moves smaller than the dead zone are
    not made; without a face or a gaze the pointer holds still.
    """

    def __init__(self, cfg: Config, monitor: Monitor, correction: Correction | None = None, fps: float = 30.0) -> None:
        self.cfg = cfg.pointer
        self.monitor = monitor
        self.mapper = GazeMapper(cfg.camera, monitor, correction)
        self.filter = make_filter(cfg.pointer, fps=fps)
        self.last_move: tuple[int, int] | None = None
        self.moves = 0
        self.offset = (0.0, 0.0)  # 'gazeflow ctl recenter': added to every raw point
        self.drift = (0.0, 0.0)  # the drift correction learnt from selections (adapt.py): added too
        self.distance_mm = 600.0  # the eyes' distance from the screen, as last seen
        self.recent: deque[tuple[float, float]] = deque(maxlen=15)  # the last raw points, for recentring
        self.motion = HeadMotion(cfg.pointer, cfg.camera)  # head and hybrid modes
        self.placement = Placement(cfg.pointer, monitor.width, monitor.height)

    def recenter(self) -> tuple[int, int] | None:
        """Shift the points so that where the user looks now (the median of the last raw points) is the
        monitor's centre (head and hybrid modes: the pointer goes there too); None before any gaze."""
        if not self.recent:
            return None
        if self.cfg.mode != "gaze":
            self.placement.at = (self.monitor.width / 2, self.monitor.height / 2)
        xs, ys = sorted(p[0] for p in self.recent), sorted(p[1] for p in self.recent)
        mid = len(xs) // 2
        self.offset = (
            self.monitor.width / 2 - xs[mid] - self.drift[0],
            self.monitor.height / 2 - ys[mid] - self.drift[1],
        )
        return round(self.offset[0]), round(self.offset[1])

    def degrees(self, px: float) -> float:
        """An error of ``px`` pixels on this monitor, as the visual angle at the eyes' distance."""
        mm = px * self.monitor.width_mm / max(self.monitor.width, 1)
        return math.degrees(math.atan2(mm, self.distance_mm))

    def update(self, header: dict[str, Any], t: float, act: bool = True) -> dict[str, Any] | None:
        """The pointer decision for one frame at time t (seconds); None while no gaze is seen. ``act``
        False: where it would go, but no move is made (paused)."""
        sample = self.mapper.sample(header)
        if sample is None:
            return None
        m = self.monitor
        self.recent.append(sample.px)
        self.distance_mm = sample.distance_mm
        px = (sample.px[0] + self.offset[0] + self.drift[0], sample.px[1] + self.offset[1] + self.drift[1])
        fx, fy = place(self.cfg, self.motion, self.placement, header, self.filter(px[0], px[1], t), t)
        x = m.x + round(min(max(fx, 1.0), m.width - 2.0))
        y = m.y + round(min(max(fy, 1.0), m.height - 2.0))
        moved = act and (self.last_move is None or math.dist(self.last_move, (x, y)) >= self.cfg.dead_zone_px)
        if moved:
            self.last_move = (x, y)
            self.moves += 1
        raw = [round(m.x + px[0], 1), round(m.y + px[1], 1)]
        return {"x": x, "y": y, "moved": moved, "raw": raw}
