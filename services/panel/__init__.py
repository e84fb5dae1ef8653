"""The panel: a local web page to watch and tune a run (live view, each stage's figures, the pointer's state,
pause, recentre, dwell and filter settings) and a Prometheus endpoint, served by this optional sink after the
pointer (``--panel [HOST:]PORT``)."""

from gazeflow.shared.registry import Channel, Stage

from .settings import PanelConfig

STAGE = Stage(
    "panel",
    "sink",
    "gazeflow.services.panel.processor:Panel",
    input="results",
    output="watched",
    sections={"panel": PanelConfig},
    preflight="gazeflow.services.panel.settings:preflight",
    optional=True,
    channels=(Channel("watch", serves=True),),  # a page shows the live view: the stage before sends frames
    tokens=("panel.token",),  # 'gazeflow keys' makes one: a token that the panel and a Prometheus share
    reads_frames=lambda cfg: cfg.panel.view_fps > 0,  # the live view's frames, only while it is on
    on_demand=lambda cfg: cfg.panel.view_fps,  # and only while a page is open: its figures are the pointer's
)
