"""From a gaze vector to a screen position: mapping, smoothing, dead zone, pause."""

from __future__ import annotations

import math
from typing import Any

from gazeflow.shared import geometry
from gazeflow.shared.config import PointerConfig


class PointerController:
    """Maps gaze angles linearly onto the screen (centre = looking into the camera).

    ``range_deg`` is the gaze angle that reaches the screen edge; ``mirror``
    flips x so that looking to your own right moves the pointer right when the
    camera faces you. Targets are smoothed exponentially, moves smaller than
    the dead zone are skipped, and the pointer stays put while no gaze is seen.
    """

    def __init__(self, cfg: PointerConfig, size: tuple[int, int]) -> None:
        self.cfg = cfg
        self.width, self.height = size
        self.smoothed: tuple[float, float] | None = None
        self.last_move: tuple[int, int] | None = None
        self.moves = 0

    def target(self, gaze: list[float]) -> tuple[float, float]:
        horizontal, vertical = geometry.gaze_angles(gaze)
        nx = max(-1.0, min(1.0, horizontal / self.cfg.range_deg[0]))
        ny = max(-1.0, min(1.0, vertical / self.cfg.range_deg[1]))
        if self.cfg.mirror:
            nx = -nx
        # keep one pixel off the edges: pyautogui's fail-safe corners are for the user
        x = min(max((0.5 + nx / 2) * (self.width - 1), 1.0), self.width - 2.0)
        y = min(max((0.5 - ny / 2) * (self.height - 1), 1.0), self.height - 2.0)
        return x, y

    def update(self, gaze: list[float] | None) -> dict[str, Any] | None:
        """The pointer decision for one frame; None while there is no gaze (paused)."""
        if gaze is None:
            return None
        tx, ty = self.target(gaze)
        a = self.cfg.smoothing
        if self.smoothed is not None:
            tx, ty = a * self.smoothed[0] + (1 - a) * tx, a * self.smoothed[1] + (1 - a) * ty
        self.smoothed = (tx, ty)
        x, y = round(tx), round(ty)
        moved = self.last_move is None or math.dist(self.last_move, (x, y)) >= self.cfg.dead_zone_px
        if moved:
            self.last_move = (x, y)
            self.moves += 1
        return {"x": x, "y": y, "moved": moved}
