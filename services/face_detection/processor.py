"""Face detection: receive a full frame, detect, send the face region (never the full frame)."""

from __future__ import annotations

from gazeflow.models.catalog import FACE
from gazeflow.shared import geometry
from gazeflow.shared.config import Config
from gazeflow.shared.messages import Message
from gazeflow.shared.stage import Inputs, Outputs, Processor

INPUT_W, INPUT_H = 672, 384


class FaceDetection(Processor):
    name = "face_detection"
    models = {"face": FACE}
    entry = True

    def __init__(self, cfg: Config) -> None:
        super().__init__(cfg)
        self.previous: geometry.Box | None = None
        self.partial_dropped = 0

    def prepare(self, msg: Message) -> Inputs:
        place = self.input("face", 0, (1, INPUT_H, INPUT_W, 3))  # resized straight into the request
        return {"face": {0: geometry.resize(msg.arrays["frame"], (INPUT_W, INPUT_H), place)}}

    def finish(self, msg: Message, outputs: Outputs) -> Message:
        """The face box, and the pixels landmarks needs: on one host the frame's shared slot itself
        (no copy), else a copy of the face region."""
        frame = msg.arrays.pop("frame")
        height, width = frame.shape[:2]
        raw = next(iter(outputs["face"].values()))
        boxes = [box for box, _ in geometry.detections(raw, width, height, self.cfg.confidence)]
        face = geometry.follow(boxes, self.previous)
        self.previous = face
        if face is None:
            return msg
        square = geometry.crop_square(face)
        if geometry.visible_fraction(square, width, height) < geometry.MIN_VISIBLE:
            self.partial_dropped += 1  # too little of the face is in the frame to trust the crop
            return msg
        x0, y0, x1, y1 = geometry.region(square, width, height)
        msg.header["face"] = [round(v, 2) for v in face]
        msg.header["crop"] = list(square)
        msg.header["region"] = [x0, y0, x1, y1]
        if self.share_frame and "frame_ref" in msg.header:
            msg.arrays["frame"] = frame  # passed on by its slot number
        else:
            msg.arrays["region"] = frame[y0:y1, x0:x1].copy()  # the frame's shared slot is reused once released
        return msg
