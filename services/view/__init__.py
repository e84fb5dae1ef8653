"""The view: after the pointer, the annotated frames in a window (--show) or a video file (--output)."""

from gazeflow.shared.registry import Overlay, Stage

from .settings import ViewConfig

STAGE = Stage(
    "view",
    "sink",
    "gazeflow.services.view.processor:View",
    input="results",
    sections={"view": ViewConfig},
    preflight="gazeflow.services.view.processor:check_display",
    overlay=(Overlay("figures", "s", "gazeflow.services.view.draw:figures"),),
    optional=True,
    reads_frames=True,
)
