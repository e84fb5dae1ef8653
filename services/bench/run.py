"""The whole bench: every part in turn, the figures to out/bench.json and out/bench.md, the verdicts."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from .accuracy import calibration_accuracy
from .common import machine
from .decode import decode_cost
from .panel import panel_cost
from .peer import peer_cost
from .pipeline import _hops, detector_bound, max_speed_pair, precision_agreement, realtime, scaling, start_times
from .pointer import eye_state_cost, pointer_steadiness, view_cost
from .precision import execution_precision_table, quantization_table
from .profile import profile_stages
from .report import load_targets, to_markdown, verdicts
from .tracking import tracking_table

log = logging.getLogger("gazeflow.bench")


def bench(
    input_spec: str,
    precisions: list[str],
    repeat: int,
    out_dir: Path,
    realtime_fps: float,
    assets_dir: str,
    models: bool = True,
    scale: tuple[int, ...] = (1, 2),
    targets_file: Path | None = None,
    pointer: bool = True,
) -> dict[str, Any]:
    targets = load_targets(targets_file) if targets_file is not None else None  # a bad file: before measuring
    results: dict[str, Any] = {"machine": machine(), "input": input_spec, "repeat": repeat, "pipeline": {}}
    if models:
        from ..model_bench import bench_models

        log.info("models: load, first inference, latency and throughput per precision and hint")
        results["models"] = bench_models(assets_dir, paced_fps=realtime_fps)
        results["models_paced_fps"] = realtime_fps
    _pipeline(results, input_spec, precisions, repeat, scale)
    if realtime_fps > 0:
        results["realtime"] = {p: realtime(input_spec, assets_dir, realtime_fps, repeat, p) for p in precisions}
    if pointer:
        results["pointer"] = pointer_steadiness(input_spec)
    if realtime_fps > 0:
        results["view"] = view_cost(input_spec, realtime_fps, repeat)
        results["panel"] = panel_cost(repeat)
    results["eye_state"] = eye_state_cost(assets_dir)
    results["decode"] = decode_cost(input_spec, assets_dir)
    results["peer"] = peer_cost(input_spec, assets_dir, repeat)
    results["start"] = start_times(input_spec, repeat)
    results["tracking"] = tracking_table(input_spec, repeat, realtime_fps=30.0)
    results["execution_precision"] = execution_precision_table(input_spec)
    results["quantization"] = quantization_table(input_spec)
    results["profile"] = profile_stages(input_spec)
    if pointer:
        results["accuracy"] = calibration_accuracy(input_spec, assets_dir, repeat)
        results["select"] = _selection()
    if targets is not None:
        results["targets"] = verdicts(results, targets)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "bench.json").write_text(json.dumps(results, indent=1) + "\n")
    markdown = to_markdown(results)
    (out_dir / "bench.md").write_text(markdown)
    print(markdown)
    return results


def _selection() -> dict[str, Any]:
    """How well a person selects (bench select), where Xvfb is there to run it on."""
    import shutil

    from .select import bench_select

    if not shutil.which("Xvfb"):
        log.warning("bench: no Xvfb (apt-get install xvfb): the selection benchmark is left out")
        return {"skipped": "no Xvfb"}
    log.info("selection: a simulated user selects targets through the pointer stage under Xvfb")
    return bench_select()


def _pipeline(
    results: dict[str, Any], input_spec: str, precisions: list[str], repeat: int, scale: tuple[int, ...]
) -> None:
    """run-sync against run-all at max speed per precision, what a lower one changes, the workers."""
    max_speed_reports: dict[str, list[dict[str, Any]]] = {}
    sync_results: dict[str, list[dict[str, Any]]] = {}
    for precision in precisions:
        entry, max_speed_reports[precision], sync_results[precision] = max_speed_pair(input_spec, precision, repeat)
        results["pipeline"][precision] = entry
    pipeline = results["pipeline"]
    if "FP16" in pipeline and "FP16-INT8" in pipeline:
        results["int8_all_vs_fp16_sync"] = round(
            pipeline["FP16-INT8"]["run-all"]["fps"] / pipeline["FP16"]["run-sync"]["fps"], 3
        )
    bound = detector_bound(results)
    if bound:
        results["bound"] = bound
    if len(scale) > 1:
        results["scaling"] = scaling(input_spec, scale, repeat)
    if max_speed_reports.get("FP16"):
        results["transport_max_speed"] = _hops(max_speed_reports["FP16"])
    if len(precisions) > 1:
        results["agreement"] = precision_agreement(input_spec, precisions, sync_results)
