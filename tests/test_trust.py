"""Trust boundaries: what a message may name, and the run directory no one else can redirect."""

from __future__ import annotations

import os

import msgspec
import numpy as np
import pytest
import zmq

from gazeflow.shared.errors import GazeflowError
from gazeflow.shared.framering import RingConsumer, RingProducer
from gazeflow.shared.messages import MalformedMessage
from gazeflow.shared.process import private_dir

from conftest import gazeflow


@pytest.fixture
def ctx():
    c = zmq.Context()
    yield c
    c.destroy(0)


def _victim(tmp_path):
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious" * 8)
    return victim


def _ref(path, release: str) -> dict:
    return {"ring": str(path), "slot": 0, "gen": 1, "shape": [2, 2, 2], "slots": 1, "scratch": 0, "release": release}


def test_a_frame_ref_from_another_host_is_malformed_and_touches_nothing(tmp_path, ctx):
    """tcp: no frame_ref is honoured at all; no file is mapped, no address it names is connected to."""
    victim = _victim(tmp_path)
    listener = ctx.socket(zmq.PULL)
    port = listener.bind_to_random_port("tcp://127.0.0.1")
    monitor = listener.get_monitor_socket(zmq.EVENT_ACCEPTED)
    consumer = RingConsumer(ctx, str(tmp_path), local=False)
    header = {"frame_ref": _ref(victim, f"tcp://127.0.0.1:{port}")}
    with pytest.raises(MalformedMessage, match="another host"):
        consumer.attach(header, {})
    consumer.give_back({"slot": 0, "gen": 1})
    assert not monitor.poll(300)  # nothing connected out
    assert victim.read_bytes() == b"precious" * 8 and consumer.slots_back is None
    consumer.close()
    monitor.close(0)
    listener.close(0)


def test_on_one_host_only_this_runs_ring_is_mapped_and_slots_go_to_its_own_release(tmp_path, ctx):
    run_dir = private_dir(tmp_path / "run")
    victim = _victim(tmp_path)
    consumer = RingConsumer(ctx, str(run_dir), local=True)
    with pytest.raises(MalformedMessage, match="not this run's frame ring"):
        consumer.attach({"frame_ref": _ref(victim, "ipc:///elsewhere")}, {})
    assert victim.read_bytes() == b"precious" * 8
    producer = RingProducer(ctx, str(run_dir), (2, 2, 2), slots=1)
    ref = producer.ref(producer.take())
    arrays: dict[str, np.ndarray] = {}
    consumer.attach({"frame_ref": {**ref, "release": "ipc:///elsewhere"}}, arrays)  # its release is not used
    assert arrays["frame"].shape == (2, 2, 2) and consumer.slots_back.where == f"ipc://{run_dir}/release"
    for bad in ({"shape": [2, 2, 2, 2]}, {"slots": 10**9}, {"shape": [64, 64, 3]}, {"gen": "x"}, {"slot": 5}):
        with pytest.raises(MalformedMessage):
            consumer.attach({"frame_ref": {**ref, **bad}}, {})
    consumer.close()
    producer.close()


def test_the_ring_is_never_written_through_a_link(tmp_path, ctx):
    run_dir = private_dir(tmp_path / "run")
    victim = _victim(tmp_path)
    (run_dir / "frames.ring").symlink_to(victim)  # planted where capture writes its ring
    producer = RingProducer(ctx, str(run_dir), (4, 4, 3), slots=2)
    assert not (run_dir / "frames.ring").is_symlink()  # the link was removed, not followed
    assert victim.read_bytes() == b"precious" * 8
    producer.close()


def test_a_run_directory_that_is_not_private_is_refused_before_anything_starts(tmp_path):
    victim = _victim(tmp_path)
    link = tmp_path / "shm-gazeflow"
    link.symlink_to(tmp_path)  # pre-created by someone else, pointing elsewhere
    with pytest.raises(GazeflowError, match="not a directory of its own"):
        private_dir(link)
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    os.chmod(shared, 0o777)
    with pytest.raises(GazeflowError, match="not private"):
        private_dir(shared)
    assert (private_dir(tmp_path / "fresh").stat().st_mode & 0o777) == 0o700
    proc = gazeflow("stage", "capture", "--input", "demo", "--max-speed", "--run-dir", str(link))
    assert proc.returncode == 2 and "not a directory of its own" in proc.stderr and "Traceback" not in proc.stderr
    assert victim.read_bytes() == b"precious" * 8 and not (tmp_path / "frames.ring").exists()


def test_a_request_of_several_parts_on_ctl_is_answered_as_malformed_and_the_next_one_served(tmp_path, ctx):
    """A reply socket can answer only a request it has read whole: a request in three parts (no gazeflow ctl
    sends one) gets an error reply and is counted, and a real request after it is served (it stopped the
    pointer with ZeroMQ's 'Operation cannot be accomplished in current state')."""
    from gazeflow.shared import channels

    server = channels.End.local(ctx, tmp_path, "ctl", serves=True)
    client = ctx.socket(zmq.REQ)
    client.setsockopt(zmq.LINGER, 0)
    client.setsockopt(zmq.RCVTIMEO, 5000)
    client.connect(channels.address(tmp_path, "ctl"))
    try:
        client.send_multipart([b"a", b"b", b"c"])
        assert server.poll(5000)
        assert server.receive() is None and server.malformed == 1
        reply = msgspec.msgpack.decode(client.recv(), type=channels.Reply)
        assert not reply.ok and "not a request" in reply.error
        client.send(msgspec.msgpack.encode(channels.Request("status")))
        assert server.poll(5000)
        request = server.receive()
        assert request is not None and request.command == "status"
        server.send(channels.Reply(ok=True, state="running"))
        assert msgspec.msgpack.decode(client.recv(), type=channels.Reply).state == "running"
    finally:
        client.close(0)
        server.close()
