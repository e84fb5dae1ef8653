"""Face detection: receive a full frame, detect (or take the tracked box), send the face region (never the
full frame). Between detections the box comes from landmarks' feedback (``shared/tracking.py``)."""

from __future__ import annotations

import bisect
import logging
import time
from typing import TYPE_CHECKING, Any

from gazeflow.shared import geometry, tracking
from gazeflow.shared.messages import Message, check_array
from gazeflow.shared.stage import Inputs, Outputs, Processor

if TYPE_CHECKING:
    from gazeflow.shared.config import Config

INPUT_W, INPUT_H = 672, 384
log = logging.getLogger("gazeflow.face_detection")


def check_tune(cfg: Config, key: str, value: Any) -> str:
    """Why a detect_every asked for while running cannot be taken ('' when it can): tracking needs its sockets,
    set up at the start only when the run started with detect_every above 1."""
    if value > 1 and not tracking.active(cfg):
        return (
            "tracking is off in this run (it starts only with detect_every above 1, its detector and tracker one "
            "process each on one host): start it with --detect-every N"
        )
    return ""


class FaceDetection(Processor):
    def __init__(self, cfg: Config) -> None:
        super().__init__(cfg)
        self.previous: geometry.Box | None = None
        self.partial_dropped = 0
        self.feedback: tracking.Feedback | None = None  # set by the runtime (or run-sync) when tracking runs
        self.every = cfg.detect_every
        self.detected = self.tracked = self.late = 0
        self.waiting_since: float | None = None
        self.detections: list[int] = []  # the frames whose detection has started, ascending (the newest KEEP)
        self.detection_boxes: dict[int, list[float] | None] = {}  # their boxes as sent, once finished

    def check(self, msg: Message) -> None:
        source = msg.header.get("source") or {}
        check_array(msg, "frame", (source.get("height"), source.get("width"), 3))

    def _detection_before(self, frame: int) -> int:
        """The newest detection started for a frame before ``frame`` (-1: none). A scheduled detection may
        start ahead of the frames before it (``ahead``), so this is asked by frame, not of the last one."""
        i = bisect.bisect_left(self.detections, frame)
        return self.detections[i - 1] if i else -1

    def _own(self, frame: int) -> int | None:
        """The detection whose own box this frame takes (landmarks of a frame before that detection are
        older than it, and those of the detection's frame only give its box back), else None."""
        newest = self._detection_before(frame)
        return newest if newest >= 0 and frame - tracking.DELAY <= newest else None

    def _box(self, msg: Message) -> list[float] | None:
        """The tracked box for this frame, or None: detect."""
        frame = msg.header["frame"]
        if self.feedback is None or frame % self.every == 0 or self._detection_before(frame) < 0:
            return None
        own = self._own(frame)
        if own is not None and own in self.detection_boxes:
            return self.detection_boxes[own]
        return self.feedback.box(frame, self.cfg.live)

    def ready(self, msg: Message) -> bool:
        """Lossless: a frame to track waits until its box is known: the newest detection's own (finished
        here) or, when landmarks has seen a later frame, the one landmarks sent (WAIT_S at most)."""
        if self.feedback is None or msg.kind != "frame" or self.cfg.live:
            return True
        frame = msg.header["frame"]
        own = self._own(frame)
        known = own in self.detection_boxes if own is not None else self.feedback.known(frame - tracking.DELAY)
        if frame % self.every == 0 or self._detection_before(frame) < 0 or known:
            self.waiting_since = None
            return True
        now = time.monotonic()
        self.waiting_since = self.waiting_since or now
        if now - self.waiting_since > tracking.WAIT_S:
            self.late += 1
            log.warning("face_detection: no tracked box for frame %d after %.0f s: detecting", frame, tracking.WAIT_S)
            self.waiting_since = None
            return True
        return False

    def ahead(self, msg: Message) -> bool:
        """A scheduled detection needs nothing from the frames before it: it may start while they wait for
        their tracked boxes, so the detector works while landmarks catches up (lossless; live never waits)."""
        return self.feedback is not None and not self.cfg.live and msg.header["frame"] % self.every == 0

    def infers(self, msg: Message) -> bool:
        return self._box(msg) is None

    def prepare(self, msg: Message) -> Inputs:
        box = self._box(msg)
        if box is not None:
            msg.header["tracked"] = True
            msg.header["face"] = list(box)
            return {}
        bisect.insort(self.detections, msg.header["frame"])
        del self.detections[: -tracking.KEEP]
        place = self.input("face", 0, (1, INPUT_H, INPUT_W, 3))  # resized straight into the request
        return {"face": {0: geometry.resize(msg.arrays["frame"], (INPUT_W, INPUT_H), place)}}

    def finish(self, msg: Message, outputs: Outputs) -> Message:
        """The face box, and the pixels around it that landmarks needs."""
        frame = msg.arrays.pop("frame")
        height, width = frame.shape[:2]
        detected = not msg.header.get("tracked")
        if not detected:
            face = tuple(msg.header["face"])
            self.tracked += 1
        else:
            self.detection_boxes[msg.header["frame"]] = None  # until this detection's box is sent (below)
            if len(self.detection_boxes) > tracking.KEEP:
                del self.detection_boxes[min(self.detection_boxes)]
            raw = next(iter(outputs["face"].values()))
            boxes = [box for box, _ in geometry.detections(raw, width, height, self.cfg.face_detection.confidence)]
            face = geometry.follow(boxes, self.previous)
            self.detected += 1
            if (
                face is not None and self.cfg.face_detection.box_shift
            ):  # a measurement: how much a small crop shift moves gaze
                d = self.cfg.face_detection.box_shift * (face[2] - face[0])
                face = (face[0] + d, face[1] + d, face[2] + d, face[3] + d)
        self.previous = face
        msg.header["face"] = None
        if face is None:
            return msg
        square = geometry.crop_square(face)
        if geometry.visible_fraction(square, width, height) < geometry.MIN_VISIBLE:
            self.partial_dropped += 1  # too little of the face is in the frame to trust the crop
            return msg
        msg.header["face"] = [round(v, 2) for v in face]
        if detected:
            self.detection_boxes[msg.header["frame"]] = msg.header["face"]
        msg.header["crop"] = list(square)
        self.frames.pass_on(msg, frame, geometry.region(square, width, height))
        return msg

    def tune(self, key: str, value: Any) -> None:
        """detect_every, changed while running (the pointer checked it with ``check_tune``)."""
        if key != "detect_every" or isinstance(value, bool) or not isinstance(value, int) or value < 1:
            log.warning("face_detection: ignored a setting it does not take: %s = %r", key, value)
            return
        if value > 1 and self.feedback is None:
            log.warning("face_detection: detect_every %d ignored: tracking is off in this run", value)
            return
        self.every = value
        log.info("face_detection: detecting every %d frame%s from now on", value, "s" if value > 1 else "")

    def stats(self) -> dict[str, int]:
        out = {"detector_runs": self.detected, "tracked": self.tracked}
        if self.late:
            out["tracking_late"] = self.late
        if self.feedback is not None and self.feedback.malformed:
            out["feedback_malformed"] = self.feedback.malformed
        return out
