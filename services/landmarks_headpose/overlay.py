"""What the view draws of the landmarks and the head pose: the five points, the head's axes."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from gazeflow.shared.canvas import BLUE, CYAN, GREEN, RED, Canvas


def landmarks(canvas: Canvas, header: dict[str, Any]) -> None:
    for point in header.get("landmarks") or []:
        canvas.circle("landmarks", point, max(3, canvas.px(3)), CYAN)


def _rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Head pose angles (degrees) as a rotation in image axes (x right, y down, z into the scene)."""
    y, p, r = (math.radians(a) for a in (yaw, pitch, roll))
    rx = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    ry = np.array([[math.cos(y), 0, -math.sin(y)], [0, 1, 0], [math.sin(y), 0, math.cos(y)]])
    rz = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    return rz @ ry @ rx


def head_pose(canvas: Canvas, header: dict[str, Any]) -> None:
    """The head's x (red, to its left in the image's right), y (green, down) and z (blue, out of the face),
    from the nose tip, as long as 0.9 x the eyes' distance."""
    points, pose = header.get("landmarks"), header.get("head_pose")
    if not points or not pose:
        return
    r = _rotation(pose["yaw"], pose["pitch"], pose["roll"])
    (cx, cy), length = points[2], 0.9 * math.dist(points[0], points[1])
    for axis, colour in ((np.array([1.0, 0, 0]), RED), (np.array([0, 1.0, 0]), GREEN), (np.array([0, 0, -1.0]), BLUE)):
        v = r @ axis
        canvas.arrow("head_pose", (cx, cy), (cx + v[0] * length, cy + v[1] * length), colour, 2, tip=0.15)
