"""Landmarks + head pose: the five facial points and the head's yaw, pitch, roll from the face crop."""

from gazeflow.models.catalog import HEAD_POSE, LANDMARKS
from gazeflow.shared import checks
from gazeflow.shared.registry import Channel, Overlay, Stage

STAGE = Stage(
    "landmarks_headpose",
    "inference",
    "gazeflow.services.landmarks_headpose.processor:LandmarksHeadPose",
    input="faces",
    output="eyes",
    models={"landmarks": LANDMARKS, "head_pose": HEAD_POSE},
    writes={
        "landmarks": checks.optional(lambda x: isinstance(x, list) and len(x) == 5 and all(map(checks.POINT, x))),
        "head_pose": checks.optional(checks.named_numbers("yaw", "pitch", "roll")),
    },
    results=("landmarks", "head_pose"),
    overlay=(
        Overlay("landmarks", "l", "gazeflow.services.landmarks_headpose.overlay:landmarks"),
        Overlay("head_pose", "h", "gazeflow.services.landmarks_headpose.overlay:head_pose"),
    ),
    channels=(Channel("track", serves=False),),  # each frame's box for the next one, back to face detection
    tracking="tracker",
    restartable=True,
    scalable=True,
    realtime_threads=1,
)
