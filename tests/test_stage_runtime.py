"""The stage loop on real ZeroMQ sockets and a real (tiny) OpenVINO model."""

import threading

import numpy as np
import pytest
import zmq

from gazeflow.shared import registry, senders, transport
from gazeflow.shared.config import Config
from gazeflow.shared.endpoint import Endpoint
from gazeflow.shared.framering import SCRATCH, RingConsumer, RingProducer
from gazeflow.shared.messages import Message
from gazeflow.shared.process import Control, StopFlag
from gazeflow.shared.stage import Processor, StageRuntime

from tiny_models import scale_model


class Doubler(Processor):
    """A test stage: infers on frames whose index is not a multiple of 5."""

    def prepare(self, msg):
        if msg.index % 5 == 0:
            return {}  # like a frame without a face: no inference, still flows through in order
        return {"m": {0: msg.arrays["img"]}}

    def finish(self, msg, outputs):
        msg.arrays.clear()
        msg.header["value"] = float(outputs["m"]["y"].item()) if outputs else None  # a field of its own
        return msg


class StagedDoubler(Doubler):
    """The same, with its input written straight into the infer request that will run it."""

    staged = 0

    def prepare(self, msg):
        if msg.index % 5 == 0:
            return {}
        assert self.input("m", 0, (1, 4, 4, 3)) is None  # not the shape the model takes: make a new array
        place = self.input("m", 0, (1, 8, 8, 3))
        place[...] = msg.arrays["img"]
        StagedDoubler.staged += 1
        return {"m": {0: place}}


@pytest.fixture(autouse=True)
def test_stages(monkeypatch):
    """The two test stages, declared as any stage is (in-process: these tests run the stage here)."""
    for name in ("Doubler", "StagedDoubler"):
        spec = registry.Stage(
            name.lower(),
            "inference",
            f"test_stage_runtime:{name}",
            output="doubled",
            models={"m": "tiny-scale"},
            optional=True,
        )
        monkeypatch.setitem(registry.stages(), spec.name, spec)


def run_stage(tmp_path, messages, proc=Doubler):
    scale_model(tmp_path / "assets/models/intel/tiny-scale/FP16/tiny-scale.xml")
    name = proc.__name__.lower()
    cfg = Config(assets_dir=str(tmp_path / "assets"), run_dir=str(tmp_path / "run"), pace="max-speed")
    cfg.chain = ["capture", name, "pointer"]
    cfg.stages[name].requests = 4
    ctx = zmq.Context()
    feed = senders.PushSender(ctx, Endpoint.parse(f"push+bind:ipc://{cfg.run_dir}/frames"), 100)
    runtime = StageRuntime(name, cfg, ctx, Control(ctx, name), StopFlag(), "0")
    out = []

    def feeder():
        for m in messages:
            if isinstance(m, Message):
                while not feed.send(m):
                    feed.wait(0.1)
            else:
                feed.sock.send_multipart(m)

    def reader():
        # the next stage: it hangs up after the end of the stream, which lets the stage under test exit
        sink = transport.Receiver(ctx, Endpoint.parse(f"pull+connect:ipc://{cfg.run_dir}/doubled"), 100, None, False)
        while True:
            msg = sink.recv(block=True)
            out.append(msg)
            if msg.kind == "eos":  # acknowledged: the stage under test may end
                sink.close()
                return

    threads = [threading.Thread(target=feeder), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    runtime.run()
    for t in threads:
        t.join(10)
    feed.close()
    ctx.term()
    return runtime, out


def frame(i):
    msg = Message.frame(i, 0.0, {})
    msg.arrays["img"] = np.full((1, 8, 8, 3), i % 100, dtype=np.uint8)
    return msg


def test_results_leave_in_frame_order_with_several_requests_in_flight(tmp_path):
    runtime, out = run_stage(tmp_path, [frame(i) for i in range(60)] + [Message.eos()])
    frames = [m for m in out if m.kind == "frame"]
    assert [m.index for m in frames] == list(range(60))
    for m in frames:
        assert m.header["value"] == (None if m.index % 5 == 0 else 2.0 * (m.index % 100))
        assert m.header["trace"][-1][0] == "doubler"
    assert out[-1].kind == "eos"
    assert out[-1].header["stats"]["doubler"]["in"] == 60 and out[-1].header["stats"]["doubler"]["out"] == 60
    assert runtime.engine.sizes["m"] == 4


def test_inputs_written_in_their_infer_request_with_several_in_flight(tmp_path):
    """Each frame's input goes straight into the idle request that runs it: none is overwritten
    while in flight (4 requests, max speed), results as when copied in."""
    _, out = run_stage(tmp_path, [frame(i) for i in range(60)] + [Message.eos()], proc=StagedDoubler)
    frames = [m for m in out if m.kind == "frame"]
    assert [m.header["value"] for m in frames] == [None if i % 5 == 0 else 2.0 * i for i in range(60)]
    assert StagedDoubler.staged == 48


def test_malformed_messages_are_counted_and_the_stream_goes_on(tmp_path):
    messages = [frame(0), [b"\xc1garbage"], frame(1), [b"not", b"a message"], frame(2), Message.eos()]
    _, out = run_stage(tmp_path, messages)
    assert [m.index for m in out if m.kind == "frame"] == [0, 1, 2]
    assert out[-1].header["stats"]["doubler"]["malformed"] == 2


@pytest.fixture
def ring(tmp_path):
    """A frame ring of 8 tiny frames (what capture makes) and a way to open consumers of it."""
    ctx = zmq.Context()
    run_dir = tmp_path / "run"  # the run directory run_stage's stage uses
    run_dir.mkdir(mode=0o700)
    producer = RingProducer(ctx, str(run_dir), (4, 4, 3), slots=8)
    consumers = []

    def consumer():
        consumers.append(RingConsumer(ctx, str(run_dir), local=True))
        return consumers[-1]

    def new_slot():
        """A header with a fresh slot, attached by a new consumer: (header, that consumer)."""
        header = {"frame_ref": producer.ref(producer.take())}
        user = consumer()
        user.attach(header, {})
        return header, user

    yield producer, consumer, new_slot
    for c in consumers:
        c.close()
    producer.close()
    ctx.term()


def test_arrays_in_a_frame_slot_are_read_in_place_and_every_slot_comes_back(tmp_path, ring):
    """On one host small arrays ride in the frame's shared slot (its scratch area), listed in
    frame_ref: the stage reads them there, refuses a frame_ref that names no slot, and gives
    every slot it used back to capture."""
    producer, _, new_slot = ring
    messages, indices = [], [1, 2, 3, 4, 6, 7]  # no multiple of 5: Doubler infers on all of them
    for i in indices:
        msg = frame(i)
        header, upstream = new_slot()
        msg.header["frame_ref"] = header["frame_ref"]
        assert upstream.stash(msg.header["frame_ref"], {"img": msg.arrays.pop("img")})  # the stage before
        messages.append(msg)
    bad = frame(8)
    bad.header["frame_ref"] = {**producer.ref(0), "slot": 99}
    bad.arrays.clear()
    _, out = run_stage(tmp_path, [*messages[:3], bad, *messages[3:], Message.eos()])
    assert [(m.index, m.header["value"]) for m in out if m.kind == "frame"] == [(i, 2.0 * i) for i in indices]
    assert out[-1].header["stats"]["doubler"]["malformed"] == 1
    deadline = 50
    while len(producer.free) < 8 and deadline:
        producer.reclaim(100)
        deadline -= 1
    assert len(producer.free) == 8


def test_arrays_that_do_not_fit_a_slot_stay_in_the_message(ring):
    header, consumer = ring[2]()
    arrays = {"frame": np.zeros((4, 4, 3), np.uint8), "big": np.zeros(SCRATCH + 1, np.uint8)}
    assert not consumer.stash(header["frame_ref"], arrays)
    assert set(arrays) == {"frame", "big"} and "arrays" not in header["frame_ref"]


def test_an_array_written_in_its_place_in_the_slot_is_passed_on_without_a_copy(ring):
    _, consumer, new_slot = ring
    header, this = new_slot()
    placed = this.place(header["frame_ref"], "a", (1, 2, 2, 3))
    placed[...] = 7
    arrays = {"a": placed, "b": np.arange(3, dtype=np.float32)}
    assert this.stash(header["frame_ref"], arrays) and arrays == {}
    assert header["frame_ref"]["arrays"] == [["a", "uint8", [1, 2, 2, 3], 0], ["b", "float32", [3], 64]]
    got = {}
    consumer().attach(header, got)
    assert set(got) == {"frame", "a", "b"} and (got["a"] == 7).all() and got["b"].tolist() == [0.0, 1.0, 2.0]
