"""The pipeline's figures: run-sync against run-all, what a precision changes, real-time latency and its
hops, workers, start times."""

from __future__ import annotations

import logging
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from gazeflow.shared import registry

from .common import DETECTOR, agreement, run_command
from .report import HOPS

log = logging.getLogger("gazeflow.bench")


FRAME_HOP = registry.default_chain()[1]  # the one link that carries full frames (a slot on one host, pixels over tcp)


def max_speed_pair(input_spec: str, precision: str, repeat: int) -> tuple[dict[str, Any], list[Any], list[Any]]:
    """run-sync and run-all at max speed, alternating, ``repeat`` times each: medians and ratios, whether every
    run wrote the same results; and run-all's reports and run-sync's first results (for what comes later).
    Where this host's automatic placement puts stages together, run-all with a process per stage is measured
    too, in the same rounds (``run-all-separate``)."""
    from gazeflow.services.cli import pipeline_config

    args = ["--input", input_spec, "--max-speed", "--precision", precision]
    groups = pipeline_config(args).placement_groups
    commands: dict[str, tuple[str, list[str]]] = {"run-sync": ("run-sync", []), "run-all": ("run-all", [])}
    if any(len(g) > 1 for g in groups):
        commands["run-all-separate"] = ("run-all", ["--placement", "separate"])
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in commands}
    for i in range(repeat):
        order = list(commands) if i % 2 == 0 else list(reversed(commands))
        for name in order:
            command, extra = commands[name]
            report = run_command(command, [*args, *extra], results=True)
            samples[name].append(report)
            log.info("%s %s: %.1f fps, %.1f ms CPU/frame", precision, name, report["fps"], report["cpu_ms_per_frame"])
    rows = [r.pop("results") for reports in samples.values() for r in reports]
    entry: dict[str, Any] = {
        "same_results": all(other == rows[0] for other in rows[1:]),
        "placement": " | ".join("+".join(g) for g in groups),
    }
    for name, reports in samples.items():
        entry[name] = {
            "fps": statistics.median(r["fps"] for r in reports),
            "cpu_ms_per_frame": statistics.median(r["cpu_ms_per_frame"] for r in reports),
            "cores": statistics.median(r.get("cores", 0.0) for r in reports),
            "e2e_p50_ms": statistics.median(r["e2e_ms"]["p50"] for r in reports),
        }
    entry["fps_ratio"] = round(entry["run-all"]["fps"] / entry["run-sync"]["fps"], 3)
    entry["cpu_ratio"] = round(entry["run-all"]["cpu_ms_per_frame"] / entry["run-sync"]["cpu_ms_per_frame"], 3)
    if "run-all-separate" in entry:
        separate = entry["run-all-separate"]
        entry["separate_fps_ratio"] = round(separate["fps"] / entry["run-sync"]["fps"], 3)
        entry["separate_cpu_ratio"] = round(separate["cpu_ms_per_frame"] / entry["run-sync"]["cpu_ms_per_frame"], 3)
    return entry, samples["run-all"], rows[0]


def detector_bound(results: dict[str, Any]) -> dict[str, Any]:
    """The detector's model alone at its best (the models' part), and the share of it each command reaches."""
    (model,) = registry.get(DETECTOR).models.values()
    runs = results.get("models", {}).get(model, {}).get("runs", {})
    bound = {}
    for precision, entry in results["pipeline"].items():
        best = max((r["fps"] for k, r in runs.items() if k.startswith(precision + "/")), default=0.0)
        if best:
            bound[precision] = {
                "face_detection_fps": best,
                "run_all_fraction": round(entry["run-all"]["fps"] / best, 3),
                "run_sync_fraction": round(entry["run-sync"]["fps"] / best, 3),
            }
    return bound


def _hops(reports: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per-hop transport p50/p95 (median over runs)."""
    return {
        stage: {q: statistics.median(r["stages"][stage]["transport_ms"][q] for r in reports) for q in ("p50", "p95")}
        for stage in HOPS
    }


PRECISION_ORDER = ("FP32", "FP16", "FP16-INT8")  # most exact first


def precision_agreement(
    input_spec: str, precisions: list[str], sync_results: dict[str, list[dict[str, Any]]]
) -> dict[str, Any]:
    """What a lower precision changes in the results, against the most exact precision benched:
    all stages at once (from the run-sync runs above), then one stage at a time (a run-sync each),
    so that each stage's precision can be chosen on its own (``--precision STAGE=PREC``)."""
    reference = min(precisions, key=PRECISION_ORDER.index)
    runs: dict[str, Any] = {}
    for precision in sorted(precisions, key=PRECISION_ORDER.index):
        if precision == reference:
            continue
        runs[f"{precision}, every stage"] = agreement(sync_results[reference], sync_results[precision])
        for stage in registry.with_models():
            args = [
                "--input",
                input_spec,
                "--max-speed",
                "--precision",
                reference,
                "--precision",
                f"{stage}={precision}",
            ]
            rows = run_command("run-sync", args, results=True)["results"]
            runs[f"{precision}, {stage} only"] = agreement(sync_results[reference], rows)
            log.info(
                "%s on %s only: gaze %.2f deg p50 from %s",
                precision,
                stage,
                runs[f"{precision}, {stage} only"]["gaze_deg"]["p50"],
                reference,
            )
    return {"reference": reference, "runs": runs}


def _face_detection_alone_ms(assets_dir: str, precision: str, fps: float = 0.0) -> float:
    """One face-detection inference at a time (LATENCY hint), median ms: back to back (the
    benchmark_app method), or started fps times a second."""
    from gazeflow.models.catalog import ir_path

    from ..model_bench import measure

    (model,) = registry.get(DETECTOR).models.values()
    return measure(ir_path(assets_dir, model, precision), "LATENCY", 3.0, fps)["median_ms"]


def realtime(input_spec: str, assets_dir: str, fps: float, repeat: int, precision: str = "FP16") -> dict[str, Any]:
    """End-to-end latency at real-time pacing, each run between two measurements of face detection
    alone at the same precision (so that both see the same machine), and what the rest of the
    pipeline adds per frame."""
    rounds = [_realtime_round(input_spec, assets_dir, fps, precision) for _ in range(max(3, repeat | 1))]
    reports = [r.pop("report") for r in rounds]  # an odd number of runs, so that one is the middle
    pick = sorted(rounds, key=lambda r: r["e2e_ms"]["p50"] - r["face_detection_alone_ms"])[len(rounds) // 2]
    hops = _hops(reports)
    return {
        "precision": precision,
        "fps": fps,
        **pick,
        "rounds": rounds,
        "transport": hops,
        "e2e_over_face_alone_ms": round(pick["e2e_ms"]["p50"] - pick["face_detection_alone_ms"], 3),
        "small_hop_p95_max_ms": max(h["p95"] for stage, h in hops.items() if stage != FRAME_HOP),
        "frame_hop_p95_ms": hops[FRAME_HOP]["p95"],
    }


def _realtime_round(input_spec: str, assets_dir: str, fps: float, precision: str) -> dict[str, Any]:
    before = _face_detection_alone_ms(assets_dir, precision)
    report = run_command("run-all", ["--input", input_spec, "--realtime", "--fps", str(fps), "--precision", precision])
    after = _face_detection_alone_ms(assets_dir, precision)
    paced = _face_detection_alone_ms(assets_dir, precision, fps)
    timeline = report["timeline"]
    # per frame: end to end minus that frame's own face-detection service time (pre + infer + post)
    rest = [e - f for e, f in zip(timeline["e2e_ms"], timeline["service_ms"][DETECTOR], strict=True)]
    # and minus only its face-detection inference: what the pipeline adds to one inference
    added = [e - f for e, f in zip(timeline["e2e_ms"], timeline["infer_ms"][DETECTOR], strict=True)]
    alone = round((before + after) / 2, 3)
    log.info(
        "%s run-all --realtime --fps %g: e2e p50 %.1f ms, face detection alone %.1f ms, %d dropped",
        precision,
        fps,
        report["e2e_ms"]["p50"],
        alone,
        report["dropped"],
    )
    return {
        "e2e_ms": report["e2e_ms"],
        "dropped": report["dropped"],
        "frames": report["frames"],
        "face_detection_alone_ms": alone,
        "face_detection_alone_paced_ms": paced,
        "face_detection_infer_in_pipeline_ms": report["stages"][DETECTOR]["infer_ms"],
        "rest_of_pipeline_ms": {"p50": round(statistics.median(rest), 3)},
        "added_to_face_inference_ms": {"p50": round(statistics.median(added), 3)},
        "report": report,
    }


def scaling(input_spec: str, workers: tuple[int, ...], repeat: int) -> dict[str, Any]:
    """run-all --max-speed (FP16) with N face-detection workers, as a ratio to one worker."""
    samples: dict[int, list[dict[str, Any]]] = {n: [] for n in workers}
    for i in range(repeat):
        for n in workers if i % 2 == 0 else tuple(reversed(workers)):
            report = run_command(
                "run-all", ["--input", input_spec, "--max-speed", "--precision", "FP16", "--workers", f"{DETECTOR}={n}"]
            )
            samples[n].append(report)
            log.info("FP16 run-all, %d face-detection workers: %.1f fps", n, report["fps"])
    base = statistics.median(r["fps"] for r in samples[workers[0]])
    return {
        str(n): {
            "fps": statistics.median(r["fps"] for r in reports),
            "cpu_ms_per_frame": statistics.median(r["cpu_ms_per_frame"] for r in reports),
            "fps_ratio": round(statistics.median(r["fps"] for r in reports) / base, 3),
        }
        for n, reports in samples.items()
    }


def _first_result(input_spec: str, cache_home: str) -> dict[str, float]:
    """Seconds from starting run-all to its first result line and to its first pointer move."""
    import time

    with tempfile.TemporaryDirectory() as tmp:
        lines = Path(tmp) / "r.jsonl"
        env = {**os.environ, "XDG_CACHE_HOME": cache_home}
        cmd = [
            sys.executable,
            "-m",
            "gazeflow.services.cli",
            "--log-level",
            "WARNING",
            "run-all",
            "--input",
            input_spec,
            "--loop",
            "--pointer",
            "null",
            "--log-interval",
            "0",
            "--results",
            str(lines),
        ]
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        first = moved = 0.0
        try:
            while not moved and time.monotonic() - t0 < 120:
                text = lines.read_text() if lines.exists() else ""
                if text and not first:
                    first = time.monotonic() - t0
                if '"moved":true' in text:
                    moved = time.monotonic() - t0
                time.sleep(0.01)
        finally:
            proc.send_signal(2)
            proc.wait(30)
    return {"first_result_s": round(first, 3), "first_move_s": round(moved, 3)}


def start_times(input_spec: str, repeat: int) -> dict[str, Any]:
    """Cold start (an empty model cache: every stage compiles its models) against warm (the cache from the
    cold run), alternating rounds, each in its own cache folder."""
    runs: dict[str, list[dict[str, float]]] = {"cold": [], "warm": []}
    for _ in range(max(2, repeat)):
        with tempfile.TemporaryDirectory() as cache_home:
            runs["cold"].append(_first_result(input_spec, cache_home))
            runs["warm"].append(_first_result(input_spec, cache_home))
    out: dict[str, Any] = {}
    for label, rs in runs.items():
        out[label] = {key: round(statistics.median(r[key] for r in rs), 3) for key in rs[0]}
    out["warm_vs_cold"] = round(out["warm"]["first_result_s"] / max(out["cold"]["first_result_s"], 1e-9), 3)
    log.info(
        "start: first result %.2f s cold, %.2f s warm", out["cold"]["first_result_s"], out["warm"]["first_result_s"]
    )
    return out
