"""Precision's figures: execution precision against f32, and quantize's local INT8 against the published one."""

from __future__ import annotations

import logging
import math
import os
import statistics
import tempfile
from typing import Any

from gazeflow.shared.errors import GazeflowError

from .common import gaze_change, gazeflow, run_command

log = logging.getLogger("gazeflow.bench")


def execution_precision_table(input_spec: str) -> dict[str, Any]:
    """What each execution precision (INFERENCE_PRECISION_HINT) costs in results and saves in time, against
    f32: run-sync at max speed, every frame detected (so that only the precision differs)."""
    runs = {}
    for label in ("f32", "bf16", "f16", "default"):
        extra = [] if label == "default" else ["--inference-precision", label]
        try:
            runs[label] = run_command(
                "run-sync", ["--input", input_spec, "--max-speed", "--detect-every", "1", *extra], results=True
            )
        except GazeflowError as exc:  # a precision this CPU cannot run
            runs[label] = {"error": str(exc)}
    reference = runs["f32"].get("results", [])
    out: dict[str, Any] = {}
    for label, report in runs.items():
        if "error" in report:
            out[label] = {"error": report["error"]}
            continue
        out[label] = {
            "fps": report["fps"],
            "cpu_ms_per_frame": report["cpu_ms_per_frame"],
            "used": sorted(set((report.get("inference_precision") or {}).values())),
            "gaze_vs_f32": gaze_change(reference, report["results"]),
        }
    log.info("execution precision: %s", {k: v.get("fps") for k, v in out.items()})
    return out


def _held_out_change(reference: list[dict[str, Any]], rows: list[dict[str, Any]], start: int) -> dict[str, Any]:
    """How far face box (px), head pose (deg), gaze (deg) and pointer (px) move from the reference on the
    frames from ``start`` on (median / p95)."""
    ref = {r["frame"]: r for r in reference}

    def q(values: list[float]) -> list[float]:
        values = sorted(values)
        return (
            [round(statistics.median(values), 2), round(values[min(len(values) - 1, int(0.95 * len(values)))], 2)]
            if values
            else [0.0, 0.0]
        )

    face, pose, pointer = [], [], []
    for r in rows:
        a = ref.get(r["frame"])
        if a is None or r["frame"] < start:
            continue
        if a["face"] and r["face"]:
            face.append(max(abs(x - y) for x, y in zip(a["face"], r["face"], strict=True)))
        if a["head_pose"] and r["head_pose"]:
            pose.append(max(abs(a["head_pose"][k] - r["head_pose"][k]) for k in ("yaw", "pitch", "roll")))
        if a["pointer"] and r["pointer"] and "x" in a["pointer"] and "x" in r["pointer"]:
            pointer.append(math.dist((a["pointer"]["x"], a["pointer"]["y"]), (r["pointer"]["x"], r["pointer"]["y"])))
    gaze = gaze_change([x for x in reference if x["frame"] >= start], [x for x in rows if x["frame"] >= start])
    return {
        "face_px": q(face),
        "head_pose_deg": q(pose),
        "gaze_deg": [gaze["median_deg"], gaze["p95_deg"]],
        "pointer_px": q(pointer),
    }


PRECISIONS = ("FP16", "FP16-INT8", "local-INT8")


def quantization_table(input_spec: str) -> dict[str, Any]:
    """'gazeflow quantize' on the first 70% of the video, then FP16, the published FP16-INT8 and local-INT8
    compared on the held-out rest: speed, size on disk, and how far the results move from FP16."""
    from gazeflow.shared.config import default_assets_dir

    from ..capture.source import frame_count, resolve_input
    from ..quantize import CALIBRATE_SHARE

    assets = default_assets_dir()
    with tempfile.TemporaryDirectory() as data_home:
        env = {**os.environ, "XDG_DATA_HOME": data_home}
        try:
            said = gazeflow("quantize", "--input", input_spec, env=env).stdout.splitlines()
        except GazeflowError as exc:
            return {"error": str(exc)}
        args = ["--input", input_spec, "--max-speed", "--detect-every", "1", "--precision"]
        runs = {p: run_command("run-sync", [*args, p], results=True, env=env) for p in PRECISIONS}
        sizes, model_ms = _models(assets, data_home)
    start = int(frame_count(resolve_input(input_spec, assets)) * CALIBRATE_SHARE)
    reference = runs["FP16"]["results"]
    said = [line for line in said if line.startswith(("wrote", "kept"))]  # not its progress
    out: dict[str, Any] = {"held_out_from_frame": start, "quantize_said": said}
    for p, report in runs.items():
        out[p] = {
            "fps": report["fps"],
            "cpu_ms_per_frame": report["cpu_ms_per_frame"],
            "size_mb": sizes[p],
            "model_ms": model_ms[p],
            "vs_fp16": _held_out_change(reference, report["results"], start),
        }
    published, local = out["FP16-INT8"]["vs_fp16"]["gaze_deg"][0], out["local-INT8"]["vs_fp16"]["gaze_deg"][0]
    out["gaze_vs_published"] = round(local / published, 3) if published else 0.0
    # speed: the models' inference time per frame (one request at a time, alternating timings): the pipeline's
    # fps, in the table too, moves by 10% from run to run here, more than what the precision changes
    out["speed_vs_published"] = round(out["FP16-INT8"]["model_ms"] / max(out["local-INT8"]["model_ms"], 1e-9), 3)
    return out


def _models(assets: str, data_home: str) -> tuple[dict[str, float], dict[str, float]]:
    """Each precision's models: MB on disk, and their inference time per frame (timed alternating)."""
    from gazeflow.models.catalog import MODELS, ir_path

    from ..quantize import latency_ms

    old = os.environ.get("XDG_DATA_HOME")
    os.environ["XDG_DATA_HOME"] = data_home  # where local-INT8 is
    try:
        sizes = {
            p: round(sum(ir_path(assets, m, p).with_suffix(".bin").stat().st_size for m in MODELS) / 1e6, 2)
            for p in PRECISIONS
        }
        timed = latency_ms([ir_path(assets, m, p) for p in PRECISIONS for m in MODELS])  # alternating, all at once
    finally:
        if old is None:
            os.environ.pop("XDG_DATA_HOME", None)
        else:
            os.environ["XDG_DATA_HOME"] = old
    n = len(MODELS)
    return sizes, {p: round(sum(timed[i * n : (i + 1) * n]), 2) for i, p in enumerate(PRECISIONS)}
