"""Face detection: receive a full frame, detect, send the face region (never the full frame)."""

from __future__ import annotations

from gazeflow.shared import geometry
from gazeflow.shared.config import Config
from gazeflow.shared.messages import Message, check_array
from gazeflow.shared.stage import Inputs, Outputs, Processor

INPUT_W, INPUT_H = 672, 384


class FaceDetection(Processor):
    def __init__(self, cfg: Config) -> None:
        super().__init__(cfg)
        self.previous: geometry.Box | None = None
        self.partial_dropped = 0

    def check(self, msg: Message) -> None:
        source = msg.header.get("source") or {}
        check_array(msg, "frame", (source.get("height"), source.get("width"), 3))

    def prepare(self, msg: Message) -> Inputs:
        place = self.input("face", 0, (1, INPUT_H, INPUT_W, 3))  # resized straight into the request
        return {"face": {0: geometry.resize(msg.arrays["frame"], (INPUT_W, INPUT_H), place)}}

    def finish(self, msg: Message, outputs: Outputs) -> Message:
        """The face box, and the pixels around it that landmarks needs."""
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
        msg.header["face"] = [round(v, 2) for v in face]
        msg.header["crop"] = list(square)
        self.frames.pass_on(msg, frame, geometry.region(square, width, height))
        return msg
