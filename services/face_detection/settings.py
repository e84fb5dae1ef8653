"""Face detection's settings: the [face_detection] table."""

from __future__ import annotations

from gazeflow.shared.settings import Section, setting


class FaceDetectionConfig(Section):
    confidence: float = setting(0.5, "a detection counts from this confidence on", ge=0, le=1)
    box_shift: float = setting(0.0, "a measurement (make bench): move each detected box by this fraction of its side")
