"""Capture: the source. Reads the input (a video file or a camera), stamps each frame, sends it on."""

from gazeflow.shared.registry import Channel, Stage

from .settings import CaptureConfig

STAGE = Stage(
    "capture",
    "source",
    "gazeflow.services.capture.stage:Capture",
    output="frames",
    preflight="gazeflow.services.capture.stage:preflight",
    sections={"capture": CaptureConfig},
    channels=(Channel("release", serves=True),),  # frame slots come back from the last stage that used them
)
