"""The iris stage's settings (the [iris] table), what its field may hold, its check before the start."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gazeflow.models.catalog import IRIS, model_files
from gazeflow.shared import checks
from gazeflow.shared.errors import GazeflowError
from gazeflow.shared.settings import Section, setting

if TYPE_CHECKING:
    from gazeflow.shared.config import Config

EYE = checks.numbers(4)  # h, v (the iris between the eye's corners, in eye widths), x, y (the frame's pixels)


def check_iris(value: Any) -> bool:
    """None, or {"left": [h, v, x, y], "right": [h, v, x, y]} (the person's left and right eye)."""
    return value is None or (
        type(value) is dict and len(value) == 2 and EYE(value.get("left")) and EYE(value.get("right"))
    )


class IrisConfig(Section):
    enabled: bool = setting(
        False,
        "run MediaPipe's iris model on the eye crops: eye-in-head features for the calibration (the iris stage)",
        flag={"--iris": True},
        group="Models",
    )

    @property
    def wanted(self) -> bool:
        return self.enabled


def preflight(cfg: Config) -> None:
    """The iris model is an optional asset: say how to get it when it is missing."""
    (path,) = model_files(cfg.assets_dir, IRIS, "FP16")
    if not path.is_file():
        raise GazeflowError(
            f"the iris stage needs {path}: run 'gazeflow fetch' where the package index is reachable "
            f"(it comes from the mediapipe wheel), or put it in the mirror; or run without the iris stage"
        )
