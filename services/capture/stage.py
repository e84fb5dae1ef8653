"""Capture: read, stamp, send. Live inputs drop what the pipeline cannot take; replay can be lossless."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import zmq

from gazeflow.shared.framering import RingProducer
from gazeflow.shared.links import LinkEnd
from gazeflow.shared.messages import Message
from gazeflow.shared.metrics import T_SEND, Counters, trace_row
from gazeflow.shared.process import Control, StopFlag

from .source import DecodeLead, Pacer, Recorder, Source, resolve_input

if TYPE_CHECKING:
    from gazeflow.shared.config import Config

log = logging.getLogger("gazeflow.capture")
LIVE_DRAIN_S = 2.0  # live input stopped by a signal: at most this long (frames in flight are fresh ones)
DRAIN_S = 10.0  # replay stopped by a signal: at most this long for the frames in flight to finish
RING_WAIT_S = 5.0  # at the end, the ring is kept while frames come back; not this long without one


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
    feed = _Feed(cfg, source, stop, ring, counters or Counters(), beat, recorder)
    while not stop and (cfg.max_frames == 0 or feed.index < cfg.max_frames):
        beat()  # alive on every frame, also while every frame is dropped (no free slot)
        feed.pacer.ahead(feed.lead.seconds)
        slot, released = feed.slot()
        if ring is not None and slot is None:
            if stop or not feed.drop():
                return
            continue
        msg = feed.read(slot, released)
        if msg is None:
            if ring is not None and slot is not None:  # the slot taken for a frame past the end: free again
                ring.give_back(slot)
            return
        yield msg


class _Feed:
    """What ``frames`` keeps between frames: the pace, the decode lead, the frame index."""

    def __init__(
        self,
        cfg: Config,
        source: Source,
        stop: StopFlag | None,
        ring: RingProducer | None,
        counters: Counters,
        beat: Callable[[], None],
        recorder: Recorder | None,
    ) -> None:
        self.cfg, self.source, self.stop, self.ring = cfg, source, stop, ring
        self.counters, self.beat, self.recorder = counters, beat, recorder
        self.pacer = Pacer(0.0 if (cfg.pace == "max-speed" or source.camera) else (cfg.fps or source.fps))
        self.lead = DecodeLead()
        self.index = 0
        self.info = source.info()

    def slot(self) -> tuple[int | None, bool]:
        """A free slot of the ring (lossless: waits for one; live: up to the frame's release time), and
        whether the release time has come already."""
        if self.ring is None:
            return None, False
        slot = self.ring.take()
        self.counters.lost = self.ring.expired  # slots taken back from a stage that died: their frames are lost
        while slot is None and not self.cfg.live and not self.stop:
            self.beat()  # waiting for the pipeline is not hanging
            self.ring.reclaim(100)
            slot = self.ring.take()
        if slot is None and not self.stop:  # live: a slot may still come back before the release time
            self.pacer.wait()
            return self.ring.take(), True
        return slot, False

    def drop(self) -> bool:
        """Every slot is busy: the pipeline cannot take this frame (counted; a recorder still gets it).
        False at the end of the input."""
        if self.recorder is not None:
            dropped = self.source.read()
            if dropped is None:
                return False
            self.recorder.write(dropped)
        elif not self.source.skip():
            return False
        self.counters.received += 1
        self.counters.dropped += 1
        self.index += 1
        return True

    def read(self, slot: int | None, released: bool) -> Message | None:
        """Decode the next frame (into the slot) and stamp it; None at the end of the input."""
        source, ring = self.source, self.ring
        t0 = time.perf_counter_ns()
        frame = source.read(ring.ring.view(slot) if ring is not None and slot is not None else None)
        if frame is None:
            return None
        decode_ns = time.perf_counter_ns() - t0
        if self.recorder is not None:
            self.recorder.write(frame)
        if source.camera:  # waiting for the driver's next frame is not capture's work: count from the hand-over
            decode_ns = time.time_ns() - source.grabbed_ns
        self.lead.add(decode_ns / 1e9)
        if not released:
            self.pacer.wait()
        t_grab = source.grabbed_ns if source.camera else time.time_ns()
        self.counters.received += 1
        msg = Message.frame(self.index, t_grab / 1e9, self.info)
        if ring is not None and slot is not None:
            msg.header["frame_ref"] = ring.ref(slot)
        else:
            msg.arrays["frame"] = frame
        # capture's row: its service time is the decode (before t_grab for a file); no queue, no model
        msg.header["trace"].append(trace_row(self.cfg.source, t_grab, pre=decode_ns))
        self.index += 1
        return msg


def run(cfg: Config, ctx: zmq.Context, control: Control, stop: StopFlag) -> None:
    """Capture as a stage process: open the input while the others compile, wait for run-all's go, stream."""
    capture = _Stream(cfg, ctx, control, stop)  # the input opens (or fails in one line) before anything else
    try:
        control.ready()
        if not control.wait_for_go(stop):
            return
        if cfg.live and not capture.sender.watch.wait_connected(stop):  # a live send before: a needless drop
            return
        capture.run()
    finally:
        capture.close()


class _Stream:
    """One stream from the input to face detection: the frames, the end of the stream, the drain."""

    def __init__(self, cfg: Config, ctx: zmq.Context, control: Control, stop: StopFlag) -> None:
        self.cfg, self.control, self.stop = cfg, control, stop
        self.source = Source(
            resolve_input(cfg.input, cfg.assets_dir),
            cfg.loop,
            decode_threads=1 if cfg.few_cores else 0,
            camera=cfg.capture,
        )
        # with the ring, free slots bound what is in flight; into scaled workers, their credits do
        self.sender = LinkEnd.of(cfg, cfg.source, "output").sender(ctx)
        self.counters = Counters()
        control.counters = self.counters
        # a frames link on this host carries slot numbers of a shared-memory ring, not pixels
        shape = (self.source.height, self.source.width, 3)
        self.ring = RingProducer(ctx, cfg.run_dir, shape) if cfg.shares_frames(cfg.source) else None
        size = (self.source.width, self.source.height)
        self.recorder = Recorder(cfg.record, cfg.fps or self.source.fps, size) if cfg.record else None
        self.drain_deadline = 0.0
        mode = "max-speed" if cfg.pace == "max-speed" else "realtime"
        log.info(
            "capture: %s %dx%d @ %.1f fps, %s%s, output %s",
            self.source.spec,
            *size,
            cfg.fps or self.source.fps,
            mode,
            ", drops stale frames" if cfg.live else ", lossless",
            self.sender.endpoint,
        )

    def aborted(self) -> bool:
        """The first signal ends the stream (no more frames; those in flight finish, so that results and
        metrics are written); a second one aborts, and so does a next stage that has gone (nothing left
        to drain into) or a drain longer than DRAIN_S (live: LIVE_DRAIN_S)."""
        self.control.beat()  # it is asked while capture waits: capture is alive
        if self.stop.count >= 2:
            return True
        if not self.stop:
            return False
        self.drain_deadline = self.drain_deadline or time.monotonic() + (LIVE_DRAIN_S if self.cfg.live else DRAIN_S)
        return not self.sender.watch.connected() or time.monotonic() > self.drain_deadline

    def send(self, msg: Message) -> bool | None:
        """Send a frame: lossless, wait while the next stage is full; live, drop it (counted). None: aborted."""
        if not self.cfg.live:
            while not self.sender.send(msg):
                if self.aborted():
                    return None
                self.control.beat()
                self.sender.wait(0.1)
            return True
        if self.sender.send(msg):
            return True
        self.counters.dropped += 1  # the pipeline is busy: drop, never queue, on live input
        if self.ring is not None:
            self.ring.give_back(msg.header["frame_ref"]["slot"])
        return False

    def run(self) -> None:
        cpu0 = time.process_time()
        for msg in frames(self.cfg, self.source, self.stop, self.ring, self.counters, self.control.beat, self.recorder):
            self.control.beat()
            msg.header["trace"][0][T_SEND] = time.time_ns()
            msg.header["seq"] = self.counters.sent  # no gaps: a stage after scaled workers restores this order
            sent = self.send(msg)
            if sent is None:
                return
            self.counters.sent += sent
        if self.aborted():
            return
        if self.stop:
            log.info("capture: stopped after %d frames; the frames in flight finish", self.counters.sent)
        cpu = {"cpu_s": round((time.process_time() - cpu0) / self.control.sharing, 3)}
        eos = Message.eos({self.cfg.source: {**self.counters.as_dict(), **cpu}})
        eos.header["total"] = self.counters.sent
        self.sender.send_end(eos, self.aborted)
        log.info("capture: end of input, %s", self.counters.as_dict())
        if self.ring is not None and self.ring.expired:
            log.warning("capture: %d frame slots were never released (a stage died): taken back", self.ring.expired)
        self.sender.wait_end(self.cfg.source, self.aborted)  # face detection has taken everything
        self._wait_slots()

    def _wait_slots(self) -> None:
        """Keep the ring until every frame sent has come back: a later stage may not have opened it yet (a
        short input ends before landmarks sees its first frame). Not past an abort, nor RING_WAIT_S without
        a slot coming back (a stage that died and was not restarted)."""
        ring = self.ring
        if ring is None:
            return
        quiet_since = time.monotonic()
        while ring.in_use and not self.aborted() and time.monotonic() - quiet_since < RING_WAIT_S:
            held = len(ring.in_use)
            ring.reclaim(100)
            ring.expire()
            if len(ring.in_use) < held:
                quiet_since = time.monotonic()

    def close(self) -> None:
        self.source.close()
        self.sender.close()
        if self.recorder is not None:
            self.recorder.close()
            log.info("capture: %d frames recorded to %s", self.recorder.frames, self.recorder.path)
        if self.ring is not None:
            self.ring.close()


class Capture:
    """The source, as the registry knows it: ``run`` as a stage process, ``frames`` for run-sync."""

    run = staticmethod(run)
    frames = staticmethod(frames)


def preflight(cfg: Config) -> None:
    """A video that is not there or not a video, a camera that cannot be opened: one line before the start."""
    Source(resolve_input(cfg.input, cfg.assets_dir)).close()
