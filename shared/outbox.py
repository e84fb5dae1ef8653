"""A stage's output: the trace row, the frame's slot, the send (waiting while the next stage is full).

The sink has no output: its outbox only completes the trace row. The end of the
stream carries each stage's counters on to the sink. Before a sink fed on demand
(the panel), only the frames it asks for go (``OnDemand``); the others are done
here, counted as ``unwatched``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import zmq

from . import channels, registry
from .engine import Item
from .frames import Frames
from .links import LinkEnd
from .messages import Message
from .metrics import T_SEND, Counters, trace_row
from .process import StopFlag
from .senders import Sender

if TYPE_CHECKING:
    from .config import Config

log = logging.getLogger("gazeflow.stage")
WAIT_S = 0.1  # how often a blocked send looks at the stop flag


class Stopped(Exception):
    """Stopped by a signal while waiting to send."""


class OnDemand:
    """The frames a sink fed on demand asks for: while it has asked on the watch channel (a page of the panel
    is open), at most ``fps`` a second; none otherwise. Its end of the stream always goes."""

    def __init__(self, ctx: zmq.Context, run_dir: str, fps: float) -> None:
        self.end = channels.End.local(ctx, run_dir, "watch", serves=False)
        self.interval = 1.0 / fps if fps > 0 else math.inf
        self.until = self.last = -math.inf

    def heard(self) -> None:
        """What came on the watch channel (its socket woke the stage's loop)."""
        while (watch := self.end.receive()) is not None:
            self.until = time.monotonic() + watch.seconds

    def wants(self) -> bool:
        now = time.monotonic()
        if now >= self.until or now - self.last < self.interval:
            return False
        self.last = now
        return True

    def close(self) -> None:
        self.end.close()


class Outbox:
    def __init__(
        self,
        cfg: Config,
        stage: str,
        ctx: zmq.Context,
        frames: Frames,
        counters: Counters,
        stop: StopFlag,
        beat: Callable[[], None] = lambda: None,
    ) -> None:
        self.stage = stage
        self.beat = beat  # while it waits for the next stage, the stage is alive
        self.frames = frames
        self.counters = counters
        self.stop = stop
        self.sender: Sender | None = None if stage == cfg.sink else LinkEnd.of(cfg, stage, "output").sender(ctx)
        fps = registry.on_demand(cfg, stage)
        self.demand = OnDemand(ctx, cfg.run_dir, fps) if fps is not None else None

    def emit(self, item: Item, msg: Message, t_post: int, worker: str, in_flight: int) -> None:
        """Send a finished message on, its trace row complete; its slot goes back after the send."""
        wanted = self.demand is None or self.demand.wants()  # else nobody watches: done here
        done_with = self.frames.finished(msg) if wanted else msg.header.pop("frame_ref", None)
        t_end = time.perf_counter_ns()
        row = trace_row(
            self.stage,
            item.t_recv,
            queue=item.t_start - item.t_recv_mono,  # inbox + waiting for free requests
            pre=item.t_submit - item.t_start,
            infer=(item.t_done - item.t_submit) if item.keys else 0,
            hold=(t_post - item.t_done) if item.keys else (t_post - item.t_submit),  # earlier frames first
            post=t_end - t_post,
            worker=worker,
            in_flight=in_flight,  # requests still in flight as it leaves: for the health report
        )
        msg.header["trace"].append(row)
        row[T_SEND] = time.time_ns()  # just before sending
        if wanted:
            self.send(msg)
        else:
            self.counters.unwatched += 1
        self.frames.give_back(done_with)
        self.counters.sent += 1

    def send(self, msg: Message) -> None:
        if self.sender is None:
            return
        while not self.sender.send(msg):
            if self.stop:
                raise Stopped
            self.beat()
            self.sender.wait(WAIT_S)

    def end(self, eos: Message) -> None:
        """Send the end of the stream and wait until the next stage has taken everything."""

        def abort() -> bool:  # checked while it waits: the stage is alive meanwhile
            self.beat()
            return bool(self.stop)

        if self.sender is not None and self.sender.send_end(eos, abort):
            self.sender.wait_end(self.stage, abort)

    def close(self) -> None:
        if self.sender is not None:
            self.sender.close()
        if self.demand is not None:
            self.demand.close()


def stats(counters: Counters, sizes: dict[str, int], cpu_s: float, worker: Any | None) -> dict[str, Any]:
    """A stage's counters as they travel on the end of the stream."""
    out = {"requests": sizes, **counters.as_dict(), "cpu_s": round(cpu_s, 3)}
    if worker is not None:
        out["worker"] = worker
    return out
