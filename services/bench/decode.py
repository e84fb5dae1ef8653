"""What decoding a frame costs capture: the demo (1080p H.264) against what a webcam sends (MJPEG at 640x480
and 1280x720, made here from the demo's frames with OpenCV's writer), on one decode thread as capture reads a
camera, milliseconds per frame (median of the frames)."""

from __future__ import annotations

import itertools
import logging
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2

from ..capture.source import resolve_input

log = logging.getLogger("gazeflow.bench")
FRAMES = 150
SIZES = ((640, 480), (1280, 720))


def decode_cost(input_spec: str, assets_dir: str) -> dict[str, Any]:
    video = resolve_input(input_spec, assets_dir)
    out: dict[str, Any] = {"frames": FRAMES, "threads": 1, "ms_per_frame": {}}
    with tempfile.TemporaryDirectory() as tmp:
        files = {"demo (H.264)": (video, _size(video))}
        for size in SIZES:
            path = Path(tmp) / f"mjpeg-{size[0]}x{size[1]}.avi"
            write_mjpeg(video, path, size)
            files[f"MJPEG {size[0]}x{size[1]}"] = (str(path), size)
        for label, (path, size) in files.items():
            ms = _decode_ms(path)
            out["ms_per_frame"][label] = {"size": list(size), "p50": ms}
            log.info("decode: %s %dx%d, %.2f ms a frame", label, size[0], size[1], ms)
    return out


def _size(path: str) -> tuple[int, int]:
    cap = cv2.VideoCapture(path)
    try:
        return int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    finally:
        cap.release()


def write_mjpeg(video: str, path: Path, size: tuple[int, int], frames: int = FRAMES) -> None:
    """The video's first ``frames`` frames (0: all) as a webcam sends them: MJPEG at ``size``, 30 fps."""
    cap = cv2.VideoCapture(video)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 30.0, size)
    try:
        for _ in itertools.count() if frames == 0 else range(frames):
            ok, frame = cap.read()
            if not ok:
                break
            writer.write(cv2.resize(frame, size, interpolation=cv2.INTER_AREA))
    finally:
        writer.release()
        cap.release()


def _decode_ms(path: str) -> float:
    cap = cv2.VideoCapture(path, cv2.CAP_ANY, [cv2.CAP_PROP_N_THREADS, 1])
    times = []
    try:
        while True:
            t0 = time.perf_counter()
            ok = cap.grab() and cap.retrieve()[0]
            if not ok:
                break
            times.append((time.perf_counter() - t0) * 1e3)
    finally:
        cap.release()
    return round(statistics.median(times), 3) if times else 0.0
