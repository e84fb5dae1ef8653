"""A stage's input: receive, validate, attach the frame, drop stale frames (live), credits, frame order.

Messages are taken off the socket as soon as they arrive, so that time in the
inbox shows as queue wait, not transport. Live input into the stage after the
source: frames wait while fresh, and a newer frame drops those older than the
stale limit (or the oldest, when the inbox is full). Replay: a bounded lossless
queue (with the frame ring, its free slots bound it first). A worker of a scaled
stage tells the distributor how many more messages it will take (credits); the
stage after scaled workers restores capture's order (``reorder.py``).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

import zmq

from .frames import Frames
from .links import LinkEnd
from .messages import MalformedMessage, Message
from .metrics import Counters
from .process import Throttled
from .reorder import REPLAY_WAIT_S, Entry, Reorder

if TYPE_CHECKING:
    from .config import Config

log = logging.getLogger("gazeflow.stage")
LIVE_INBOX = 4  # live input: at most this many frames wait for a free request
LOSSLESS_INBOX = 8  # replay: at most this many messages wait; then the socket's queue holds the rest


class Inbox:
    def __init__(
        self,
        cfg: Config,
        stage: str,
        ctx: zmq.Context,
        frames: Frames,
        counters: Counters,
        check: Callable[[Message], None] = lambda msg: None,
    ) -> None:
        self.stage = stage
        self.frames = frames
        self.counters = counters
        self.check = check  # what this stage needs of a frame, beyond the schema (Processor.check)
        self.log_malformed = Throttled(log, logging.WARNING)
        link = cfg.link(stage, "input")
        entry = link.up == cfg.source  # full frames: a short socket queue (6 MB each over tcp)
        self.live = cfg.live and entry  # only the stage after the source drops
        self.replay_warnings = not cfg.live
        self.size = LIVE_INBOX if self.live else LOSSLESS_INBOX
        self.stale_ns = int(cfg.stale_ms * 1e6)
        self.waiting: deque[Entry] = deque()
        self.receiver = LinkEnd.of(cfg, stage, "input").receiver(ctx)
        self.endpoint, self.sock = self.receiver.endpoint, self.receiver.sock
        self.credits = self.receiver.worker  # one of several workers: it tells the distributor what it takes
        self._owed = 0  # credits not yet told to the distributor (its queue was full)
        if self.credits:
            self.receiver.give_credit(self.size)
        self.reorder: Reorder | None = None  # after several upstream workers: capture's order
        if cfg.workers(link.up) > 1:
            self.reorder = Reorder(link.up, cfg.stale_ms / 1e3 if cfg.live else REPLAY_WAIT_S)
        self.drop_notices = cfg.scaled  # a frame dropped here is announced, so that no reorder waits for it

    def __len__(self) -> int:
        return len(self.waiting)

    def wants(self) -> bool:
        """Whether to take messages off the socket now (live input always: newer frames win)."""
        return len(self.waiting) < self.size or self.live

    def receive(self) -> None:
        """Take one message off the socket (one per turn of the loop: the poll says when there is
        another; trying for a second would raise zmq.Again, which costs on a cold CPU)."""
        msg = None
        try:
            msg = self.receiver.recv()
            if msg is None:
                return
            self.frames.attach(msg)
            if msg.kind == "frame":
                self.check(msg)
            if self.reorder is not None:
                self.reorder.check(msg)
        except MalformedMessage as exc:
            if msg is not None:
                self.frames.drop(msg)
            self.counters.malformed += 1
            self.credit(1)  # it took the place of one
            self.log_malformed("%s: dropped a malformed message: %s", self.stage, exc)
            return
        now = time.time_ns()
        if msg.kind == "frame":
            self.counters.received += 1
            if self.live:
                self._drop_stale(now)
        entry = (msg, now, time.perf_counter_ns())
        if self.reorder is None:
            self.waiting.append(entry)
            return
        ready, late = self.reorder.push(entry)
        if late:  # its place was given up: dropped, and already announced downstream
            self.counters.dropped += 1
            self.frames.drop(msg)
            (log.warning if self.replay_warnings else log.debug)(
                "%s: frame %s came after its place was given up: dropped", self.stage, msg.header["frame"]
            )
        self.waiting.extend(ready)

    def expire(self) -> None:
        """Gaps the reorder has waited for long enough are given up; the wait counts only while this stage
        takes messages in and has read all that arrived (a stage held up downstream, or behind on its socket,
        would otherwise give up frames that wait unread in its own queue)."""
        if self.reorder is None:
            return
        now = time.perf_counter_ns()
        if self.reorder.gap_since is not None and (not self.wants() or self.sock.poll(0, zmq.POLLIN)):
            self.reorder.defer(now)  # (a syscall only while a gap is waited for, not on every turn)
            return
        self.waiting.extend(self.reorder.expire(now))
        self.counters.lost = self.reorder.given_up

    def _drop_stale(self, now_ns: int) -> None:
        """A newer frame has arrived: drop waiting frames that are stale, or the oldest if the inbox is full."""
        keep: deque[Entry] = deque()
        waiting = sum(1 for m in self.waiting if m[0].kind == "frame")
        for entry in self.waiting:
            msg = entry[0]
            if msg.kind == "frame" and (
                now_ns - int(msg.header["t_capture"] * 1e9) > self.stale_ns or waiting >= self.size
            ):
                self.frames.drop(msg)
                self.counters.dropped += 1
                waiting -= 1
                if self.drop_notices and "seq" in msg.header:  # takes the frame's place (and its credit)
                    keep.append((Message.drop(msg.header["seq"], msg.header["frame"]), entry[1], entry[2]))
                else:
                    self.credit(1)
            else:
                keep.append(entry)
        self.waiting = keep

    def take(self) -> Entry:
        """The next message to work on; it leaves the inbox (an end of stream keeps its credit)."""
        entry = self.waiting.popleft()
        if entry[0].kind != "eos":
            self.credit(1)
        return entry

    def credit(self, n: int) -> None:
        """Room for n more messages: tell the distributor (a worker's input only); n = 0 retries what
        could not be told before."""
        if self.credits:
            self._owed += n
            if self._owed and self.receiver.give_credit(self._owed):
                self._owed = 0

    def report(self) -> None:
        if self.reorder is not None and (self.reorder.given_up or self.reorder.late):
            log.warning(
                "%s: %d frames never came from %s (lost with a worker), %d came too late",
                self.stage,
                self.reorder.given_up,
                self.reorder.upstream,
                self.reorder.late,
            )

    def close(self) -> None:
        self.receiver.close()
