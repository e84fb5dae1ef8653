"""The stage loop on real ZeroMQ sockets and a real (tiny) OpenVINO model."""

import threading

import numpy as np
import zmq

from gazeflow.shared import transport
from gazeflow.shared.config import Config
from gazeflow.shared.messages import Message
from gazeflow.shared.process import Control, StopFlag
from gazeflow.shared.stage import Processor, StageRuntime

from tiny_models import scale_model


class Doubler(Processor):
    """Runs as the 'gaze' stage: infers on frames whose index is not a multiple of 5."""

    name = "gaze"
    models = {"m": "tiny-scale"}

    def prepare(self, msg):
        if msg.index % 5 == 0:
            return {}  # like a frame without a face: no inference, still flows through in order
        return {"m": {0: msg.arrays["img"]}}

    def finish(self, msg, outputs):
        msg.arrays.clear()
        msg.header["gaze"] = float(outputs["m"]["y"].item()) if outputs else None
        return msg


def run_stage(tmp_path, messages, live=False):
    scale_model(tmp_path / "assets/models/intel/tiny-scale/FP16/tiny-scale.xml")
    cfg = Config(assets_dir=str(tmp_path / "assets"), run_dir=str(tmp_path / "run"), pace="max-speed")
    if live:
        cfg.pace = "realtime"
    cfg.stages["gaze"].requests = 4
    ctx = zmq.Context()
    feed = transport.open_socket(ctx, transport.Endpoint.parse(f"push+bind:ipc://{cfg.run_dir}/eyes"), 100)
    runtime = StageRuntime(Doubler(cfg), cfg, ctx, Control(ctx, "gaze"), StopFlag())
    out = []

    def feeder():
        for m in messages:
            if isinstance(m, Message):
                transport.send(feed, m)
            else:
                feed.send_multipart(m)

    def reader():
        # the next stage: it hangs up after the end of the stream, which lets the stage under test exit
        sink = transport.open_socket(ctx, transport.Endpoint.parse(f"pull+connect:ipc://{cfg.run_dir}/gaze"), 100)
        while True:
            msg = transport.recv(sink)
            out.append(msg)
            if msg.kind == "eos":
                sink.close(0)
                return

    threads = [threading.Thread(target=feeder), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    runtime.run()
    for t in threads:
        t.join(10)
    feed.close(0)
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
        assert m.header["gaze"] == (None if m.index % 5 == 0 else 2.0 * (m.index % 100))
        assert m.header["trace"][-1][0] == "gaze"
    assert out[-1].kind == "eos"
    assert out[-1].header["stats"]["gaze"]["in"] == 60 and out[-1].header["stats"]["gaze"]["out"] == 60
    assert runtime.models["m"].size == 4


def test_malformed_messages_are_counted_and_the_stream_goes_on(tmp_path):
    messages = [frame(0), [b"\xc1garbage"], frame(1), [b"not", b"a message"], frame(2), Message.eos()]
    _, out = run_stage(tmp_path, messages)
    assert [m.index for m in out if m.kind == "frame"] == [0, 1, 2]
    assert out[-1].header["stats"]["gaze"]["malformed"] == 2
