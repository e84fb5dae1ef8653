"""Gaze and eye state: both models on the eye crops (compiled as one), the gaze rotated back by the roll."""

from __future__ import annotations

import cv2
import numpy as np

from gazeflow.services.landmarks_headpose.processor import EYE_INPUT, eye_inputs
from gazeflow.shared import geometry
from gazeflow.shared.messages import MalformedMessage, Message, check_array
from gazeflow.shared.stage import Inputs, Outputs, Processor

EYE_STATE_INPUT = 32  # open-closed-eye-0001 takes 32x32 crops; both eyes go in one batch
OPEN = 1  # the index of "open" in its output (the reference demo: open when out[1] > out[0]; checked on the demo)


class Gaze(Processor):
    keeps_pixels = False  # the eye crops are copied into the request; finish needs only the header

    def check(self, msg: Message) -> None:
        if "left_eye" in msg.arrays or "right_eye" in msg.arrays:
            for name in ("left_eye", "right_eye"):
                check_array(msg, name, (1, EYE_INPUT, EYE_INPUT, 3))
            if msg.header["head_pose"] is None:
                raise MalformedMessage("eye crops without a head pose")

    def prepare(self, msg: Message) -> Inputs:
        inputs = eye_inputs(msg)
        if inputs is None:
            return {}
        shape = (2, EYE_STATE_INPUT, EYE_STATE_INPUT, 3)
        both = self.input("eye_state", 0, shape)
        if both is None:
            both = np.empty(shape, dtype=np.uint8)
        for i, name in enumerate(("left_eye", "right_eye")):  # the image's left eye first
            cv2.resize(
                msg.arrays[name][0], (EYE_STATE_INPUT, EYE_STATE_INPUT), dst=both[i], interpolation=cv2.INTER_AREA
            )
        return {"gaze": inputs, "eye_state": {0: both}}

    def finish(self, msg: Message, outputs: Outputs) -> Message:
        msg.arrays.clear()
        if "gaze" in outputs:
            gaze = geometry.unroll_gaze(outputs["gaze"]["gaze_vector"], msg.header["head_pose"]["roll"])
            msg.header["gaze"] = [round(v, 6) for v in gaze]
        if "eye_state" in outputs:
            p = next(iter(outputs["eye_state"].values())).reshape(2, 2)[:, OPEN].tolist()
            # the person's own left eye is on the image's right (the camera faces them)
            msg.header["eyes"] = {"left": round(p[1], 3), "right": round(p[0], 3)}
        return msg
