"""Tracking the face between detections: the detector runs on every ``detect_every``-th frame, and as soon as
tracking is lost; on the other frames the face box comes from the landmarks of an earlier frame.

Landmarks + head pose (which sees every frame in order) keeps the tracking state and sends, for each frame
j, the box that frame j + DELAY should use back to face detection over a feedback socket (``track`` in the
run directory): the box of the last detection moved by how far the landmarks' centre has moved since
(its size kept: resizing it from the landmarks was not stable), or nothing when tracking is lost:

* no face in frame j;
* the head pose jumped more than HEAD_JUMP_DEG since the previous frame;
* a landmark moved more than SHAPE_CHANGE of the crop's side, relative to the others, since the detection.

Landmarks of a detection's own frame only give its box back, so face detection takes that box itself: frame
i uses the newest detection's box when frame i - DELAY is not after that detection, and waits for landmarks only
otherwise (at N = 3, for one frame in three: the rest overlap, at max speed too).

The delay is fixed (DELAY frames), so that the results never depend on timing: in a lossless replay face
detection waits for frame i - DELAY's box before frame i (it keeps sending its earlier frames meanwhile, so
this cannot deadlock), and run-sync, which tracks the same way, gives the same results. Live, it never
waits: it uses the newest box no older than a few frames, or detects.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

import zmq

from . import channels

if TYPE_CHECKING:
    from .config import Config


log = logging.getLogger("gazeflow.tracking")
DELAY = 1  # frames between the landmarks a box comes from and the frame that uses it
LIVE_SLACK = 3  # live: a box up to this many frames older than wanted is still used
HEAD_JUMP_DEG = 12.0
SHAPE_CHANGE = 0.08
WAIT_S = 5.0  # lossless: after this long without the box it needs, face detection detects (and says so)
KEEP = 256  # boxes kept, newest frames


def active(cfg: Config) -> bool:
    """Tracking runs when asked for and both its ends (the stages whose manifests say detector and tracker)
    are in the chain as single processes on this host."""
    detector, tracker = cfg.in_chain("detector"), cfg.in_chain("tracker")
    if cfg.detect_every <= 1 or not detector or not tracker:
        return False
    one = cfg.workers(detector) == 1 and cfg.workers(tracker) == 1
    local = cfg.endpoint(detector, "output").local
    return one and local


class Feedback:
    """The boxes landmarks sends back, by frame; in memory (run-sync) or over a socket (``SocketFeedback``)."""

    def __init__(self) -> None:
        self.boxes: dict[int, list[float] | None] = {}
        self.malformed = 0

    def send(self, frame: int, box: list[float] | None) -> None:
        self._keep(frame, box)

    def _keep(self, frame: int, box: list[float] | None) -> None:
        self.boxes[frame] = box
        if len(self.boxes) > KEEP:
            for old in sorted(self.boxes)[: len(self.boxes) - KEEP]:
                del self.boxes[old]

    def receive(self) -> None:
        """Take in what has arrived (nothing to do in memory)."""

    def known(self, frame: int) -> bool:
        self.receive()
        return frame in self.boxes

    def box(self, frame: int, live: bool) -> list[float] | None:
        """The box for frame ``frame`` (None: detect): the one sent for frame - DELAY, or live the newest
        one not much older."""
        self.receive()
        want = frame - DELAY
        if want in self.boxes:
            return self.boxes[want]
        if live:
            older = [f for f in self.boxes if want - LIVE_SLACK <= f < want]
            return self.boxes[max(older)] if older else None
        return None

    @property
    def sockets(self) -> list[zmq.Socket]:
        return []

    def close(self) -> None:
        pass


class SocketFeedback(Feedback):
    """Face detection serves the ``track`` channel in the run directory; landmarks sends on it."""

    def __init__(self, ctx: zmq.Context, run_dir: str, receiving: bool) -> None:
        super().__init__()
        self.receiving = receiving
        self.end = channels.End.local(ctx, run_dir, "track", serves=receiving)

    def send(self, frame: int, box: list[float] | None) -> None:
        self.end.send(channels.Track(frame, box))  # not sent: face detection is gone or far behind: it detects

    def receive(self) -> None:
        while self.receiving and (item := self.end.receive()) is not None:
            self._keep(item.frame, item.box)
        self.malformed = self.end.malformed

    @property
    def sockets(self) -> list[zmq.Socket]:
        return [self.end.sock] if self.receiving else []

    def close(self) -> None:
        self.end.close()


class Tracker:
    """Landmarks' side: from each frame's face, landmarks and head pose, the box a later frame uses."""

    def __init__(self) -> None:
        self.anchor: tuple[list[float], tuple[float, float], list[tuple[float, float]]] | None = None
        self.side = 0.0
        self.last_pose: dict[str, float] | None = None
        self.lost = 0  # times tracking was lost (a detection followed)

    def update(self, header: dict[str, Any]) -> list[float] | None:
        face, points, pose = header.get("face"), header.get("landmarks"), header.get("head_pose")
        previous_pose, self.last_pose = self.last_pose, pose
        if face is None or points is None or pose is None:
            if self.anchor is not None:
                self.lost += 1
            self.anchor = None
            return None
        cx = sum(p[0] for p in points) / len(points)
        cy = sum(p[1] for p in points) / len(points)
        rel = [(p[0] - cx, p[1] - cy) for p in points]
        if not header.get("tracked"):
            self.anchor = (list(face), (cx, cy), rel)
            self.side = float(header["crop"][2]) if header.get("crop") else max(face[2] - face[0], 1.0)
            return list(face)
        if self.anchor is None:
            return None
        box, (ax, ay), arel = self.anchor
        jump = previous_pose is not None and max(abs(pose[k] - previous_pose[k]) for k in ("yaw", "pitch", "roll"))
        shape = max(math.dist(p, q) for p, q in zip(rel, arel, strict=True)) / max(self.side, 1.0)
        if (jump and jump > HEAD_JUMP_DEG) or shape > SHAPE_CHANGE:
            self.lost += 1
            self.anchor = None
            return None
        dx, dy = cx - ax, cy - ay
        return [box[0] + dx, box[1] + dy, box[2] + dx, box[3] + dy]
