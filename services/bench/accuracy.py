"""How close the pointer gets (#32): the calibration's two errors on the demo's documented targets (held-out
targets, one at a time; the targets it was fitted on, later frames), with the gaze model's features alone
and with the iris stage's; what the optional stage costs a frame; and the EyeTrax peer's own features and
regression measured by the same splits of the same frames."""

from __future__ import annotations

import json
import logging
import statistics
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ..capture.source import resolve_input
from .common import gazeflow, run_command
from .peer import _python

log = logging.getLogger("gazeflow.bench")
DEMO_TARGETS = Path(__file__).resolve().parents[2] / "docs" / "demo-targets.json"  # the checkout's
HOLD_OUT = 0.3  # as the calibration's fit: the last part of each target's frames is the same-target check
# the peer's features of every frame, as its own calibration computes them (None: no face)
PEER_FEATURES = """
import json, sys
import cv2
import numpy as np
from eyetrax.gaze import GazeEstimator

estimator = GazeEstimator()
cap = cv2.VideoCapture(sys.argv[1])
rows = []
while True:
    ok, frame = cap.read()
    if not ok:
        break
    frame.flags.writeable = False
    features, _blink = estimator.extract_features(frame)
    rows.append(None if features is None else np.asarray(features, dtype=float).round(6).tolist())
json.dump(rows, open(sys.argv[2], "w"))
"""


def calibration_accuracy(input_spec: str, assets_dir: str, repeat: int) -> dict[str, Any]:
    if input_spec != "demo" or not DEMO_TARGETS.is_file():
        return {"skipped": "the documented targets are the demo's (docs/demo-targets.json in a checkout)"}
    out: dict[str, Any] = {"targets": str(DEMO_TARGETS.name)}
    with tempfile.TemporaryDirectory() as tmp:
        squared = Path(tmp) / "squared.toml"  # the fit as #32 found it: a ridge (squared loss) alone
        squared.write_text('[calibration]\nloss = "squared"\n')
        for label, extra in (
            ("before", ["--config", str(squared)]),
            ("gaze", []),
            ("gaze+iris", ["--iris"]),
        ):
            path = Path(tmp) / f"{label}.json"
            gazeflow("calibrate", "--input", "demo", "--targets", str(DEMO_TARGETS), "--profile", str(path), *extra)
            saved = json.loads(path.read_text())
            out[label] = {
                "model": saved["model"],
                "check_targets": saved["validation"]["calibrated"],
                **saved["errors"],
            }
            log.info(
                "accuracy %s: %s, held-out targets %.0f px, same targets %.0f px",
                label,
                saved["model"],
                saved["errors"]["held_out_target"]["median_px"],
                saved["errors"]["same_target"]["median_px"],
            )
    after = out["gaze+iris"]
    for key, base in (("held_out_vs_before", "before"), ("held_out_vs_gaze_alone", "gaze")):
        out[key] = round(after["held_out_target"]["median_px"] / out[base]["held_out_target"]["median_px"], 3)
    out["iris_cost"] = _iris_cost(input_spec, repeat)
    out["peer"] = _peer_accuracy(input_spec, assets_dir)
    if "same_target" in out["peer"]:
        out["same_target_vs_peer"] = round(
            after["same_target"]["median_px"] / out["peer"]["same_target"]["median_px"], 3
        )
        out["held_out_vs_peer"] = round(
            after["held_out_target"]["median_px"] / out["peer"]["held_out_target"]["median_px"], 3
        )
    return out


def _iris_cost(input_spec: str, repeat: int) -> dict[str, Any]:
    """CPU per frame of run-sync at max speed with and without the iris stage, alternating."""
    runs: dict[str, list[float]] = {"without": [], "with --iris": []}
    for i in range(max(repeat, 1)):
        for label in ("without", "with --iris") if i % 2 == 0 else ("with --iris", "without"):
            extra = ["--iris"] if label != "without" else []
            report = run_command("run-sync", ["--input", input_spec, "--max-speed", *extra])
            runs[label].append(report["cpu_ms_per_frame"])
    out = {label: round(statistics.median(v), 3) for label, v in runs.items()}
    out["cpu_ms_per_frame"] = round(out["with --iris"] - out["without"], 3)
    log.info("iris stage: %+.2f ms CPU a frame (run-sync, max speed)", out["cpu_ms_per_frame"])
    return out


def _peer_accuracy(input_spec: str, assets_dir: str) -> dict[str, Any]:
    """The peer's features of every frame, its ridge (EyeTrax's default: scaled features, alpha 1), fitted and
    measured on the documented targets' frames by the same two splits as ours."""
    python = _python()
    if python is None:
        return {"skipped": "no package index to install eyetrax and mediapipe from"}
    with tempfile.TemporaryDirectory() as tmp:
        script, rows_path = Path(tmp) / "features.py", Path(tmp) / "rows.json"
        script.write_text(PEER_FEATURES)
        video = resolve_input(input_spec, assets_dir)
        proc = subprocess.run(
            [str(python), str(script), video, str(rows_path)], capture_output=True, text=True, timeout=900
        )
        if proc.returncode != 0:
            log.warning("bench: the EyeTrax peer failed: %s", proc.stderr.strip()[-300:])
            return {"skipped": "the peer failed"}
        rows = json.loads(rows_path.read_text())
    doc = json.loads(DEMO_TARGETS.read_text())
    groups = []
    for t in doc["targets"]:
        frames = [f for f in range(t["from"], t["to"] + 1) if f < len(rows) and rows[f] is not None]
        if frames:
            groups.append((np.array([t["x"], t["y"]], float), np.array([rows[f] for f in frames])))
    return {
        "name": "eyetrax 0.3.1 (mediapipe 0.10.21): its features, a ridge of alpha 1 on scaled features",
        "held_out_target": _px(_held_out(groups)),
        "same_target": _px(_same_target(groups)),
    }


def _ridge_predict(x: np.ndarray, y: np.ndarray, test: np.ndarray) -> np.ndarray:
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), Ridge(alpha=1.0)).fit(x, y).predict(test)


def _held_out(groups: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    errors = []
    for i, (target, x) in enumerate(groups):
        rest = [g for j, g in enumerate(groups) if j != i]
        xs = np.vstack([gx for _, gx in rest])
        ys = np.vstack([np.tile(gt, (len(gx), 1)) for gt, gx in rest])
        errors += np.linalg.norm(_ridge_predict(xs, ys, x) - target, axis=1).tolist()
    return np.array(errors)


def _same_target(groups: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    first, last = [], []
    for target, x in groups:
        cut = len(x) - max(1, round(len(x) * HOLD_OUT)) if len(x) >= 2 else len(x)
        first.append((target, x[:cut]))
        if cut < len(x):
            last.append((target, x[cut:]))
    xs = np.vstack([gx for _, gx in first])
    ys = np.vstack([np.tile(gt, (len(gx), 1)) for gt, gx in first])
    return np.concatenate([np.linalg.norm(_ridge_predict(xs, ys, x) - t, axis=1) for t, x in last])


def _px(errors: np.ndarray) -> dict[str, float]:
    return {
        "median_px": round(float(np.median(errors)), 1),
        "p95_px": round(float(np.percentile(errors, 95)), 1),
        "samples": len(errors),
    }
