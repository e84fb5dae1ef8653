"""A stage's output: the trace row, the frame's slot, the send (waiting while the next stage is full).

The sink has no output: its outbox only completes the trace row. The end of the
stream carries each stage's counters on to the sink.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import zmq

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

    def emit(self, item: Item, msg: Message, t_post: int, worker: str, in_flight: int) -> None:
        """Send a finished message on, its trace row complete; its slot goes back after the send."""
        done_with = self.frames.finished(msg)
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
        self.send(msg)
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


def stats(counters: Counters, sizes: dict[str, int], cpu_s: float, worker: Any | None) -> dict[str, Any]:
    """A stage's counters as they travel on the end of the stream."""
    out = {"requests": sizes, **counters.as_dict(), "cpu_s": round(cpu_s, 3)}
    if worker is not None:
        out["worker"] = worker
    return out
