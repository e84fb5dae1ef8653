"""The calibration's settings: the [calibration] table."""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from gazeflow.shared.settings import Section, setting

POINT_COUNTS = (1, 5, 9, 13, 16)


class CalibrationConfig(Section):
    points: Literal[1, 5, 9, 13, 16] = setting(
        9,
        "targets to fit on (1 recentres an existing profile: an offset only)",
        flag="--points",
        group="Calibration",
        commands=("calibrate",),
    )
    checks: int = setting(4, "validation targets, elsewhere on the screen", ge=0, le=9)
    target_s: float = setting(2.0, "how long each target is shown", gt=0)
    settle_s: float = setting(0.6, "samples of a target count from this long after it appeared", ge=0)
    outlier_mad: float = setting(3.0, "a sample this many MADs from its target's median is dropped", gt=0)
    loss: Literal["auto", "squared", "huber"] = setting(
        "auto",
        "the fit's loss: auto chooses squared (ridge) or robust (Huber) by the error on targets left out; "
        "squared alone is how profiles were fitted before 2026-12-07",
    )

    @model_validator(mode="after")
    def _settles(self) -> CalibrationConfig:
        if self.settle_s >= self.target_s:
            raise ValueError(f"calibration: settle_s {self.settle_s:g} must be below target_s {self.target_s:g}")
        return self
