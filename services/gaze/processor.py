"""Gaze: infer on the eye crops, rotate the result back by the roll, normalise."""

from __future__ import annotations

from gazeflow.services.landmarks_headpose.processor import eye_inputs
from gazeflow.shared import geometry
from gazeflow.shared.messages import Message
from gazeflow.shared.stage import Inputs, Outputs, Processor


class Gaze(Processor):
    keeps_pixels = False  # the eye crops are copied into the request; finish needs only the header

    def prepare(self, msg: Message) -> Inputs:
        inputs = eye_inputs(msg)
        return {"gaze": inputs} if inputs is not None else {}

    def finish(self, msg: Message, outputs: Outputs) -> Message:
        msg.arrays.clear()
        if "gaze" in outputs:
            gaze = geometry.unroll_gaze(outputs["gaze"]["gaze_vector"], msg.header["head_pose"]["roll"])
            msg.header["gaze"] = [round(v, 6) for v in gaze]
        return msg
