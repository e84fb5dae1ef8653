"""The head as a pointing device: relative moves from the head's movement (head mode, as Camera Mouse, Enable
Viacam and GameFace move the pointer by a face feature's movement in the image), and gaze placing the pointer
on a saccade while the head fine-tunes it (hybrid: MAGIC pointing, Zhai 1999, as Talon and Precision Gaze
Mouse combine them).

What moves the pointer is the face's centre in the image (the face box's), in millimetres of face movement
(scaled by the eyes' distance in the image, ``camera.ipd_mm`` apart: the same turn moves the pointer as much
near the camera as far from it). Not the head pose angles: measured on the demo, the pose model's angles
jitter by 0.5-0.9 degrees a frame and change by 1-1.6 degrees for a face box moved by 2 px, where the box's
centre jitters by 0.6 px, about 0.2 degrees of turn (docs/decisions.md).

Everything here is driven by the frames' faces and times, never by the wall clock: a replay moves the pointer
the same way in every run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .filters import OneEuro, PointFilter
from .settings import CameraConfig, PointerConfig

SCALE_WEIGHT = 0.95  # the eyes' distance in the image, averaged over about a second: the scale changes slowly


@dataclass
class HeadMotion:
    """Pixels to move for each frame's movement of the face: its centre in mm (steadied by a One Euro filter),
    each frame's change below ``head_dead_mm`` taken as what noise is left, the rest moved by gain x (1 +
    accel x speed). Turning the head to the user's right (the image's left, mirrored) moves the pointer
    right; tilting it up moves the pointer up."""

    cfg: PointerConfig
    camera: CameraConfig = field(default_factory=CameraConfig)
    at_mm: tuple[float, float] = (0.0, 0.0)  # where the face is, accumulated from its moves, in mm
    last_px: tuple[float, float] | None = None
    last: tuple[float, float] | None = None  # the filtered place of the last frame
    mm_per_px: float = 0.0
    steady: PointFilter = field(default_factory=PointFilter)

    def __post_init__(self) -> None:
        self.steady = OneEuro(self.cfg.head_min_cutoff, self.cfg.head_beta, 1.0)

    def delta(self, header: dict[str, Any], t: float) -> tuple[float, float]:
        face, marks = header.get("face"), header.get("landmarks")
        if not face or not marks:  # the face's move while it was lost is not known: none is made
            self.last_px = None
            return 0.0, 0.0
        centre = ((face[0] + face[2]) / 2, (face[1] + face[3]) / 2)
        scale = self.camera.ipd_mm / max(math.dist(marks[0], marks[1]), 1.0)
        self.mm_per_px = scale if not self.mm_per_px else SCALE_WEIGHT * self.mm_per_px + (1 - SCALE_WEIGHT) * scale
        last_px, self.last_px = self.last_px or centre, centre
        moved = ((centre[0] - last_px[0]) * self.mm_per_px, (centre[1] - last_px[1]) * self.mm_per_px)
        self.at_mm = (self.at_mm[0] + moved[0], self.at_mm[1] + moved[1])
        now = self.steady(self.at_mm[0], self.at_mm[1], t)
        last, self.last = self.last, now
        if last is None:
            return 0.0, 0.0
        dx = self._move(now[0] - last[0])
        return (-dx if self.camera.mirror else dx), self._move(now[1] - last[1])

    def _move(self, mm: float) -> float:
        size = abs(mm) - self.cfg.head_dead_mm
        if size <= 0:
            return 0.0
        return math.copysign(self.cfg.head_gain * size * (1 + self.cfg.head_accel * size), mm)


@dataclass
class Placement:
    """Where the pointer is in head and hybrid modes (monitor pixels, before the monitor's origin)."""

    cfg: PointerConfig
    width: int
    height: int
    at: tuple[float, float] | None = None
    away: int = 0  # hybrid: frames in a row the gaze has been far from the pointer
    saccade_px: float = 340.0  # hybrid: what counts as a saccade (the processor sets it from the gaze error)

    def head(self, move: tuple[float, float], start: tuple[float, float]) -> tuple[float, float]:
        """Head mode: the pointer moves by the head's rotation, from where it was (the gaze's first point)."""
        x, y = self.at if self.at is not None else start
        self.at = self._inside(x + move[0], y + move[1])
        return self.at

    def hybrid(self, move: tuple[float, float], gaze: tuple[float, float]) -> tuple[float, float]:
        """Hybrid: a gaze far from the pointer for two frames running (a saccade, not a blip) places it there;
        otherwise the head's rotation moves it, finely."""
        if self.at is None:
            self.at = gaze
            return gaze
        self.away = self.away + 1 if math.dist(gaze, self.at) > self.saccade_px else 0
        if self.away >= 2:
            self.away = 0
            self.at = self._inside(*gaze)
        else:
            self.at = self._inside(self.at[0] + move[0], self.at[1] + move[1])
        return self.at

    def _inside(self, x: float, y: float) -> tuple[float, float]:
        return min(max(x, 1.0), self.width - 2.0), min(max(y, 1.0), self.height - 2.0)


def place(
    cfg: PointerConfig,
    motion: HeadMotion,
    placement: Placement,
    header: dict[str, Any],
    gaze: tuple[float, float],
    t: float,
) -> tuple[float, float]:
    """The pointer's point for the configured mode (gaze: the filtered gaze point itself)."""
    if cfg.mode == "gaze":
        return gaze
    move = motion.delta(header, t)
    return placement.head(move, gaze) if cfg.mode == "head" else placement.hybrid(move, gaze)
