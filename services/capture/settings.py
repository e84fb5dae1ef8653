"""Capture's settings: the [capture] table (what a camera is asked for; a video file is read as it is)."""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from gazeflow.shared.settings import Section, setting


class CaptureConfig(Section):
    camera_format: Literal["MJPG", "YUYV", "any"] = setting(
        "MJPG",
        "what a camera is asked to send: MJPG (compressed: a USB 2 webcam's full rate at 720p, cheap to decode), "
        "YUYV (raw), any (the driver's choice)",
        flag="--camera-format",
        group="Input",
    )
    camera_size: tuple[int, int] = setting(
        (1280, 720),
        "the frame size a camera is asked for (the models see a face of 60-100 px between the eyes at 720p and "
        "60 cm; larger costs decode time); the camera may give another, which is then used",
    )
    camera_fps: float = setting(30.0, "the frame rate a camera is asked for", gt=0, le=240)

    @model_validator(mode="after")
    def _size(self) -> CaptureConfig:
        if not all(16 <= side <= 8192 for side in self.camera_size):
            raise ValueError(f"capture.camera_size {list(self.camera_size)}: a width and a height, 16-8192 px")
        return self
