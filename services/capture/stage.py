"""Capture: read, stamp, send. Live inputs drop what the pipeline cannot take; replay can be lossless."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

import zmq

from gazeflow.shared.config import Config
from gazeflow.shared.framering import RingProducer
from gazeflow.shared.links import LinkEnd
from gazeflow.shared.messages import Message
from gazeflow.shared.metrics import T_SEND, Counters, trace_row
from gazeflow.shared.process import Control, StopFlag, wait_for_go

from .source import DecodeLead, Pacer, Recorder, Source, resolve_input

log = logging.getLogger("gazeflow.capture")
LIVE_DRAIN_S = 2.0  # live input stopped by a signal: at most this long (frames in flight are fresh ones)
DRAIN_S = 10.0  # replay stopped by a signal: at most this long for the frames in flight to finish


def frames(
    cfg: Config,
    source: Source,
    stop: StopFlag | None = None,
    ring: RingProducer | None = None,
    counters: Counters | None = None,
    beat: Callable[[], None] = lambda: None,
    recorder: Recorder | None = None,
) -> Iterator[Message]:
    """Yield paced frame messages with their capture trace row (run-sync uses this too).

    The capture time is when a frame becomes available to the pipeline: for a
    camera, when the driver hands it over (decoding follows); for a file, its
    release time in the replay. A file's frame is decoded just before that time
    (``DecodeLead``), as a camera's frame exists before it is handed over, so it
    leaves on time instead of one decode late. With a ring, each frame is decoded
    straight into a free shared-memory slot; when none is free, lossless replay
    waits and live input drops the frame without converting it (a recorder still
    gets it: frame i of a recording is frame i of the stream).
    """
    pacer = Pacer(0.0 if (cfg.pace == "max-speed" or source.camera) else (cfg.fps or source.fps))
    lead = DecodeLead()
    lossless = not cfg.live
    counters = counters or Counters()
    index = 0
    info = source.info()
    while not stop and (cfg.max_frames == 0 or index < cfg.max_frames):
        beat()  # alive on every frame, also while every frame is dropped (no free slot)
        pacer.ahead(lead.seconds)
        slot = None
        released = False
        if ring is not None:
            slot = ring.take()
            while slot is None and lossless and not stop:
                beat()  # waiting for the pipeline is not hanging
                ring.reclaim(100)
                slot = ring.take()
            if slot is None and not stop:  # live: a slot may still come back before the release time
                pacer.wait()
                released = True
                slot = ring.take()
            if slot is None:
                if stop:
                    return
                if recorder is not None:
                    dropped = source.read()
                    if dropped is None:
                        return
                    recorder.write(dropped)
                elif not source.skip():
                    return
                counters.received += 1
                counters.dropped += 1  # every slot is busy: the pipeline cannot take this frame
                index += 1
                continue
        t0 = time.perf_counter_ns()
        frame = source.read(ring.ring.view(slot) if ring is not None and slot is not None else None)
        if frame is None:
            return
        decode_ns = time.perf_counter_ns() - t0
        if recorder is not None:
            recorder.write(frame)
        if source.camera:  # waiting for the driver's next frame is not capture's work: count from the hand-over
            decode_ns = time.time_ns() - source.grabbed_ns
        lead.add(decode_ns / 1e9)
        if not released:
            pacer.wait()
        t_grab = source.grabbed_ns if source.camera else time.time_ns()
        counters.received += 1
        msg = Message.frame(index, t_grab / 1e9, info)
        if ring is not None and slot is not None:
            msg.header["frame_ref"] = ring.ref(slot)
        else:
            msg.arrays["frame"] = frame
        # capture's row: its service time is the decode (before t_grab for a file); no queue, no model
        msg.header["trace"].append(trace_row(cfg.source, t_grab, pre=decode_ns))
        index += 1
        yield msg


def run(cfg: Config, ctx: zmq.Context, control: Control, stop: StopFlag) -> None:
    source = Source(resolve_input(cfg.input, cfg.assets_dir), cfg.loop, decode_threads=1 if cfg.few_cores else 0)
    lossless = not cfg.live
    # with the ring, free slots bound what is in flight; into scaled workers, their credits do
    sender = LinkEnd.of(cfg, cfg.source, "output").sender(ctx)
    counters = Counters()
    control.counters = counters
    # a frames link on this host carries slot numbers of a shared-memory ring, not pixels
    ring = RingProducer(ctx, cfg.run_dir, (source.height, source.width, 3)) if cfg.shares_frames(cfg.source) else None
    recorder = Recorder(cfg.record, cfg.fps or source.fps, (source.width, source.height)) if cfg.record else None
    log.info(
        "capture: %s %dx%d @ %.1f fps, %s%s, output %s",
        source.spec,
        source.width,
        source.height,
        cfg.fps or source.fps,
        "max-speed" if cfg.pace == "max-speed" else "realtime",
        ", lossless" if lossless else ", drops stale frames",
        sender.endpoint,
    )
    control.send("ready")
    if not wait_for_go(stop, control.beat):
        return
    if not lossless and not sender.watch.wait_connected(stop):  # a live send before that would be a needless drop
        return

    drain_deadline = 0.0

    def aborted() -> bool:
        """The first signal ends the stream (no more frames; those in flight finish, so that results and
        metrics are written); a second one aborts, and so does a next stage that has gone (nothing left
        to drain into) or a drain longer than DRAIN_S (live: LIVE_DRAIN_S)."""
        control.beat()  # it is asked while capture waits: capture is alive
        if stop.count >= 2:
            return True
        if not stop:
            return False
        nonlocal drain_deadline
        drain_deadline = drain_deadline or time.monotonic() + (DRAIN_S if lossless else LIVE_DRAIN_S)
        return not sender.watch.connected() or time.monotonic() > drain_deadline

    cpu0 = time.process_time()
    try:
        for msg in frames(cfg, source, stop, ring, counters, control.beat, recorder):
            control.beat()
            msg.header["trace"][0][T_SEND] = time.time_ns()
            msg.header["seq"] = counters.sent  # no gaps: a stage after scaled workers restores this order
            if lossless:
                while not sender.send(msg):
                    if aborted():
                        return
                    control.beat()
                    sender.wait(0.1)
            elif not sender.send(msg):
                counters.dropped += 1  # the pipeline is busy: drop, never queue, on live input
                if ring is not None:
                    ring.give_back(msg.header["frame_ref"]["slot"])
                continue
            counters.sent += 1
        if aborted():
            return
        if stop:
            log.info("capture: stopped after %d frames; the frames in flight finish", counters.sent)
        eos = Message.eos({cfg.source: {**counters.as_dict(), "cpu_s": round(time.process_time() - cpu0, 3)}})
        eos.header["total"] = counters.sent
        sender.send_end(eos, aborted)
        log.info("capture: end of input, %s", counters.as_dict())
        if ring is not None and ring.expired:
            log.warning("capture: %d frame slots were never released (a stage died): taken back", ring.expired)
        sender.wait_end(cfg.source, aborted)  # face detection has taken everything
    finally:
        source.close()
        sender.close()
        if recorder is not None:
            recorder.close()
            log.info("capture: %d frames recorded to %s", recorder.frames, recorder.path)
        if ring is not None:
            ring.close()


class Capture:
    """The source, as the registry knows it: ``run`` as a stage process, ``frames`` for run-sync."""

    run = staticmethod(run)
    frames = staticmethod(frames)
