"""Every stage, declared once.

The config (its stage tables, the links between stages, what may be scaled),
run-all (which processes, in which order, which ones are restarted), run-sync,
the bench, the metrics and the deploy tests all read this registry; none of
them names a stage. Adding a stage is one entry here and its folder under
``services/`` with its processor (``shared/stage.py``: prepare, finish). A stage
from another package is declared the same way, as an entry point in the group
``gazeflow.stages`` whose object is a ``Stage``.

The pipeline a run uses is a chain of registered stages (the config's ``chain``;
by default every stage that is not optional, in the order below): a source,
then inference stages, then a sink. Each link of the chain is named after what
its upstream stage sends (``Stage.output``); it is an ipc socket of that name
in the run directory unless the topology file gives its endpoints.
"""

from __future__ import annotations

import importlib
import itertools
import logging
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import entry_points
from typing import Any

from gazeflow.models.catalog import EYE_STATE, FACE, GAZE, HEAD_POSE, LANDMARKS

from .errors import GazeflowError

ROLES = ("source", "inference", "sink")
ENTRY_POINTS = "gazeflow.stages"
log = logging.getLogger("gazeflow.registry")


@dataclass(frozen=True)
class Stage:
    name: str
    role: str  # source: reads the input and starts the stream; inference: runs models; sink: ends the stream
    processor: str  # "module:attr": a Processor class (a source: an object with run() and frames())
    output: str = ""  # the link it sends on, named after what travels on it; "" for the sink
    models: dict[str, str] = field(default_factory=dict)  # model key (as the processor names it) -> model
    restartable: bool = False  # keeps no state between frames: run-all restarts it when it dies
    scalable: bool = False  # several worker processes may share its load
    optional: bool = False  # in the chain only when the config's chain names it
    reads_frames: bool = False  # a sink that needs the frame's pixels (the view): earlier stages pass them on
    # inference threads per request at real-time pace (0: the device's default, all cores): 1 for models of
    # well under a millisecond, where sharing one inference between threads costs more CPU than it saves time
    realtime_threads: int = 0

    def load(self) -> Any:
        """The processor class (or the source object): imported only by the process that runs it."""
        module, _, attr = self.processor.partition(":")
        return getattr(importlib.import_module(module), attr)


BUILTIN: tuple[Stage, ...] = (
    Stage("capture", "source", "gazeflow.services.capture.stage:Capture", output="frames"),
    Stage(
        "face_detection", "inference", "gazeflow.services.face_detection.processor:FaceDetection",
        output="faces", models={"face": FACE}, restartable=True, scalable=True,
    ),
    Stage(
        "landmarks_headpose", "inference", "gazeflow.services.landmarks_headpose.processor:LandmarksHeadPose",
        output="eyes", models={"landmarks": LANDMARKS, "head_pose": HEAD_POSE}, restartable=True, scalable=True,
        realtime_threads=1,
    ),
    Stage(
        "gaze", "inference", "gazeflow.services.gaze.processor:Gaze",
        output="gaze", models={"gaze": GAZE, "eye_state": EYE_STATE}, restartable=True, scalable=True,
        realtime_threads=1,
    ),
    Stage("pointer", "sink", "gazeflow.services.pointer.processor:Pointer", output="results"),
    # in place of the pointer while 'gazeflow calibrate' runs: writes the samples it fits from
    Stage("calibration", "sink", "gazeflow.services.calibration.sink:CalibrationSink", optional=True),
    # after the pointer (--show, --output): the annotated frames in a window or a video file
    Stage("view", "sink", "gazeflow.services.view.processor:View", optional=True, reads_frames=True),
)  # fmt: skip


@cache
def stages() -> dict[str, Stage]:
    """Every registered stage by name: the built-in ones, then those of installed packages."""
    out = {s.name: s for s in BUILTIN}
    for ep in entry_points(group=ENTRY_POINTS):
        try:
            spec = ep.load()
        except Exception as exc:  # a broken plugin is named, not a traceback
            raise GazeflowError(f"stage entry point {ep.name!r} ({ep.value}): {type(exc).__name__}: {exc}") from None
        if not isinstance(spec, Stage) or spec.role not in ROLES:
            raise GazeflowError(f"stage entry point {ep.name!r} ({ep.value}) is not a gazeflow Stage")
        if spec.name in out:
            raise GazeflowError(f"stage entry point {ep.name!r}: a stage named {spec.name!r} exists already")
        out[spec.name] = spec
    return out


def get(name: str) -> Stage:
    try:
        return stages()[name]
    except KeyError:
        raise GazeflowError(f"unknown stage {name!r} (stages: {', '.join(stages())})") from None


def with_models() -> tuple[str, ...]:
    """The stages that run models (what --device and --precision apply to)."""
    return tuple(s.name for s in stages().values() if s.models)


def default_chain() -> tuple[str, ...]:
    return tuple(s.name for s in stages().values() if not s.optional)


def check_chain(chain: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """A source, inference stages, then one or more sinks (each passing the frame on to the next), each
    stage once; one line naming the problem otherwise."""
    specs = [get(name) for name in chain]
    if len(chain) < 2 or specs[0].role != "source" or specs[-1].role != "sink":
        raise GazeflowError(f"chain {list(chain)}: must start with a source and end with a sink")
    roles = [s.role for s in specs[1:]]
    first_sink = roles.index("sink")
    if any(r != "inference" for r in roles[:first_sink]) or any(r != "sink" for r in roles[first_sink:]):
        raise GazeflowError(f"chain {list(chain)}: after the source, inference stages, then sinks")
    if len(set(chain)) != len(chain):
        raise GazeflowError(f"chain {list(chain)}: each stage once")
    for spec in specs[:-1]:
        if not spec.output:
            raise GazeflowError(f"chain {list(chain)}: {spec.name} ends a chain; nothing can follow it")
    return tuple(chain)


def through_first_sink(chain: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The chain up to its first sink, the one that acts on the results (the pointer)."""
    out = []
    for name in chain:
        out.append(name)
        if get(name).role == "sink":
            break
    return tuple(out)


def frames_after(chain: tuple[str, ...] | list[str], stage: str) -> bool:
    """Whether a stage after ``stage`` in the chain reads the frame's pixels (so they must go on)."""
    rest = list(chain)[list(chain).index(stage) + 1 :]
    return any(get(name).reads_frames for name in rest)


@dataclass(frozen=True)
class Link:
    name: str
    up: str
    down: str


def links(chain: tuple[str, ...]) -> tuple[Link, ...]:
    """The links of a chain, in order: each named after what its upstream stage sends."""
    return tuple(Link(get(up).output, up, down) for up, down in itertools.pairwise(chain))
