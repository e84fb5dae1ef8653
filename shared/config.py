"""Configuration: one dataclass tree, read from a TOML file, overridden by flags.

The same resolved configuration is handed to every stage process (as JSON in the
run directory), so run-all and a stage started on its own read the same fields.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import GazeflowError

STAGES = ("capture", "face_detection", "landmarks_headpose", "gaze", "pointer")
INFER_STAGES = ("face_detection", "landmarks_headpose", "gaze")
PRECISIONS = ("FP32", "FP16", "FP16-INT8")
HINTS = ("", "LATENCY", "THROUGHPUT", "CUMULATIVE_THROUGHPUT")
PACES = ("realtime", "max-speed")

# Links, in pipeline order: (name, upstream stage, downstream stage, who binds).
# The side that binds is the side that stays one process when the other is scaled.
LINKS = (
    ("frames", "capture", "face_detection", "capture"),
    ("faces", "face_detection", "landmarks_headpose", "landmarks_headpose"),
    ("eyes", "landmarks_headpose", "gaze", "landmarks_headpose"),
    ("gaze", "gaze", "pointer", "gaze"),
)


def runtime_root() -> str:
    """Where run directories go: memory-backed (sockets and the shared frame ring) when possible."""
    for candidate in (os.environ.get("XDG_RUNTIME_DIR"), "/dev/shm"):
        if candidate and os.path.isdir(candidate) and os.access(candidate, os.W_OK):
            return candidate
    return tempfile.gettempdir()


def default_run_dir() -> str:
    return str(Path(runtime_root()) / "gazeflow")


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
    input: str = ""  # endpoint specs; "" = the default ipc link in run_dir
    output: str = ""


@dataclass
class PointerConfig:
    backend: str = "auto"  # auto | pyautogui | null
    screen: tuple[int, int] = (1920, 1080)  # used by the null backend
    range_deg: tuple[float, float] = (25.0, 15.0)  # gaze angle that reaches the screen edge
    mirror: bool = True  # camera faces the user: looking to your right = image left
    smoothing: float = 0.5  # exponential smoothing factor per frame, 0 = none
    dead_zone_px: int = 8  # moves smaller than this are not made
    fail_safe: bool = True  # pyautogui's corner fail-safe


@dataclass
class Config:
    input: str = "demo.mp4"
    pace: str = "realtime"
    fps: float = 0.0  # 0 = the recorded rate
    loop: bool = False
    lossless: bool = False
    max_frames: int = 0  # 0 = all
    curve_keys: str = ""  # folder made by 'gazeflow keys': encrypt and authenticate every tcp link
    shared_frames: bool = True  # a same-host frames link passes shared-memory slots, not pixels
    stale_ms: float = 100.0  # live input: a waiting frame this old is dropped once a newer one arrives
    results: str = ""
    metrics: str = ""
    log_interval: float = 1.0  # seconds between live metric lines, 0 = off
    confidence: float = 0.5
    assets_dir: str = field(default_factory=default_assets_dir)
    run_dir: str = field(default_factory=default_run_dir)
    pointer: PointerConfig = field(default_factory=PointerConfig)
    stages: dict[str, StageConfig] = field(default_factory=lambda: {name: StageConfig() for name in STAGES})

    @property
    def live(self) -> bool:
        """True when frames that cannot be taken in time are dropped."""
        return self.input.startswith("cam:") or (self.pace == "realtime" and not self.lossless)

    def hint_for(self, stage: str) -> str:
        hint = self.stages[stage].hint
        if hint:
            return hint
        return "THROUGHPUT" if self.pace == "max-speed" else "LATENCY"

    def endpoint(self, stage: str, direction: str) -> str:
        """The endpoint spec of a stage's input or output socket."""
        spec = getattr(self.stages[stage], direction)
        if spec:
            return spec.format(run_dir=self.run_dir)
        for name, up, down, binder in LINKS:
            if (direction == "output" and up == stage) or (direction == "input" and down == stage):
                pattern = "push" if direction == "output" else "pull"
                mode = "bind" if binder == stage else "connect"
                return f"{pattern}+{mode}:ipc://{self.run_dir}/{name}"
        raise GazeflowError(f"stage {stage} has no {direction}")

    def curve(self) -> Any:
        """The CURVE keys for tcp links, or None."""
        if not self.curve_keys:
            return None
        from .security import Curve

        return Curve(self.curve_keys)

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
        elif key == "stages":
            if not isinstance(value, dict):
                raise GazeflowError(f"{where}.stages: expected a table")
            for stage, stage_values in value.items():
                if stage not in STAGES:
                    raise GazeflowError(f"{where}.stages: unknown stage {stage!r} (stages: {', '.join(STAGES)})")
                _merge(current[stage], stage_values, f"{where}.stages.{stage}")
        else:
            if isinstance(current, tuple):
                value = tuple(value) if isinstance(value, list) else value
            if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if type(value) is not type(current):
                raise GazeflowError(f"{where}.{key}: expected {type(current).__name__}, got {type(value).__name__}")
            setattr(obj, key, value)


def validate(cfg: Config) -> Config:
    if cfg.pace not in PACES:
        raise GazeflowError(f"pace {cfg.pace!r}: expected one of {', '.join(PACES)}")
    if cfg.fps < 0:
        raise GazeflowError(f"fps {cfg.fps}: must be positive")
    if cfg.pointer.backend not in ("auto", "pyautogui", "null"):
        raise GazeflowError(f"pointer backend {cfg.pointer.backend!r}: expected auto, pyautogui or null")
    for name, stage in cfg.stages.items():
        if stage.precision not in PRECISIONS:
            raise GazeflowError(f"stages.{name}.precision {stage.precision!r}: one of {', '.join(PRECISIONS)}")
        if stage.hint not in HINTS:
            raise GazeflowError(f"stages.{name}.hint {stage.hint!r}: one of {', '.join(h for h in HINTS if h)}")
        if stage.requests < 0 or stage.threads < 0:
            raise GazeflowError(f"stages.{name}: requests and threads must be >= 0")
    return cfg


def load(path: str | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Read a TOML (or resolved JSON) file, apply overrides, validate."""
    cfg = Config()
    if path:
        p = Path(path)
        try:
            text = p.read_text()
            data = json.loads(text) if p.suffix == ".json" else tomllib.loads(text)
        except FileNotFoundError:
            raise GazeflowError(f"config file not found: {path}") from None
        except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
            raise GazeflowError(f"config file {path}: {exc}") from None
        _merge(cfg, data, p.name)
    if overrides:
        _merge(cfg, overrides, "flags")
    return validate(cfg)
