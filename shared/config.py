"""Configuration: one dataclass tree, read from a TOML file, overridden by flags.

The same resolved configuration is handed to every stage process (as JSON in the
run directory), so run-all and a stage started on its own read the same fields.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import registry
from .endpoint import Endpoint
from .errors import GazeflowError, read_document
from .registry import Link

PRECISIONS = ("FP32", "FP16", "FP16-INT8", "LOCAL-INT8")  # LOCAL-INT8: made by 'gazeflow quantize'
HINTS = ("", "LATENCY", "THROUGHPUT", "CUMULATIVE_THROUGHPUT")
PACES = ("realtime", "max-speed")
INFERENCE_PRECISIONS = ("", "f32", "bf16", "f16")


def runtime_root() -> str:
    """Where run directories go: memory-backed (sockets and the shared frame ring) when possible."""
    for candidate in (os.environ.get("XDG_RUNTIME_DIR"), "/dev/shm"):
        if candidate and os.path.isdir(candidate) and os.access(candidate, os.W_OK):
            return candidate
    return tempfile.gettempdir()


def default_run_dir() -> str:
    return str(Path(runtime_root()) / "gazeflow")


def default_cache_dir() -> str:
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return str(Path(cache) / "gazeflow" / "model-cache")


def check_cache(cache_dir: str) -> str:
    """The model cache's folder ("auto": the user's cache directory), made and known to be writable, or ""
    when the cache is off; a folder that cannot be written is one line. Without OpenVINO: run-all checks it
    before any stage starts, and starts sooner for it."""
    if not cache_dir:
        return ""
    path = Path(default_cache_dir() if cache_dir == "auto" else cache_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".probe-{os.getpid()}"
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
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return str(Path(cache) / "gazeflow")


@dataclass
class StageConfig:
    device: str = "CPU"
    precision: str = "FP16"
    requests: int = 0  # infer requests in flight; 0 = the device's optimal number
    hint: str = ""  # "" = LATENCY for live/realtime input, THROUGHPUT for max-speed replay
    threads: int = 0  # INFERENCE_NUM_THREADS; 0 = the device's default
    inference_precision: str = ""  # INFERENCE_PRECISION_HINT: f32, bf16, f16; "" = the device's default
    workers: int = 1  # processes of this stage sharing its load (inference stages only)
    input: str = ""  # endpoint specs; "" = the default ipc link in run_dir
    output: str = ""


@dataclass
class LinkConfig:
    insecure: bool = False  # tcp across the network without CURVE (only for a network you trust)
    bind_all: bool = False  # may bind every interface (0.0.0.0, ::), as in a container


@dataclass
class CameraConfig:
    """Where the camera is and how it sees: the geometric gaze-to-screen model (services/pointer/gaze_model.py)."""

    hfov_deg: float = 70.0  # horizontal field of view (laptop webcams: 60-80 degrees; 78 diagonal is 70)
    offset_mm: tuple[float, float] = (0.0, 0.0)  # from the middle of the screen's top edge: x right, y up
    ipd_mm: float = 63.0  # distance between the pupils (adult median, Dodgson 2004): gives the eyes' distance
    mirror: bool = True  # the camera faces the user: the image's right is the user's left


@dataclass
class PointerConfig:
    backend: str = "auto"  # auto | pyautogui | null
    screen: tuple[int, int] = (1920, 1080)  # the null backend's screen, in pixels
    screen_mm: tuple[float, float] = (0.0, 0.0)  # the screen's size; 0 = what the display reports (null: 527 x 296)
    monitor: int = -1  # which monitor (0, 1, ... as 'gazeflow calibrate --list-monitors' prints); -1 = the primary
    profile: str = "default"  # calibration profile: a name (in the config dir) or a path; "" = uncalibrated
    filter: str = "one-euro"  # one-euro | ema | none
    min_cutoff: float = 0.1  # One Euro: cutoff (Hz) while the gaze is still: lower = steadier
    beta: float = 0.0015  # One Euro: how fast the cutoff rises with speed (per px/s): higher = less lag
    d_cutoff: float = 5.0  # One Euro: cutoff (Hz) of the speed estimate
    smoothing: float = 0.5  # ema: weight of the previous point per frame, 0 <= smoothing < 1
    dead_zone_px: int = 8  # moves smaller than this are not made
    click: str = "none"  # none | dwell | blink: how a click is made (none: a replay never clicks by itself)
    dwell_ms: float = 1000.0  # dwell: the pointer stays this long within dwell_radius_px -> a left click
    dwell_radius_px: float = 40.0
    blink_min_ms: float = 500.0  # blink: both eyes closed at least this long (natural blinks: 100-400 ms)
    blink_max_ms: float = 1500.0  # and at most this long (longer is resting the eyes) -> a left click
    wink: bool = False  # blink: one eye closed (the other open) for that long -> a right click
    open_below: float = 0.5  # an eye whose probability of being open is below this counts as closed
    pause_closed_s: float = 2.0  # eyes closed this long toggles pause (a gesture); 0 = off
    hotkey: str = "<ctrl>+<alt>+p"  # toggles pause (pynput's syntax); "" = off; off without a display
    hands_off_s: float = 1.5  # after you move the real mouse, gazeflow pauses until it has been still this long
    auto_pause_mouse: bool = True  # pause while you use the real mouse (the pointer is not where gazeflow put it)
    face_lost_s: float = 2.0  # pause while no face has been seen this long; 0 = off
    fail_safe: bool = True  # pyautogui's corner fail-safe
    share: bool = False  # allow a second gazeflow to drive the same display's pointer
    control: str = ""  # also answer 'gazeflow ctl --connect' here, e.g. tcp://192.168.1.5:5560 (CURVE when keys)
    max_age_ms: float = 500.0  # live input: gaze older than this (since capture) never moves the pointer


@dataclass
class CalibrationConfig:
    points: int = 9  # targets to fit on: 5, 9, 13 or 16 (1: recentre an existing profile)
    checks: int = 4  # validation targets, elsewhere on the screen
    target_s: float = 2.0  # how long each target is shown
    settle_s: float = 0.6  # samples of a target count from this long after it appeared (the saccade, the settling)
    outlier_mad: float = 3.0  # a sample this many median absolute deviations from its target's median is dropped


@dataclass
class ViewConfig:
    show: bool = False  # a window with the annotated frames (needs a display)
    output: str = ""  # write the annotated frames to this video file (.mp4, .avi)
    width: int = 960  # the window's width in pixels (the frame is scaled to it)
    overlays: list[str] = field(default_factory=lambda: list(OVERLAYS))  # what is drawn, at the start


OVERLAYS = ("face", "landmarks", "head_pose", "gaze", "eyes", "pointer", "figures")
FILTERS = ("one-euro", "ema", "none")
CLICKS = ("none", "dwell", "blink")
POINT_COUNTS = (1, 5, 9, 13, 16)


@dataclass
class Config:
    input: str = "demo"  # the fetched demo video
    pace: str = "realtime"
    fps: float = 0.0  # 0 = the recorded rate
    loop: bool = False
    lossless: bool = False
    max_frames: int = 0  # 0 = all
    curve_keys: str = ""  # folder made by 'gazeflow keys': encrypt and authenticate every tcp link
    shared_frames: bool = True  # a same-host frames link passes shared-memory slots, not pixels
    stale_ms: float = 100.0  # live input: a waiting frame this old is dropped once a newer one arrives
    hang_s: float = 15.0  # run-all: a stage with no heartbeat for this long is hung: restarted as if it died (0: never)
    results: str = ""
    metrics: str = ""
    record: str = ""  # capture also writes every frame it reads to this video file (MJPG .avi), to replay later
    log_interval: float = 1.0  # seconds between live metric lines, 0 = off
    confidence: float = 0.5
    detect_every: int = 3  # the face detector runs on every Nth frame (and when tracking is lost); 1 = every frame
    box_shift: float = 0.0  # a measurement (make bench): move each detected box by this fraction of its side
    assets_dir: str = field(default_factory=default_assets_dir)
    run_dir: str = field(default_factory=default_run_dir)
    model_cache: str = "auto"  # OpenVINO's compiled-model cache: "auto" = the user's cache dir, "" = none
    pointer: PointerConfig = field(default_factory=PointerConfig)
    camera: CameraConfig = field(default_factory=CameraConfig)
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    view: ViewConfig = field(default_factory=ViewConfig)
    # the stages a run uses, in order (shared/registry.py): a source, inference stages, a sink
    chain: list[str] = field(default_factory=lambda: list(registry.default_chain()))
    stages: dict[str, StageConfig] = field(default_factory=lambda: {name: StageConfig() for name in registry.stages()})
    links: dict[str, LinkConfig] = field(
        default_factory=lambda: {s.output: LinkConfig() for s in registry.stages().values() if s.output}
    )

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
        at real-time pace, the stage's own default (registry: one for the sub-millisecond models)."""
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
    def scaled(self) -> bool:
        """True when some stage runs as several workers (frames then carry sequence numbers)."""
        return any(s.workers > 1 for s in self.stages.values())

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
        return Endpoint(pattern, mode, f"ipc://{self.run_dir}/{link.name}")

    def shares_frames(self, stage: str) -> bool:
        """Whether a stage's output stays on this host and may carry frames as shared-memory slots."""
        if not self.shared_frames or stage == self.sink:
            return False
        return self.endpoint(stage, "output").ipc_path is not None

    def curve(self, stage: str, peer: str) -> Any:
        """A stage's CURVE keys for its link to the neighbour ``peer``, or None without keys."""
        if not self.curve_keys:
            return None
        from .security import Curve

        return Curve(self.curve_keys, stage).end(peer)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1)


def _merge(obj: Any, values: dict[str, Any], where: str) -> None:
    known = {f.name: f for f in dataclasses.fields(obj)}
    for key, value in values.items():
        if key not in known:
            raise GazeflowError(f"{where}: unknown key {key!r} (known: {', '.join(sorted(known))})")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise GazeflowError(f"{where}.{key}: expected a table")
            _merge(current, value, f"{where}.{key}")
        elif key in ("stages", "links"):  # tables of tables, one per stage or link
            if not isinstance(value, dict):
                raise GazeflowError(f"{where}.{key}: expected a table")
            for name, values in value.items():
                if name not in current:
                    raise GazeflowError(f"{where}.{key}: unknown {key[:-1]} {name!r} ({key}: {', '.join(current)})")
                if not isinstance(values, dict):
                    raise GazeflowError(f"{where}.{key}.{name}: expected a table")
                _merge(current[name], values, f"{where}.{key}.{name}")
        else:
            if isinstance(current, tuple):
                value = tuple(value) if isinstance(value, list) else value
            if isinstance(current, list) and isinstance(value, tuple):
                value = list(value)
            if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if type(value) is not type(current):
                raise GazeflowError(f"{where}.{key}: expected {type(current).__name__}, got {type(value).__name__}")
            setattr(obj, key, value)


def _normalise(cfg: Config) -> None:
    """Names a user may write in any case: devices (GPU, gpu) and precisions (FP16, fp16)."""
    for stage in cfg.stages.values():
        stage.device = stage.device.upper()
        stage.precision = stage.precision.upper()
        stage.inference_precision = stage.inference_precision.lower()


def validate(cfg: Config) -> Config:
    _normalise(cfg)
    if cfg.max_frames < 0:
        raise GazeflowError(f"max_frames {cfg.max_frames}: 0 (all) or more")
    if cfg.log_interval < 0 or cfg.stale_ms < 0 or not 0 <= cfg.confidence <= 1:
        raise GazeflowError("log_interval and stale_ms must be >= 0, confidence between 0 and 1")
    if cfg.pace not in PACES:
        raise GazeflowError(f"pace {cfg.pace!r}: expected one of {', '.join(PACES)}")
    if cfg.detect_every < 1:
        raise GazeflowError(f"detect_every {cfg.detect_every}: 1 (every frame) or more")
    if cfg.fps < 0:
        raise GazeflowError(f"fps {cfg.fps}: must be positive")
    if cfg.hang_s != 0 and cfg.hang_s < 3:
        raise GazeflowError(f"hang_s {cfg.hang_s}: 0 (never) or at least 3 s (stages beat once a second)")
    _check_pointer(cfg)
    try:
        registry.check_chain(cfg.chain)
    except GazeflowError as exc:
        raise GazeflowError(f"chain: {exc}") from None
    for name, stage in cfg.stages.items():
        if stage.precision not in PRECISIONS:
            raise GazeflowError(f"precision {stage.precision!r} (stages.{name}.precision, --precision): one of "
                                f"{', '.join(PRECISIONS)}")  # fmt: skip
        if stage.hint not in HINTS:
            raise GazeflowError(f"stages.{name}.hint {stage.hint!r}: one of {', '.join(h for h in HINTS if h)}")
        if stage.inference_precision not in INFERENCE_PRECISIONS:
            raise GazeflowError(f"stages.{name}.inference_precision {stage.inference_precision!r}: one of "
                                "f32, bf16, f16, or \"\" for the device's default")  # fmt: skip
        if stage.requests < 0 or stage.threads < 0:
            raise GazeflowError(f"stages.{name}: requests and threads must be >= 0")
        scalable = registry.get(name).scalable
        if stage.workers < 1 or (stage.workers > 1 and not scalable):
            why = " or more" if scalable else " (one process holds its state)"
            raise GazeflowError(f"stages.{name}.workers {stage.workers}: must be 1{why}")
    for link in cfg.chain_links:
        if cfg.workers(link.up) > 1 and cfg.workers(link.down) > 1:
            both = f"stages {link.up} and {link.down} are both scaled"
            raise GazeflowError(f"{both}: scale one of two neighbours ({link.name} link)")
        _check_link(cfg, link)
    return cfg


def _check_pointer(cfg: Config) -> None:
    """What would make the pointer diverge or divide by zero after the start, refused before it."""
    p, cam, cal = cfg.pointer, cfg.camera, cfg.calibration
    checks = [
        (
            p.backend in ("auto", "pyautogui", "null"),
            f"pointer.backend {p.backend!r}: expected auto, pyautogui or null",
        ),
        (p.filter in FILTERS, f"pointer.filter {p.filter!r}: expected one of {', '.join(FILTERS)}"),
        (0 <= p.smoothing < 1, f"pointer.smoothing {p.smoothing}: 0 (none) up to, not including, 1"),
        (p.min_cutoff > 0 and p.d_cutoff > 0 and p.beta >= 0, "pointer: min_cutoff and d_cutoff > 0, beta >= 0"),
        (min(p.screen) > 0, f"pointer.screen {list(p.screen)}: a width and a height in pixels"),
        (min(p.screen_mm) > 0 or p.screen_mm == (0.0, 0.0), f"pointer.screen_mm {list(p.screen_mm)}: mm, or 0, 0"),
        (p.monitor >= -1, f"pointer.monitor {p.monitor}: -1 (the primary) or a monitor's number"),
        (p.dead_zone_px >= 0 and p.max_age_ms > 0, "pointer: dead_zone_px >= 0 and max_age_ms > 0"),
        (p.click in CLICKS, f"pointer.click {p.click!r}: expected one of {', '.join(CLICKS)}"),
        (p.dwell_ms > 0 and p.dwell_radius_px > 0, "pointer: dwell_ms and dwell_radius_px must be > 0"),
        (0 < p.blink_min_ms < p.blink_max_ms, f"pointer: 0 < blink_min_ms ({p.blink_min_ms}) < blink_max_ms"),
        (0 < p.open_below < 1, f"pointer.open_below {p.open_below}: a probability between 0 and 1"),
        (
            p.pause_closed_s == 0 or p.pause_closed_s * 1000 > p.blink_max_ms,
            f"pointer.pause_closed_s {p.pause_closed_s}: 0 (off) or longer than blink_max_ms, so a click never pauses",
        ),
        (p.hands_off_s > 0 and p.face_lost_s >= 0, "pointer: hands_off_s > 0 and face_lost_s >= 0"),
        (not p.control or p.control.startswith("tcp://"), f"pointer.control {p.control!r}: a tcp://ADDRESS:PORT"),
        (
            not p.control or cfg.curve_keys or p.control.startswith(("tcp://127.", "tcp://localhost")),
            f"pointer.control {p.control}: beyond this host it needs curve_keys (gazeflow keys DIR)",
        ),
        (10 <= cam.hfov_deg <= 170, f"camera.hfov_deg {cam.hfov_deg}: a field of view between 10 and 170 degrees"),
        (30 <= cam.ipd_mm <= 90, f"camera.ipd_mm {cam.ipd_mm}: a distance between pupils, 30 to 90 mm"),
        (cal.points in POINT_COUNTS, f"calibration.points {cal.points}: one of {', '.join(map(str, POINT_COUNTS))}"),
        (0 <= cal.checks <= 9, f"calibration.checks {cal.checks}: 0 to 9"),
        (0 <= cal.settle_s < cal.target_s, f"calibration: settle_s {cal.settle_s} must be below target_s"),
        (cal.outlier_mad > 0, f"calibration.outlier_mad {cal.outlier_mad}: must be > 0"),
        (set(cfg.view.overlays) <= set(OVERLAYS), f"view.overlays {cfg.view.overlays}: of {', '.join(OVERLAYS)}"),
        (160 <= cfg.view.width <= 7680, f"view.width {cfg.view.width}: 160 to 7680 pixels"),
        (
            not cfg.view.output or Path(cfg.view.output).suffix.lower() in (".mp4", ".avi"),
            f"view.output {cfg.view.output!r}: a .mp4 or .avi file",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise GazeflowError(message)


def _check_link(cfg: Config, link: Link) -> None:
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


EVERY_INTERFACE = ("0.0.0.0", "::", "[::]", "0", "*")


def _check_exposure(cfg: Config, link: Link, ep: Endpoint, where: str) -> None:
    """Secure by default: binding every interface must be asked for, and a tcp link beyond this host needs
    CURVE unless the topology says that link may go in plaintext."""
    if not ep.address.startswith("tcp://"):
        return
    host = ep.address[len("tcp://") :].rpartition(":")[0]
    table = f"[links.{link.name}]"
    if host in EVERY_INTERFACE:
        if ep.mode == "bind" and not cfg.links[link.name].bind_all:
            raise GazeflowError(f"{where} binds every interface ({host}): name one address, or set {table} "
                                "bind_all = true")  # fmt: skip
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


def load(path: str | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Read a TOML (or resolved JSON) file, apply overrides, validate."""
    cfg = Config()
    if path:
        data = read_document(path, "config file")
        if not isinstance(data, dict):
            raise GazeflowError(f"config file {path}: expected a table of keys")
        _merge(cfg, data, Path(path).name)
    if overrides:
        _merge(cfg, overrides, "flags")
    cfg.assets_dir = cfg.assets_dir or default_assets_dir()  # "" in a file: the default
    cfg.run_dir = cfg.run_dir or default_run_dir()
    if cfg.model_cache == "auto":
        cfg.model_cache = default_cache_dir()
    if (cfg.view.show or cfg.view.output) and "view" not in cfg.chain:
        cfg.chain = [*cfg.chain, "view"]  # --show, --output: the view follows the pointer
    return validate(cfg)
