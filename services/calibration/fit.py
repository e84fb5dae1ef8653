"""From the samples of a session to a correction: which samples count, the fit, the validation.

Samples of a target count from ``settle_s`` after it appeared (the saccade and
the settling of the eyes) to its end, only on frames with a face and a gaze,
and not when they lie more than ``outlier_mad`` median absolute deviations
from the target's median (a blink, a glance away). The correction is a ridge
regression (scikit-learn) from the frame's features to what the geometric
model got wrong, in mm, with a squared or a robust (Huber) loss; its features
(the gaze model's alone, or with the iris stage's where every sample has them),
its loss and its strength are chosen by cross-validation that leaves one target
out at a time, against two plainer candidates: no correction and a constant
offset. Two errors describe the
chosen fit: on targets it never saw (held out, one at a time) and on the
targets it was fitted on (their last samples, held back from a refit). The
validation targets then compare the chosen fit with the geometric model
alone, and the better one is kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..pointer.gaze_model import (
    ALL_FEATURES,
    FEATURES,
    IRIS_FEATURES,
    Correction,
    GazeMapper,
    Monitor,
    visual_angle_deg,
)
from .settings import CalibrationConfig
from .targets import Target

ALPHAS = tuple(float(a) for a in np.logspace(-2, 4, 13))
# a Huber loss weighs a frame whose features are off (a half blink, a glance) less than a squared one; its
# strengths above 10 were never the best on the demo (the fit then ignores the features)
ROBUST_ALPHAS = tuple(a for a in ALPHAS if a <= 10)
HOLD_OUT = 0.3  # without check targets: this last part of each fit target's samples validates
MIN_FIT_TARGETS = 4
MIN_SAMPLES = 5  # a target with fewer samples than this does not count (a fit on one frame each is noise)


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
    """Each target's samples: by frame index (a recording, its ranges from ``rules.settle_s`` in) or by
    capture time (a live session)."""
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
    fits = [s for s in samples if s.target.use == "fit" and len(s) >= MIN_SAMPLES]
    checks = [s for s in samples if s.target.use == "check" and len(s)]
    if checks or any(s.target.use == "check" for s in samples):
        return fits, checks
    return _split_in_time(fits)


def _arrays(samples: list[Samples]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """features, geometric points, target points (mm), distances, target index per sample."""
    x = np.array([f for s in samples for f in s.features])
    geo = np.array([g for s in samples for g in s.geo_mm])
    target = np.array([s.target_mm for s in samples for _ in s.features])
    distance = np.array([d for s in samples for d in s.distance_mm])
    groups = np.array([i for i, s in enumerate(samples) for _ in s.features])
    return x, geo, target, distance, groups


# what a ridge may be fitted over: the gaze model's features; with the iris stage's eye-in-head ones (the two
# eyes' mean) beside them, or beside fewer (the geometric point, with or without the head's turn), where fewer
# generalise to targets the fit never saw; or each eye's apart
MEAN_IRIS = IRIS_FEATURES[:2]
FEATURE_SETS = {
    "gaze": FEATURES,
    "gaze+iris": FEATURES + MEAN_IRIS,
    "point+head+iris": ("geo_x", "geo_y", "yaw", "pitch", *MEAN_IRIS),
    "point+iris": ("geo_x", "geo_y", *MEAN_IRIS),
    "point+each-iris": ("geo_x", "geo_y", *IRIS_FEATURES[2:]),
}


@dataclass(frozen=True)
class Candidate:
    """A way to correct: none, a constant offset, or a linear fit over a feature set with a strength and a loss
    (ridge: squared; huber: robust, each axis on its own)."""

    kind: str  # none | offset | ridge | huber
    features: str = "gaze"  # a FEATURE_SETS key (ridge, huber)
    alpha: float = 0.0

    @property
    def label(self) -> str:
        return f"{self.kind} {self.alpha:g} over {self.features}" if self.kind in ("ridge", "huber") else self.kind

    def fit(self, x: np.ndarray, residual: np.ndarray) -> Correction | None:
        if self.kind == "none":
            return None
        if self.kind == "offset":
            return _offset(residual)
        return _linear(x, residual, self.alpha, FEATURE_SETS[self.features], robust=self.kind == "huber")


def _offset(residual: np.ndarray) -> Correction:
    k = len(FEATURES)
    return Correction([0.0] * k, [1.0] * k, [[0.0] * k, [0.0] * k], [float(v) for v in np.median(residual, axis=0)])


def _linear(
    x: np.ndarray, residual: np.ndarray, alpha: float, features: tuple[str, ...] = FEATURES, robust: bool = False
) -> Correction:
    """A ridge (squared loss, both axes at once) or a Huber regression (each axis) on standardised features."""
    from sklearn.linear_model import HuberRegressor, Ridge
    from sklearn.preprocessing import StandardScaler

    x = x[:, [ALL_FEATURES.index(name) for name in features]]
    scaler = StandardScaler().fit(x)
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    z = (x - scaler.mean_) / scale
    if robust:
        axes = [HuberRegressor(alpha=alpha, max_iter=500).fit(z, residual[:, i]) for i in range(2)]
        coef, intercept = [m.coef_.tolist() for m in axes], [float(m.intercept_) for m in axes]
    else:
        model = Ridge(alpha=alpha).fit(z, residual)
        coef, intercept = model.coef_.tolist(), model.intercept_.tolist()
    return Correction(scaler.mean_.tolist(), scale.tolist(), coef, intercept, features)


def _predicted(correction: Correction | None, x: np.ndarray, geo: np.ndarray) -> np.ndarray:
    return geo if correction is None else geo + correction.apply(x)


def candidates(x: np.ndarray, loss: str = "auto") -> list[Candidate]:
    """Every candidate the samples and the loss (auto, squared, huber) allow: a feature set joins where every
    sample has its features."""
    sets = [
        name for name, names in FEATURE_SETS.items() if np.isfinite(x[:, [ALL_FEATURES.index(n) for n in names]]).all()
    ]
    out = [Candidate("none"), Candidate("offset")]
    if loss in ("auto", "squared"):
        out += [Candidate("ridge", s, a) for s in sets for a in ALPHAS]
    if loss in ("auto", "huber"):
        out += [Candidate("huber", s, a) for s in sets for a in ROBUST_ALPHAS]
    return out


def held_out(
    candidate: Candidate, x: np.ndarray, geo: np.ndarray, target: np.ndarray, groups: np.ndarray
) -> np.ndarray:
    """Each sample's point by the candidate fitted without its target (one target left out at a time)."""
    out = np.empty_like(geo)
    residual = target - geo
    for g in np.unique(groups):
        train, test = groups != g, groups == g
        out[test] = _predicted(candidate.fit(x[train], residual[train]), x[test], geo[test])
    return out


def choose(fits: list[Samples], loss: str = "auto") -> tuple[Correction | None, Candidate]:
    """The candidate with the least median error on targets it did not see (one target left out at a time),
    fitted on every fit sample."""
    x, geo, target, _, groups = _arrays(fits)
    scores = {}
    for candidate in candidates(x, loss):
        predicted = geo if candidate.kind == "none" else held_out(candidate, x, geo, target, groups)
        scores[candidate] = float(np.median(np.linalg.norm(predicted - target, axis=1)))
    best = min(scores, key=lambda c: scores[c])
    return best.fit(x, target - geo), best


def _split_in_time(fits: list[Samples]) -> tuple[list[Samples], list[Samples]]:
    """Each target's first samples and its last HOLD_OUT part (the same targets, later frames)."""
    first, last = [], []
    for s in fits:
        n = len(s)
        cut = n - max(1, round(n * HOLD_OUT)) if n >= 2 else n
        keep = np.arange(n) < cut
        first.append(s.take(keep))
        if cut < n:
            last.append(s.take(~keep))
    return [s for s in first if len(s)], last


def errors(candidate: Candidate, fits: list[Samples], monitor: Monitor) -> dict[str, dict[str, float]]:
    """The chosen candidate's error on targets it never saw (each fit target left out in turn) and on the
    targets it was fitted on (refitted on each target's first samples, measured on its last ones)."""
    x, geo, target, distance, groups = _arrays(fits)
    unseen = held_out(candidate, x, geo, target, groups)
    first, last = _split_in_time(fits)
    same = {}
    if first and last:
        fx, fgeo, ftarget, _, _ = _arrays(first)
        lx, lgeo, ltarget, ldistance, _ = _arrays(last)
        correction = candidate.fit(fx, ftarget - fgeo)
        same = _figures(_predicted(correction, lx, lgeo), ltarget, ldistance, monitor)
    return {"held_out_target": _figures(unseen, target, distance, monitor), "same_target": same}


def figures(correction: Correction | None, checks: list[Samples], monitor: Monitor) -> dict[str, float]:
    """Median and p95 error on the check samples, in pixels and in degrees of visual angle."""
    x, geo, target, distance, _ = _arrays(checks)
    return _figures(_predicted(correction, x, geo), target, distance, monitor)


def _figures(predicted: np.ndarray, target: np.ndarray, distance: np.ndarray, monitor: Monitor) -> dict[str, float]:
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
    model: str  # the chosen candidate: none, offset, ridge ALPHA over FEATURES
    validation: dict[str, dict[str, float]]
    errors: dict[str, dict[str, float]]  # the chosen candidate on held-out targets and on its own targets
    distance_mm: float
    per_target: list[dict[str, Any]]


def too_few(samples: list[Samples], settle_s: float) -> str:
    """Why a fit cannot be made: each target's samples and what to change."""
    counts = ", ".join(
        f"{s.target.use} ({s.target.x:.0f}, {s.target.y:.0f}): {len(s)}"
        + (f" of {s.target.end - s.target.start + 1} frames" if s.target.end >= s.target.start >= 0 else "")
        for s in samples
    )
    fits = sum(1 for s in samples if s.target.use == "fit" and len(s) >= MIN_SAMPLES)
    hint = (
        f"samples count from {settle_s:g} s after a target appeared: shorten settle_s or lengthen the ranges"
        if settle_s
        else "widen the targets' frame ranges"
    )
    return (
        f"{fits} fit targets have {MIN_SAMPLES} samples or more, at least {MIN_FIT_TARGETS} are needed (samples: "
        f"{counts}); {hint}, and check that the face is in view on those frames"
    )


def calibrate(samples: list[Samples], monitor: Monitor, settle_s: float = 0.0, loss: str = "auto") -> Result:
    """Fit, validate, keep the better of calibrated and uncalibrated. ValueError when too few targets count."""
    fits, checks = split(samples)
    if len(fits) < MIN_FIT_TARGETS:
        raise ValueError(too_few(samples, settle_s))
    if not checks:
        raise ValueError("no check target has samples: nothing to validate on")
    correction, chosen = choose(fits, loss)
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
        chosen.label,
        {"uncalibrated": before, "calibrated": after},
        errors(chosen, fits, monitor),
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
