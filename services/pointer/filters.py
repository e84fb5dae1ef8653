"""Steadying the pointer: the One Euro filter (Casiez, Roussel, Vogel, CHI 2012), an exponential average, or none.

The One Euro filter is a low-pass filter whose cutoff rises with the speed of
the signal: steady while the eyes fixate, quick when they jump. We use the
OneEuroFilter package (by the filter's authors' group), one per axis, timed by
the frames' own times so that a replay filters the same way in every run.
"""

from __future__ import annotations

from OneEuroFilter import OneEuroFilter

from .settings import PointerConfig

GAP_S = 0.5  # after this long without a point the filter starts afresh (the face was lost)


class PointFilter:
    """No filtering; the base of the others: points in, points out, forgotten after a gap."""

    def __init__(self) -> None:
        self.last_t: float | None = None

    def __call__(self, x: float, y: float, t: float) -> tuple[float, float]:
        if self.last_t is not None and (t - self.last_t > GAP_S or t < self.last_t):
            self.reset()
        self.last_t = t
        return self.step(x, y, t)

    def step(self, x: float, y: float, t: float) -> tuple[float, float]:
        return x, y

    def reset(self) -> None:
        pass


class Ema(PointFilter):
    def __init__(self, weight: float) -> None:
        super().__init__()
        self.weight = weight
        self.state: tuple[float, float] | None = None

    def step(self, x: float, y: float, t: float) -> tuple[float, float]:
        if self.state is not None:
            a = self.weight
            x, y = a * self.state[0] + (1 - a) * x, a * self.state[1] + (1 - a) * y
        self.state = (x, y)
        return x, y

    def reset(self) -> None:
        self.state = None


class OneEuro(PointFilter):
    def __init__(self, min_cutoff: float, beta: float, d_cutoff: float, fps: float = 30.0) -> None:
        super().__init__()
        self.args = dict(freq=fps, mincutoff=min_cutoff, beta=beta, dcutoff=d_cutoff)
        self.reset()

    def step(self, x: float, y: float, t: float) -> tuple[float, float]:
        t += 1.0  # the package takes a time of 0 for "no time"
        return self.fx(x, t), self.fy(y, t)

    def reset(self) -> None:
        self.fx, self.fy = OneEuroFilter(**self.args), OneEuroFilter(**self.args)


def make_filter(cfg: PointerConfig, kind: str | None = None, fps: float = 30.0) -> PointFilter:
    kind = kind or cfg.filter
    if kind == "one-euro":
        return OneEuro(cfg.min_cutoff, cfg.beta, cfg.d_cutoff, fps)
    if kind == "ema":
        return Ema(cfg.smoothing)
    return PointFilter()
