"""From a gaze ray to a point on the screen: the geometric model, and the calibrated correction on top.

The geometry (MODELS.md, "From gaze to a point on the screen"), in camera
coordinates (mm; x towards the image's right, y up, z from the camera towards
the user):

* the eyes' midpoint: its distance from the pixel distance between the eye
  centres, the inter-pupillary distance (``camera.ipd_mm``) and the focal
  length in pixels (from ``camera.hfov_deg`` and the frame width); its x and y
  through the same pinhole model;
* the ray from there along the gaze vector (the model's, in camera axes)
  meets the camera's plane z = 0, which is taken as the screen's plane;
* the camera sits at the middle of the screen's top edge, shifted by
  ``camera.offset_mm``; the image's right is the user's left (``mirror``).

So moving or turning the head moves the ray's origin, and the point with it.
A calibration (``services/calibration``) adds a linear correction, in mm, from
features of the frame (the geometric point, the gaze angles, the head pose and
the eyes' position); its coefficients live in the profile and are applied here
with numpy alone.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from gazeflow.shared import geometry

from .settings import CameraConfig

FEATURES = ("geo_x", "geo_y", "gaze_h", "gaze_v", "yaw", "pitch", "eye_x", "eye_y", "eye_z")
# where each iris sits between its eye's corners (the optional iris stage): eye-in-head, in eye widths; the
# two eyes' mean first (half the noise of one), then each eye's
IRIS_FEATURES = ("iris_h", "iris_v", "iris_left_h", "iris_left_v", "iris_right_h", "iris_right_v")
ALL_FEATURES = FEATURES + IRIS_FEATURES  # a sample's features, in this order (NaN where a stage did not run)
MIN_TOWARDS_SCREEN = 0.05  # a gaze whose z is above -this looks along the screen or away: no point


@dataclass(frozen=True)
class Monitor:
    """One monitor of the desktop: where it is in the virtual desktop (pixels) and its size in mm."""

    index: int
    name: str
    x: int
    y: int
    width: int
    height: int
    width_mm: float
    height_mm: float
    primary: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Monitor:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__})

    def describe(self) -> str:
        return f"{self.name or 'a screen'} {self.width}x{self.height} ({self.width_mm:.0f}x{self.height_mm:.0f} mm)"

    @property
    def px_per_mm(self) -> tuple[float, float]:
        return self.width / self.width_mm, self.height / self.height_mm


@dataclass(frozen=True)
class Sample:
    """What the model makes of one frame."""

    geo_mm: tuple[float, float]  # the geometric point on the screen (mm from its top-left, the user's view)
    mm: tuple[float, float]  # the point with the correction applied (= geo_mm uncalibrated)
    px: tuple[float, float]  # mm in the monitor's pixels (not clamped; may be off the screen)
    distance_mm: float  # the eyes' distance from the camera
    features: np.ndarray  # ALL_FEATURES, for the calibration's fit (the iris ones NaN without the iris stage)


def eye_origin(landmarks: list[list[float]], source: tuple[float, float], cam: CameraConfig) -> np.ndarray | None:
    """The eyes' midpoint in camera coordinates (mm) from the two eye centres in the image."""
    (lx, ly), (rx, ry) = landmarks[0], landmarks[1]
    d = math.hypot(rx - lx, ry - ly)
    width, height = source
    if d < 1.0 or width <= 0 or height <= 0:
        return None
    f = (width / 2) / math.tan(math.radians(cam.hfov_deg) / 2)
    z = f * cam.ipd_mm / d
    u, v = (lx + rx) / 2, (ly + ry) / 2
    return np.array([(u - width / 2) * z / f, -(v - height / 2) * z / f, z])


def on_camera_plane(origin: np.ndarray, gaze: list[float]) -> tuple[float, float] | None:
    """Where the ray from origin along gaze meets z = 0; None when it does not go towards the screen."""
    g = np.asarray(gaze, dtype=float)
    g = g / (np.linalg.norm(g) or 1.0)
    if g[2] > -MIN_TOWARDS_SCREEN:
        return None
    t = -origin[2] / g[2]
    return float(origin[0] + t * g[0]), float(origin[1] + t * g[1])


def to_screen_mm(point: tuple[float, float], cam: CameraConfig, monitor: Monitor) -> tuple[float, float]:
    """A point of the camera's plane as mm from the screen's top-left corner, as the user sees it."""
    u = -point[0] if cam.mirror else point[0]  # to the user's right
    return monitor.width_mm / 2 + u + cam.offset_mm[0], -(point[1] + cam.offset_mm[1])


def to_pixels(mm: tuple[float, float], monitor: Monitor) -> tuple[float, float]:
    sx, sy = monitor.px_per_mm
    return mm[0] * sx, mm[1] * sy


@dataclass
class Correction:
    """A linear correction in mm: (the sample's ``features`` - mean) / scale @ coef.T + intercept, fitted by
    calibration over the features it chose (the gaze model's alone, or with the iris stage's)."""

    mean: list[float]
    scale: list[float]
    coef: list[list[float]]  # 2 x len(features)
    intercept: list[float]  # 2
    features: tuple[str, ...] = FEATURES

    def apply(self, features: np.ndarray) -> np.ndarray:
        """The correction for samples' ALL_FEATURES (one vector or a row each)."""
        columns = [ALL_FEATURES.index(name) for name in self.features]
        z = (np.asarray(features)[..., columns] - np.asarray(self.mean)) / np.asarray(self.scale)
        return z @ np.asarray(self.coef).T + np.asarray(self.intercept)

    @property
    def needs_iris(self) -> bool:
        return any(name in IRIS_FEATURES for name in self.features)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "features": list(self.features)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Correction:
        names = d.get("features")
        known = isinstance(names, list) and all(isinstance(n, str) and n in ALL_FEATURES for n in names)
        if not known or not names or len(set(names)) != len(names):
            raise ValueError(f"a correction over features {names}, expected some of {list(ALL_FEATURES)}")
        c = cls(d["mean"], d["scale"], d["coef"], d["intercept"], tuple(names))
        k = len(names)
        if len(c.mean) != k or len(c.scale) != k or len(c.intercept) != 2 or [len(r) for r in c.coef] != [k, k]:
            raise ValueError("a correction of the wrong shape")
        if not all(math.isfinite(v) for v in [*c.mean, *c.scale, *c.intercept, *c.coef[0], *c.coef[1]]):
            raise ValueError("a correction with a value that is not finite")
        if min(c.scale) <= 0:
            raise ValueError("a correction with a scale that is not positive")
        return c


def iris_features(header: dict[str, Any]) -> list[float]:
    """IRIS_FEATURES of a frame (NaN without the iris stage's field)."""
    found = header.get("iris")
    if not found:
        return [math.nan] * len(IRIS_FEATURES)
    (lh, lv), (rh, rv) = found["left"][:2], found["right"][:2]
    return [(lh + rh) / 2, (lv + rv) / 2, lh, lv, rh, rv]


class GazeMapper:
    """One frame's header -> a point on the monitor: geometry, then the profile's correction if any."""

    def __init__(self, cam: CameraConfig, monitor: Monitor, correction: Correction | None = None) -> None:
        self.cam = cam
        self.monitor = monitor
        self.correction = correction

    def sample(self, header: dict[str, Any]) -> Sample | None:
        gaze, landmarks, pose = header.get("gaze"), header.get("landmarks"), header.get("head_pose")
        source = header.get("source") or {}
        if gaze is None or landmarks is None or pose is None:
            return None
        origin = eye_origin(landmarks, (source.get("width", 0), source.get("height", 0)), self.cam)
        if origin is None:
            return None
        hit = on_camera_plane(origin, gaze)
        if hit is None:
            return None
        geo = to_screen_mm(hit, self.cam, self.monitor)
        h, v = geometry.gaze_angles(gaze)
        features = np.array([geo[0], geo[1], h, v, pose["yaw"], pose["pitch"], *origin, *iris_features(header)])
        mm = geo
        if self.correction is not None:
            dx, dy = self.correction.apply(features)
            if not (math.isfinite(dx) and math.isfinite(dy)):  # a feature it needs is missing from this frame
                return None
            mm = (geo[0] + float(dx), geo[1] + float(dy))
        return Sample(geo, mm, to_pixels(mm, self.monitor), float(origin[2]), features)


def visual_angle_deg(error_mm: float, distance_mm: float) -> float:
    """An error on the screen as an angle at the eye (degrees of visual angle)."""
    return math.degrees(math.atan2(error_mm, distance_mm))
