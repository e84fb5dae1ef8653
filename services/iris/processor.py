"""Iris: MediaPipe's iris model on both eye crops (one request, the right eye mirrored as the model was trained
on left eyes), then each iris centre between its eye's corners: eye-in-head features for the calibration."""

from __future__ import annotations

import math

import cv2
import numpy as np

from gazeflow.services.landmarks_headpose.processor import EYE_INPUT
from gazeflow.shared import geometry
from gazeflow.shared.messages import MalformedMessage, Message, check_array
from gazeflow.shared.stage import Inputs, Outputs, Processor

SIDE = 64  # the model's input: 64x64 RGB in 0..1 (converted in the graph from the crops' BGR u8)
CORNERS = (0, 8)  # the eye contour's two corners among its 71 points
CONTOUR, IRIS = "output_eyes_contours_and_brows", "output_iris"


class Iris(Processor):
    """Reads the eye crops that landmarks + head pose made for gaze and passes them on as they came."""

    def check(self, msg: Message) -> None:
        if "left_eye" in msg.arrays or "right_eye" in msg.arrays:
            for name in ("left_eye", "right_eye"):
                check_array(msg, name, (1, EYE_INPUT, EYE_INPUT, 3))
            if msg.header["head_pose"] is None or msg.header["landmarks"] is None:
                raise MalformedMessage("eye crops without landmarks and a head pose")

    def infers(self, msg: Message) -> bool:
        return "left_eye" in msg.arrays

    def prepare(self, msg: Message) -> Inputs:
        if "left_eye" not in msg.arrays:
            return {}
        shape = (2, SIDE, SIDE, 3)
        both = self.input("iris", 0, shape)
        if both is None:
            both = np.empty(shape, dtype=np.uint8)
        cv2.resize(msg.arrays["left_eye"][0], (SIDE, SIDE), dst=both[0], interpolation=cv2.INTER_LINEAR)
        right = cv2.resize(msg.arrays["right_eye"][0], (SIDE, SIDE), interpolation=cv2.INTER_LINEAR)
        cv2.flip(right, 1, dst=both[1])  # the image's right eye, mirrored into a left one
        return {"iris": {0: both}}

    def finish(self, msg: Message, outputs: Outputs) -> Message:
        if "iris" not in outputs:
            return msg
        contours = outputs["iris"][CONTOUR].reshape(2, 71, 3)[:, :, :2].copy()
        irises = outputs["iris"][IRIS].reshape(2, 5, 3)[:, 0, :2].copy()  # the first of its five points: the centre
        contours[1, :, 0] = SIDE - contours[1, :, 0]  # mirrored back
        irises[1, 0] = SIDE - irises[1, 0]
        header = msg.header
        points, roll = header["landmarks"], header["head_pose"]["roll"]
        side = geometry.EYE_SIDE * math.dist(points[0], points[1])
        found = [
            [*between_corners(contours[i], irises[i]), *to_frame(irises[i], points[i], side, roll)] for i in (0, 1)
        ]
        # the person's left eye is on the image's right (the camera faces them)
        header["iris"] = {"left": found[1], "right": found[0]}
        return msg


def between_corners(contour: np.ndarray, iris: np.ndarray) -> tuple[float, float]:
    """Where the iris centre is from the middle of the eye's corners, along the line through them and
    across it (down in the image), in eye widths."""
    a, b = contour[CORNERS[0]], contour[CORNERS[1]]
    if a[0] > b[0]:
        a, b = b, a
    width = float(np.hypot(*(b - a)))
    if width < 1e-3:
        return 0.0, 0.0
    ux, uy = ((b - a) / width).tolist()
    dx, dy = (iris - (a + b) / 2).tolist()
    return round((dx * ux + dy * uy) / width, 4), round((dy * ux - dx * uy) / width, 4)


def to_frame(p: np.ndarray, centre: list[float], side: float, roll_deg: float) -> tuple[float, float]:
    """A point of a 64x64 eye crop in the frame: the crop was cut around the eye centre and turned upright
    by the roll (shared/geometry.py), so undo both (to within the rounding of the crop's edges)."""
    dx, dy = (float(p[0]) - SIDE / 2) * side / SIDE, (float(p[1]) - SIDE / 2) * side / SIDE
    r = math.radians(roll_deg)
    cs, sn = math.cos(r), math.sin(r)
    return round(centre[0] + cs * dx - sn * dy, 1), round(centre[1] + sn * dx + cs * dy, 1)
