"""Tracking's figures: how much the gaze moves against detecting every frame, on three videos, and what it saves."""

from __future__ import annotations

import logging
import statistics
import tempfile
from pathlib import Path
from typing import Any

from .common import DETECTOR, TRACKER, gaze_change, run_command

log = logging.getLogger("gazeflow.bench")


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
    writers = {
        half: cv2.VideoWriter(str(half), cv2.VideoWriter_fourcc(*"MJPG"), fps, (960, 540)),
        small: cv2.VideoWriter(str(small), cv2.VideoWriter_fourcc(*"MJPG"), fps, (1920, 1080)),
    }
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
        shift.write(f"detect_every = 1\n[{DETECTOR}]\nbox_shift = 0.005\n")
        shift.flush()
        for label, video in _videos(input_spec, Path(tmp)).items():
            out["videos"][label] = _video(video, shift.name, ns)
            log.info(
                "tracking, %s: largest N within the floor %d", label, out["videos"][label]["largest_n_within_floor"]
            )
    out["default_n"] = default_detect_every()
    out["default_within_floor_on_every_video"] = all(
        v["largest_n_within_floor"] >= out["default_n"] for v in out["videos"].values()
    )
    out["max_speed"] = _max_speed(input_spec, repeat)
    out["realtime"] = _realtime(input_spec, repeat, realtime_fps)
    if input_spec == "demo":  # live means a camera: the same frames as a camera sends them with capture's defaults
        out["realtime_camera"] = _realtime_camera(repeat, realtime_fps)
    return out


def _realtime_camera(repeat: int, fps: float) -> dict[str, Any]:
    """The real-time comparison on the demo made into what capture asks a camera for (MJPEG at
    ``capture.camera_size``): a webcam's frame costs less to decode than a 1080p H.264 one."""
    from gazeflow.services.capture.settings import CaptureConfig
    from gazeflow.services.capture.source import resolve_input
    from gazeflow.shared.config import default_assets_dir

    from .decode import write_mjpeg

    size = CaptureConfig().camera_size
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / f"demo-mjpeg-{size[0]}x{size[1]}.avi"
        write_mjpeg(resolve_input("demo", default_assets_dir()), video, size, frames=0)
        out = _realtime(str(video), repeat, fps)
    out["input"] = f"the demo as MJPEG {size[0]}x{size[1]}"
    return out


def _video(video: str, shifted: str, ns: tuple[int, ...]) -> dict[str, Any]:
    """One video: every N against every frame, and the floor (every frame with the box moved 0.5%)."""
    every = run_command("run-sync", ["--input", video, "--max-speed", "--detect-every", "1"], results=True)
    reference = every.pop("results")
    floor = run_command("run-sync", ["--config", shifted, "--input", video, "--max-speed"], results=True)
    fl = gaze_change(reference, floor.pop("results"))
    rows: dict[str, Any] = {"floor (box moved 0.5%)": fl}
    for n in ns:
        report = run_command("run-sync", ["--input", video, "--max-speed", "--detect-every", str(n)], results=True)
        runs = report["stages"][DETECTOR].get("detector_runs", report["frames"])
        rows[f"N={n}"] = {
            **gaze_change(reference, report.pop("results")),
            "faces": report["frames_with_face"],
            "detector_share": round(runs / max(report["frames"], 1), 3),
            "fps": report["fps"],
            "cpu_ms_per_frame": report["cpu_ms_per_frame"],
            "lost": report["stages"][TRACKER].get("tracking_lost", 0),
        }
    within = [
        n for n in ns if rows[f"N={n}"]["median_deg"] <= fl["median_deg"] and rows[f"N={n}"]["p95_deg"] <= fl["p95_deg"]
    ]
    return {
        "frames": every["frames"],
        "faces_every_frame": every["frames_with_face"],
        "rows": rows,
        "largest_n_within_floor": max(within) if within else 1,
    }


def _max_speed(input_spec: str, repeat: int) -> dict[str, Any]:
    """run-all --max-speed with tracking against run-sync detecting every frame."""
    every = [
        run_command("run-sync", ["--input", input_spec, "--max-speed", "--detect-every", "1"]) for _ in range(repeat)
    ]
    tracking = [run_command("run-all", ["--input", input_spec, "--max-speed"]) for _ in range(repeat)]
    m = {
        "run_sync_every_frame_fps": statistics.median(r["fps"] for r in every),
        "run_all_tracking_fps": statistics.median(r["fps"] for r in tracking),
        "run_sync_every_frame_cpu_ms": statistics.median(r["cpu_ms_per_frame"] for r in every),
        "run_all_tracking_cpu_ms": statistics.median(r["cpu_ms_per_frame"] for r in tracking),
    }
    m["fps_ratio"] = round(m["run_all_tracking_fps"] / m["run_sync_every_frame_fps"], 3)
    m["cpu_ratio"] = round(m["run_all_tracking_cpu_ms"] / m["run_sync_every_frame_cpu_ms"], 3)
    return m


def _realtime(input_spec: str, repeat: int, fps: float) -> dict[str, Any]:
    """run-all at a real-time rate with and without tracking, alternating: end to end, cores, drops."""
    live: dict[str, list[dict[str, Any]]] = {"tracking": [], "every frame": []}
    for i in range(max(1, repeat)):
        for label in ("tracking", "every frame") if i % 2 == 0 else ("every frame", "tracking"):
            n = str(default_detect_every()) if label == "tracking" else "1"
            args = ["--input", input_spec, "--realtime", "--fps", str(fps), "--detect-every", n]
            live[label].append(run_command("run-all", args))
    rt: dict[str, Any] = {
        label: {
            "e2e_p50_ms": statistics.median(r["e2e_ms"]["p50"] for r in rs),
            "cores": statistics.median(r["cores"] for r in rs),
            "dropped": max(r["dropped"] for r in rs),
        }
        for label, rs in live.items()
    }
    rt["e2e_ratio"] = round(rt["tracking"]["e2e_p50_ms"] / rt["every frame"]["e2e_p50_ms"], 3)
    rt["cores_ratio"] = round(rt["tracking"]["cores"] / rt["every frame"]["cores"], 3)
    rt["fps"] = fps
    return rt


def default_detect_every() -> int:
    from gazeflow.shared.config import Config

    return Config().detect_every
