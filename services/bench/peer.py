"""The peer a user would compare us with: EyeTrax (MediaPipe's face mesh with irises, features rotated into
the head's frame, ridge regression), its own feature extraction on every frame of the same video, on the
same machine. It runs in its own environment (``.bench-peer/``, made once from the package index: eyetrax
0.3.1 with mediapipe 0.10.21, whose wheel ships the face mesh; mediapipe pins numpy below 2), so it never
changes ours. No package index: the peer is left out, and the bench says so."""

from __future__ import annotations

import json
import logging
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from ..capture.source import resolve_input
from .common import run_command

log = logging.getLogger("gazeflow.bench")
HOME = Path(".bench-peer")
PACKAGES = ["eyetrax==0.3.1", "mediapipe==0.10.21"]
# its own loop: read a frame, mark it read-only as eyetrax 0.4 does before the face mesh, extract the features
LOOP = """
import json, sys, time
import cv2
from eyetrax.gaze import GazeEstimator

estimator = GazeEstimator()
cap = cv2.VideoCapture(sys.argv[1])
frames = faces = 0
wall0, cpu0 = time.perf_counter(), time.process_time()
while True:
    ok, frame = cap.read()
    if not ok:
        break
    frame.flags.writeable = False
    features, _blink = estimator.extract_features(frame)
    frames += 1
    faces += features is not None
wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
print(json.dumps({"frames": frames, "faces": faces, "fps": round(frames / wall, 1),
                  "cpu_ms_per_frame": round(cpu * 1e3 / max(frames, 1), 2)}))
"""


def _python() -> Path | None:
    """The peer's interpreter, its environment made on first use; None when it cannot be made."""
    python = HOME / "bin" / "python"
    if python.exists():
        return python
    try:
        subprocess.run([sys.executable, "-m", "venv", str(HOME)], check=True, capture_output=True, timeout=120)
        install = [str(python), "-m", "pip", "install", "-q", *PACKAGES]
        subprocess.run(install, check=True, capture_output=True, timeout=900)
    except (subprocess.SubprocessError, OSError) as exc:
        log.warning("bench: the EyeTrax peer could not be installed (%s): it is left out", exc)
        return None
    return python


def peer_cost(input_spec: str, assets_dir: str, repeat: int = 1) -> dict[str, Any]:
    """EyeTrax's fps and CPU per frame on the video (the median of ``repeat`` runs), each run next to one of
    run-all at max speed with the defaults, in alternating order: our CPU a frame over the peer's is the median
    of the rounds' ratios (this machine's load moves by more than the difference between the two)."""
    python = _python()
    if python is None:
        return {"skipped": "no package index to install eyetrax and mediapipe from"}
    video = resolve_input(input_spec, assets_dir)
    runs, ours = [], []
    with tempfile.NamedTemporaryFile("w", suffix=".py") as script:
        script.write(LOOP)
        script.flush()
        for i in range(max(repeat, 1)):
            for who in ("peer", "ours") if i % 2 == 0 else ("ours", "peer"):
                if who == "ours":
                    ours.append(run_command("run-all", ["--input", input_spec, "--max-speed"]))
                    continue
                cmd = [str(python), script.name, video]
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
                if proc.returncode != 0:
                    log.warning("bench: the EyeTrax peer failed: %s", proc.stderr.strip()[-300:])
                    return {"skipped": "the peer failed"}
                runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    cpu = [o["cpu_ms_per_frame"] / r["cpu_ms_per_frame"] for o, r in zip(ours, runs, strict=True)]
    fps = [o["fps"] / r["fps"] for o, r in zip(ours, runs, strict=True)]
    middle = sorted(runs, key=lambda r: r["cpu_ms_per_frame"])[len(runs) // 2]
    out = {
        "name": "eyetrax 0.3.1 (mediapipe 0.10.21)",
        **middle,
        "ours_cpu_ms_per_frame": statistics.median(o["cpu_ms_per_frame"] for o in ours),
        "ours_fps": statistics.median(o["fps"] for o in ours),
        "rounds_cpu_vs_peer": [round(c, 3) for c in cpu],
        "ours_cpu_vs_peer": round(statistics.median(cpu), 3),
        "ours_fps_vs_peer": round(statistics.median(fps), 3),
    }
    log.info(
        "peer: %s, %.1f fps, %.2f ms CPU a frame; run-all beside it %.2f ms (%.3fx, rounds %s)",
        out["name"],
        out["fps"],
        out["cpu_ms_per_frame"],
        out["ours_cpu_ms_per_frame"],
        out["ours_cpu_vs_peer"],
        out["rounds_cpu_vs_peer"],
    )
    return out
