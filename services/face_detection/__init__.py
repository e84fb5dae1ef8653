"""Face detection: finds the face on the whole frame (every Nth frame; tracked between), sends its region."""

from gazeflow.models.catalog import FACE
from gazeflow.shared import checks
from gazeflow.shared.registry import Channel, Overlay, Stage

from .settings import FaceDetectionConfig

STAGE = Stage(
    "face_detection",
    "inference",
    "gazeflow.services.face_detection.processor:FaceDetection",
    input="frames",
    output="faces",
    models={"face": FACE},
    sections={"face_detection": FaceDetectionConfig},
    writes={
        "face": checks.optional(checks.numbers(4)),  # [x0, y0, x1, y1] in source pixels
        "crop": lambda x: checks.ints(3)(x) and x[2] > 0,  # the face's square [x0, y0, side]
        "tracked": checks.flag,  # the box came from tracking, not the detector
    },
    results=("face",),
    overlay=(Overlay("face", "f", "gazeflow.services.face_detection.overlay:face"),),
    # the tracked box for the next frame, from landmarks; detect_every changed while running, from the pointer
    channels=(Channel("track", serves=True), Channel("tune", serves=False)),
    tunable=("detect_every",),
    tune_check="gazeflow.services.face_detection.processor:check_tune",
    tracking="detector",
    restartable=True,
    scalable=True,
)
