"""The math between the models (MODELS.md): boxes, crops, eyes, roll, gaze angles.

Pure functions on numpy arrays; the stages and run-sync both call these, so the
pipeline and the synchronous baseline compute exactly the same thing.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in source pixels

# Reference demo's widening of a detection before cropping (then squared).
_WIDEN = (0.067, 0.028, 1.15, 1.13)
MIN_VISIBLE = 0.6  # a face whose crop square is less than this much inside the frame is dropped
REGION_MARGIN = 0.25  # the face region sent downstream: crop square grown by this on each side
EYE_SIDE = 0.8  # eye crop side, as a fraction of the distance between the eye centres


def detections(raw: np.ndarray, width: int, height: int, confidence: float) -> list[tuple[Box, float]]:
    """Boxes above the threshold from a 1x1xNx7 detection_out blob, in pixels. Two numpy calls,
    then Python floats: per-row numpy costs about 0.1 ms per frame on a cold CPU."""
    rows = raw.reshape(-1, 7)
    padding = rows[:, 0] < 0
    if padding.any():
        rows = rows[: int(padding.argmax())]  # rows after the first image_id -1 are padding
    hits = rows[rows[:, 2] >= confidence].tolist()

    def px(v: float, size: int) -> float:
        return min(max(v, 0.0), 1.0) * size

    return [
        ((px(x0, width), px(y0, height), px(x1, width), px(y1, height)), conf) for _, _, conf, x0, y0, x1, y1 in hits
    ]


def area(box: Box) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def iou(a: Box, b: Box) -> float:
    inter = area((max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])))
    union = area(a) + area(b) - inter
    return inter / union if union > 0 else 0.0


def follow(boxes: list[Box], previous: Box | None, min_iou: float = 0.3) -> Box | None:
    """The one face to follow: the best overlap with the previous face, else the largest."""
    if not boxes:
        return None
    if previous is not None:
        best = max(boxes, key=lambda b: iou(b, previous))
        if iou(best, previous) >= min_iou:
            return best
    return max(boxes, key=area)


def crop_square(box: Box) -> tuple[int, int, int]:
    """The reference demo's widened, squared crop of a detection: (x0, y0, side)."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    x0, y0 = x0 - _WIDEN[0] * w, y0 - _WIDEN[1] * h
    w, h = w * _WIDEN[2], h * _WIDEN[3]
    side = max(w, h)
    cx, cy = x0 + w / 2, y0 + h / 2
    return round(cx - side / 2), round(cy - side / 2), max(1, round(side))


def visible_fraction(square: tuple[int, int, int], width: int, height: int) -> float:
    x0, y0, side = square
    inside = area((max(x0, 0), max(y0, 0), min(x0 + side, width), min(y0 + side, height)))
    return inside / float(side * side)


def region(square: tuple[int, int, int], width: int, height: int) -> tuple[int, int, int, int]:
    """The part of the frame sent downstream for a face: its square plus a margin, clipped."""
    x0, y0, side = square
    m = round(side * REGION_MARGIN)
    return max(0, x0 - m), max(0, y0 - m), min(width, x0 + side + m), min(height, y0 + side + m)


def cut(image: np.ndarray, origin: tuple[int, int], box: tuple[int, int, int, int]) -> np.ndarray:
    """Pixels of box (source coordinates) from image whose top-left is origin; outside is black.
    A box inside the image is a view of it, not a copy."""
    ox, oy = origin
    x0, y0, x1, y1 = box
    h, w = image.shape[:2]
    if x0 >= ox and y0 >= oy and x1 - ox <= w and y1 - oy <= h:
        return image[y0 - oy : y1 - oy, x0 - ox : x1 - ox]
    out = np.zeros((y1 - y0, x1 - x0, 3), dtype=np.uint8)
    sx0, sy0 = max(x0 - ox, 0), max(y0 - oy, 0)
    sx1, sy1 = min(x1 - ox, w), min(y1 - oy, h)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 + oy - y0 : sy1 + oy - y0, sx0 + ox - x0 : sx1 + ox - x0] = image[sy0:sy1, sx0:sx1]
    return out


def resize(image: np.ndarray, size: int | tuple[int, int], out: np.ndarray | None = None) -> np.ndarray:
    """A size x size (or width x height) BGR image with a batch axis, ready for an NHWC u8 model
    input (written into ``out``, 1 x height x width x 3, when given)."""
    width, height = (size, size) if isinstance(size, int) else size
    if out is None:
        return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)[np.newaxis]
    cv2.resize(image, (width, height), dst=out[0], interpolation=cv2.INTER_LINEAR)
    return out


def landmarks_to_source(raw: np.ndarray, square: tuple[int, int, int]) -> list[tuple[float, float]]:
    """Five (x, y) points normalised to the face square, in source pixels (Python floats: per-frame
    numpy on five points costs more than the arithmetic, about 0.1 ms on a cold CPU)."""
    x0, y0, side = square
    v = raw.reshape(-1).tolist()
    return [(v[2 * i] * side + x0, v[2 * i + 1] * side + y0) for i in range(5)]


def eye_box(
    center: tuple[float, float], side: float, bounds: tuple[int, int, int, int]
) -> tuple[int, int, int, int] | None:
    """A square of the given side around an eye centre, clamped to bounds; None if empty."""
    half = side / 2.0
    x0 = max(round(center[0] - half), bounds[0])
    y0 = max(round(center[1] - half), bounds[1])
    x1 = min(round(center[0] + half), bounds[2])
    y1 = min(round(center[1] + half), bounds[3])
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    return x0, y0, x1, y1


def rotate(image: np.ndarray, angle_deg: float) -> np.ndarray:
    """Rotate around the image centre by angle (OpenCV sign: counter-clockwise), replicating borders."""
    h, w = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((float(w // 2), float(h // 2)), angle_deg, 1.0)
    return cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def unroll_gaze(raw: np.ndarray, roll_deg: float) -> list[float]:
    """Normalise the model's gaze vector and rotate (x, y) back by the roll the eyes were turned by."""
    x, y, z = raw.reshape(3).tolist()
    r = math.radians(roll_deg)
    cs, sn = math.cos(r), math.sin(r)
    x, y = x * cs + y * sn, -x * sn + y * cs
    norm = math.sqrt(x * x + y * y + z * z) or 1.0
    return [x / norm, y / norm, z / norm]


def gaze_angles(gaze: list[float]) -> tuple[float, float]:
    """(horizontal, vertical) degrees: 0, 0 looking into the camera; + right and up in the image."""
    x, y, z = gaze
    norm = math.sqrt(x * x + y * y + z * z) or 1.0
    horizontal = 90.0 + math.degrees(math.atan2(z, x))
    vertical = 90.0 - math.degrees(math.acos(max(-1.0, min(1.0, y / norm))))
    if horizontal > 180.0:
        horizontal -= 360.0
    return horizontal, vertical
