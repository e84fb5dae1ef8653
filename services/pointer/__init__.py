"""Pointer: the sink. Maps the gaze to the screen, moves the pointer, clicks, pauses; answers 'gazeflow ctl'."""

from gazeflow.shared import checks
from gazeflow.shared.registry import Channel, Overlay, Stage

from .settings import CameraConfig, PointerConfig

STAGE = Stage(
    "pointer",
    "sink",
    "gazeflow.services.pointer.processor:Pointer",
    input="gaze",
    output="results",
    sections={"pointer": PointerConfig, "camera": CameraConfig},
    writes={"pointer": checks.optional(checks.table), "paused": checks.flag},
    results=("pointer", "paused"),
    preflight="gazeflow.services.pointer.processor:preflight",
    overlay=(Overlay("pointer", "p", "gazeflow.services.pointer.overlay:pointer"),),
    channels=(Channel("ctl", serves=True, peer="ctl"), Channel("health", serves=True), Channel("tune", serves=True)),
)
