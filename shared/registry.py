"""Every stage, declared once, by its manifest.

A stage is a folder ``services/NAME/`` whose package exports ``STAGE``, a ``Stage``: what it is (source,
inference, sink), its processor, the links it receives from and sends on, its models, its config tables,
the header fields it writes (the wire schema and the results line are built from them), its checks before
anything starts, its side channels, and what the view draws for it. A stage from another package is
declared the same way, as an entry point in the group ``gazeflow.stages`` whose object is a ``Stage``.

The config (its tables, the chain and its links, what may be scaled), the wire schema, run-all (which
processes, which ones are restarted, the checks before the start), run-sync, tracking, the keys, the
metrics, the view and the bench read the manifests; none of them names a stage.

The pipeline a run uses is a chain of registered stages (the config's ``chain``; by default the stages
that are not optional, from the source along the links: each stage's ``input`` is what the one before
it sends). Each link of the chain is named after what its upstream stage sends (``Stage.output``); it is
an ipc socket of that name in the run directory unless the topology file gives its endpoints.
"""

from __future__ import annotations

import importlib
import itertools
import logging
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import entry_points
from typing import Any

from .errors import GazeflowError

ROLES = ("source", "inference", "sink")
ENTRY_POINTS = "gazeflow.stages"
TRACKING_ROLES = ("", "detector", "tracker")
log = logging.getLogger("gazeflow.registry")


def load_ref(ref: str) -> Any:
    """The object a "module:attr" reference names (imported only by the process that uses it)."""
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


@dataclass(frozen=True)
class Channel:
    """A side channel of a stage, besides its data links: its messages are a schema of shared/channels.py,
    its socket an ipc endpoint of that name in the run directory. ``serves``: this stage binds it (else it
    connects). ``peer``: who is at the other end when it is not a stage of the chain (the 'ctl' command),
    which the keys of 'gazeflow keys' then include."""

    name: str
    serves: bool
    peer: str = ""


@dataclass(frozen=True)
class Overlay:
    """A layer the view draws for a stage: its name (view.overlays), the key that toggles it in the window,
    and "module:function(canvas, header)" that draws it (shared/canvas.py)."""

    layer: str
    key: str
    draw: str


@dataclass(frozen=True)
class Stage:
    name: str
    role: str  # source: reads the input and starts the stream; inference: runs models; sink: ends the stream
    processor: str  # "module:attr": a Processor class (a source: an object with run() and frames())
    input: str = ""  # the link it receives from, named after what travels on it; "" for the source
    output: str = ""  # the link it sends on; "" for a sink that nothing may follow
    models: dict[str, str] = field(default_factory=dict)  # model key (as the processor names it) -> model
    sections: dict[str, type] = field(default_factory=dict)  # its config tables: name -> settings.Section class
    writes: dict[str, Callable[[Any], bool]] = field(default_factory=dict)  # header fields it writes -> check
    results: tuple[str, ...] = ()  # which of them go to the results line, in this order
    preflight: str = ""  # "module:function(cfg)": raises GazeflowError before any process starts
    overlay: tuple[Overlay, ...] = ()  # what the view draws of its fields
    channels: tuple[Channel, ...] = ()
    # config keys it takes while running ('gazeflow ctl set KEY VALUE', the panel): the pointer validates them as
    # the config file's, asks ``tune_check`` ("module:function(cfg, key, value) -> refusal or ''"), and sends
    # them on the tune channel; the stage's ``Processor.tune`` applies them
    tunable: tuple[str, ...] = ()
    tune_check: str = ""
    tokens: tuple[str, ...] = ()  # secret files 'gazeflow keys' makes in the stage's folder (the panel's token)
    tracking: str = ""  # "detector" or "tracker": the two ends of tracking's feedback (shared/tracking.py)
    restartable: bool = False  # keeps no state between frames: run-all restarts it when it dies
    scalable: bool = False  # several worker processes may share its load
    optional: bool = False  # in the chain only when the config's chain names it
    # a sink that needs the frame's pixels (the view): earlier stages pass them on; or a function of the config
    # (the panel: only while its live view is on)
    reads_frames: bool | Callable[[Any], bool] = False
    # a sink fed on demand (the panel), when it is the chain's last: the stage before it sends it a frame only
    # while it asks on the watch channel, at most this many a second (a function of the config; 0: none), and
    # always the end of the stream
    on_demand: Callable[[Any], float] | None = None
    # inference threads per request at real-time pace (0: the device's default, all cores): 1 for models of
    # well under a millisecond, where sharing one inference between threads costs more CPU than it saves time
    realtime_threads: int = 0

    def load(self) -> Any:
        """The processor class (or the source object): imported only by the process that runs it."""
        return load_ref(self.processor)

    def check(self) -> None:
        """A manifest that contradicts itself: one line naming it."""
        where = f"stage {self.name!r}"
        if self.role not in ROLES or self.tracking not in TRACKING_ROLES:
            raise GazeflowError(f"{where}: role {self.role!r}/tracking {self.tracking!r} is not one gazeflow knows")
        if (self.role == "source" and self.input) or (self.role != "source" and not self.optional and not self.input):
            raise GazeflowError(f"{where}: a source has no input, every other stage one (optional ones may not)")
        if set(self.results) - set(self.writes):
            raise GazeflowError(f"{where}: results {self.results} that it does not write")


def _builtin() -> list[Stage]:
    """The manifests of gazeflow's own stages: every package under gazeflow.services that exports STAGE."""
    import gazeflow.services as services

    found = []
    for module in pkgutil.iter_modules(services.__path__, services.__name__ + "."):
        if module.ispkg:
            spec = getattr(importlib.import_module(module.name), "STAGE", None)
            if isinstance(spec, Stage):
                found.append(spec)
    return found


def _plugins() -> list[Stage]:
    out = []
    for ep in entry_points(group=ENTRY_POINTS):
        try:
            spec = ep.load()
        except Exception as exc:  # a broken plugin is named, not a traceback
            raise GazeflowError(f"stage entry point {ep.name!r} ({ep.value}): {type(exc).__name__}: {exc}") from None
        if not isinstance(spec, Stage):
            raise GazeflowError(f"stage entry point {ep.name!r} ({ep.value}) is not a gazeflow Stage")
        out.append(spec)
    return out


@cache
def stages() -> dict[str, Stage]:
    """Every registered stage by name: gazeflow's own, then those of installed packages, in the order of the
    default chain first (source to sink along the links), the optional ones after."""
    out: dict[str, Stage] = {}
    for spec in [*_builtin(), *_plugins()]:
        if spec.name in out:
            raise GazeflowError(f"two stages are named {spec.name!r}")
        spec.check()
        out[spec.name] = spec
    chain = _along_links(out)
    return {name: out[name] for name in [*chain, *sorted(set(out) - set(chain))]}


def _along_links(specs: dict[str, Stage]) -> list[str]:
    """The stages that are not optional, from the source along the links."""
    required = [s for s in specs.values() if not s.optional]
    sources = [s for s in required if s.role == "source"]
    if len(sources) != 1:
        raise GazeflowError(f"the stages that are not optional have {len(sources)} sources, not one")
    chain = [sources[0]]
    while chain[-1].output:
        after = [s for s in required if s.input == chain[-1].output and s not in chain]
        if len(after) > 1:
            raise GazeflowError(
                f"{', '.join(s.name for s in after)} all take {chain[-1].output}: make all but one optional"
            )
        if not after:
            break
        chain.append(after[0])
    return [s.name for s in chain]


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


def sections() -> dict[str, tuple[str, type]]:
    """Every stage's config tables: table name -> (the stage that owns it, its Section class)."""
    out: dict[str, tuple[str, type]] = {}
    for spec in stages().values():
        for table, model in spec.sections.items():
            if table in out:
                raise GazeflowError(f"config table [{table}] is declared by {out[table][0]} and {spec.name}")
            out[table] = (spec.name, model)
    return out


def overlays(chain: tuple[str, ...] | list[str] | None = None) -> tuple[Overlay, ...]:
    """The view's layers: those of the chain's stages (every registered stage's without a chain), in order."""
    names = chain if chain is not None else stages()
    return tuple(itertools.chain.from_iterable(get(name).overlay for name in names))


def with_tracking(chain: tuple[str, ...] | list[str], role: str) -> str:
    """The stage of the chain at this end of tracking's feedback ("detector", "tracker"), or ""."""
    return next((name for name in chain if get(name).tracking == role), "")


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
    names = [spec.output for spec in specs[:-1]]
    if len(set(names)) != len(names):
        raise GazeflowError(f"chain {list(chain)}: two stages send on a link of the same name")
    return tuple(chain)


def through_first_sink(chain: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The chain up to its first sink, the one that acts on the results (the pointer)."""
    out = []
    for name in chain:
        out.append(name)
        if get(name).role == "sink":
            break
    return tuple(out)


def reads_frames(name: str, cfg: Any) -> bool:
    """Whether this stage, under this config, needs the frame's pixels."""
    wants = get(name).reads_frames
    return bool(wants(cfg) if callable(wants) else wants)


def frames_after(cfg: Any, stage: str) -> bool:
    """Whether a stage after ``stage`` in the config's chain reads the frame's pixels (so they must go on)."""
    chain = list(cfg.chain)
    return any(reads_frames(name, cfg) for name in chain[chain.index(stage) + 1 :])


def on_demand_sink(cfg: Any) -> str:
    """The chain's last stage when it is fed on demand (one that passes frames on to another, the view, takes
    every frame), else ""."""
    names = list(cfg.chain)
    return names[-1] if len(names) > 1 and get(names[-1]).on_demand is not None else ""


def on_demand(cfg: Any, stage: str) -> float | None:
    """The most frames a second the stage after ``stage`` asks for, when that one is fed on demand; else None."""
    sink = on_demand_sink(cfg)
    demand = get(sink).on_demand if sink and list(cfg.chain)[-2] == stage else None
    return float(demand(cfg)) if demand is not None else None


def tunable(chain: tuple[str, ...] | list[str]) -> dict[str, str]:
    """The settings the chain's stages take while running -> the stage that takes each."""
    return {key: name for name in chain for key in get(name).tunable}


def result_keys(chain: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The results line's fields after frame and t: what the chain's stages write for it, in chain order."""
    return tuple(itertools.chain.from_iterable(get(name).results for name in chain))


@dataclass(frozen=True)
class Link:
    name: str
    up: str
    down: str


def links(chain: tuple[str, ...]) -> tuple[Link, ...]:
    """The links of a chain, in order: each named after what its upstream stage sends."""
    return tuple(Link(get(up).output, up, down) for up, down in itertools.pairwise(chain))
