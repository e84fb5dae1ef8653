"""The pointer's figures: where it goes (edges, calibration), how steady it is (filters), what the view
and the eye state cost."""

from __future__ import annotations

import itertools
import json
import logging
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

from .common import gazeflow, run_command

log = logging.getLogger("gazeflow.bench")


DEMO_TARGETS = Path(__file__).resolve().parents[2] / "docs" / "demo-targets.json"  # in a checkout


def _edge_share(rows: list[dict[str, Any]], width: int = 1920, height: int = 1080) -> float:
    points = [r["pointer"] for r in rows if r.get("pointer")]
    near = sum(min(p["x"], p["y"], width - 1 - p["x"], height - 1 - p["y"]) < 5 for p in points)
    return round(near / max(1, len(points)), 3)


def pointer_steadiness(input_spec: str) -> dict[str, Any]:
    """The pointer on a real-time run: how often it sits at a screen edge, uncalibrated and (on the demo,
    fitted from docs/demo-targets.json) calibrated; each filter's jitter in fixations and lag at jumps, on
    the raw points of the same run (services/pointer/steadiness.py)."""
    from ..pointer.settings import PointerConfig
    from ..pointer.steadiness import compare

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "XDG_CONFIG_HOME": home}
        profiles = {"uncalibrated": ""}
        if input_spec == "demo" and DEMO_TARGETS.exists():
            gazeflow("calibrate", "--input", "demo", "--targets", str(DEMO_TARGETS), "--profile", "bench", env=env)
            saved = json.loads((Path(home) / "gazeflow" / "profiles" / "bench.json").read_text())
            out["calibration"] = {"used": saved["used"], **saved["validation"]}
            profiles["calibrated"] = "bench"
        for label, name in profiles.items():
            args = ["--input", input_spec, "--realtime", "--filter", "none", "--profile", name]
            rows = run_command("run-all", args, results=True, env=env)["results"]
            out[label] = {"at_edge": _edge_share(rows)}
            fps = next((1 / (b["t"] - a["t"]) for a, b in itertools.pairwise(rows) if b["t"] > a["t"]), 30.0)
            out[label]["filters"] = compare(rows, PointerConfig(), fps)
            one_euro = out[label]["filters"]["one-euro"]
            log.info(
                "pointer, %s: %.0f%% at an edge; One Euro jitter %.2f of none, lag %.1f frames",
                label,
                100 * out[label]["at_edge"],
                one_euro["jitter_vs_none"],
                one_euro["lag_frames_p50"],
            )
    out["steadiness"] = out.get("calibrated", out["uncalibrated"])["filters"]
    return out


def view_cost(input_spec: str, fps: float, repeat: int) -> dict[str, Any]:
    """End-to-end p50 at real-time pace with the view writing every annotated frame (--output) and without,
    alternating: what the view costs the pointer (it runs after it, so only through the machine)."""
    runs: dict[str, list[float]] = {"without": [], "with --output": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(max(3, repeat | 1)):
            for label in ("without", "with --output") if i % 2 == 0 else ("with --output", "without"):
                extra = ["--output", str(Path(tmp) / "view.mp4")] if label != "without" else []
                report = run_command("run-all", ["--input", input_spec, "--realtime", "--fps", str(fps), *extra])
                runs[label].append(report["e2e_ms"]["p50"])
    out = {label: round(statistics.median(v), 3) for label, v in runs.items()}
    out["difference_ms"] = round(out["with --output"] - out["without"], 3)
    out["runs"] = runs
    out["fps"] = fps
    log.info("view: e2e p50 %.1f ms without, %.1f ms with --output", out["without"], out["with --output"])
    return out


def eye_state_cost(assets_dir: str, n: int = 300) -> dict[str, Any]:
    """What the eye state adds to the gaze stage per frame: gaze alone against gaze and eye state compiled
    as one (as the stage runs them), one synchronous inference at a time, alternating rounds."""
    import time

    import numpy as np

    from gazeflow.models.catalog import EYE_STATE, GAZE
    from gazeflow.shared.inference import Fusion, compile_model, load_model

    gaze = compile_model(load_model(assets_dir, GAZE, "FP16"), "CPU", "LATENCY")
    fused_model = Fusion(
        {"gaze": load_model(assets_dir, GAZE, "FP16"), "eye": load_model(assets_dir, EYE_STATE, "FP16")}
    )
    fused = compile_model(fused_model.model, "CPU", "LATENCY")
    rng = np.random.default_rng(0)

    def inputs(model: Any) -> dict[int, np.ndarray]:
        out = {}
        for i, port in enumerate(model.inputs):
            shape = list(port.get_shape())
            dtype = np.uint8 if len(shape) == 4 else np.float32
            out[i] = rng.integers(0, 255, shape).astype(dtype) if len(shape) == 4 else np.zeros(shape, dtype)
        return out

    times: dict[str, list[float]] = {"gaze": [], "gaze+eye_state": []}
    requests = {
        "gaze": (gaze.create_infer_request(), inputs(gaze)),
        "gaze+eye_state": (fused.create_infer_request(), inputs(fused)),
    }
    for _ in range(5):
        for label, (req, data) in requests.items():
            for _ in range(n // 5):
                t0 = time.perf_counter()
                req.infer(data)
                times[label].append((time.perf_counter() - t0) * 1e3)
    out = {label: round(statistics.median(v), 3) for label, v in times.items()}
    out["added_ms"] = round(out["gaze+eye_state"] - out["gaze"], 3)
    log.info("eye state: gaze alone %.2f ms, with eye state %.2f ms per frame", out["gaze"], out["gaze+eye_state"])
    return out
