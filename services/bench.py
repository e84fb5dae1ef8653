"""gazeflow bench: pipeline figures as ratios measured in the same run.

Runs run-sync and run-all --max-speed on the same video, alternating, for each
precision asked, and a real-time run for end-to-end latency. Writes JSON and a
Markdown table. Machines here are shared and noisy: compare the ratios.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from gazeflow.shared.errors import GazeflowError

log = logging.getLogger("gazeflow.bench")


def _run(command: str, args: list[str]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        metrics = Path(tmp) / "m.json"
        cmd = [sys.executable, "-m", "gazeflow.services.cli", "--log-level", "WARNING", command, *args,
               "--pointer", "null", "--log-interval", "0", "--metrics", str(metrics)]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise GazeflowError(f"bench: {command} failed: {proc.stderr.strip().splitlines()[-1:]}")
        return json.loads(metrics.read_text())


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu}"


def bench(
    input_spec: str,
    precisions: list[str],
    repeat: int,
    out_dir: Path,
    realtime_fps: float,
    assets_dir: str,
    models: bool = True,
    scale: tuple[int, ...] = (1, 2),
) -> dict[str, Any]:
    results: dict[str, Any] = {"machine": machine(), "input": input_spec, "repeat": repeat, "pipeline": {}}
    if models:
        from .model_bench import bench_models

        log.info("models: load, first inference, latency and throughput per precision and hint")
        results["models"] = bench_models(assets_dir)
    for precision in precisions:
        samples: dict[str, list[dict[str, Any]]] = {"run-sync": [], "run-all": []}
        for i in range(repeat):
            order = ("run-sync", "run-all") if i % 2 == 0 else ("run-all", "run-sync")
            for command in order:
                report = _run(command, ["--input", input_spec, "--max-speed", "--precision", precision])
                samples[command].append(report)
                log.info("%s %s: %.1f fps, %.1f ms CPU/frame", precision, command, report["fps"],
                         report["cpu_ms_per_frame"])  # fmt: skip
        entry = {}
        for command, reports in samples.items():
            entry[command] = {
                "fps": statistics.median(r["fps"] for r in reports),
                "cpu_ms_per_frame": statistics.median(r["cpu_ms_per_frame"] for r in reports),
                "e2e_p50_ms": statistics.median(r["e2e_ms"]["p50"] for r in reports),
            }
        entry["fps_ratio"] = round(entry["run-all"]["fps"] / entry["run-sync"]["fps"], 3)
        entry["cpu_ratio"] = round(entry["run-all"]["cpu_ms_per_frame"] / entry["run-sync"]["cpu_ms_per_frame"], 3)
        results["pipeline"][precision] = entry
    if "FP16" in results["pipeline"] and "FP16-INT8" in results["pipeline"]:
        results["int8_all_vs_fp16_sync"] = round(
            results["pipeline"]["FP16-INT8"]["run-all"]["fps"] / results["pipeline"]["FP16"]["run-sync"]["fps"], 3
        )
    face = results.get("models", {}).get("face-detection-adas-0001", {}).get("runs", {})
    bound = {}
    for precision, entry in results["pipeline"].items():
        best = max((r["fps"] for k, r in face.items() if k.startswith(precision + "/")), default=0.0)
        if best:
            bound[precision] = {
                "face_detection_fps": best,
                "run_all_fraction": round(entry["run-all"]["fps"] / best, 3),
                "run_sync_fraction": round(entry["run-sync"]["fps"] / best, 3),
            }
    if bound:
        results["bound"] = bound
    if face.get("FP16/LATENCY"):
        results["face_detection_latency_ms"] = face["FP16/LATENCY"]["median_ms"]
    if len(scale) > 1:
        results["scaling"] = scaling(input_spec, scale, repeat)
    if realtime_fps > 0:
        report = _run("run-all", ["--input", input_spec, "--realtime", "--fps", str(realtime_fps)])
        results["realtime"] = {"fps": realtime_fps, "e2e_ms": report["e2e_ms"], "dropped": report["dropped"],
                               "frames": report["frames"]}  # fmt: skip
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "bench.json").write_text(json.dumps(results, indent=1) + "\n")
    markdown = to_markdown(results)
    (out_dir / "bench.md").write_text(markdown)
    print(markdown)
    return results


def scaling(input_spec: str, workers: tuple[int, ...], repeat: int) -> dict[str, Any]:
    """run-all --max-speed (FP16) with N face-detection workers, as a ratio to one worker."""
    samples: dict[int, list[dict[str, Any]]] = {n: [] for n in workers}
    for i in range(repeat):
        for n in workers if i % 2 == 0 else tuple(reversed(workers)):
            report = _run("run-all", ["--input", input_spec, "--max-speed", "--precision", "FP16",
                                      "--workers", f"face_detection={n}"])  # fmt: skip
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


def to_markdown(r: dict[str, Any]) -> str:
    lines = [f"Machine: {r['machine']}; input {r['input']}; {time.strftime('%Y-%m-%d')}.", ""]
    if "models" in r:
        lines += [
            "Models (CPU; LATENCY: one request at a time; THROUGHPUT: the optimal number in flight):",
            "",
            "| model | precision/hint | load ms | first ms | median ms | fps | requests |",
            "|---|---|---|---|---|---|---|",
        ]
        for model, entry in r["models"].items():
            for key, m in entry["runs"].items():
                lines.append(
                    f"| {model} | {key} | {m['load_ms']:.0f} | {m['first_ms']:.1f} | {m['median_ms']:.2f} "
                    f"| {m['fps']:.1f} | {m['requests']} |"
                )
        lines += ["", "| model | GFLOPs | M params | top layers (FP16, share of inference time) |", "|---|---|---|---|"]
        for model, entry in r["models"].items():
            c = entry["complexity"]
            top = ", ".join(f"{h['layer']} ({h['type']}, {h['share']:.0%})" for h in entry["hot_layers_fp16"][:3])
            lines.append(f"| {model} | {c['gflops']:.3f} | {c['mparams']:.3f} | {top} |")
        lines.append("")
    lines += [
        f"Pipeline on the whole video, median of {r['repeat']} alternating runs:",
        "",
        "| precision | run-sync fps | run-all fps | fps ratio | run-sync CPU ms/frame | run-all CPU ms/frame "
        "| CPU ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    for precision, e in r["pipeline"].items():
        s, a = e["run-sync"], e["run-all"]
        lines.append(
            f"| {precision} | {s['fps']:.1f} | {a['fps']:.1f} | {e['fps_ratio']:.2f}x | "
            f"{s['cpu_ms_per_frame']:.1f} | {a['cpu_ms_per_frame']:.1f} | {e['cpu_ratio']:.2f}x |"
        )
    if "int8_all_vs_fp16_sync" in r:
        lines += ["", f"run-all FP16-INT8 vs run-sync FP16: {r['int8_all_vs_fp16_sync']:.2f}x fps"]
    for precision, b in r.get("bound", {}).items():
        lines.append(
            f"{precision}: face detection alone {b['face_detection_fps']:.1f} fps at best; run-all reaches "
            f"{b['run_all_fraction']:.0%} of it, run-sync {b['run_sync_fraction']:.0%}"
        )
    if "scaling" in r:
        lines += ["", "Face-detection workers (FP16 run-all --max-speed, ratio to the first row):", "",
                  "| workers | fps | ratio | CPU ms/frame |", "|---|---|---|---|"]  # fmt: skip
        for n, e in r["scaling"].items():
            lines.append(f"| {n} | {e['fps']:.1f} | {e['fps_ratio']:.2f}x | {e['cpu_ms_per_frame']:.1f} |")
    if "realtime" in r:
        rt = r["realtime"]
        e2e = rt["e2e_ms"]
        lines += ["", f"run-all --realtime --fps {rt['fps']:g}: end-to-end p50 {e2e['p50']:.1f} ms, "
                  f"p95 {e2e['p95']:.1f} ms, {rt['frames']} frames, {rt['dropped']} dropped"]  # fmt: skip
        if "face_detection_latency_ms" in r:
            lines.append(f"(face detection alone, FP16 LATENCY: {r['face_detection_latency_ms']:.1f} ms per inference)")
    return "\n".join(lines) + "\n"
