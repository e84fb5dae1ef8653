"""A calibration inside the running pipeline (the panel's Calibrate, 'gazeflow ctl calibrate'): the targets
shown on the pointer's monitor, the pointer stage's own frames as the samples, the fit of 'gazeflow
calibrate', the profile saved and used at once. The pointer is paused meanwhile ("calibrating")."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from .gaze_model import Correction, GazeMapper, Monitor

if TYPE_CHECKING:
    from gazeflow.shared.config import Config

log = logging.getLogger("gazeflow.pointer")


class LiveCalibration:
    def __init__(self, cfg: Config, monitor: Monitor, name: str) -> None:
        from gazeflow.services.calibration import targets
        from gazeflow.services.calibration.window import TargetWindow

        self.cfg, self.monitor, self.name = cfg, monitor, name or "default"
        self.rules = cfg.calibration
        self.targets = targets.layout(self.rules.points, self.rules.checks, monitor.width, monitor.height)
        self.window = TargetWindow(monitor)
        self.records: list[dict[str, Any]] = []
        self.index, self.since = 0, None
        self.fps = 30.0

    @property
    def state(self) -> str:
        return f"calibrating: target {min(self.index + 1, len(self.targets))} of {len(self.targets)}"

    def step(self, header: dict[str, Any], t: float) -> bool:
        """One frame: shown against the current target; True once every target was shown."""
        self.window.pump()
        if self.window.cancelled:
            raise Cancelled
        self.fps = float((header.get("source") or {}).get("fps") or self.fps)
        self.records.append({k: header.get(k) for k in ("frame", "source", "landmarks", "head_pose", "gaze", "iris")})
        self.records[-1]["t_capture"] = t
        target = self.targets[self.index]
        if self.since is None:
            self.since = t
        progress = (t - self.since) / self.rules.target_s
        kind = "validation target" if target.use == "check" else "target"
        caption = f"{kind} {self.index + 1} of {len(self.targets)}: look at the red dot (Esc cancels)"
        self.window.target(target.x, target.y, min(progress, 1.0), caption)
        if progress >= 1.0:
            target.shown = (self.since, t)
            self.index, self.since = self.index + 1, None
        return self.index >= len(self.targets)

    def finish(self) -> tuple[Correction | None, str]:
        """Fit, save the profile; the correction to use now and the profile's line. GazeflowError when too few
        targets had samples (nothing saved)."""
        from gazeflow.services.calibration import fit
        from gazeflow.services.calibration.command import profile_data
        from gazeflow.shared.errors import GazeflowError

        from . import profile

        self.close()
        samples = fit.gather(
            self.records, self.targets, GazeMapper(self.cfg.camera, self.monitor), self.rules, self.fps, False
        )
        try:
            result = fit.calibrate(samples, self.monitor, self.rules.settle_s, self.rules.loss)
        except ValueError as exc:
            raise GazeflowError(f"calibration failed, no profile written: {exc}") from None
        path = profile.save(self.name, profile_data(self.cfg, self.monitor, self.rules.points, result))
        log.info("calibration: profile saved: %s (%s, model %s)", path, result.used, result.model)
        return profile.for_run(self.name, self.monitor)

    def close(self) -> None:
        self.window.close()


class Cancelled(Exception):
    """Esc in the target window."""
