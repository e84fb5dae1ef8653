"""What every part of the bench shares: one gazeflow run in a child process, the agreement of two
runs' results, the machine."""

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
from pathlib import Path
from typing import Any

from gazeflow.shared import registry
from gazeflow.shared.errors import GazeflowError

log = logging.getLogger("gazeflow.bench")
# the stages at the two ends of tracking, as their manifests say: the detector (the costly model)
DETECTOR = registry.with_tracking(registry.default_chain(), "detector")
TRACKER = registry.with_tracking(registry.default_chain(), "tracker")


def gazeflow(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The gazeflow command in a child process, as a user runs it (warnings only); one line if it fails."""
    cmd = [sys.executable, "-m", "gazeflow.services.cli", "--log-level", "WARNING", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, env=env)
    if proc.returncode != 0:
        raise GazeflowError(f"bench: {args[0]} failed: {proc.stderr.strip().splitlines()[-1:]}")
    return proc


def run_command(
    command: str, args: list[str], results: bool = False, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """One pipeline run in a child process (null pointer): its metrics report, with its per-frame results
    under ``"results"`` when asked (every run that is compared writes them, so that all pay the same)."""
    with tempfile.TemporaryDirectory() as tmp:
        metrics, lines = Path(tmp) / "m.json", Path(tmp) / "r.jsonl"
        extra = ["--pointer", "null", "--log-interval", "0", "--metrics", str(metrics)]
        gazeflow(command, *args, *extra, *(["--results", str(lines)] if results else []), env=env)
        report = json.loads(metrics.read_text())
        if results:
            report["results"] = [json.loads(line) for line in lines.read_text().splitlines()]
        return report


def quantiles(values: list[float]) -> dict[str, float]:
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
        "gaze_deg": quantiles(gaze),
        "pointer_px": quantiles(pointer),
        "face_px": quantiles(face),
        "head_pose_deg": quantiles(pose),
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


def gaze_change(reference: list[dict[str, Any]], rows: list[dict[str, Any]]) -> dict[str, float]:
    ref = {r["frame"]: r for r in reference}
    d = []
    for r in rows:
        a, b = ref.get(r["frame"], {}).get("gaze"), r.get("gaze")
        if a and b:
            d.append(math.degrees(math.acos(max(-1.0, min(1.0, sum(x * y for x, y in zip(a, b, strict=True)))))))
    d.sort()
    return {
        "median_deg": round(statistics.median(d), 2) if d else 0.0,
        "p95_deg": round(d[min(len(d) - 1, int(0.95 * len(d)))], 2) if d else 0.0,
    }
