"""Configuration: one typed tree (pydantic), read from the user's config file and a TOML file, overridden by
flags; the stages' own tables come from their manifests.

Every setting is declared once (``shared/settings.py``: ``setting``): its type, default, limits and help, and
the flag that sets it. The CLI builds its options from these declarations; ``gazeflow config`` writes them as
a commented TOML file. Read in this order, later ones winning: the defaults, the user's
``~/.config/gazeflow/config.toml`` (when it exists), ``--config FILE``, the flags. An error names the key as
the user wrote it (the flag, or the file and its key) in one line.

The same resolved configuration is handed to every stage process (as JSON in the run directory), so run-all
and a stage started on its own read the same fields.
"""

from __future__ import annotations

import difflib
import os
import tempfile
import threading
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ValidationError, create_model, field_validator, model_validator

from . import registry
from .endpoint import Endpoint
from .errors import GazeflowError, read_document
from .registry import Link
from .settings import Section, setting

PRECISIONS = ("FP32", "FP16", "FP16-INT8", "LOCAL-INT8")  # LOCAL-INT8: made by 'gazeflow quantize'
HINTS = ("", "LATENCY", "THROUGHPUT", "CUMULATIVE_THROUGHPUT")
PACES = ("realtime", "max-speed")
INFERENCE_PRECISIONS = ("", "f32", "bf16", "f16")
EVERY_INTERFACE = ("0.0.0.0", "::", "[::]", "0", "*")


def runtime_root() -> str:
    """Where run directories go: memory-backed (sockets and the shared frame ring) when possible."""
    for candidate in (os.environ.get("XDG_RUNTIME_DIR"), "/dev/shm"):
        if candidate and os.path.isdir(candidate) and os.access(candidate, os.W_OK):
            return candidate
    return tempfile.gettempdir()


def default_run_dir() -> str:
    return str(Path(runtime_root()) / "gazeflow")


def config_dir() -> Path:
    """The user's gazeflow folder: profiles, the user's config file."""
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "gazeflow"


def user_config_file() -> Path:
    return config_dir() / "config.toml"


def default_cache_dir() -> str:
    cache_home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return str(Path(cache_home) / "gazeflow" / "model-cache")


def check_cache(cache_dir: str) -> str:
    """The model cache's folder ("auto": the user's cache directory), made and known to be writable, or ""
    when the cache is off; a folder that cannot be written is one line. Without OpenVINO: run-all checks it
    before any stage starts, and starts sooner for it."""
    if not cache_dir:
        return ""
    path = Path(default_cache_dir() if cache_dir == "auto" else cache_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".probe-{os.getpid()}-{threading.get_ident()}"  # stages sharing a process check at once
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise GazeflowError(
            f'model cache {cache_dir}: {exc.strerror or exc} (or go without: model_cache = "" in a --config file)'
        ) from None
    return str(path)


def default_assets_dir() -> str:
    env = os.environ.get("GAZEFLOW_ASSETS_DIR")
    if env:
        return env
    repo = Path(__file__).resolve().parents[1]
    if (repo / "pyproject.toml").exists():  # running from a checkout
        return str(repo / ".assets")
    cache_home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return str(Path(cache_home) / "gazeflow")


class StageConfig(Section):
    """[stages.NAME]: how a stage runs. The flags marked per stage take VALUE for every stage with models, or
    STAGE=VALUE for one."""

    device: str = setting(
        "CPU", "OpenVINO device (CPU, GPU, NPU, AUTO, ...)", flag="--device", group="Models", metavar="[STAGE=]DEV"
    )
    precision: str = setting(
        "FP16", f"model precision: {', '.join(PRECISIONS)}", flag="--precision", group="Models", metavar="[STAGE=]PREC"
    )
    requests: int = setting(
        0,
        "infer requests in flight; 0 = the device's optimal number",
        ge=0,
        flag="--requests",
        group="Models",
        metavar="STAGE=N",
    )
    hint: Literal["", "LATENCY", "THROUGHPUT", "CUMULATIVE_THROUGHPUT"] = setting(
        "", "performance hint; '' = LATENCY real-time, THROUGHPUT at max speed", flag="--hint", group="Models"
    )
    threads: int = setting(0, "inference threads per request; 0 = the rule in Config.threads_for", ge=0)
    inference_precision: Literal["", "f32", "bf16", "f16"] = setting(
        "",
        "the precision OpenVINO computes in (INFERENCE_PRECISION_HINT); '' = the device's own (bf16 on CPUs with "
        "AMX or avx512_bf16: faster, results differ slightly between CPUs)",
        flag="--inference-precision",
        group="Models",
        metavar="[STAGE=]f32|bf16|f16",
    )
    workers: int = setting(
        1,
        "processes of this stage sharing its load (inference stages)",
        ge=1,
        flag="--workers",
        group="Models",
        metavar="STAGE=N",
    )
    process: str = setting(
        "",
        "which process runs it: '' = the placement rule, 'own' = a process of its own, a NAME = one process with "
        "the other stages given that NAME (neighbours in the chain, threads over inproc sockets)",
        flag="--process",
        group="Run",
        metavar="STAGE=NAME",
    )
    input: str = setting("", "endpoint spec (pull+bind:tcp://...); '' = the default ipc link in run_dir")
    output: str = setting("", "endpoint spec (push+connect:tcp://...); '' = the default ipc link in run_dir")

    @field_validator("device", "precision", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("inference_precision", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("precision")
    @classmethod
    def _precision(cls, value: str) -> str:
        if value not in PRECISIONS:
            raise ValueError(f"one of {', '.join(PRECISIONS)}")
        return value


class LinkConfig(Section):
    insecure: bool = setting(False, "tcp across the network without CURVE (only for a network you trust)")
    bind_all: bool = setting(False, "may bind every interface (0.0.0.0, ::), as in a container")


def _default_stages() -> dict[str, StageConfig]:
    return {name: StageConfig() for name in registry.stages()}


def _default_links() -> dict[str, LinkConfig]:
    return {s.output: LinkConfig() for s in registry.stages().values() if s.output}


def _default_chain() -> list[str]:
    return list(registry.default_chain())


def _joined(chain: list[str], name: str) -> list[str]:
    """The chain with an optional stage in it: right after the stage that sends what it takes (iris after
    landmarks + head pose, the panel after the pointer), else, and for one that nothing may follow (the
    view), at the end."""
    spec = registry.get(name)
    takes = spec.input if spec.output else ""
    before = next((i for i, n in enumerate(chain) if takes and registry.get(n).output == takes), len(chain) - 1)
    return [*chain[: before + 1], name, *chain[before + 1 :]]


class CoreConfig(Section):
    """The pipeline's own settings; Config adds every stage's tables (its manifest's ``sections``)."""

    input: str = setting(
        "demo",
        "video file, 'demo' (the fetched demo video) or cam:N",
        flag="--input",
        group="Input",
        metavar="VIDEO|cam:N",
    )
    pace: Literal["realtime", "max-speed"] = setting(
        "realtime",
        "realtime: at the recorded rate (or fps), dropping frames the pipeline cannot take; max-speed: as fast as "
        "possible, losing no frame (benchmark)",
        flag={
            "--realtime": (
                "realtime",
                "replay at the recorded rate (or --fps); drop frames the pipeline cannot take (default)",
            ),
            "--max-speed": ("max-speed", "replay as fast as possible, losing no frame (benchmark)"),
        },
        group="Pace",
    )
    fps: float = setting(
        0.0, "replay rate in frames per second; 0 = the recorded rate", ge=0, flag="--fps", group="Pace"
    )
    loop: bool = setting(False, "replay the file forever", flag={"--loop": True}, group="Pace")
    lossless: bool = setting(
        False, "real-time replay that queues frames instead of dropping them", flag={"--lossless": True}, group="Pace"
    )
    max_frames: int = setting(0, "stop after this many frames; 0 = all", ge=0, flag="--max-frames", group="Input")
    detect_every: int = setting(
        3,
        "run the face detector on every Nth frame and track the face between (1 = every frame); it also runs "
        "as soon as tracking is lost",
        ge=1,
        flag="--detect-every",
        group="Models",
        metavar="N",
    )
    placement: Literal["auto", "separate"] = setting(
        "auto",
        "auto: on a host with fewer cores than stages, neighbouring stages after the detector share a process "
        "(threads over inproc sockets: the same stage code and wire) until there are at most cores + 1 processes; "
        "separate: a process per stage. Stages placed by hand (stages.NAME.process) override either",
        flag="--placement",
        group="Run",
    )
    curve_keys: str = setting("", "folder made by 'gazeflow keys': encrypt and authenticate every tcp link")
    shared_frames: bool = setting(True, "a same-host frames link passes shared-memory slots, not pixels")
    stale_ms: float = setting(100.0, "live input: a waiting frame this old is dropped once a newer one arrives", ge=0)
    hang_s: float = setting(15.0, "run-all: no heartbeat for this long is a hang: restarted as if it died (0: never)")
    results: str = setting("", "write one JSON line per frame", flag="--results", group="Output", metavar="FILE.jsonl")
    metrics: str = setting("", "write the final metrics report", flag="--metrics", group="Output", metavar="FILE.json")
    record: str = setting("", "capture also writes every frame it reads to this video file (MJPG .avi)")
    log_interval: float = setting(
        1.0, "seconds between live metric lines, 0 = off", ge=0, flag="--log-interval", group="Output", metavar="S"
    )
    assets_dir: str = setting(
        default_assets_dir, "where the fetched models and videos are", flag="--assets-dir", group="Run", metavar="DIR"
    )
    run_dir: str = setting(
        default_run_dir,
        "folder for ipc sockets (a stage by hand; run-all makes its own)",
        flag="--run-dir",
        group="Run",
        metavar="DIR",
    )
    model_cache: str = setting("auto", "OpenVINO's compiled-model cache: 'auto' = the user's cache dir, '' = none")
    chain: list[str] = setting(_default_chain, "the stages a run uses, in order: a source, inference stages, sinks")
    stages: dict[str, StageConfig] = setting(_default_stages, "per stage: device, precision, workers, endpoints")
    links: dict[str, LinkConfig] = setting(_default_links, "per link: what its tcp endpoints may do")

    @field_validator("stages", mode="before")
    @classmethod
    def _every_stage(cls, value: Any) -> Any:
        return _fill(value, registry.stages(), "stage", StageConfig)

    @field_validator("links", mode="before")
    @classmethod
    def _every_link(cls, value: Any) -> Any:
        names = {s.output: None for s in registry.stages().values() if s.output}
        return _fill(value, names, "link", LinkConfig)

    @field_validator("hang_s")
    @classmethod
    def _hang(cls, value: float) -> float:
        if value != 0 and value < 3:
            raise ValueError("0 (never) or at least 3 s (stages beat once a second)")
        return value

    @model_validator(mode="after")
    def _pipeline(self) -> CoreConfig:
        if self.model_cache == "auto":
            self.model_cache = default_cache_dir()
        for name, spec in registry.stages().items():  # an optional stage its own settings ask for (--show, --iris)
            wanted = any(getattr(self, table).wanted for table in spec.sections)
            if spec.optional and wanted and name not in self.chain:
                self.chain = _joined(self.chain, name)
        check_pipeline(self)
        return self

    # -- what the stages ask of the configuration ---------------------------------------------------------
    @property
    def live(self) -> bool:
        """True when frames that cannot be taken in time are dropped."""
        return self.input.startswith("cam:") or (self.pace == "realtime" and not self.lossless)

    def hint_for(self, stage: str) -> str:
        hint = self.stages[stage].hint
        if hint:
            return hint
        return "THROUGHPUT" if self.pace == "max-speed" else "LATENCY"

    def threads_for(self, stage: str) -> int:
        """Inference threads per request (0: the device's default, all cores): the config's; else one where
        the host has fewer cores than the pipeline has processes (each has less than a core: its parallelism
        is between the processes, and splitting an inference only adds synchronisation and spinning); else,
        at real-time pace, the stage's own default (its manifest: one for the sub-millisecond models)."""
        threads = self.stages[stage].threads
        if threads:
            return threads
        if self.few_cores:
            return 1
        return registry.get(stage).realtime_threads if self.hint_for(stage) == "LATENCY" else 0

    @property
    def few_cores(self) -> bool:
        """The host has fewer cores than the pipeline has processes: each process had better use one thread
        (inference, and capture's decoding of a file: 6.5 against 7.2 CPU-ms for a 1080p H.264 frame)."""
        return len(os.sched_getaffinity(0)) < sum(self.workers(name) for name in self.chain)

    def workers(self, stage: str) -> int:
        return self.stages[stage].workers

    @property
    def placement_groups(self) -> tuple[tuple[str, ...], ...]:
        """The chain's stages as the processes that run them (each tuple one process; a scaled stage's workers
        are processes of their own each): a stage's ``process`` setting, else the placement rule."""
        groups: list[list[str]] = []
        for name in self.chain:
            own = self.stages[name].process
            previous = groups[-1][-1] if groups else ""
            if own not in ("", "own") and previous and self.stages[previous].process == own:
                groups[-1].append(name)
            else:
                groups.append([name])
        by_hand = any(self.stages[name].process for name in self.chain)
        if self.placement == "auto" and self.few_cores and not by_hand:
            # a sink fed on demand (the panel, idle while no page is open) does not count against the cores
            target = len(os.sched_getaffinity(0)) + 1 + bool(registry.on_demand_sink(self))
            # from the sink back: merge a stage into its upstream neighbour's process while there are too many
            i = len(groups) - 1
            while len(groups) > target and i >= 2:  # never into the source's process
                if self._may_join(groups[i - 1][-1]) and all(self._may_join(n) for n in groups[i]):
                    groups[i - 1].extend(groups.pop(i))
                i -= 1
        return tuple(tuple(g) for g in groups)

    def _may_join(self, name: str) -> bool:
        """A stage the placement rule may put in a process with a neighbour: up to the first sink, one process,
        its links the default local ones."""
        stage = self.stages[name]
        first_sink = registry.through_first_sink(tuple(self.chain))[-1]
        after_sink = self.chain.index(name) > self.chain.index(first_sink)  # the view: its own window, its pace
        return not after_sink and stage.workers == 1 and not stage.input and not stage.output

    def group_of(self, stage: str) -> tuple[str, ...]:
        """The stages that share ``stage``'s process (itself alone, most often)."""
        return next(g for g in self.placement_groups if stage in g)

    @property
    def scaled(self) -> bool:
        """True when some stage runs as several workers (frames then carry sequence numbers)."""
        return any(self.stages[name].workers > 1 for name in self.chain)

    @property
    def chain_links(self) -> tuple[Link, ...]:
        return registry.links(tuple(self.chain))

    def link(self, stage: str, direction: str) -> Link:
        """The link a stage sends on (``output``) or receives from (``input``)."""
        for link in self.chain_links:
            if (direction == "output" and link.up == stage) or (direction == "input" and link.down == stage):
                return link
        raise GazeflowError(f"stage {stage} has no {direction} in the chain {self.chain}")

    @property
    def source(self) -> str:
        return self.chain[0]

    @property
    def sink(self) -> str:
        return self.chain[-1]

    def in_chain(self, role: str) -> str:
        """The chain's stage at this end of tracking ("detector", "tracker"), or ""."""
        return registry.with_tracking(self.chain, role)

    def binder(self, link: Link) -> str:
        """Which stage of a link binds: the upstream one, unless it is scaled (then the one process its
        workers connect to)."""
        return link.down if self.workers(link.up) > 1 else link.up

    def endpoint(self, stage: str, direction: str) -> Endpoint:
        """Where a stage's input or output binds or connects: the topology's, else an ipc socket named
        after the link in the run directory (which socket it is follows from the link: links.py)."""
        link = self.link(stage, direction)
        spec = getattr(self.stages[stage], direction)
        if spec:
            return Endpoint.parse(spec.format(run_dir=self.run_dir))
        pattern = "push" if direction == "output" else "pull"
        mode = "bind" if self.binder(link) == stage else "connect"
        if link.down in self.group_of(link.up):  # two threads of one process
            return Endpoint(pattern, mode, f"inproc://{link.name}")
        return Endpoint(pattern, mode, f"ipc://{self.run_dir}/{link.name}")

    def shares_frames(self, stage: str) -> bool:
        """Whether a stage's output stays on this host and may carry frames as shared-memory slots."""
        if not self.shared_frames or stage == self.sink:
            return False
        return self.endpoint(stage, "output").local

    def curve(self, stage: str, peer: str) -> Any:
        """A stage's CURVE keys for its link to the neighbour ``peer``, or None without keys."""
        if not self.curve_keys:
            return None
        from .security import Curve

        return Curve(self.curve_keys, stage).end(peer)

    def section(self, name: str) -> Section:
        """A stage's config table by name (its manifest's ``sections``)."""
        return getattr(self, name)

    def to_json(self) -> str:
        return self.model_dump_json(indent=1)


def _fill(value: Any, known: Any, what: str, model: type[Section]) -> Any:
    """A table of tables (per stage, per link) with every known name in it: those not given get the defaults."""
    if not isinstance(value, dict):
        return value
    unknown = [name for name in value if name not in known]
    if unknown:
        close = difflib.get_close_matches(unknown[0], list(known), n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise ValueError(f"unknown {what} {unknown[0]!r} ({hint}{what}s: {', '.join(known)})")
    return {name: value.get(name, model()) for name in known}


@cache
def config_model() -> type[CoreConfig]:
    """The whole configuration's model: the core settings and a table per stage section (registry)."""
    tables: dict[str, Any] = {
        table: (model, setting(model, (model.__doc__ or table).strip().splitlines()[0]))
        for table, (_stage, model) in registry.sections().items()
    }
    return create_model("Config", __base__=CoreConfig, **tables)


def __getattr__(name: str) -> Any:
    """``Config``: the model, made once the stages' manifests are read (a stage may add tables)."""
    if name == "Config":
        return config_model()
    raise AttributeError(name)


if TYPE_CHECKING:  # for type checkers: Config is CoreConfig with the stages' tables
    Config = CoreConfig


def check_pipeline(cfg: Any) -> None:
    """What concerns several tables at once: the chain, its links and workers, what may cross the network."""
    try:
        registry.check_chain(cfg.chain)
    except GazeflowError as exc:
        raise GazeflowError(f"chain: {exc}") from None
    for name in cfg.chain:
        stage = cfg.stages[name]
        scalable = registry.get(name).scalable
        if stage.workers > 1 and not scalable:
            raise GazeflowError(f"stages.{name}.workers {stage.workers}: must be 1 (one process holds its state)")
    for link in cfg.chain_links:
        if cfg.workers(link.up) > 1 and cfg.workers(link.down) > 1:
            both = f"stages {link.up} and {link.down} are both scaled"
            raise GazeflowError(f"{both}: scale one of two neighbours ({link.name} link)")
        _check_link(cfg, link)
    _check_placement(cfg)
    control = getattr(getattr(cfg, "pointer", None), "control", "")
    if control and not cfg.curve_keys and not control.startswith(("tcp://127.", "tcp://localhost")):
        raise GazeflowError(f"pointer.control {control}: beyond this host it needs curve_keys (gazeflow keys DIR)")


def _check_placement(cfg: Any) -> None:
    """Stages named to share a process are neighbours in the chain, one process each, on default links."""
    named: dict[str, list[str]] = {}
    for name in cfg.chain:
        own = cfg.stages[name].process
        if own not in ("", "own"):
            named.setdefault(own, []).append(name)
    for process, names in named.items():
        if cfg.chain[0] in names and len(names) > 1:
            raise GazeflowError(
                f"process {process!r}: the source ({cfg.chain[0]}) has a process of its own (it ends the stream)"
            )
        where = [cfg.chain.index(n) for n in names]
        if where != list(range(where[0], where[0] + len(where))):
            raise GazeflowError(
                f"process {process!r}: {', '.join(names)} are not neighbours in the chain {cfg.chain}: "
                "only stages next to each other share a process"
            )
        for name in names if len(names) > 1 else ():
            stage = cfg.stages[name]
            if stage.workers > 1:
                raise GazeflowError(f"stages.{name}: a scaled stage (workers {stage.workers}) has processes of its own")
            if stage.input or stage.output:
                raise GazeflowError(f"stages.{name}: a stage with its own endpoints has a process of its own")


def validate(cfg: Any) -> Any:
    """Check a configuration changed in code (model_copy does not validate): the whole tree again."""
    try:
        return config_model().model_validate(cfg.model_dump())
    except ValidationError as exc:
        raise GazeflowError(explain(exc, {}, "config")) from None


def _check_link(cfg: Any, link: Link) -> None:
    """The two ends of a link must agree: one binds, one connects, to the same address."""
    name, up, down = link.name, link.up, link.down
    out_spec, in_spec = cfg.stages[up].output, cfg.stages[down].input
    where = f"link {name} ({up} -> {down})"
    out_ep = Endpoint.parse(out_spec.format(run_dir=cfg.run_dir)) if out_spec else None
    in_ep = Endpoint.parse(in_spec.format(run_dir=cfg.run_dir)) if in_spec else None
    if out_ep is None or in_ep is None:
        if out_ep is not None or in_ep is not None:
            missing = f"stages.{down}.input" if out_ep else f"stages.{up}.output"
            raise GazeflowError(f"{where}: {missing} is not set; set both ends of a link or neither")
        return
    if (out_ep.pattern, in_ep.pattern) != ("push", "pull"):
        raise GazeflowError(f"{where}: the upstream end is push and the downstream end pull, got {out_ep} and {in_ep}")
    if {out_ep.mode, in_ep.mode} != {"bind", "connect"}:
        raise GazeflowError(f"{where}: one end binds and the other connects, got {out_ep} and {in_ep}")
    binder = up if out_ep.mode == "bind" else down
    if binder != cfg.binder(link) and (cfg.workers(up) > 1 or cfg.workers(down) > 1):
        scaled = up if cfg.workers(up) > 1 else down
        raise GazeflowError(f"{where}: {scaled} is scaled, so {cfg.binder(link)} must bind and its workers connect")
    bound, connected = (out_ep, in_ep) if out_ep.mode == "bind" else (in_ep, out_ep)
    if not _same_address(bound.address, connected.address):
        raise GazeflowError(f"{where}: {connected.address} does not reach {bound.address}")
    for ep, key in ((out_ep, f"stages.{up}.output"), (in_ep, f"stages.{down}.input")):
        _check_exposure(cfg, link, ep, f"{where}: {key}")


def _check_exposure(cfg: Any, link: Link, ep: Endpoint, where: str) -> None:
    """Secure by default: binding every interface must be asked for, and a tcp link beyond this host needs
    CURVE unless the topology says that link may go in plaintext."""
    if not ep.address.startswith("tcp://"):
        return
    host = ep.address[len("tcp://") :].rpartition(":")[0]
    table = f"[links.{link.name}]"
    if host in EVERY_INTERFACE:
        if ep.mode == "bind" and not cfg.links[link.name].bind_all:
            raise GazeflowError(
                f"{where} binds every interface ({host}): name one address, or set {table} bind_all = true"
            )
        return
    loopback = host in ("localhost", "::1", "[::1]") or host.startswith("127.")
    if not loopback and not cfg.curve_keys and not cfg.links[link.name].insecure:
        fix = f"set curve_keys (make them with 'gazeflow keys DIR'), or {table} insecure = true on a trusted network"
        raise GazeflowError(f"{where} crosses the network ({ep.address}) unencrypted: {fix}")


def _same_address(bound: str, connected: str) -> bool:
    """Whether connecting to ``connected`` can reach a socket bound at ``bound``."""
    b_scheme, b_rest = bound.split("://", 1)
    c_scheme, c_rest = connected.split("://", 1)
    if b_scheme != c_scheme:
        return False
    if b_scheme != "tcp":
        return b_rest == c_rest
    b_host, _, b_port = b_rest.rpartition(":")
    c_host, _, c_port = c_rest.rpartition(":")
    # a socket bound to every interface (explicitly, 0.0.0.0) is reached by any of the host's names
    return b_port == c_port and (b_host in ("0.0.0.0", "[::]") or b_host == c_host)


# -- reading: defaults, the user's file, --config, flags ----------------------------------------------------
def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` on top of ``base``, table by table."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def _paths(data: dict[str, Any], prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], None]:
    out: dict[tuple[str, ...], None] = {}
    for key, value in data.items():
        out.update(_paths(value, (*prefix, key)) if isinstance(value, dict) and value else {(*prefix, key): None})
    return out


def load(
    path: str | None = None,
    overrides: dict[str, Any] | None = None,
    flags: dict[str, str] | None = None,
    user_file: bool = True,
) -> Any:
    """The configuration: the defaults, the user's config file, ``path`` (TOML, or the resolved JSON), then
    ``overrides`` (nested like the file; ``flags`` names the flag that gave each dotted key), validated."""
    data: dict[str, Any] = {}
    origin: dict[tuple[str, ...], str] = {}
    files = [str(user_config_file())] if user_file and user_config_file().is_file() else []
    for file in [*files, *([path] if path else [])]:
        doc = read_document(file, "config file")
        if not isinstance(doc, dict):
            raise GazeflowError(f"config file {file}: expected a table of keys")
        data = merge(data, doc)
        origin.update(dict.fromkeys(_paths(doc), Path(file).name))
    if overrides:
        data = merge(data, overrides)
        origin.update({p: (flags or {}).get(".".join(p), "flags") for p in _paths(overrides)})
    for key in ("assets_dir", "run_dir"):  # "" in a file: the default
        if data.get(key) == "":
            del data[key]
    try:
        return config_model().model_validate(data)
    except ValidationError as exc:
        raise GazeflowError(explain(exc, origin, "config")) from None


def explain(exc: ValidationError, origin: dict[tuple[str, ...], str], default_origin: str) -> str:
    """A validation error as one line naming the key as the user wrote it: the flag, or the file and key."""
    error = exc.errors(include_url=False)[0]
    loc = tuple(str(p) for p in error["loc"])
    key = ".".join(loc)
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = _unknown_key(loc)
    where = next((origin[loc[:n]] for n in range(len(loc), 0, -1) if loc[:n] in origin), default_origin)
    if where.startswith("--"):
        value = error.get("input")
        return f"{where} {value}: {message} ({key})" if error["type"] != "extra_forbidden" else f"{where}: {message}"
    if message.startswith(key) or not key:
        return f"{where}: {message}"
    shown = "" if error["type"] in ("extra_forbidden", "model_type") else f" {error.get('input')!r}"
    return f"{where}: {key}{shown}: {message}"


def _unknown_key(loc: tuple[str, ...]) -> str:
    model: Any = config_model()
    for part in loc[:-1]:
        field = model.model_fields.get(part)
        annotation = getattr(field, "annotation", None)
        if isinstance(annotation, type) and issubclass(annotation, Section):
            model = annotation
        elif getattr(annotation, "__origin__", None) is dict:
            model = annotation.__args__[1]
    known = list(model.model_fields)
    close = difflib.get_close_matches(loc[-1], known, n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    return f"unknown key {loc[-1]!r} ({hint}known: {', '.join(known)})"
