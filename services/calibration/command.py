"""``gazeflow calibrate``: the same pipeline with the calibration sink in place of the pointer, a window of
targets (or a recording's targets file), the fit, the validation, the profile."""

from __future__ import annotations

import datetime
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from gazeflow.shared import registry
from gazeflow.shared.config import explain, runtime_root, validate
from gazeflow.shared.errors import GazeflowError

from ..capture.source import frame_count, resolve_input
from ..pointer import profile, screen
from ..pointer.gaze_model import GazeMapper, Monitor
from ..pointer.settings import CameraConfig
from ..supervisor import _Signalled, _signals_raise, run_all, supervised
from . import fit, targets

if TYPE_CHECKING:
    from gazeflow.shared.config import Config

log = logging.getLogger("gazeflow.calibrate")
FIRST_FACE_S = 60.0  # a live session waits this long for a first face before the targets start
INTRO_S = 2.0  # the instructions are shown at least this long


@dataclass(frozen=True)
class Request:
    """What the calibrate command asks for beyond the configuration (which holds --points, --profile, ...)."""

    record: str | None = None
    replay: str | None = None
    targets: str | None = None
    list_monitors: bool = False
    input_given: bool = False


def _camera(cfg: CameraConfig, table: dict[str, Any], where: str) -> CameraConfig:
    try:
        return CameraConfig.model_validate({**cfg.model_dump(), **table})
    except ValidationError as exc:
        raise GazeflowError(explain(exc, {}, f"{where}: camera")) from None


def _recorded_monitor(s: dict[str, Any]) -> Monitor:
    return Monitor(
        0,
        str(s.get("name") or ""),
        0,
        0,
        int(s["width"]),
        int(s["height"]),
        float(s["width_mm"]),
        float(s["height_mm"]),
        True,
    )


def _read_samples(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class Session:
    """One calibration: where its targets are, how its frames arrive, what it writes."""

    def __init__(self, cfg: Config, args: Request) -> None:
        self.rules = cfg.calibration
        self.name = cfg.pointer.profile or "default"
        profile.path_of(self.name)  # a bad name is refused before anything starts
        self.record = Path(args.record) if args.record else None
        self.replay = bool(args.replay or args.targets)
        if args.replay and args.targets:
            raise GazeflowError("--replay DIR already names its targets (DIR/targets.json): drop --targets")
        if self.replay and self.record:
            raise GazeflowError("--record saves a live session; a replay is one already")
        cfg = self._replayed(cfg, args) if self.replay else self._shown(cfg)
        self.existing: dict[str, Any] | None = None
        if self.rules.points == 1:
            self.existing = profile.load(self.name)  # recentring needs the profile it moves
            profile.check_monitor(self.existing, self.monitor)
        fd, samples = tempfile.mkstemp(prefix="gazeflow-calibration-", suffix=".jsonl", dir=runtime_root())
        os.close(fd)
        self.samples = Path(samples)
        chain = [*registry.through_first_sink(cfg.chain)[:-1], "calibration"]  # in place of the pointer
        self.cfg = validate(cfg.model_copy(update={"chain": chain, "results": str(self.samples), "metrics": ""}))

    def _replayed(self, cfg: Config, args: Request) -> Config:
        """A recording: its targets, its screen and camera, its video at max speed."""
        video, targets_file = self._recording(cfg, args)
        recorded = targets.read(targets_file, frame_count(video))
        self.targets, self.screen = recorded.targets, recorded.screen
        self.rules = self.rules.model_copy(update={"settle_s": recorded.settle_s})  # the file's, not the config's
        camera = _camera(cfg.camera, recorded.camera, f"targets file {targets_file}")
        self.monitor = _recorded_monitor(self.screen)
        if len(self.targets) == 1:
            self.rules = self.rules.model_copy(update={"points": 1})
        return cfg.model_copy(
            update={"input": video, "pace": "max-speed", "loop": False, "max_frames": 0, "camera": camera}
        )

    def _shown(self, cfg: Config) -> Config:
        """A live session: targets laid out on the chosen monitor; the camera's frames recorded when asked."""
        if not screen.has_display():
            instead = "fit from a recording instead: --replay DIR, or --input VIDEO --targets FILE"
            raise GazeflowError(
                f"gazeflow calibrate shows its targets on a display, and DISPLAY is not set ({instead})"
            )
        m = self.monitor = screen.choose(cfg.pointer, screen.monitors())
        self.targets = targets.layout(self.rules.points, self.rules.checks, m.width, m.height)
        self.screen = {
            "name": m.name,
            "width": m.width,
            "height": m.height,
            "width_mm": m.width_mm,
            "height_mm": m.height_mm,
        }
        if self.record:
            if self.record.exists() and any(self.record.iterdir()):
                raise GazeflowError(f"--record {self.record}: the folder is not empty")
            self.record.mkdir(parents=True, exist_ok=True)
            cfg = cfg.model_copy(update={"record": str(self.record / "video.avi")})
        if not cfg.input.startswith("cam:"):
            cfg = cfg.model_copy(update={"loop": True})  # a video standing in for the camera has no end either
        return cfg

    def _recording(self, cfg: Config, args: Request) -> tuple[str, Path]:
        if args.replay:
            folder = Path(args.replay)
            videos = sorted(folder.glob("video.*")) if folder.is_dir() else []
            if not videos:
                raise GazeflowError(f"--replay {folder}: no video.* in it (a folder made by --record)")
            return str(videos[0]), folder / "targets.json"
        return resolve_input(cfg.input, cfg.assets_dir), Path(args.targets)

    def run(self) -> int:
        try:
            if self.replay:
                rc = run_all(self.cfg)
                if rc:
                    return rc
            elif not self._live():
                print("calibration cancelled: nothing saved")
                return 1
            return self._fit()
        finally:
            self.samples.unlink(missing_ok=True)

    def _live(self) -> bool:
        """Show the targets while the pipeline runs; False when cancelled (Esc, Ctrl-C)."""
        from .window import TargetWindow

        with _signals_raise():
            try:
                with supervised(self.cfg) as sup:
                    window = TargetWindow(self.monitor)
                    try:
                        if not self._first_face(window, sup):
                            return False
                        for i, t in enumerate(self.targets):
                            kind = "validation target" if t.use == "check" else "target"
                            caption = f"{kind} {i + 1} of {len(self.targets)}: look at the red dot (Esc cancels)"
                            start, announced = time.time(), False
                            while (now := time.time()) < start + self.rules.target_s:
                                window.target(t.x, t.y, (now - start) / self.rules.target_s, caption)
                                if not self._turn(window, sup):
                                    return False
                                if not announced:  # drawn: say so (the tests take a screenshot then)
                                    announced = True
                                    at = (round(self.monitor.x + t.x), round(self.monitor.y + t.y))
                                    log.info(
                                        "%s %d of %d shown at (%d, %d) on %s",
                                        kind,
                                        i + 1,
                                        len(self.targets),
                                        *at,
                                        self.monitor.describe(),
                                    )
                            t.shown = (start, start + self.rules.target_s)
                    finally:
                        window.close()
                    sup.drain()
                    return True
            except _Signalled:
                return False

    def _turn(self, window: Any, sup: Any) -> bool:
        window.pump()
        sup.events(0.015)
        reason = sup.failed()
        if reason:
            raise GazeflowError(reason)
        return not window.cancelled

    def _first_face(self, window: Any, sup: Any) -> bool:
        start = time.time()
        window.text("Look at each dot until it disappears", "Keep your head still and natural. Esc cancels.")
        while True:
            if not self._turn(window, sup):
                return False
            waited = time.time() - start
            if waited > INTRO_S and any(r.get("gaze") for r in _read_samples(self.samples)[-10:]):
                return True
            if waited > FIRST_FACE_S:
                raise GazeflowError(
                    f"no face seen in {FIRST_FACE_S:.0f} s: check the camera, the light and that your face is in view"
                )
            if waited > 5:
                window.text("Looking for your face...", "Sit in front of the camera. Esc cancels.")

    def _fit(self) -> int:
        records = _read_samples(self.samples)
        fps = next((float(r["source"]["fps"]) for r in records if r.get("source")), 30.0)
        mapper = GazeMapper(self.cfg.camera, self.monitor)
        samples = fit.gather(records, self.targets, mapper, self.rules, fps, by_frame=self.replay)
        if self.record:
            self._write_recording(records)
        if self.rules.points == 1:
            return self._recentre(samples)
        try:
            result = fit.calibrate(samples, self.monitor, self.rules.settle_s, self.rules.loss)
        except ValueError as exc:
            raise GazeflowError(f"calibration failed, no profile written: {exc}") from None
        self._print(result, samples)
        path = profile.save(self.name, self._profile(result))
        print(f"profile saved: {path} ({result.used})")
        return 0

    def _recentre(self, samples: list[fit.Samples]) -> int:
        assert self.existing is not None
        from ..pointer.gaze_model import Correction

        old = Correction.from_dict(self.existing["correction"]) if self.existing.get("correction") else None
        try:
            moved = fit.recentre(samples, old)
        except ValueError as exc:
            raise GazeflowError(f"recentring failed, profile unchanged: {exc}") from None
        data = {k: v for k, v in self.existing.items() if k not in ("path", "format")}
        data["correction"] = moved.to_dict()
        data["used"] = "calibrated"
        data["recentred"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        shift = [round(a - b, 1) for a, b in zip(moved.intercept, (old.intercept if old else [0.0, 0.0]), strict=True)]
        path = profile.save(self.name, data)
        print(f"profile recentred by {shift[0]:+.1f}, {shift[1]:+.1f} mm: {path}")
        return 0

    def _print(self, result: fit.Result, samples: list[fit.Samples]) -> None:
        used = sum(len(s) for s in samples)
        outliers = sum(s.outliers for s in samples)
        fits = sum(s.target.use == "fit" for s in samples)
        print(
            f"calibration: {fits} fit and {len(samples) - fits} check targets, {used} samples ({outliers} outliers "
            f"dropped), viewing distance {result.distance_mm:.0f} mm, model {result.model}"
        )
        lines = [(f"validation {name:>12}", result.validation[name]) for name in ("uncalibrated", "calibrated")]
        lines += [
            ("targets it never saw (held out)", result.errors["held_out_target"]),
            ("targets it was fitted on (later frames)", result.errors["same_target"]),
        ]
        for what, v in lines:
            if v:
                print(
                    f"  {what}: median {v['median_px']:.0f} px = {v['median_deg']:.1f} deg, "
                    f"p95 {v['p95_px']:.0f} px = {v['p95_deg']:.1f} deg ({v['samples']} samples)"
                )
        if result.used == "uncalibrated":
            print(
                "  the fit did not beat the geometric model on the validation targets: the profile keeps the "
                "geometric model (no correction)"
            )

    def _profile(self, result: fit.Result) -> dict[str, Any]:
        fits = sum(t.use == "fit" for t in self.targets)  # a replay's are its file's, not --points
        return profile_data(self.cfg, self.monitor, fits if self.replay else self.rules.points, result)

    def _write_recording(self, records: list[dict[str, Any]]) -> None:
        """targets.json of the recording: each target's frames, from the capture times of the frames."""
        assert self.record is not None
        for t in self.targets:
            inside = [r["frame"] for r in records if t.shown[0] <= r["t_capture"] <= t.shown[1]]
            t.start, t.end = (min(inside), max(inside)) if inside else (0, 0)
        kept = [t for t in self.targets if t.end > 0]
        camera = self.cfg.camera.model_dump()
        camera["offset_mm"] = list(camera["offset_mm"])
        targets.write(self.record / "targets.json", kept, self.screen, camera, self.rules.settle_s)
        print(
            f"recording saved: {self.record}/video.avi and targets.json ({len(kept)} targets); "
            f"refit with: gazeflow calibrate --replay {self.record}"
        )


def profile_data(cfg: Config, monitor: Monitor, points: int, result: fit.Result) -> dict[str, Any]:
    """What a profile keeps of a calibration: when, the monitor, the camera, the models, the fit and its errors."""
    return {
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "monitor": monitor.to_dict(),
        "camera": cfg.camera.model_dump(),
        "input": cfg.input,
        "precision": {n: cfg.stages[n].precision for n in cfg.chain if registry.get(n).models},
        "models": {n: sorted(registry.get(n).models.values()) for n in cfg.chain if registry.get(n).models},
        "points": points,
        "model": result.model,
        "used": result.used,
        "correction": result.correction.to_dict() if result.correction else None,
        "validation": result.validation,
        "errors": result.errors,
        "distance_mm": result.distance_mm,
        "targets": result.per_target,
    }


def calibrate(cfg: Config, args: Request) -> int:
    if not args.input_given and cfg.input == "demo" and not (args.replay or args.targets):
        cfg = cfg.model_copy(update={"input": "cam:0"})  # calibrating is done with the camera unless asked otherwise
    if args.list_monitors:
        found = screen.monitors()
        if not found:
            print("no display (DISPLAY is not set) or no monitor found")
            return 1
        for m in found:
            print(f"{m.index}: {m.describe()} at +{m.x}+{m.y}{' (primary)' if m.primary else ''}")
        return 0
    return Session(cfg, args).run()
