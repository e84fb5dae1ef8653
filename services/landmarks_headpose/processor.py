"""Landmarks + head pose: both models on the face crop, then the two eye crops for gaze."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from gazeflow.shared import geometry, tracking
from gazeflow.shared.messages import MalformedMessage, Message, check_array
from gazeflow.shared.stage import Inputs, Outputs, Processor

if TYPE_CHECKING:
    from gazeflow.shared.config import Config

EYE_INPUT = 60


class LandmarksHeadPose(Processor):
    """Both models run on every frame (compiled as one by the runtime); with tracking on, each frame's box
    for a later frame goes back to face detection (``shared/tracking.py``)."""

    def __init__(self, cfg: Config) -> None:
        super().__init__(cfg)
        self.feedback: tracking.Feedback | None = None  # set by the runtime (or run-sync) when tracking runs
        self.tracker = tracking.Tracker()

    def check(self, msg: Message) -> None:
        if msg.header["face"] is None:
            return
        if "crop" not in msg.header or "region" not in msg.header:
            raise MalformedMessage("a face without its crop and region")
        x0, y0, x1, y1 = msg.header["region"]
        if "region" in msg.arrays:
            check_array(msg, "region", (y1 - y0, x1 - x0, 3))
        else:
            check_array(msg, "frame", (None, None, 3))

    def prepare(self, msg: Message) -> Inputs:
        if msg.header["face"] is None:
            return {}
        x0, y0, side = msg.header["crop"]
        face = geometry.cut(*self.frames.pixels(msg), (x0, y0, x0 + side, y0 + side))
        return {
            "landmarks": {0: geometry.resize(face, 48, self.input("landmarks", 0, (1, 48, 48, 3)))},
            "head_pose": {0: geometry.resize(face, 60, self.input("head_pose", 0, (1, 60, 60, 3)))},
        }

    def finish(self, msg: Message, outputs: Outputs) -> Message:
        msg = self._finish(msg, outputs)
        if self.feedback is not None:
            self.feedback.send(msg.header["frame"], self.tracker.update(msg.header))
        return msg

    def stats(self) -> dict[str, int]:
        return {"tracking_lost": self.tracker.lost} if self.feedback is not None else {}

    def _finish(self, msg: Message, outputs: Outputs) -> Message:
        if msg.header["face"] is None:
            msg.arrays.clear()
            return msg
        pixels, origin = self.frames.pixels(msg)
        msg.arrays.clear()  # gaze takes only the eye crops
        bounds = tuple(msg.header.pop("region"))  # eye crops stay inside the region, as when it is copied
        points = geometry.landmarks_to_source(next(iter(outputs["landmarks"].values())), msg.header["crop"])
        pose = outputs["head_pose"]  # by name, never by order: dict order is r, p, y
        head_pose = {  # item(): one call per angle, where reshape and indexing cost three on a cold CPU
            "yaw": pose["angle_y_fc"].item(),
            "pitch": pose["angle_p_fc"].item(),
            "roll": pose["angle_r_fc"].item(),
        }
        msg.header["landmarks"] = [[round(x, 2), round(y, 2)] for x, y in points]
        msg.header["head_pose"] = head_pose
        side = geometry.EYE_SIDE * math.dist(points[0], points[1])
        eyes = {}
        for name, center in (("left_eye", points[0]), ("right_eye", points[1])):
            box = geometry.eye_box(center, side, bounds)
            if box is None:
                return msg
            crop = geometry.rotate(geometry.cut(pixels, origin, box), head_pose["roll"])
            eyes[name] = geometry.resize(crop, EYE_INPUT, self.output(msg, name, (1, EYE_INPUT, EYE_INPUT, 3)))
        msg.arrays.update(eyes)
        return msg


def eye_inputs(msg: Message) -> dict[str, np.ndarray] | None:
    """The gaze model's inputs for a message, or None when there are no eye crops."""
    if "left_eye" not in msg.arrays:
        return None
    pose = msg.header["head_pose"]
    return {
        "left_eye_image": msg.arrays["left_eye"],
        "right_eye_image": msg.arrays["right_eye"],
        # roll is 0: the eye crops were already turned upright by the roll angle
        "head_pose_angles": np.array([[pose["yaw"], pose["pitch"], 0.0]], dtype=np.float32),
    }
