"""Gaze: the gaze vector from the two eye crops and the head pose, and whether each eye is open."""

from gazeflow.models.catalog import EYE_STATE, GAZE
from gazeflow.shared import checks
from gazeflow.shared.registry import Overlay, Stage

STAGE = Stage(
    "gaze",
    "inference",
    "gazeflow.services.gaze.processor:Gaze",
    input="eyes",
    output="gaze",
    models={"gaze": GAZE, "eye_state": EYE_STATE},
    writes={
        "gaze": checks.optional(lambda x: checks.numbers(3)(x) and any(x)),  # a unit vector after roll correction
        "eyes": checks.optional(checks.named_numbers("left", "right", low=0, high=1)),  # P(open) of each eye
    },
    results=("gaze", "eyes"),
    overlay=(
        Overlay("gaze", "g", "gazeflow.services.gaze.overlay:gaze"),
        Overlay("eyes", "e", "gazeflow.services.gaze.overlay:eyes"),
    ),
    restartable=True,
    scalable=True,
    realtime_threads=1,
)
