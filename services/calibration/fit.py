"""From the samples of a session to a correction: which samples count, the fit, the validation.

Samples of a target count from ``settle_s`` after it appeared (the saccade and
the settling of the eyes) to its end, only on frames with a face and a gaze,
and not when they lie more than ``outlier_mad`` median absolute deviations
from the target's median (a blink, a glance away). The correction is a ridge
regression (scikit-learn) from the frame's features to what the geometric
model got wrong, in mm; its strength is chosen by cross-validation that leaves
one target out at a time, against two plainer candidates: no correction and
a constant offset. The validation targets then compare the chosen fit with
the geometric model alone, and the better one is kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..pointer.gaze_model import FEATURES, Correction, GazeMapper, Monitor, visual_angle_deg
from .settings import CalibrationConfig
from .targets import Target

ALPHAS = tuple(float(a) for a in np.logspace(-2, 4, 13))
HOLD_OUT = 0.3  # without check targets: this last part of each fit target's samples validates
MIN_FIT_TARGETS = 4


@dataclass
class Samples:
    """The samples of one target that count."""

    target: Target
    target_mm: np.ndarray
    features: list[np.ndarray] = field(default_factory=list)
    geo_mm: list[np.ndarray] = field(default_factory=list)
    distance_mm: list[float] = field(default_factory=list)
    seen: int = 0  # frames in its window, with or without a face
    outliers: int = 0

    def __len__(self) -> int:
        return len(self.features)

    def take(self, keep: np.ndarray) -> Samples:
        out = Samples(self.target, self.target_mm, seen=self.seen, outliers=self.outliers)
        out.features = [f for f, k in zip(self.features, keep, strict=True) if k]
        out.geo_mm = [g for g, k in zip(self.geo_mm, keep, strict=True) if k]
        out.distance_mm = [d for d, k in zip(self.distance_mm, keep, strict=True) if k]
        return out


def gather(
    records: list[dict[str, Any]],
    targets: list[Target],
    mapper: GazeMapper,
    rules: CalibrationConfig,
    fps: float,
    by_frame: bool,
) -> list[Samples]:
    """Each target's samples: by frame index (a recording) or by capture time (a live session)."""
    monitor = mapper.monitor
    sx, sy = monitor.px_per_mm
    out = [Samples(t, np.array([t.x / sx, t.y / sy])) for t in targets]
    settle_frames = round(rules.settle_s * fps)
    for rec in records:
        for s in out:
            t = s.target
            if by_frame:
                inside = t.start + settle_frames <= rec["frame"] <= t.end
            else:
                inside = t.shown[0] + rules.settle_s <= rec["t_capture"] <= t.shown[1]
            if not inside:
                continue
            s.seen += 1
            sample = mapper.sample(rec)
            if sample is not None:
                s.features.append(sample.features)
                s.geo_mm.append(np.array(sample.geo_mm))
                s.distance_mm.append(sample.distance_mm)
    return [_without_outliers(s, rules.outlier_mad) for s in out]


def _without_outliers(s: Samples, k: float) -> Samples:
    if len(s) < 3:
        return s
    geo = np.array(s.geo_mm)
    d = np.linalg.norm(geo - np.median(geo, axis=0), axis=1)
    mad = 1.4826 * np.median(np.abs(d - np.median(d)))
    keep = d <= np.median(d) + k * max(mad, 1.0)
    out = s.take(keep)
    out.outliers = int((~keep).sum())
    return out


def split(samples: list[Samples]) -> tuple[list[Samples], list[Samples]]:
    """Fit and check samples; without check targets the last part of each fit target's samples checks."""
    fits = [s for s in samples if s.target.use == "fit" and len(s)]
    checks = [s for s in samples if s.target.use == "check" and len(s)]
    if checks or any(s.target.use == "check" for s in samples):
        return fits, checks
    fit_part, check_part = [], []
    for s in fits:
        n = len(s)
        cut = n - max(1, round(n * HOLD_OUT)) if n >= 2 else n
        keep = np.arange(n) < cut
        fit_part.append(s.take(keep))
        if cut < n:
            check_part.append(s.take(~keep))
    return [s for s in fit_part if len(s)], check_part


def _arrays(samples: list[Samples]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """features, geometric points, target points (mm), distances, target index per sample."""
    x = np.array([f for s in samples for f in s.features])
    geo = np.array([g for s in samples for g in s.geo_mm])
    target = np.array([s.target_mm for s in samples for _ in s.features])
    distance = np.array([d for s in samples for d in s.distance_mm])
    groups = np.array([i for i, s in enumerate(samples) for _ in s.features])
    return x, geo, target, distance, groups


def _offset(residual: np.ndarray) -> Correction:
    k = len(FEATURES)
    return Correction([0.0] * k, [1.0] * k, [[0.0] * k, [0.0] * k], [float(v) for v in np.median(residual, axis=0)])


def _ridge(x: np.ndarray, residual: np.ndarray, alpha: float) -> Correction:
    from sklearn.linear_model import Ridge
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x)
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    model = Ridge(alpha=alpha).fit((x - scaler.mean_) / scale, residual)
    return Correction(scaler.mean_.tolist(), scale.tolist(), model.coef_.tolist(), model.intercept_.tolist())


def _errors(correction: Correction | None, x: np.ndarray, geo: np.ndarray, target: np.ndarray) -> np.ndarray:
    predicted = geo if correction is None else geo + correction.apply(x)
    return np.linalg.norm(predicted - target, axis=1)


def choose(fits: list[Samples]) -> tuple[Correction | None, str]:
    """The correction with the least cross-validated median error (one target left out at a time)."""
    x, geo, target, _, groups = _arrays(fits)
    residual = target - geo
    candidates: dict[str, float] = {"none": float(np.median(np.linalg.norm(residual, axis=1)))}
    cv_err: dict[str, list[float]] = {"offset": []} | {f"ridge {a:g}": [] for a in ALPHAS}
    for g in np.unique(groups):
        train, test = groups != g, groups == g
        cv_err["offset"] += _errors(_offset(residual[train]), x[test], geo[test], target[test]).tolist()
        for a in ALPHAS:
            c = _ridge(x[train], residual[train], a)
            cv_err[f"ridge {a:g}"] += _errors(c, x[test], geo[test], target[test]).tolist()
    candidates |= {name: float(np.median(errs)) for name, errs in cv_err.items()}
    best = min(candidates, key=lambda n: candidates[n])
    if best == "none":
        return None, best
    if best == "offset":
        return _offset(residual), best
    return _ridge(x, residual, float(best.split()[1])), best


def figures(correction: Correction | None, checks: list[Samples], monitor: Monitor) -> dict[str, float]:
    """Median and p95 error on the check samples, in pixels and in degrees of visual angle."""
    x, geo, target, distance, _ = _arrays(checks)
    predicted = geo if correction is None else geo + correction.apply(x)
    sx, sy = monitor.px_per_mm
    px = np.linalg.norm((predicted - target) * np.array([sx, sy]), axis=1)
    mm = np.linalg.norm(predicted - target, axis=1)
    deg = np.array([visual_angle_deg(e, d) for e, d in zip(mm, distance, strict=True)])
    return {
        "median_px": round(float(np.median(px)), 1),
        "p95_px": round(float(np.percentile(px, 95)), 1),
        "median_deg": round(float(np.median(deg)), 2),
        "p95_deg": round(float(np.percentile(deg, 95)), 2),
        "samples": len(px),
    }


@dataclass
class Result:
    correction: Correction | None  # what the profile keeps (None: the geometric model alone)
    used: str  # calibrated | uncalibrated
    model: str  # the chosen candidate: none, offset, ridge ALPHA
    validation: dict[str, dict[str, float]]
    distance_mm: float
    per_target: list[dict[str, Any]]


def calibrate(samples: list[Samples], monitor: Monitor) -> Result:
    """Fit, validate, keep the better of calibrated and uncalibrated. ValueError when too few targets count."""
    fits, checks = split(samples)
    if len(fits) < MIN_FIT_TARGETS:
        usable = ", ".join(f"{s.target.use} ({s.target.x:.0f}, {s.target.y:.0f}): {len(s)}" for s in samples)
        raise ValueError(f"{len(fits)} fit targets have samples, at least {MIN_FIT_TARGETS} are needed ({usable})")
    if not checks:
        raise ValueError("no check target has samples: nothing to validate on")
    correction, model = choose(fits)
    before = figures(None, checks, monitor)
    after = figures(correction, checks, monitor)
    better = correction is not None and after["median_px"] < before["median_px"]
    distance = float(np.median([d for s in fits for d in s.distance_mm]))
    per_target = [
        {
            "x": round(s.target.x),
            "y": round(s.target.y),
            "use": s.target.use,
            "samples": len(s),
            "frames": s.seen,
            "outliers": s.outliers,
        }
        for s in samples
    ]
    return Result(
        correction if better else None,
        "calibrated" if better else "uncalibrated",
        model,
        {"uncalibrated": before, "calibrated": after},
        round(distance, 1),
        per_target,
    )


def recentre(samples: list[Samples], correction: Correction | None) -> Correction:
    """An existing profile's correction moved by the median error at the one (centre) target."""
    fits = [s for s in samples if len(s)]
    if not fits:
        raise ValueError("the centre target has no samples (no face or no gaze while it was shown)")
    x, geo, target, _, _ = _arrays(fits)
    predicted = geo if correction is None else geo + correction.apply(x)
    shift = np.median(target - predicted, axis=0)
    base = correction or _offset(np.zeros((1, 2)))
    return Correction(
        base.mean, base.scale, base.coef, [base.intercept[0] + float(shift[0]), base.intercept[1] + float(shift[1])]
    )
