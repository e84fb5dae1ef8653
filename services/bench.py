"""gazeflow bench: pipeline figures as ratios measured in the same run.

Runs run-sync and run-all --max-speed on the same video, alternating, for each
precision asked, and a real-time run for end-to-end latency. Writes JSON and a
Markdown table. Machines here are shared and noisy: compare the ratios.
"""

from __future__ import annotations

import json
import logging
import math
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


def _run(command: str, args: list[str], results: bool = False) -> dict[str, Any]:
    """One gazeflow run in a child process: its metrics report, with its per-frame results under
    ``"results"`` when asked (every run that is compared writes them, so that all pay the same)."""
    with tempfile.TemporaryDirectory() as tmp:
        metrics, lines = Path(tmp) / "m.json", Path(tmp) / "r.jsonl"
        cmd = [sys.executable, "-m", "gazeflow.services.cli", "--log-level", "WARNING", command, *args,
               "--pointer", "null", "--log-interval", "0", "--metrics", str(metrics)]  # fmt: skip
        if results:
            cmd += ["--results", str(lines)]
        proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise GazeflowError(f"bench: {command} failed: {proc.stderr.strip().splitlines()[-1:]}")
        report = json.loads(metrics.read_text())
        if results:
            report["results"] = [json.loads(line) for line in lines.read_text().splitlines()]
        return report


def _quantiles(values: list[float]) -> dict[str, float]:
    """p50, p95 (nearest rank: a value some frame really had) and max of a frame-by-frame difference."""
    if not values:
        return {"p50": 0.0, "p95": 0.0, "max": 0.0}
    ordered = sorted(values)
    return {
        "p50": round(statistics.median(ordered), 3),
        "p95": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 3),
        "max": round(ordered[-1], 3),
    }


def agreement(reference: list[dict[str, Any]], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """How far one run's results are from a reference run's, frame by frame: the angle between the
    gaze vectors, the distance between the pointer positions, the face box and head pose."""
    ref = {r["frame"]: r for r in reference}
    gaze, pointer, face, pose = [], [], [], []
    face_differs = 0
    for row in rows:
        other = ref.get(row["frame"])
        if other is None:
            continue
        if (row.get("face") is None) != (other.get("face") is None):
            face_differs += 1
            continue
        if row.get("face") is not None:
            face.append(max(abs(a - b) for a, b in zip(row["face"], other["face"], strict=True)))
        if row.get("head_pose") and other.get("head_pose"):
            pose.append(max(abs(row["head_pose"][k] - other["head_pose"][k]) for k in ("yaw", "pitch", "roll")))
        if row.get("gaze") and other.get("gaze"):
            dot = sum(a * b for a, b in zip(row["gaze"], other["gaze"], strict=True))
            norms = math.hypot(*row["gaze"]) * math.hypot(*other["gaze"]) or 1.0
            gaze.append(math.degrees(math.acos(max(-1.0, min(1.0, dot / norms)))))
        a, b = row.get("pointer"), other.get("pointer")
        if a and b and "x" in a and "x" in b:
            pointer.append(math.hypot(a["x"] - b["x"], a["y"] - b["y"]))
    return {
        "frames": len(gaze),
        "face_found_in_one_only": face_differs,
        "gaze_deg": _quantiles(gaze),
        "pointer_px": _quantiles(pointer),
        "face_px": _quantiles(face),
        "head_pose_deg": _quantiles(pose),
    }


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
        results["models"] = bench_models(assets_dir, paced_fps=realtime_fps)
        results["models_paced_fps"] = realtime_fps
    max_speed_reports: dict[str, list[dict[str, Any]]] = {}
    sync_results: dict[str, list[dict[str, Any]]] = {}
    for precision in precisions:
        samples: dict[str, list[dict[str, Any]]] = {"run-sync": [], "run-all": []}
        for i in range(repeat):
            order = ("run-sync", "run-all") if i % 2 == 0 else ("run-all", "run-sync")
            for command in order:
                args = ["--input", input_spec, "--max-speed", "--precision", precision]
                report = _run(command, args, results=True)
                samples[command].append(report)
                log.info("%s %s: %.1f fps, %.1f ms CPU/frame", precision, command, report["fps"],
                         report["cpu_ms_per_frame"])  # fmt: skip
        max_speed_reports[precision] = samples["run-all"]
        rows = [r.pop("results") for reports in samples.values() for r in reports]
        sync_results[precision] = rows[0]
        entry: dict[str, Any] = {"same_results": all(other == rows[0] for other in rows[1:])}
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
    if len(scale) > 1:
        results["scaling"] = scaling(input_spec, scale, repeat)
    if max_speed_reports.get("FP16"):
        results["transport_max_speed"] = _hops(max_speed_reports["FP16"])
    if len(precisions) > 1:
        results["agreement"] = precision_agreement(input_spec, precisions, sync_results)
    if realtime_fps > 0:
        results["realtime"] = {p: realtime(input_spec, assets_dir, realtime_fps, repeat, p) for p in precisions}
    results["targets"] = targets(results)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "bench.json").write_text(json.dumps(results, indent=1) + "\n")
    markdown = to_markdown(results)
    (out_dir / "bench.md").write_text(markdown)
    print(markdown)
    return results


HOPS = {  # the stage a message arrives at -> the link it came over
    "face_detection": "frames (capture -> face_detection)",
    "landmarks_headpose": "faces (face_detection -> landmarks_headpose)",
    "gaze": "eyes (landmarks_headpose -> gaze)",
    "pointer": "gaze (gaze -> pointer)",
}
FRAME_HOP = "face_detection"  # the one link that carries full frames (by slot on one host, pixels over tcp)


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
    from gazeflow.shared.config import INFER_STAGES

    reference = min(precisions, key=PRECISION_ORDER.index)
    runs: dict[str, Any] = {}
    for precision in sorted(precisions, key=PRECISION_ORDER.index):
        if precision == reference:
            continue
        runs[f"{precision}, every stage"] = agreement(sync_results[reference], sync_results[precision])
        for stage in INFER_STAGES:
            args = ["--input", input_spec, "--max-speed", "--precision", reference, "--precision",
                    f"{stage}={precision}"]  # fmt: skip
            rows = _run("run-sync", args, results=True)["results"]
            runs[f"{precision}, {stage} only"] = agreement(sync_results[reference], rows)
            log.info("%s on %s only: gaze %.2f deg p50 from %s", precision, stage,
                     runs[f"{precision}, {stage} only"]["gaze_deg"]["p50"], reference)  # fmt: skip
    return {"reference": reference, "runs": runs}


def _face_detection_alone_ms(assets_dir: str, precision: str, fps: float = 0.0) -> float:
    """One face-detection inference at a time (LATENCY hint), median ms: back to back (the
    benchmark_app method), or started fps times a second."""
    from gazeflow.models.catalog import FACE, ir_path

    from .model_bench import measure

    return measure(ir_path(assets_dir, FACE, precision), "LATENCY", 3.0, fps)["median_ms"]


def realtime(input_spec: str, assets_dir: str, fps: float, repeat: int, precision: str = "FP16") -> dict[str, Any]:
    """End-to-end latency at real-time pacing, each run between two measurements of face detection
    alone at the same precision (so that both see the same machine), and what the rest of the
    pipeline adds per frame."""
    rounds = []
    for _ in range(max(3, repeat | 1)):  # an odd number of runs, so that one is the middle
        before = _face_detection_alone_ms(assets_dir, precision)
        report = _run("run-all", ["--input", input_spec, "--realtime", "--fps", str(fps), "--precision", precision])
        after = _face_detection_alone_ms(assets_dir, precision)
        paced = _face_detection_alone_ms(assets_dir, precision, fps)
        timeline = report["timeline"]
        # per frame: end to end minus that frame's own face-detection service time (pre + infer + post)
        rest = [e - f for e, f in zip(timeline["e2e_ms"], timeline["service_ms"]["face_detection"], strict=True)]
        # and minus only its face-detection inference: what the pipeline adds to one inference
        added = [e - f for e, f in zip(timeline["e2e_ms"], timeline["infer_ms"]["face_detection"], strict=True)]
        rounds.append({
            "e2e_ms": report["e2e_ms"],
            "dropped": report["dropped"],
            "frames": report["frames"],
            "face_detection_alone_ms": round((before + after) / 2, 3),
            "face_detection_alone_paced_ms": paced,
            "face_detection_infer_in_pipeline_ms": report["stages"]["face_detection"]["infer_ms"],
            "rest_of_pipeline_ms": {"p50": round(statistics.median(rest), 3)},
            "added_to_face_inference_ms": {"p50": round(statistics.median(added), 3)},
            "report": report,
        })  # fmt: skip
        log.info("%s run-all --realtime --fps %g: e2e p50 %.1f ms, face detection alone %.1f ms, %d dropped",
                 precision, fps, report["e2e_ms"]["p50"], rounds[-1]["face_detection_alone_ms"],
                 report["dropped"])  # fmt: skip
    reports = [r.pop("report") for r in rounds]
    pick = sorted(rounds, key=lambda r: r["e2e_ms"]["p50"] - r["face_detection_alone_ms"])[len(rounds) // 2]
    return {"precision": precision, "fps": fps, **pick, "rounds": rounds, "transport": _hops(reports)}


def _default_realtime(r: dict[str, Any]) -> dict[str, Any] | None:
    """The real-time runs at the default precision (FP16), else the first benched."""
    runs = r.get("realtime", {})
    return runs.get("FP16") or next(iter(runs.values()), None)


def targets(r: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, each with what this run measured and a verdict."""
    out = []
    pipeline = r["pipeline"]
    if "FP16" in pipeline:
        ratio = pipeline["FP16"]["cpu_ratio"]
        out.append({"target": "CPU time per frame, run-all --max-speed / run-sync (FP16)",
                    "measured": f"{ratio:.2f}x", "limit": "<= 1.15x", "met": ratio <= 1.15})  # fmt: skip
    if "int8_all_vs_fp16_sync" in r:
        ratio = r["int8_all_vs_fp16_sync"]
        out.append({"target": "fps, run-all --max-speed FP16-INT8 / run-sync FP16",
                    "measured": f"{ratio:.2f}x", "limit": ">= 1.35x", "met": ratio >= 1.35})  # fmt: skip
    for precision, rt in r.get("realtime", {}).items():
        # Face detection alone is measured in separate seconds of a noisy machine, so the target also
        # has to hold frame by frame: end to end minus that frame's own face-detection inference.
        limit = rt["face_detection_alone_ms"] + 10
        e2e = rt["e2e_ms"]["p50"]
        added = rt["added_to_face_inference_ms"]["p50"]
        out.append({"target": f"end-to-end p50 at {rt['fps']:g} fps real-time, no frame dropped ({precision})",
                    "measured": f"{e2e:.1f} ms, {rt['dropped']} dropped; per frame, {added:.1f} ms more than "
                                "its own face-detection inference",
                    "limit": f"<= {limit:.1f} ms (face detection alone {rt['face_detection_alone_ms']:.1f} + 10); "
                             "<= 10 ms per frame",
                    "met": e2e <= limit and added <= 10 and rt["dropped"] == 0})  # fmt: skip
    rt = _default_realtime(r)
    if rt:
        hops = rt["transport"]
        small = {s: h["p95"] for s, h in hops.items() if s != FRAME_HOP}
        out.append({"target": f"transport p95, small messages (at {rt['fps']:g} fps)",
                    "measured": ", ".join(f"{HOPS[s].split()[0]} {v:.2f}" for s, v in small.items()) + " ms",
                    "limit": "< 1 ms each", "met": max(small.values()) < 1.0})  # fmt: skip
        frame = hops[FRAME_HOP]["p95"]
        out.append({"target": f"transport p95, frames (at {rt['fps']:g} fps)", "measured": f"{frame:.2f} ms",
                    "limit": "< 3 ms", "met": frame < 3.0})  # fmt: skip
    return out


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
        fps = r.get("models_paced_fps") or 0
        paced = f"median ms at {fps:g} fps" if fps else "paced ms"
        lines += [
            "Models (CPU; LATENCY: one request at a time, back to back"
            + (f" and started {fps:g} times a second" if fps else "")
            + "; THROUGHPUT: the optimal number in flight):",
            "",
            f"| model | precision/hint | load ms | first ms | median ms | {paced} | fps | requests |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for model, entry in r["models"].items():
            for key, m in entry["runs"].items():
                at_pace = f"{m['paced_ms']:.2f}" if "paced_ms" in m else "-"
                lines.append(
                    f"| {model} | {key} | {m['load_ms']:.0f} | {m['first_ms']:.1f} | {m['median_ms']:.2f} "
                    f"| {at_pace} | {m['fps']:.1f} | {m['requests']} |"
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
        "| CPU ratio | same results |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for precision, e in r["pipeline"].items():
        s, a = e["run-sync"], e["run-all"]
        same = {True: "yes", False: "NO"}.get(e.get("same_results"), "-")
        lines.append(
            f"| {precision} | {s['fps']:.1f} | {a['fps']:.1f} | {e['fps_ratio']:.2f}x | "
            f"{s['cpu_ms_per_frame']:.1f} | {a['cpu_ms_per_frame']:.1f} | {e['cpu_ratio']:.2f}x | {same} |"
        )
    lines += ["", "Same results: every run of that precision, run-sync and run-all, wrote the same per-frame "
              "results (face, landmarks, head pose, gaze, pointer) as the first run-sync."]  # fmt: skip
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
    if "agreement" in r:
        ag = r["agreement"]
        lines += ["", f"What a lower precision changes, frame by frame against {ag['reference']} (run-sync, "
                  "whole video; p50 / p95):", "",
                  "| precision | frames | face found in one only | face box px | head pose deg | gaze deg "
                  "| pointer px |", "|---|---|---|---|---|---|---|"]  # fmt: skip
        for label, a in ag["runs"].items():
            cells = " | ".join(f"{a[k]['p50']:.2f} / {a[k]['p95']:.2f}"
                               for k in ("face_px", "head_pose_deg", "gaze_deg"))  # fmt: skip
            lines.append(f"| {label} | {a['frames']} | {a['face_found_in_one_only']} | {cells} "
                         f"| {a['pointer_px']['p50']:.0f} / {a['pointer_px']['p95']:.0f} |")  # fmt: skip
    for precision, rt in r.get("realtime", {}).items():
        e2e = rt["e2e_ms"]
        lines += ["", f"{precision} run-all --realtime --fps {rt['fps']:g} (the middle of {len(rt['rounds'])} runs): "
                  f"end-to-end p50 {e2e['p50']:.1f} ms, p95 {e2e['p95']:.1f} ms, {rt['frames']} frames, "
                  f"{rt['dropped']} dropped; face detection alone ({precision}, LATENCY, measured before and after "
                  f"the run) {rt['face_detection_alone_ms']:.1f} ms back to back, "
                  f"{rt.get('face_detection_alone_paced_ms', 0):.1f} ms started {rt['fps']:g} times a second, "
                  "inside the pipeline "
                  f"{rt['face_detection_infer_in_pipeline_ms']['p50']:.1f} ms; the rest of the pipeline adds "
                  f"{rt['rest_of_pipeline_ms']['p50']:.1f} ms per frame (p50 of end to end minus the frame's own "
                  f"face-detection service time), {rt['added_to_face_inference_ms']['p50']:.1f} ms counting face "
                  "detection's pre- and post-processing"]  # fmt: skip
        rounds = rt["rounds"]
        if len(rounds) > 1:
            lines.append(
                f"(all {len(rounds)} runs, in order: end-to-end p50 "
                + " / ".join(f"{x['e2e_ms']['p50']:.1f}" for x in rounds)
                + " ms; face detection alone "
                + " / ".join(f"{x['face_detection_alone_ms']:.1f}" for x in rounds)
                + " ms; added per frame "
                + " / ".join(f"{x['added_to_face_inference_ms']['p50']:.1f}" for x in rounds)
                + " ms; dropped "
                + " / ".join(str(x["dropped"]) for x in rounds)
                + ")"
            )
    rt = _default_realtime(r)
    if rt:
        lines += [
            "",
            "Transport per hop, p50 / p95 ms:",
            "",
            f"| link | real-time ({rt['precision']}) | max-speed (FP16) |",
            "|---|---|---|",
        ]
        fast = r.get("transport_max_speed", {})
        for stage, name in HOPS.items():
            hop, ms = rt["transport"][stage], fast.get(stage)
            cell = f"{ms['p50']:.2f} / {ms['p95']:.2f}" if ms else "-"
            lines.append(f"| {name} | {hop['p50']:.2f} / {hop['p95']:.2f} | {cell} |")
    if r.get("targets"):
        lines += ["", "| target | measured | limit | verdict |", "|---|---|---|---|"]
        for t in r["targets"]:
            lines.append(f"| {t['target']} | {t['measured']} | {t['limit']} | {'met' if t['met'] else 'MISSED'} |")
    return "\n".join(lines) + "\n"
