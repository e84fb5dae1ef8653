"""Iris: MediaPipe's iris model on the two eye crops: where each iris sits between its eye's corners.

Optional (``--iris``, or ``iris`` in the config's chain): it joins the chain after landmarks + head pose,
passes the eye crops on to gaze untouched, and writes ``iris``, eye-in-head features that the
calibration's fit may use beside the gaze model's vector.
"""

from gazeflow.models.catalog import IRIS
from gazeflow.shared.registry import Overlay, Stage

from .settings import IrisConfig, check_iris

STAGE = Stage(
    "iris",
    "inference",
    "gazeflow.services.iris.processor:Iris",
    input="eyes",
    output="irises",
    models={"iris": IRIS},
    sections={"iris": IrisConfig},
    writes={"iris": check_iris},
    results=("iris",),
    preflight="gazeflow.services.iris.settings:preflight",
    overlay=(Overlay("iris", "i", "gazeflow.services.iris.overlay:iris"),),
    restartable=True,
    scalable=True,
    optional=True,
    realtime_threads=1,
)
