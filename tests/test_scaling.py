"""Scaled workers on the demo video: same results as one worker, live drops counted, a killed worker survived."""

from __future__ import annotations

import json

import pytest

from conftest import KILL_FRAMES, chain_with, gazeflow, kill_in_replay, read_results

pytestmark = pytest.mark.integration


def test_two_face_detection_workers_give_the_same_results_file(demo_runs, tmp_path):
    results, metrics = tmp_path / "r.jsonl", tmp_path / "m.json"
    proc = gazeflow(
        "run-all",
        "--input",
        "demo",
        "--max-speed",
        "--pointer",
        "null",
        "--workers",
        "face_detection=2",
        "--results",
        str(results),
        "--metrics",
        str(metrics),
        "--log-interval",
        "1",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    # two workers cannot track (tracking needs one process in order): the reference detects every frame
    assert results.read_bytes() == demo_runs["run-all-every-frame"].read_bytes()  # byte for byte, in frame order
    report = json.loads(metrics.read_text())
    fd = report["stages"]["face_detection"]
    assert len(fd["workers"]) == 2 and all(w["in"] > 100 for w in fd["workers"])  # both took a share
    assert fd["in"] == fd["out"] == 595 and report["lost"] == 0
    # run-all's health line reports each worker, from its own heartbeats
    health = [line for line in proc.stderr.splitlines() if "health " in line]
    assert health and any("face_detection/0 up" in h and "face_detection/1 up" in h for h in health)


def test_live_input_with_workers_stays_ordered_and_counts_every_frame(assets, tmp_path, test_stages):
    """A stage before the pointer takes 50 ms a frame (injected): frames come at 90 fps, so the pipeline
    must drop, whatever the machine's speed."""
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
        "300",
        "--pointer",
        "null",
        "--workers",
        "face_detection=2",
        "--results",
        str(results),
        "--metrics",
        str(metrics),
        "--log-interval",
        "0",
        env=test_stages,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(metrics.read_text())
    frames = [r["frame"] for r in read_results(results)]
    assert frames == sorted(set(frames)) and len(frames) == report["frames"]
    assert report["dropped"] > 0  # 90 fps is more than a 50 ms stage can take
    assert report["frames"] + report["dropped"] + report["lost"] == 300
    assert report["lost"] == 0


def test_a_killed_worker_is_restarted_and_the_other_carries_on(assets, tmp_path, test_stages):
    out, report, _ = kill_in_replay(tmp_path, test_stages, "face_detection/1", "--workers", "face_detection=2")
    assert report["frames"] + report["lost"] == KILL_FRAMES and report["dropped"] == 0
    if report["lost"]:
        assert f"lost {report['lost']}" in out
