"""How steady the pointer is and how late: fixations by dispersion (I-DT, Salvucci and Goldberg 2000) on the
raw points, the jitter of a filter's output inside them, and the frames a filter adds at a jump between them.

Used by ``gazeflow bench`` on a real-time run of the demo: every filter is fed
the same raw points (the ``raw`` of the results), so the figures compare the
filters and nothing else.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from .filters import make_filter
from .settings import PointerConfig

DISPERSION_PX = 150  # a window is a fixation while (x range + y range) stays within this (about 3 deg here)
MIN_FRAMES = 5  # and lasts at least this long (167 ms at 30 fps)
MIN_JUMP_PX = 300  # consecutive fixations this far apart make a jump
MAX_GAP = 10  # frames between them at most


def fixations(points: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) windows of the raw points where the gaze holds still."""
    out, i, n = [], 0, len(points)

    def spread(a: int, b: int) -> float:
        return float(np.ptp(points[a:b, 0]) + np.ptp(points[a:b, 1]))

    while i + MIN_FRAMES <= n:
        if spread(i, i + MIN_FRAMES) <= DISPERSION_PX:
            j = i + MIN_FRAMES
            while j < n and spread(i, j + 1) <= DISPERSION_PX:
                j += 1
            out.append((i, j))
            i = j
        else:
            i += 1
    return out


SETTLE = 3  # frames at the start of a fixation not counted in its jitter: a filter is still arriving there


def jitter(points: np.ndarray, windows: list[tuple[int, int]]) -> float:
    """The standard deviation (px, both axes together) of points around each window's mean, over all windows,
    from each window's SETTLE-th frame (the same frames for every filter)."""
    deviations = [
        points[a + SETTLE : b] - points[a + SETTLE : b].mean(axis=0) for a, b in windows if b - a > SETTLE + 1
    ]
    d = np.concatenate(deviations) if deviations else np.zeros((0, 2))
    return float(np.sqrt((d**2).sum(axis=1).mean())) if len(d) else 0.0


def jumps(points: np.ndarray, windows: list[tuple[int, int]]) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(first frame after the first fixation, its centroid, the next one's) for each jump between fixations."""
    out = []
    for (a0, a1), (b0, b1) in itertools.pairwise(windows):
        ca, cb = points[a0:a1].mean(axis=0), points[b0:b1].mean(axis=0)
        if b0 - a1 <= MAX_GAP and np.linalg.norm(cb - ca) >= MIN_JUMP_PX:
            out.append((a1 - 1, ca, cb))
    return out


def _crossing(points: np.ndarray, start: int, a: np.ndarray, b: np.ndarray) -> int | None:
    """The first frame from ``start`` whose point is past the midpoint from a to b."""
    u = (b - a) / np.linalg.norm(b - a)
    half = float(np.linalg.norm(b - a)) / 2
    for i in range(start, min(len(points), start + 30)):
        if float((points[i] - a) @ u) >= half:
            return i
    return None


def lag_frames(raw: np.ndarray, out: np.ndarray, found: list[tuple[int, np.ndarray, np.ndarray]]) -> list[int]:
    """Per jump: frames between the raw points and the filtered ones crossing the jump's midpoint."""
    lags = []
    for start, a, b in found:
        r, f = _crossing(raw, start, a, b), _crossing(out, start, a, b)
        if r is not None:
            lags.append((f if f is not None else start + 30) - r)
    return lags


def compare(rows: list[dict[str, Any]], cfg: PointerConfig, fps: float) -> dict[str, Any]:
    """Each filter on the raw points of a run's results: jitter in fixations and lag at jumps."""
    kept = [r for r in rows if r.get("pointer")]
    raw = np.array([r["pointer"]["raw"] for r in kept], dtype=float)
    t = [float(r["t"]) for r in kept]
    windows = fixations(raw)
    found = jumps(raw, windows)
    out: dict[str, Any] = {
        "points": len(raw),
        "fixations": len(windows),
        "jumps": len(found),
        "in_fixations": round(sum(b - a for a, b in windows) / max(1, len(raw)), 3),
    }
    for kind in ("none", "ema", "one-euro"):
        f = make_filter(cfg, kind, fps)
        filtered = np.array([f(x, y, ti) for (x, y), ti in zip(raw, t, strict=True)])
        lags = lag_frames(raw, filtered, found)
        out[kind] = {
            "jitter_px": round(jitter(filtered, windows), 1),
            "lag_frames_p50": float(np.median(lags)) if lags else 0.0,
            "lag_frames_max": int(max(lags)) if lags else 0,
        }
    for kind in ("ema", "one-euro"):
        out[kind]["jitter_vs_none"] = round(out[kind]["jitter_px"] / max(out["none"]["jitter_px"], 1e-9), 3)
    return out
