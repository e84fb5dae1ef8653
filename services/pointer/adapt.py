"""Drift corrected by use: every magnified selection says where the pointer was (``S``, the gaze as mapped)
and where the user chose (``T``); the difference is the gaze's error there, labelled by the user's own choice
(WebGazer keeps learning from clicks the same way).

The correction is an offset in screen pixels added to every mapped point, refitted from the newest
``adapt_window`` selections (the median of their errors, robust to a mistaken one) and adopted only when its
leave-one-out error is 15% below the current one's, after 5 selections at least: one lucky selection never
moves the pointer, nor do errors that differ from place to place. The live error estimate (the median
error of the newest selections after the correction) is in ``ctl status``, the view and the results, in
pixels and degrees. A live run saves the correction in the profile (a replay never does: it must give the
same results every time).
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import dataclass, field

Point = tuple[float, float]
MIN_SAMPLES = 5  # selections before the first refit
GAIN = 0.85  # a refit is adopted when its leave-one-out error is this much lower: errors that differ from place
# to place (a calibration's, not a drift) give an offset no better than none, and it must not chase them


def _median(points: list[Point]) -> Point:
    return statistics.median(p[0] for p in points), statistics.median(p[1] for p in points)


@dataclass
class Drift:
    window: int
    offset: Point = (0.0, 0.0)  # the correction now in use, pixels
    samples: deque[tuple[Point, Point]] = field(default_factory=deque)  # (mapped point without it, chosen)
    refits: int = 0

    def __post_init__(self) -> None:
        self.samples = deque(self.samples, maxlen=self.window)

    def add(self, mapped: Point, chosen: Point) -> bool:
        """A selection: the pointer was at ``mapped`` (with the correction then in use), the user chose
        ``chosen``. True when the correction changed."""
        raw = (mapped[0] - self.offset[0], mapped[1] - self.offset[1])
        self.samples.append((raw, chosen))
        if len(self.samples) < MIN_SAMPLES:
            return False
        candidate = _median([(t[0] - r[0], t[1] - r[1]) for r, t in self.samples])
        if self._loo() <= GAIN * self._error(self.offset):
            self.offset = candidate
            self.refits += 1
            return True
        return False

    def _error(self, offset: Point) -> float:
        return statistics.median(math.dist((r[0] + offset[0], r[1] + offset[1]), t) for r, t in self.samples)

    def _loo(self) -> float:
        """The refit's leave-one-out error: each selection judged by the offset fitted on the others."""
        errors = []
        items = list(self.samples)
        for i, (r, t) in enumerate(items):
            rest = items[:i] + items[i + 1 :]
            o = _median([(tt[0] - rr[0], tt[1] - rr[1]) for rr, tt in rest])
            errors.append(math.dist((r[0] + o[0], r[1] + o[1]), t))
        return statistics.median(errors)

    @property
    def error_px(self) -> float | None:
        """The live error estimate: the newest selections' median error under the correction in use."""
        return round(self._error(self.offset), 1) if self.samples else None
