"""The five stages in order, and how one stage process runs."""

from __future__ import annotations

import zmq

from gazeflow.shared.config import Config
from gazeflow.shared.process import Control, StopFlag
from gazeflow.shared.stage import Processor, StageRuntime

from .capture import stage as capture
from .face_detection.processor import FaceDetection
from .gaze.processor import Gaze
from .landmarks_headpose.processor import LandmarksHeadPose
from .pointer.processor import Pointer

PROCESSORS: dict[str, type[Processor]] = {
    "face_detection": FaceDetection,
    "landmarks_headpose": LandmarksHeadPose,
    "gaze": Gaze,
    "pointer": Pointer,
}


def process_name(name: str, worker: str, cfg: Config) -> str:
    """How a stage process is named in ps, logs and run-all's messages: face_detection/1 for a worker."""
    return f"{name}/{worker}" if cfg.workers(name) > 1 else name


def stage_body(name: str, cfg: Config, worker: str = "0"):
    """The function run_stage runs for stage `name` (worker `worker` of a scaled stage)."""

    def body(ctx: zmq.Context, control: Control, stop: StopFlag) -> None:
        if name == "capture":
            capture.run(cfg, ctx, control, stop)
            return
        StageRuntime(PROCESSORS[name](cfg), cfg, ctx, control, stop, worker).run()

    return body
