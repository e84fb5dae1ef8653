"""gazeflow bench: pipeline figures as ratios measured in the same run.

Runs run-sync and run-all --max-speed on the same video, alternating, for each
precision asked, and a real-time run for end-to-end latency. Writes JSON and a
Markdown table (``bench_report.py``). Machines here are shared and noisy:
compare the ratios. The bench measures; what a figure should be is not part of
the product: a targets file (``--targets``, the project's is docs/targets.toml)
is read and each target gets a verdict.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from gazeflow.shared import registry
from gazeflow.shared.config import Config
from gazeflow.shared.errors import GazeflowError

from .bench_report import HOPS, load_targets, to_markdown, verdicts

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
    targets_file: Path | None = None,
    pointer: bool = True,
) -> dict[str, Any]:
    targets = load_targets(targets_file) if targets_file is not None else None  # a bad file: before measuring
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
    if pointer:
        results["pointer"] = pointer_steadiness(input_spec)
    if realtime_fps > 0:
        results["view"] = view_cost(input_spec, realtime_fps, repeat)
    results["eye_state"] = eye_state_cost(assets_dir)
    results["start"] = start_times(input_spec, repeat)
    results["tracking"] = tracking_table(input_spec, repeat, realtime_fps=30.0)
    results["execution_precision"] = execution_precision_table(input_spec)
    results["quantization"] = quantization_table(input_spec)
    results["profile"] = profile_stages(input_spec)
    if targets is not None:
        results["targets"] = verdicts(results, targets)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "bench.json").write_text(json.dumps(results, indent=1) + "\n")
    markdown = to_markdown(results)
    (out_dir / "bench.md").write_text(markdown)
    print(markdown)
    return results


FRAME_HOP = registry.default_chain()[1]  # the one link that carries full frames (a slot on one host, pixels over tcp)


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
    hops = _hops(reports)
    return {
        "precision": precision, "fps": fps, **pick, "rounds": rounds, "transport": hops,
        "e2e_over_face_alone_ms": round(pick["e2e_ms"]["p50"] - pick["face_detection_alone_ms"], 3),
        "small_hop_p95_max_ms": max(h["p95"] for stage, h in hops.items() if stage != FRAME_HOP),
        "frame_hop_p95_ms": hops[FRAME_HOP]["p95"],
    }  # fmt: skip


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


DEMO_TARGETS = Path(__file__).resolve().parents[1] / "docs" / "demo-targets.json"  # in a checkout


def _edge_share(rows: list[dict[str, Any]], width: int = 1920, height: int = 1080) -> float:
    points = [r["pointer"] for r in rows if r.get("pointer")]
    near = sum(min(p["x"], p["y"], width - 1 - p["x"], height - 1 - p["y"]) < 5 for p in points)
    return round(near / max(1, len(points)), 3)


def pointer_steadiness(input_spec: str) -> dict[str, Any]:
    """The pointer on a real-time run: how often it sits at a screen edge, uncalibrated and (on the demo,
    fitted from docs/demo-targets.json) calibrated; each filter's jitter in fixations and lag at jumps, on
    the raw points of the same run (services/pointer/steadiness.py)."""
    from gazeflow.shared.config import PointerConfig

    from .pointer.steadiness import compare

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "XDG_CONFIG_HOME": home}
        profile = ""
        if input_spec == "demo" and DEMO_TARGETS.exists():
            cmd = [sys.executable, "-m", "gazeflow.services.cli", "--log-level", "WARNING", "calibrate", "--input",
                   "demo", "--targets", str(DEMO_TARGETS), "--profile", "bench", "--log-interval", "0"]  # fmt: skip
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
            if proc.returncode != 0:
                raise GazeflowError(f"bench: calibrate failed: {proc.stderr.strip().splitlines()[-1:]}")
            profile = "bench"
            saved = json.loads((Path(home) / "gazeflow" / "profiles" / "bench.json").read_text())
            out["calibration"] = {"used": saved["used"], **saved["validation"]}
        for label, name in (("uncalibrated", ""), ("calibrated", profile)):
            if label == "calibrated" and not name:
                continue
            with tempfile.TemporaryDirectory() as tmp:
                lines = Path(tmp) / "r.jsonl"
                cmd = [sys.executable, "-m", "gazeflow.services.cli", "--log-level", "WARNING", "run-all",
                       "--input", input_spec, "--realtime", "--pointer", "null", "--filter", "none",
                       "--profile", name, "--log-interval", "0", "--results", str(lines)]  # fmt: skip
                proc = subprocess.run(cmd, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
                if proc.returncode != 0:
                    raise GazeflowError(f"bench: run-all failed: {proc.stderr.strip().splitlines()[-1:]}")
                rows = [json.loads(line) for line in lines.read_text().splitlines()]
            out[label] = {"at_edge": _edge_share(rows)}
            fps = next((1 / (b["t"] - a["t"]) for a, b in itertools.pairwise(rows) if b["t"] > a["t"]), 30.0)
            out[label]["filters"] = compare(rows, PointerConfig(), fps)
            log.info("pointer, %s: %.0f%% at an edge; One Euro jitter %.2f of none, lag %.1f frames", label,
                     100 * out[label]["at_edge"], out[label]["filters"]["one-euro"]["jitter_vs_none"],
                     out[label]["filters"]["one-euro"]["lag_frames_p50"])  # fmt: skip
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
                report = _run("run-all", ["--input", input_spec, "--realtime", "--fps", str(fps), *extra])
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


def _first_result(input_spec: str, cache_home: str) -> dict[str, float]:
    """Seconds from starting run-all to its first result line and to its first pointer move."""
    import time

    with tempfile.TemporaryDirectory() as tmp:
        lines = Path(tmp) / "r.jsonl"
        env = {**os.environ, "XDG_CACHE_HOME": cache_home}
        cmd = [sys.executable, "-m", "gazeflow.services.cli", "--log-level", "WARNING", "run-all", "--input",
               input_spec, "--loop", "--pointer", "null", "--log-interval", "0", "--results", str(lines)]  # fmt: skip
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


def _videos(input_spec: str, tmp: Path) -> dict[str, str]:
    """The input and, for the demo, two made from it: half the resolution, and a small face (the half-size
    picture in the middle of a full-size black frame)."""
    import cv2
    import numpy as np

    out = {input_spec: input_spec}
    if input_spec != "demo":
        return out
    from gazeflow.services.capture.source import resolve_input
    from gazeflow.shared.config import default_assets_dir

    cap = cv2.VideoCapture(resolve_input("demo", default_assets_dir()))
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    half, small = tmp / "demo-960x540.avi", tmp / "demo-small-face.avi"
    writers = {half: cv2.VideoWriter(str(half), cv2.VideoWriter_fourcc(*"MJPG"), fps, (960, 540)),
               small: cv2.VideoWriter(str(small), cv2.VideoWriter_fourcc(*"MJPG"), fps, (1920, 1080))}  # fmt: skip
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        reduced = cv2.resize(frame, (960, 540), interpolation=cv2.INTER_AREA)
        writers[half].write(reduced)
        canvas = np.zeros_like(frame)
        canvas[270:810, 480:1440] = reduced
        writers[small].write(canvas)
    cap.release()
    for w in writers.values():
        w.release()
    out["demo at 960x540"] = str(half)
    out["demo, small face"] = str(small)
    return out


def _gaze_change(reference: list[dict[str, Any]], rows: list[dict[str, Any]]) -> dict[str, float]:
    ref = {r["frame"]: r for r in reference}
    d = []
    for r in rows:
        a, b = ref.get(r["frame"], {}).get("gaze"), r.get("gaze")
        if a and b:
            d.append(math.degrees(math.acos(max(-1.0, min(1.0, sum(x * y for x, y in zip(a, b, strict=True)))))))
    d.sort()
    return {"median_deg": round(statistics.median(d), 2) if d else 0.0,
            "p95_deg": round(d[min(len(d) - 1, int(0.95 * len(d)))], 2) if d else 0.0}  # fmt: skip


def tracking_table(
    input_spec: str, repeat: int, ns: tuple[int, ...] = (2, 3, 5, 8), realtime_fps: float = 30.0
) -> dict[str, Any]:
    """Detecting every Nth frame against every frame, per video: frames with a face, how far the gaze moves
    (median / p95 of the angle) against the noise floor of a box moved by 0.5% of its side, the detector's
    share, fps and CPU per frame (run-sync: the same results as run-all, one frame at a time); then the
    targets: run-all --max-speed with tracking against run-sync detecting every frame, and a real-time run
    at 30 fps with and without tracking (end to end, cores used, drops)."""
    out: dict[str, Any] = {"videos": {}}
    with tempfile.TemporaryDirectory() as tmp, tempfile.NamedTemporaryFile("w", suffix=".toml") as shift:
        shift.write("box_shift = 0.005\ndetect_every = 1\n")
        shift.flush()
        for label, video in _videos(input_spec, Path(tmp)).items():
            every = _run("run-sync", ["--input", video, "--max-speed", "--detect-every", "1"], results=True)
            reference = every.pop("results")
            floor = _run("run-sync", ["--config", shift.name, "--input", video, "--max-speed"], results=True)
            rows: dict[str, Any] = {"floor (box moved 0.5%)": _gaze_change(reference, floor.pop("results"))}
            entry = {"frames": every["frames"], "faces_every_frame": every["frames_with_face"], "rows": rows}
            for n in ns:
                report = _run("run-sync", ["--input", video, "--max-speed", "--detect-every", str(n)], results=True)
                fd = report["stages"]["face_detection"]
                runs = fd.get("detector_runs", report["frames"])
                rows[f"N={n}"] = {
                    **_gaze_change(reference, report.pop("results")), "faces": report["frames_with_face"],
                    "detector_share": round(runs / max(report["frames"], 1), 3), "fps": report["fps"],
                    "cpu_ms_per_frame": report["cpu_ms_per_frame"],
                    "lost": report["stages"]["landmarks_headpose"].get("tracking_lost", 0),
                }  # fmt: skip
            fl = rows["floor (box moved 0.5%)"]
            within = [n for n in ns if rows[f"N={n}"]["median_deg"] <= fl["median_deg"]
                      and rows[f"N={n}"]["p95_deg"] <= fl["p95_deg"]]  # fmt: skip
            entry["largest_n_within_floor"] = max(within) if within else 1
            out["videos"][label] = entry
            log.info("tracking, %s: largest N within the floor %d", label, entry["largest_n_within_floor"])
    out["default_n"] = Config().detect_every
    out["default_within_floor_on_every_video"] = all(
        v["largest_n_within_floor"] >= out["default_n"] for v in out["videos"].values()
    )
    sync_every = [
        _run("run-sync", ["--input", input_spec, "--max-speed", "--detect-every", "1"]) for _ in range(repeat)
    ]
    all_tracking = [_run("run-all", ["--input", input_spec, "--max-speed"]) for _ in range(repeat)]
    out["max_speed"] = {
        "run_sync_every_frame_fps": statistics.median(r["fps"] for r in sync_every),
        "run_all_tracking_fps": statistics.median(r["fps"] for r in all_tracking),
        "run_sync_every_frame_cpu_ms": statistics.median(r["cpu_ms_per_frame"] for r in sync_every),
        "run_all_tracking_cpu_ms": statistics.median(r["cpu_ms_per_frame"] for r in all_tracking),
    }
    m = out["max_speed"]
    m["fps_ratio"] = round(m["run_all_tracking_fps"] / m["run_sync_every_frame_fps"], 3)
    m["cpu_ratio"] = round(m["run_all_tracking_cpu_ms"] / m["run_sync_every_frame_cpu_ms"], 3)
    live: dict[str, list[dict[str, Any]]] = {"tracking": [], "every frame": []}
    for i in range(max(1, repeat)):
        for label in ("tracking", "every frame") if i % 2 == 0 else ("every frame", "tracking"):
            n = str(Config().detect_every) if label == "tracking" else "1"
            live[label].append(_run("run-all", ["--input", input_spec, "--realtime", "--fps", str(realtime_fps),
                                                "--detect-every", n]))  # fmt: skip
    rt = {label: {"e2e_p50_ms": statistics.median(r["e2e_ms"]["p50"] for r in rs),
                  "cores": statistics.median(r["cores"] for r in rs),
                  "dropped": max(r["dropped"] for r in rs)} for label, rs in live.items()}  # fmt: skip
    rt["e2e_ratio"] = round(rt["tracking"]["e2e_p50_ms"] / rt["every frame"]["e2e_p50_ms"], 3)
    rt["cores_ratio"] = round(rt["tracking"]["cores"] / rt["every frame"]["cores"], 3)
    rt["fps"] = realtime_fps
    out["realtime"] = rt
    return out


def execution_precision_table(input_spec: str) -> dict[str, Any]:
    """What each execution precision (INFERENCE_PRECISION_HINT) costs in results and saves in time, against
    f32: run-sync at max speed, every frame detected (so that only the precision differs)."""
    runs = {}
    for label in ("f32", "bf16", "f16", "default"):
        extra = [] if label == "default" else ["--inference-precision", label]
        try:
            runs[label] = _run("run-sync", ["--input", input_spec, "--max-speed", "--detect-every", "1", *extra],
                               results=True)  # fmt: skip
        except GazeflowError as exc:  # a precision this CPU cannot run
            runs[label] = {"error": str(exc)}
    reference = runs["f32"].get("results", [])
    out: dict[str, Any] = {}
    for label, report in runs.items():
        if "error" in report:
            out[label] = {"error": report["error"]}
            continue
        out[label] = {"fps": report["fps"], "cpu_ms_per_frame": report["cpu_ms_per_frame"],
                      "used": sorted(set((report.get("inference_precision") or {}).values())),
                      "gaze_vs_f32": _gaze_change(reference, report["results"])}  # fmt: skip
    log.info("execution precision: %s", {k: v.get("fps") for k, v in out.items()})
    return out


KINDS = (("inference", ("openvino",)), ("OpenCV", ("cv2",)), ("ZeroMQ/msgpack", ("zmq", "msgpack")))


def profile_stages(input_spec: str, seconds: float = 10.0, fps: float = 30.0) -> dict[str, Any]:
    """A sampling profile (py-spy) of each stage process of a live run at ``fps``: where its CPU goes, split
    into inference, OpenCV, ZeroMQ/msgpack and our own Python, with its busiest functions."""
    import shutil
    import time

    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        return {"skipped": "py-spy is not installed (pip install py-spy)"}
    out: dict[str, Any] = {}
    cmd = [sys.executable, "-m", "gazeflow.services.cli", "--log-level", "WARNING", "run-all", "--input", input_spec,
           "--loop", "--realtime", "--fps", str(fps), "--pointer", "null", "--log-interval", "0"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(8)  # models compiled, frames flowing
        stages = {}
        for child in Path("/proc").glob("[0-9]*"):
            try:
                title = (child / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                ppid = (child / "stat").read_text().rsplit(")", 1)[1].split()[1]  # the name may hold spaces
                if ppid == str(proc.pid) and "stage" in title:
                    stages[title.split("stage ", 1)[1].split()[0]] = child.name
            except (OSError, IndexError):
                continue
        before = {name: _thread_cpu(pid) for name, pid in stages.items()}
        with tempfile.TemporaryDirectory() as tmp:
            spies = {name: subprocess.Popen([spy, "record", "--pid", pid, "--duration", str(int(seconds)), "--rate",
                                             "200", "--format", "raw", "--nonblocking", "--output",
                                             str(Path(tmp) / f"{name}.txt")],
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                     for name, pid in stages.items()}  # fmt: skip
            for p in spies.values():
                p.wait(seconds + 60)
            for name, pid in stages.items():
                (main0, all0), (main1, all1) = before[name], _thread_cpu(pid)
                out[name] = _classify(Path(tmp) / f"{name}.txt", main1 - main0, all1 - all0)
    finally:
        proc.send_signal(2)
        proc.wait(30)
    return out


def _thread_cpu(pid: str) -> tuple[float, float]:
    """CPU seconds of a process's main (Python) thread and of all its threads, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")

    def cpu(stat: Path) -> float:
        fields = stat.read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / tick

    try:
        main = cpu(Path(f"/proc/{pid}/task/{pid}/stat"))
        total = sum(cpu(t / "stat") for t in Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return 0.0, 0.0
    return main, total


def _classify(path: Path, main_cpu: float = 0.0, all_cpu: float = 0.0) -> dict[str, Any]:
    """Collapsed stacks ('frame;frame;... count') of the Python thread -> share per kind and the top own
    functions. py-spy sees Python threads only: the CPU of the others (OpenVINO's inference threads, ZeroMQ's
    I/O thread) is counted as inference, from /proc."""
    counts: dict[str, int] = {"inference": 0, "OpenCV": 0, "ZeroMQ/msgpack": 0, "our Python": 0}
    functions: dict[str, int] = {}
    total = 0
    text = path.read_text() if path.exists() else ""
    for line in text.splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        k = int(n)
        total += k
        frames = stack.split(";")
        kind = "our Python"
        for name, needles in KINDS:
            if any(any(needle in f for needle in needles) for f in frames):
                kind = name
                break
        counts[kind] += k
        own = [f for f in frames if "gazeflow" in f or "/services/" in f or "/shared/" in f]
        if own and kind == "our Python":
            functions[own[-1].split(" (")[0]] = functions.get(own[-1].split(" (")[0], 0) + k
    top = sorted(functions.items(), key=lambda kv: -kv[1])[:5]
    main = main_cpu / all_cpu if all_cpu else 1.0  # the Python thread's part of the process's CPU
    share = {k: main * v / total if total else 0.0 for k, v in counts.items()}
    share["native threads"] = 1 - main  # OpenVINO's inference threads, FFmpeg's decoding, ZeroMQ's I/O
    return {"samples": total, "cpu_s": round(all_cpu, 2), "share": {k: round(v, 3) for k, v in share.items()},
            "top_own": [[name, round(main * c / total, 3)] for name, c in top] if total else []}  # fmt: skip


def _held_out_change(reference: list[dict[str, Any]], rows: list[dict[str, Any]], start: int) -> dict[str, Any]:
    """How far face box (px), head pose (deg), gaze (deg) and pointer (px) move from the reference on the
    frames from ``start`` on (median / p95)."""
    ref = {r["frame"]: r for r in reference}

    def q(values: list[float]) -> list[float]:
        values = sorted(values)
        return [round(statistics.median(values), 2), round(values[min(len(values) - 1, int(0.95 * len(values)))], 2)] if values else [0.0, 0.0]  # noqa: E501  # fmt: skip

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
    gaze = _gaze_change([x for x in reference if x["frame"] >= start], [x for x in rows if x["frame"] >= start])
    return {"face_px": q(face), "head_pose_deg": q(pose), "gaze_deg": [gaze["median_deg"], gaze["p95_deg"]],
            "pointer_px": q(pointer)}  # fmt: skip


def quantization_table(input_spec: str) -> dict[str, Any]:
    """'gazeflow quantize' on the first 70% of the video, then FP16, the published FP16-INT8 and local-INT8
    compared on the held-out rest: speed, size on disk, and how far the results move from FP16."""
    from gazeflow.models.catalog import MODELS, ir_path
    from gazeflow.shared.config import default_assets_dir

    from .capture.source import frame_count
    from .quantize import CALIBRATE_SHARE, latency_ms

    assets = default_assets_dir()
    with tempfile.TemporaryDirectory() as data_home:
        env = {**os.environ, "XDG_DATA_HOME": data_home}
        cmd = [sys.executable, "-m", "gazeflow.services.cli", "--log-level", "WARNING", "quantize", "--input",
               input_spec]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            return {"error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
        old = os.environ.get("XDG_DATA_HOME")
        os.environ["XDG_DATA_HOME"] = data_home
        try:
            runs = {p: _run("run-sync", ["--input", input_spec, "--max-speed", "--detect-every", "1", "--precision", p],
                            results=True) for p in ("FP16", "FP16-INT8", "local-INT8")}  # fmt: skip
            sizes = {p: round(sum(ir_path(assets, m, p).with_suffix(".bin").stat().st_size for m in MODELS) / 1e6, 2)
                     for p in runs}  # fmt: skip
            timed = latency_ms([ir_path(assets, m, p) for p in runs for m in MODELS])  # alternating, all at once
            model_ms = {p: round(sum(timed[i * len(MODELS) : (i + 1) * len(MODELS)]), 2) for i, p in enumerate(runs)}
        finally:
            if old is None:
                os.environ.pop("XDG_DATA_HOME", None)
            else:
                os.environ["XDG_DATA_HOME"] = old
    from gazeflow.services.capture.source import resolve_input

    start = int(frame_count(resolve_input(input_spec, assets)) * CALIBRATE_SHARE)
    reference = runs["FP16"]["results"]
    said = [line for line in proc.stdout.splitlines() if line.startswith(("wrote", "kept"))]  # not its progress
    out: dict[str, Any] = {"held_out_from_frame": start, "quantize_said": said}
    for p, report in runs.items():
        out[p] = {"fps": report["fps"], "cpu_ms_per_frame": report["cpu_ms_per_frame"], "size_mb": sizes[p],
                  "model_ms": model_ms[p],
                  "vs_fp16": _held_out_change(reference, report["results"], start)}  # fmt: skip
    published, local = out["FP16-INT8"]["vs_fp16"]["gaze_deg"][0], out["local-INT8"]["vs_fp16"]["gaze_deg"][0]
    out["gaze_vs_published"] = round(local / published, 3) if published else 0.0
    # speed: the models' inference time per frame (one request at a time, alternating timings): the pipeline's
    # fps, in the table too, moves by 10% from run to run here, more than what the precision changes
    out["speed_vs_published"] = round(out["FP16-INT8"]["model_ms"] / max(out["local-INT8"]["model_ms"], 1e-9), 3)
    return out
