"""Gaze: infer on the eye crops, rotate the result back by the roll, normalise."""

from __future__ import annotations

from gazeflow.services.landmarks_headpose.processor import EYE_INPUT, eye_inputs
from gazeflow.shared import geometry
from gazeflow.shared.messages import MalformedMessage, Message, check_array
from gazeflow.shared.stage import Inputs, Outputs, Processor


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
        return {"gaze": inputs} if inputs is not None else {}

    def finish(self, msg: Message, outputs: Outputs) -> Message:
        msg.arrays.clear()
        if "gaze" in outputs:
            gaze = geometry.unroll_gaze(outputs["gaze"]["gaze_vector"], msg.header["head_pose"]["roll"])
            msg.header["gaze"] = [round(v, 6) for v in gaze]
        return msg
