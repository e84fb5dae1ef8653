"""Nothing on a socket can crash a stage: property-based tests of the decoder and of each stage's contract
(Hypothesis), and a live fuzz of running stages over tcp and ipc."""

from __future__ import annotations

import os

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gazeflow.services.face_detection.processor import FaceDetection
from gazeflow.services.gaze.processor import Gaze
from gazeflow.services.landmarks_headpose.processor import LandmarksHeadPose
from gazeflow.services.pointer.processor import Pointer
from gazeflow.services.pointer.settings import PointerConfig
from gazeflow.shared.config import Config
from gazeflow.shared.messages import SCHEMA_VERSION, MalformedMessage, Message, decode, encode, fields

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# any msgpack value, nested a little
LEAF = st.none() | st.booleans() | st.integers(-(2**64), 2**64) | st.floats() | st.text(max_size=8)
LEAF = LEAF | st.binary(max_size=8)
VALUE = st.recursive(
    LEAF,
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=6), inner, max_size=6),
    max_leaves=20,
)
KEYS = st.sampled_from([*fields(), "v", "kind", "arrays", "stats", "total", "copies", "other"])


def _packable(header: dict) -> bytes | None:
    try:
        return msgpack.packb(header, use_bin_type=True)
    except (OverflowError, TypeError, ValueError):
        return None


def _decodes_or_is_malformed(frames: list[bytes]) -> Message | None:
    try:
        return decode(frames)
    except MalformedMessage:
        return None


@SETTINGS
@given(st.lists(st.binary(max_size=64), max_size=4))
def test_any_bytes_decode_or_are_malformed(frames):
    _decodes_or_is_malformed(frames)


@SETTINGS
@given(
    st.dictionaries(KEYS, VALUE, max_size=10),
    st.sampled_from(["frame", "eos", "drop"]),
    st.lists(st.binary(max_size=32), max_size=2),
)
def test_any_header_decodes_or_is_malformed_and_what_decodes_holds_the_schema(fields, kind, buffers):
    header = {"v": SCHEMA_VERSION, "kind": kind, "frame": 1, "t_capture": 1.0, "trace": [], **fields}
    packed = _packable(header)
    if packed is None:
        return
    msg = _decodes_or_is_malformed([packed, *buffers])
    if msg is not None and msg.kind == "frame":
        assert isinstance(msg.header["frame"], int) and msg.header["frame"] >= 0
        assert isinstance(msg.header["trace"], list)
        msg.header["trace"].append(["x", 0, 0, 0, 0, 0, 0, 0, "0", 0])  # what every stage does to it


def _valid_frames() -> dict[str, Message]:
    """One valid message into each stage (as the stage before it sends, pixels in the message)."""
    rng = np.random.default_rng(0)
    fd = Message.frame(3, 1.0, {"width": 64, "height": 48, "fps": 30.0})
    fd.arrays["frame"] = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    lh = Message.frame(3, 1.0, {"width": 64, "height": 48, "fps": 30.0})
    lh.header.update(face=[10.0, 8.0, 40.0, 40.0], crop=[5, 4, 40], region=[0, 0, 50, 48])
    lh.arrays["region"] = rng.integers(0, 255, (48, 50, 3), dtype=np.uint8)
    gz = Message.frame(3, 1.0, {"width": 64, "height": 48, "fps": 30.0})
    gz.header.update(face=[10.0, 8.0, 40.0, 40.0], head_pose={"yaw": 5.0, "pitch": -2.0, "roll": 10.0})
    gz.arrays.update(left_eye=np.zeros((1, 60, 60, 3), np.uint8), right_eye=np.zeros((1, 60, 60, 3), np.uint8))
    pt = Message.frame(3, 1.0, {"width": 64, "height": 48, "fps": 30.0})
    pt.header.update(gaze=[0.1, -0.2, -0.97])
    return {"face_detection": fd, "landmarks_headpose": lh, "gaze": gz, "pointer": pt}


VALID = {name: encode(msg) for name, msg in _valid_frames().items()}


def _processor(name: str):
    cfg = Config(pointer=PointerConfig(backend="null"))
    proc = {"face_detection": FaceDetection, "landmarks_headpose": LandmarksHeadPose, "gaze": Gaze, "pointer": Pointer}[
        name
    ](cfg)
    proc.name = name
    return proc


PROCESSORS = {name: _processor(name) for name in VALID}


@SETTINGS
@given(
    st.sampled_from(sorted(VALID)),
    st.lists(st.tuples(KEYS, VALUE | st.just("<delete>")), min_size=1, max_size=3),
    st.integers(0, 3),
)
def test_a_mutated_message_is_refused_at_the_door_or_handled(stage, mutations, cut):
    """Each stage's contract: a message that passes the schema and the stage's own check is one its
    processor handles without raising (prepare; and for the pointer, finish)."""
    frames = [bytes(f) for f in VALID[stage]]
    header = msgpack.unpackb(frames[0], raw=False)
    for key, value in mutations:
        if value == "<delete>":
            header.pop(key, None)
        else:
            header[key] = value
    packed = _packable(header)
    if packed is None:
        return
    frames = [packed, *[f[: len(f) - cut] for f in frames[1:]]]
    msg = _decodes_or_is_malformed(frames)
    if msg is None or msg.kind != "frame":
        return
    proc = PROCESSORS[stage]
    try:
        proc.check(msg)
    except MalformedMessage:
        return
    proc.prepare(msg)
    if stage == "pointer":
        proc.finish(msg, {})


def test_the_valid_messages_pass_every_check():
    for stage, frames in VALID.items():
        msg = decode([bytes(f) for f in frames])
        PROCESSORS[stage].check(msg)


@pytest.fixture(autouse=True, scope="module")
def _close_pointer():
    yield
    PROCESSORS["pointer"].finish(Message.eos({}), {})


# -- live: thousands of random and mutated messages into running stages, over tcp and ipc ------------
LIVE_PER_TARGET = 1400  # three targets: more than 4,000 messages in all
VALID_AFTER = 12  # valid frames sent after the fuzz, which must come out right
JUNK = [None, -1, 2**70, -(2**63), 1e308, float("nan"), "x", "", [], {}, [1, 2], [[1, 2]] * 5, {"a": 1}, True, b"\0"]


def _sync_chain(cfg):
    """The processors and synchronous models of face detection, landmarks + head pose and gaze, in-process."""
    from gazeflow.shared import registry
    from gazeflow.shared.inference import SyncModel, compile_model, load_model
    from gazeflow.shared.stage import build

    chain = {}
    for name in ("face_detection", "landmarks_headpose", "gaze"):
        proc = build(name, cfg)
        precision = cfg.stages[name].inference_precision  # the suite's (--inference-precision), as the stages'
        models = {
            key: SyncModel(compile_model(load_model(cfg.assets_dir, model, "FP16"), "CPU", "LATENCY", 1, 0, precision))
            for key, model in registry.get(name).models.items()
        }
        proc.staging = lambda key, index, models=models: models[key].staging(index)
        chain[name] = (proc, models)
    return chain


def _through(stage, msg):
    proc, models = stage
    inputs = proc.prepare(msg)
    return proc.finish(msg, {key: models[key].infer(value) for key, value in inputs.items()})


def _mutate(rng, frames: list[bytes]) -> list[bytes]:
    """One hostile message made from a valid one: garbage, a field deleted or replaced, arrays lied about."""
    op = rng.randrange(7)
    if op == 0:
        return [rng.randbytes(rng.randrange(0, 64)) for _ in range(rng.randrange(1, 4))]
    header = msgpack.unpackb(frames[0], raw=False)
    buffers = list(frames[1:])
    key = rng.choice([*header, *fields()])
    if op == 1:
        header.pop(key, None)
    elif op == 2:
        header[key] = rng.choice(JUNK)
    elif op == 3 and header.get("arrays"):
        spec = rng.choice(header["arrays"])
        spec[rng.randrange(len(spec))] = rng.choice(JUNK)
    elif op == 4 and buffers:
        i = rng.randrange(len(buffers))
        buffers[i] = buffers[i][: rng.randrange(len(buffers[i]) + 1)] + rng.randbytes(rng.randrange(3))
    elif op == 5:
        header["frame_ref"] = {
            "ring": "/etc/passwd",
            "slot": 0,
            "gen": 1,
            "shape": [1, 1, 1],
            "slots": 1,
            "scratch": 0,
            "release": "tcp://127.0.0.1:9",
        }
    else:
        header["kind"] = rng.choice(["frame", "drop", "video", 7])
        header["seq"] = rng.choice([0, 10**12, -5, "x"])
    packed = _packable(header)
    return [packed, *buffers] if packed is not None else frames


@pytest.mark.integration
def test_live_fuzz_no_stage_exits_malformed_are_counted_and_valid_frames_come_out_right(assets, tmp_path):
    import json
    import random
    import socket
    import subprocess
    import sys

    import cv2
    import zmq

    from gazeflow.shared import config as config_mod

    from conftest import wait_for

    cfg = config_mod.load(overrides={"assets_dir": str(assets)})  # as the stages read it (the suite's precision)
    chain = _sync_chain(cfg)
    video = cv2.VideoCapture(str(assets / "videos" / "demo.mp4"))
    faces, eyes, gazes, expected = [], [], [], {}
    for i in range(VALID_AFTER):
        _, frame = video.read()
        msg = Message.frame(100_000 + i, 1.0, {"width": frame.shape[1], "height": frame.shape[0], "fps": 30.0})
        msg.arrays["frame"] = frame
        msg = _through(chain["face_detection"], msg)
        faces.append(encode(msg))  # what landmarks_headpose receives from another host
        msg = _through(chain["landmarks_headpose"], decode([bytes(f) for f in faces[-1]]))
        eyes.append(encode(msg))
        msg = _through(chain["gaze"], decode([bytes(f) for f in eyes[-1]]))
        gazes.append(encode(msg))
        expected[msg.index] = msg.header["gaze"]
    video.release()
    assert sum(g is not None for g in expected.values()) >= VALID_AFTER - 2  # the demo's faces are found

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = tmp_path / "run"
    results, metrics = tmp_path / "r.jsonl", tmp_path / "m.json"
    topology = tmp_path / "fuzz.toml"
    topology.write_text(
        f'input = "demo"\npace = "max-speed"\nresults = "{results}"\nmetrics = "{metrics}"\nlog_interval = 0.0\n'
        f'run_dir = "{run}"\n[pointer]\nbackend = "null"\n'
        f'[stages.face_detection]\noutput = "push+connect:tcp://127.0.0.1:{port}"\n'
        f'[stages.landmarks_headpose]\ninput = "pull+bind:tcp://127.0.0.1:{port}"\n'
        f'output = "push+connect:ipc://{run}/eyes"\n'
        f'[stages.gaze]\ninput = "pull+bind:ipc://{run}/eyes"\noutput = "push+connect:ipc://{run}/gaze"\n'
        f'[stages.pointer]\ninput = "pull+bind:ipc://{run}/gaze"\n'
    )
    logs = {name: tmp_path / f"{name}.log" for name in ("pointer", "gaze", "landmarks_headpose")}
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-m", "gazeflow.services.cli", "stage", name, "--config", str(topology)],
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        for name, log in logs.items()
    }
    ctx = zmq.Context()
    targets = {
        "landmarks_headpose": (f"tcp://127.0.0.1:{port}", faces),
        "gaze": (f"ipc://{run}/eyes", eyes),
        "pointer": (f"ipc://{run}/gaze", gazes),
    }
    socks = {}
    try:
        for name, (address, _) in targets.items():
            socks[name] = ctx.socket(zmq.DEALER)
            socks[name].setsockopt(zmq.LINGER, 0)
            socks[name].setsockopt(zmq.SNDHWM, 100_000)
            if address.startswith("ipc://"):  # the stage binds it once it is ready
                wait_for(lambda path=address[6:]: os.path.exists(path), "the stage's socket", 300)
            socks[name].connect(address)
        rng = random.Random(19)
        sent = 0
        for _ in range(LIVE_PER_TARGET):
            for name, (_, valid) in targets.items():
                frames = _mutate(rng, [bytes(f) for f in rng.choice(valid)])
                if (m := _decodes_or_is_malformed(frames)) is not None and m.kind == "eos":
                    continue  # a peer that may send on a link may end its stream: not what is tested here
                socks[name].send_multipart(frames)
                sent += 1
        assert sent >= 4000
        for name in targets:
            assert procs[name].poll() is None, f"{name} exited: {logs[name].read_text()[-2000:]}"
        for frames in faces:  # then valid frames, and the end of the stream, into the first stage
            socks["landmarks_headpose"].send_multipart([bytes(f) for f in frames])
        socks["landmarks_headpose"].send(encode(Message.eos({}))[0])
        for p in procs.values():
            p.wait(120)
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
        for sock in socks.values():
            sock.close(0)
        ctx.term()
    for name, p in procs.items():
        out = logs[name].read_text()
        assert p.returncode == 0 and "Traceback" not in out, f"{name}: {out[-3000:]}"
    report = json.loads(metrics.read_text())
    for name in targets:
        assert report["stages"][name]["malformed"] > 100, (name, report["stages"][name])
    got = {r["frame"]: r["gaze"] for r in map(json.loads, results.read_text().splitlines()) if r["frame"] in expected}
    assert set(got) == set(expected)
    for frame, gaze in expected.items():
        assert (got[frame] is None) == (gaze is None) and (gaze is None or np.allclose(got[frame], gaze, atol=1e-4))
