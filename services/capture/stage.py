"""Capture: read, stamp, send. Live inputs drop what the pipeline cannot take; replay can be lossless."""

from __future__ import annotations

import logging
import time

import zmq

from gazeflow.shared import transport
from gazeflow.shared.config import Config
from gazeflow.shared.messages import Message
from gazeflow.shared.process import Control, StopFlag
from gazeflow.shared.stage import Counters

from .source import Pacer, Source, resolve_input

log = logging.getLogger("gazeflow.capture")
LINGER_MS = 10_000  # at the end of a replay, let the last frames and the end marker leave


def frames(cfg: Config, source: Source, stop: StopFlag | None = None):
    """Yield paced frame messages with their capture trace row (shared with run-sync)."""
    pacer = Pacer(0.0 if (cfg.pace == "max-speed" or source.camera) else (cfg.fps or source.fps))
    index = 0
    info = source.info()
    while not stop and (cfg.max_frames == 0 or index < cfg.max_frames):
        pacer.wait()
        t_grab = time.time_ns()
        t0 = time.perf_counter_ns()
        frame = source.read()
        if frame is None:
            return
        msg = Message.frame(index, t_grab / 1e9, info)
        msg.arrays["frame"] = frame
        # capture's row: its service time is the decode; it has no queue or model
        msg.header["trace"].append(["capture", t_grab, 0, 0, time.perf_counter_ns() - t0, 0, 0, 0])
        index += 1
        yield msg


def run(cfg: Config, ctx: zmq.Context, control: Control, stop: StopFlag) -> None:
    source = Source(resolve_input(cfg.input, cfg.assets_dir), cfg.loop)
    lossless = not cfg.live
    endpoint = transport.Endpoint.parse(cfg.endpoint("capture", "output"))
    sock = transport.open_socket(ctx, endpoint, 2 if lossless else 1)
    counters = Counters()
    log.info(
        "capture: %s %dx%d @ %.1f fps, %s%s, output %s",
        source.spec,
        source.width,
        source.height,
        cfg.fps or source.fps,
        "max-speed" if cfg.pace == "max-speed" else "realtime",
        ", lossless" if lossless else ", drops stale frames",
        endpoint,
    )
    control.send("ready")
    cpu0 = time.process_time()
    linger = 0
    try:
        for msg in frames(cfg, source, stop):
            counters.received += 1
            msg.header["trace"][0][2] = time.time_ns()
            if lossless:
                while not transport.send(sock, msg, block=False):
                    if stop:
                        return
                    zmq.select([], [sock], [], 0.1)
            elif not transport.send(sock, msg, block=False):
                counters.dropped += 1  # the pipeline is busy: drop, never queue, on live input
                continue
            counters.sent += 1
        if not stop:
            eos = Message.eos({"capture": {**counters.as_dict(), "cpu_s": round(time.process_time() - cpu0, 3)}})
            transport.send(sock, eos)
            log.info("capture: end of input, %s", counters.as_dict())
            linger = LINGER_MS
    finally:
        source.close()
        transport.close_socket(sock, endpoint, linger)
