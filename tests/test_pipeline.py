"""The five processes on the demo video with the real models, compared with run-sync."""

from __future__ import annotations

import json

import pytest

from conftest import chain_with, gazeflow, read_results

pytestmark = pytest.mark.integration
FRAMES = 595


def test_run_all_writes_every_frame_in_order(demo_runs):
    rows = read_results(demo_runs["run-all"])
    assert [r["frame"] for r in rows] == list(range(FRAMES))
    for r in rows:
        assert set(r) == {"frame", "t", "face", "landmarks", "head_pose", "gaze", "eyes", "pointer", "paused"}
    faces = sum(r["face"] is not None for r in rows)
    gazes = sum(r["gaze"] is not None for r in rows)
    assert faces >= 0.99 * FRAMES and gazes >= 0.95 * FRAMES


def test_run_all_matches_run_sync(demo_runs):
    pipeline, sync = read_results(demo_runs["run-all"]), read_results(demo_runs["run-sync"])
    assert len(pipeline) == len(sync) == FRAMES
    for a, b in zip(pipeline, sync, strict=True):
        assert (a["gaze"] is None) == (b["gaze"] is None), a["frame"]
        if a["gaze"] is not None:
            assert a["gaze"] == pytest.approx(b["gaze"], abs=1e-3), a["frame"]
            assert a["face"] == pytest.approx(b["face"], abs=0.5)


def test_results_are_in_the_documented_units(demo_runs):
    rows = read_results(demo_runs["run-all"])
    first = rows[0]
    x0, y0, x1, y1 = first["face"]  # MODELS.md: frame 0 face about (782,104)-(1036,468)
    assert abs(x0 - 782) < 15 and abs(y0 - 104) < 15 and abs(x1 - 1036) < 15 and abs(y1 - 468) < 15
    assert len(first["landmarks"]) == 5
    assert all(x0 <= x <= x1 and y0 <= y <= y1 for x, y in first["landmarks"])
    assert set(first["head_pose"]) == {"yaw", "pitch", "roll"}
    for r in rows:
        if r["gaze"] is not None:
            assert sum(v * v for v in r["gaze"]) == pytest.approx(1.0, abs=1e-4)
        if r["pointer"] is not None:
            assert 0 <= r["pointer"]["x"] < 1920 and 0 <= r["pointer"]["y"] < 1080


def test_summary_line_and_report(demo_runs):
    for command in ("run-all", "run-sync"):
        out = demo_runs[command + "-stdout"].read_text()
        assert f"frames {FRAMES}," in out and "frames with a face" in out and "frames with gaze" in out
    report = json.loads(demo_runs["run-all-metrics"].read_text())
    assert report["frames"] == FRAMES and report["dropped"] == 0
    for stage in ("capture", "face_detection", "landmarks_headpose", "gaze", "pointer"):
        s = report["stages"][stage]
        assert s["in"] == s["out"] + s["dropped"] == FRAMES, stage


# Frames of demo.mp4 labelled by eye (looking at the frame with the gaze arrow drawn on it).
LABELLED = {121: "down", 311: "up", 353: "image-left", 544: "image-right", 75: "down", 300: "up"}


def test_gaze_directions_match_frames_labelled_by_eye(demo_runs):
    from gazeflow.shared.geometry import gaze_angles

    rows = read_results(demo_runs["run-all"])
    for frame, label in LABELLED.items():
        horizontal, vertical = gaze_angles(rows[frame]["gaze"])
        if label == "down":
            assert vertical < -10, (frame, horizontal, vertical)
        elif label == "up":
            assert vertical > 10, (frame, horizontal, vertical)
        elif label == "image-left":
            assert horizontal < -15 and rows[frame]["gaze"][0] < 0, (frame, horizontal, vertical)
        else:
            assert horizontal > 15 and rows[frame]["gaze"][0] > 0, (frame, horizontal, vertical)


def test_live_pacing_drops_stale_frames_and_counts_every_one(assets, tmp_path, test_stages):
    """Replayed faster than the pipeline can go (a stage before the pointer takes 50 ms a frame, injected
    so that no machine is fast enough), a real-time input behaves like a camera."""
    results, metrics = tmp_path / "r.jsonl", tmp_path / "m.json"
    proc = gazeflow(
        "run-all",
        "--config",
        str(chain_with(tmp_path / "slow.toml", "slow")),
        "--input",
        "demo",
        "--realtime",
        "--fps",
        "90",
        "--max-frames",
        "450",
        "--pointer",
        "null",
        "--results",
        str(results),
        "--metrics",
        str(metrics),
        "--log-interval",
        "0",
        env=test_stages,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = read_results(results)
    report = json.loads(metrics.read_text())
    stages = report["stages"]
    assert stages["capture"]["in"] == 450  # 5 s at 90 fps: more than every queue on the way can hold at 20 fps
    assert report["dropped"] > 0 and len(rows) == report["frames"] == 450 - report["dropped"]
    for name in ("capture", "face_detection", "landmarks_headpose", "gaze", "slow", "pointer"):
        assert stages[name]["in"] == stages[name]["out"] + stages[name]["dropped"], name
    frames = [r["frame"] for r in rows]
    assert frames == sorted(set(frames))  # in order, never duplicated
    assert f"dropped {report['dropped']}" in proc.stdout


def _write_video(path, frames, size=(640, 360), fps=25.0):
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    for frame in frames:
        writer.write(frame)
    writer.release()


def test_frames_without_a_face_still_flow_through_every_stage(assets, tmp_path):
    """A small video: blank frames between faces cut from the demo; every frame reaches the results."""
    import cv2
    import numpy as np

    cap = cv2.VideoCapture(str(assets / "videos" / "demo.mp4"))
    frames = []
    for i in range(12):
        ok, frame = cap.read()
        assert ok
        small = cv2.resize(frame, (640, 360))
        frames.append(small if i % 3 else np.zeros_like(small))  # frames 0, 3, 6, 9 have no face
    video = tmp_path / "mixed.avi"
    _write_video(video, frames)
    results = tmp_path / "r.jsonl"
    proc = gazeflow(
        "run-all",
        "--input",
        str(video),
        "--max-speed",
        "--pointer",
        "null",
        "--results",
        str(results),
        "--log-interval",
        "0",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = read_results(results)
    assert [r["frame"] for r in rows] == list(range(12))
    for r in rows:
        blank = r["frame"] % 3 == 0
        assert (r["face"] is None) == blank, r
        assert (r["gaze"] is None) == blank, r
        assert (r["pointer"] is None) == blank, r  # no gaze: the pointer holds still
    assert "frames 12," in proc.stdout and "frames with a face 8" in proc.stdout


def _free_ports(n):
    import socket

    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.mark.parametrize("curve", [False, True], ids=["plain", "curve"])
def test_tcp_links_configured_in_the_file_give_the_same_results(demo_runs, tmp_path, curve):
    """Every link over tcp (pixels in the message, no shared memory), with or without CURVE, matches ipc."""
    frames, faces, eyes, gaze = (f"tcp://127.0.0.1:{p}" for p in _free_ports(4))
    config = tmp_path / "tcp.toml"
    keys = ""
    if curve:
        assert gazeflow("keys", str(tmp_path / "keys")).returncode == 0
        keys = f'curve_keys = "{tmp_path / "keys"}"'
    config.write_text(f"""
{keys}
[stages.capture]
output = "push+bind:{frames}"
[stages.face_detection]
input = "pull+connect:{frames}"
output = "push+connect:{faces}"
[stages.landmarks_headpose]
input = "pull+bind:{faces}"
output = "push+bind:{eyes}"
[stages.gaze]
input = "pull+connect:{eyes}"
output = "push+bind:{gaze}"
[stages.pointer]
input = "pull+connect:{gaze}"
""")
    results = tmp_path / "r.jsonl"
    proc = gazeflow(
        "run-all",
        "--config",
        str(config),
        "--input",
        "demo",
        "--max-speed",
        "--max-frames",
        "90",
        "--pointer",
        "null",
        "--results",
        str(results),
        "--log-interval",
        "0",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "tcp://127.0.0.1" in proc.stderr
    rows, reference = read_results(results), read_results(demo_runs["run-all-every-frame"])[:90]  # tcp: no tracking
    assert [r["frame"] for r in rows] == list(range(90))
    for a, b in zip(rows, reference, strict=True):
        assert a["gaze"] == pytest.approx(b["gaze"], abs=1e-3), a["frame"]


@pytest.mark.parametrize(
    "placement",
    [
        ["--placement", "separate"],  # a process per stage
        ["--process", "landmarks_headpose=eyes", "--process", "gaze=eyes", "--process", "pointer=eyes"],  # threads
    ],
    ids=["separate", "by-hand"],
)
def test_every_placement_gives_the_same_results_byte_for_byte(demo_runs, tmp_path, placement):
    """Neighbouring stages as threads of one process (inproc sockets, the same stage code and wire) or as
    processes of their own: the same results as run-sync, byte for byte (the session's run-all used this
    host's automatic placement); the stages sharing a process report their share of its CPU."""
    results, metrics = tmp_path / "r.jsonl", tmp_path / "m.json"
    args = ["--input", "demo", "--max-speed", "--pointer", "null", "--results", str(results), "--metrics", str(metrics)]
    proc = gazeflow("run-all", *args, *placement, "--log-interval", "0")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert results.read_bytes() == demo_runs["run-sync"].read_bytes() == demo_runs["run-all"].read_bytes()
    stages = json.loads(metrics.read_text())["stages"]
    shared = placement[0] == "--process"
    assert all(("process" in stages[s]) == shared for s in ("landmarks_headpose", "gaze", "pointer"))
    assert "process" not in stages["face_detection"] and "--process" not in proc.stderr
