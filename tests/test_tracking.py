"""Tracking the face between detections: the lost rules, the feedback's validation, and quantize's mistakes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import msgpack
import numpy as np
import pytest
import zmq

from gazeflow.shared import tracking

from conftest import gazeflow, run_dir_of, start_run, wait_for

POINTS = [[160.0, 170.0], [240.0, 170.0], [200.0, 220.0], [170.0, 270.0], [230.0, 270.0]]
POSE = {"yaw": 0.0, "pitch": 0.0, "roll": 0.0}


def _frame(tracked: bool, dx: float = 0.0, pose=POSE, points=POINTS, face=(100.0, 80.0, 300.0, 330.0)):
    return {
        "face": list(face),
        "crop": [90, 70, 260],
        "tracked": tracked,
        "head_pose": pose,
        "landmarks": [[x + dx, y] for x, y in points],
    }


def test_the_box_follows_the_landmarks_centre_and_keeps_its_size():
    t = tracking.Tracker()
    assert t.update(_frame(False)) == [100.0, 80.0, 300.0, 330.0]  # a detection: its own box
    assert t.update(_frame(True, dx=12.0)) == [112.0, 80.0, 312.0, 330.0]  # moved with the face, same size


@pytest.mark.parametrize(
    "frame",
    [
        {"face": None, "landmarks": None, "head_pose": None},  # no face
        _frame(True, pose={"yaw": 15.0, "pitch": 0.0, "roll": 0.0}),  # the head pose jumped 15 degrees
        _frame(True, points=[[160.0, 170.0], [240.0, 170.0], [200.0, 250.0], [170.0, 270.0], [230.0, 270.0]]),
    ],
    ids=["no-face", "head-jump", "shape-change"],
)
def test_tracking_is_lost_on_each_rule(frame):
    t = tracking.Tracker()
    t.update(_frame(False))
    assert t.update(frame) is None and t.lost == 1
    assert t.update(_frame(True)) is None  # nothing to track from until the next detection


def test_the_box_for_a_frame_comes_from_the_frame_before_or_is_waited_for():
    f = tracking.Feedback()
    f.send(10, [1.0, 2.0, 3.0, 4.0])
    assert f.box(11, live=False) == [1.0, 2.0, 3.0, 4.0]
    assert f.box(12, live=False) is None and not f.known(11)  # frame 11's box has not come: wait (or detect)
    assert f.box(12, live=True) == [1.0, 2.0, 3.0, 4.0]  # live: a slightly older box will do
    assert f.box(20, live=True) is None  # too old


def test_the_frame_after_a_detection_waits_only_for_the_detection_not_for_landmarks():
    """Landmarks of the detection's own frame give its box back unchanged, so the detector takes it itself
    (one round trip to landmarks in N frames instead of N - 1: more overlap at max speed, same results)."""
    from gazeflow.services.face_detection.processor import FaceDetection
    from gazeflow.shared.config import Config
    from gazeflow.shared.messages import Message

    fd = FaceDetection(Config(detect_every=3, pace="max-speed"))
    fd.feedback = tracking.Feedback()
    fd.frames = type("NoFrames", (), {"pass_on": lambda *a: None})()
    frame = np.zeros((400, 400, 3), np.uint8)

    def msg(i):
        m = Message.frame(i, 0.0, {"width": 400, "height": 400})
        m.arrays["frame"] = frame
        return m

    m0 = msg(0)
    assert fd.ready(m0) and fd.prepare(m0) is not None and fd.detections == [0]  # frame 0 detects
    assert not fd.ready(msg(1))  # its detection is still in flight
    found = np.array([[[[0, 1, 0.99, 0.25, 0.2, 0.75, 0.825]]]], np.float32)  # the detector's output
    fd.finish(m0, {"face": {"out": found}})
    m1 = msg(1)
    assert fd.ready(m1) and fd.prepare(m1) == {} and m1.header["face"] == [100.0, 80.0, 300.0, 330.0]
    assert not fd.ready(msg(2))  # frame 2's box comes from frame 1's landmarks: wait for them
    m3 = msg(3)  # meanwhile the next scheduled detection starts ahead of it (the detector is not left idle)
    assert fd.ready(m3) and fd.ahead(m3) and not fd.ahead(msg(2)) and fd.infers(m3)
    assert fd.prepare(m3) and fd.detections == [0, 3]
    fd.feedback.send(1, [104.0, 80.0, 304.0, 330.0])
    m2 = msg(2)  # still takes frame 1's landmarks' box, not the later detection's
    assert fd.ready(m2) and not fd.infers(m2) and fd.prepare(m2) == {}
    assert m2.header["face"] == [104.0, 80.0, 304.0, 330.0]
    fd.finish(m2, {})
    fd.finish(m3, {"face": {"out": found}})
    m4 = msg(4)
    assert fd.ready(m4) and fd.prepare(m4) == {} and m4.header["face"] == [100.0, 80.0, 300.0, 330.0]


def test_feedback_from_the_socket_is_validated(tmp_path):
    ctx = zmq.Context()
    try:
        receiver = tracking.SocketFeedback(ctx, str(tmp_path), receiving=True)
        sender = ctx.socket(zmq.PUSH)
        sender.connect(f"ipc://{tmp_path}/track")
        for junk in (
            b"\0\1",
            msgpack.packb([-1, None]),
            msgpack.packb([3, [1, 2]]),
            msgpack.packb(["x", None]),
            msgpack.packb([4, [1.0, float("nan"), 2.0, 3.0]]),
        ):
            sender.send(junk)
        sender.send(msgpack.packb([5, [1.0, 2.0, 3.0, 4.0]]))
        for _ in range(100):
            receiver.receive()
            if receiver.known(5):
                break
            receiver.end.poll(50)
        assert receiver.boxes == {5: [1.0, 2.0, 3.0, 4.0]} and receiver.malformed == 5
        sender.close(0)
        receiver.close()
    finally:
        ctx.destroy(0)


def _gazeflow(*args: str, env=None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gazeflow.services.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env or os.environ.copy(),
    )


def test_quantize_mistakes_are_one_line_and_write_nothing(tmp_path):
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data")}
    for args, message in (
        (["detector", "--input", "demo"], "unknown stage 'detector'"),
        (["pointer", "--input", "demo"], "runs no model"),
        (["--input", str(tmp_path / "none.mp4")], "video not found"),
    ):
        proc = _gazeflow("quantize", *args, env=env)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "data").exists()
    blocked = tmp_path / "cache-is-a-file"
    blocked.write_text("")
    env["XDG_CACHE_HOME"] = str(blocked)  # the model cache cannot be made there
    proc = _gazeflow("quantize", "--input", "demo", env=env)
    assert proc.returncode == 2 and "model cache" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.integration
def test_quantize_a_video_without_a_face_is_one_line_and_writes_nothing(tmp_path):
    video = tmp_path / "dark.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (640, 480))
    for _ in range(30):
        writer.write(np.zeros((480, 640, 3), np.uint8))
    writer.release()
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data")}
    proc = _gazeflow("quantize", "--input", str(video), env=env)
    assert proc.returncode == 2 and "no face in the first" in proc.stderr, proc.stderr[-1500:]
    assert not list((tmp_path / "data").rglob("*.xml"))


def test_local_int8_reads_the_fp16_ir_where_quantize_kept_it(tmp_path, monkeypatch):
    from gazeflow.models.catalog import KEPT_FP16, LOCAL_INT8, ir_path

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    local = tmp_path / "gazeflow" / "models" / "intel" / "m" / LOCAL_INT8
    assert ir_path("assets", "m", "local-INT8") == local / "m.xml"
    local.mkdir(parents=True)
    (local / KEPT_FP16).write_text("INT8 is no faster here\n")
    assert ir_path("assets", "m", "local-INT8") == Path("assets") / "models" / "intel" / "m" / "FP16" / "m.xml"


@pytest.mark.integration
def test_quantize_writes_models_the_pipeline_runs(assets, tmp_path):
    """On a short piece of the demo: every model of the chosen stages is either an INT8 IR or a note saying
    why FP16 is kept (the choice is a timing on this machine, so either is right), and the pipeline runs
    with them; nothing is left half-written."""
    from gazeflow.models.catalog import KEPT_FP16

    video = tmp_path / "short.avi"
    cap = cv2.VideoCapture(str(assets / "videos" / "demo.mp4"))
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (960, 540))
    for _ in range(40):
        writer.write(cv2.resize(cap.read()[1], (960, 540)))
    writer.release()
    cap.release()
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data")}
    proc = _gazeflow("--log-level", "WARNING", "quantize", "face_detection", "gaze", "--input", str(video), env=env)
    assert proc.returncode == 0, proc.stderr[-1500:]
    models = tmp_path / "data" / "gazeflow" / "models" / "intel"
    for model in ("face-detection-adas-0001", "gaze-estimation-adas-0002"):
        folder = models / model / "local-INT8"
        assert (folder / f"{model}.xml").is_file() != (folder / KEPT_FP16).is_file(), list(folder.iterdir())
    assert sorted(p.name for p in models.iterdir()) == ["face-detection-adas-0001", "gaze-estimation-adas-0002"]
    results = tmp_path / "r.jsonl"
    proc = _gazeflow(
        "run-sync",
        "--input",
        str(video),
        "--max-speed",
        "--pointer",
        "null",
        "--precision",
        "face_detection=local-INT8",
        "--precision",
        "gaze=local-INT8",
        "--results",
        str(results),
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-1500:]
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert len(rows) == 40 and sum(r["gaze"] is not None for r in rows) > 30


@pytest.mark.integration
def test_detect_every_changes_while_running_through_the_pointers_ctl(tmp_path):
    """ctl set detect_every (the panel's control too): the pointer validates it and sends it on the tune channel,
    face detection detects that much less often from then on; nonsense is refused with the reason."""
    results, metrics = tmp_path / "r.jsonl", tmp_path / "m.json"
    proc = start_run(
        "--input", "demo", "--loop", "--max-speed", "--pointer", "null", "--detect-every", "2",
        "--results", str(results), "--metrics", str(metrics), "--log-interval", "0",
    )  # fmt: skip
    try:
        run_dir = str(run_dir_of(proc))
        for value, refusal in (("0", "greater than or equal to 1"), ("often", "valid integer")):
            refused = gazeflow("ctl", "--run-dir", run_dir, "set", "detect_every", value)
            assert refused.returncode == 2 and refusal in refused.stderr, refused.stderr
        done = gazeflow("ctl", "--run-dir", run_dir, "set", "detect_every", "15")
        assert done.returncode == 0 and "detect_every = 15" in done.stdout, done.stderr
        before = len(_lines(results))
        status = gazeflow("ctl", "--run-dir", run_dir, "status")
        assert "detect_every = 15" in status.stdout  # the panel's settings form reads it there
        wait_for(lambda: len(_lines(results)) > before + 300, "300 frames after the change")
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert "face_detection: detecting every 15 frames from now on" in err
    stage = json.loads(metrics.read_text())["stages"]["face_detection"]
    after = stage["in"] - before
    # every second frame until the change (a few frames in flight either side), then every 15th and where
    # tracking was lost: far fewer than the half of all frames it would have been
    assert stage["detector_runs"] < (before + 10) / 2 + after / 15 + 0.1 * after, (stage, before)
    assert stage["detector_runs"] < 0.6 * stage["in"] / 2


def test_detect_every_cannot_start_tracking_that_the_run_did_not_set_up(tmp_path):
    proc = start_run("--input", "demo", "--loop", "--pointer", "null", "--detect-every", "1", "--log-interval", "0")
    try:
        refused = gazeflow("ctl", "--run-dir", str(run_dir_of(proc)), "set", "detect_every", "5")
        assert refused.returncode == 2 and "tracking is off in this run" in refused.stderr, refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except OSError:
        return []
