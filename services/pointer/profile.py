"""Calibration profiles: one JSON file per user and monitor, written by 'gazeflow calibrate', read by the pointer.

A profile holds the monitor it was made for, the camera settings, the precision
and models of the run, the correction (or none, when calibrating did not beat
the geometric model), the validation errors before and after, and the date.
A name is looked up in ``$XDG_CONFIG_HOME/gazeflow/profiles/NAME.json``
(``~/.config`` when unset); anything with a slash or ending in .json is a path.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from gazeflow.shared.errors import GazeflowError

from .gaze_model import Correction, Monitor

log = logging.getLogger("gazeflow.pointer")
FORMAT = "gazeflow-profile/1"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def profiles_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "gazeflow" / "profiles"


def path_of(profile: str) -> Path:
    """Where a profile named NAME (or given as a path) lives."""
    if "/" in profile or profile.endswith(".json"):
        return Path(profile).expanduser()
    if not NAME.match(profile):
        raise GazeflowError(f"profile name {profile!r}: letters, digits, '.', '_' and '-' only (or give a path)")
    return profiles_dir() / f"{profile}.json"


def load(profile: str) -> dict[str, Any]:
    """A profile, checked; one line naming the problem otherwise."""
    path = path_of(profile)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        hint = f"make it with 'gazeflow calibrate --profile {profile}'"
        raise GazeflowError(f"profile {profile}: no file {path} ({hint})") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GazeflowError(f"profile {path}: unreadable: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise GazeflowError(f'profile {path}: not a gazeflow profile (no "format": "{FORMAT}")')
    try:
        Monitor.from_dict(data["monitor"])
        if data.get("correction") is not None:
            Correction.from_dict(data["correction"])
    except (KeyError, TypeError, ValueError) as exc:
        raise GazeflowError(f"profile {path}: damaged: {type(exc).__name__}: {exc}") from None
    data["path"] = str(path)
    return data


def save(profile: str, data: dict[str, Any]) -> Path:
    path = path_of(profile)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"format": FORMAT, **data}, indent=1) + "\n")
    tmp.replace(path)
    return path


def check_monitor(data: dict[str, Any], monitor: Monitor) -> None:
    """A profile made for another monitor is refused: its fit is in that monitor's millimetres and pixels."""
    made = Monitor.from_dict(data["monitor"])
    unnamed = ("", "null")  # a recording's screen and the null backend's carry no monitor name
    if (
        (made.width, made.height) != (monitor.width, monitor.height)
        or (made.name != monitor.name and made.name not in unnamed and monitor.name not in unnamed)
        or abs(made.width_mm - monitor.width_mm) > 0.02 * made.width_mm
    ):
        raise GazeflowError(
            f"profile {data['path']} was made for {made.describe()}, this is {monitor.describe()}: "
            f"calibrate for this monitor (gazeflow calibrate --monitor {monitor.index} --profile NAME)"
        )


def summary(data: dict[str, Any]) -> str:
    """The profile's validation error, as the first log lines give it."""
    v = data.get("validation") or {}
    used = v.get(data.get("used", "uncalibrated")) or {}
    if not used:
        return "no validation figures"
    line = (
        f"validation error median {used['median_px']:.0f} px = {used['median_deg']:.1f} deg, "
        f"p95 {used['p95_px']:.0f} px = {used['p95_deg']:.1f} deg ({data.get('used')})"
    )
    errors = data.get("errors") if isinstance(data.get("errors"), dict) else {}
    for key, words in (("held_out_target", "on targets it never saw"), ("same_target", "on its own targets")):
        error = errors.get(key)
        if data.get("used") == "calibrated" and isinstance(error, dict):
            px, deg = error.get("median_px"), error.get("median_deg")
            if all(isinstance(v, int | float) for v in (px, deg)):
                line += f"; {words} {px:.0f} px = {deg:.1f} deg"
    if data.get("used") == "calibrated" and isinstance(data.get("model"), str):
        line += f"; model {data['model'][:60]}"
    return line


def error_px(data: dict[str, Any] | None) -> float | None:
    """The profile's validation error (median, pixels) of the model it uses, or None."""
    v = ((data or {}).get("validation") or {}).get((data or {}).get("used", "uncalibrated")) or {}
    return float(v["median_px"]) if "median_px" in v else None


def adapt(name: str, offset: tuple[float, float], samples: int, error: float | None) -> None:
    """Save the drift correction learnt from selections in the profile (a live run's, not a replay's)."""
    data = load(name)
    data.pop("path", None)
    data.pop("format", None)
    data["adapted"] = {
        "offset_px": [round(offset[0], 1), round(offset[1], 1)],
        "selections": samples,
        "error_px": error,
    }
    save(name, data)


def for_run(name: str, monitor: Monitor) -> tuple[Correction | None, str]:
    """The correction a run uses and a line saying which profile it is, or that the run is uncalibrated.
    The default profile may be missing (uncalibrated); a named one must exist and match the monitor."""
    if not name:
        return None, 'uncalibrated (profile ""): the geometric model alone'
    if name == "default" and not path_of(name).exists():
        return None, "uncalibrated (no default profile yet: run 'gazeflow calibrate'): the geometric model alone"
    data = load(name)
    check_monitor(data, monitor)
    correction = Correction.from_dict(data["correction"]) if data.get("correction") else None
    return correction, f"profile {data['path']} from {data.get('created', '?')}: {summary(data)}"
