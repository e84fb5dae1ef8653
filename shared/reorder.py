"""Frame order after scaled workers: the stage that follows them puts messages back in capture order.

Capture numbers the messages it sends (``seq``: 0, 1, 2, ... without gaps), so
a missing number is either still on its way (a slower worker) or gone (dropped
upstream, which sends a ``drop`` notice in its place, or lost with a worker
that died). ``Reorder`` holds what arrives early and releases runs in order.
The window is bounded in time: a gap older than ``wait_s`` (live: the stale
limit; replay: long enough for a slow worker, short enough for a restart) is
given up; the frame, if it still comes, is counted as dropped, and a ``drop``
notice takes its place so that later stages that reorder do not wait for it.

Each worker forwards its own copy of the end of the stream; the copies carry
``copies`` and capture's ``total``. The stream ends here once every number
below ``total`` is accounted for and every copy has arrived (or, after a
worker died, a short grace has passed); the copies' counters are summed.
"""

from __future__ import annotations

import time
from typing import Any

from .messages import MalformedMessage, Message

Entry = tuple[Message, int, int]  # message, wall ns at arrival, monotonic ns at arrival
WINDOW = 4096  # how far ahead of the next number a message may be: more than any stage holds in flight
REPLAY_WAIT_S = 5.0  # replay: how long a gap is waited for before its frame is counted lost
END_GRACE_S = 1.0  # how long to wait for the end-of-stream copies of workers that may have died
SUMMED = ("in", "out", "dropped", "malformed", "cpu_s")


def merge_worker_stats(per_worker: list[dict[str, Any]]) -> dict[str, Any]:
    """One stage's counters from those of its workers: totals, and each worker's as ``workers``."""
    merged: dict[str, Any] = {key: 0 for key in SUMMED}
    for stats in per_worker:
        for key in SUMMED:
            merged[key] += stats.get(key, 0)
    merged["cpu_s"] = round(merged["cpu_s"], 3)
    flights = [s["in_flight_max"] for s in per_worker if "in_flight_max" in s]
    if flights:
        merged["in_flight_max"] = max(flights)
        means = [s["in_flight_mean"] for s in per_worker if "in_flight_mean" in s]
        merged["in_flight_mean"] = round(sum(means) / len(means), 2)
    if per_worker and "requests" in per_worker[0]:
        merged["requests"] = per_worker[0]["requests"]
    merged["workers"] = per_worker
    return merged


class Reorder:
    """Releases messages from several upstream workers in ``seq`` order, within a time bound."""

    def __init__(self, upstream: str, wait_s: float) -> None:
        self.upstream = upstream
        self.wait_ns = int(wait_s * 1e9)
        self.next = 0  # the sequence number released next
        self.held: dict[int, Entry] = {}
        self.gap_since: int | None = None  # when the wait for ``next`` began
        self.ends: list[Message] = []
        self.total: int | None = None
        self.done_since: int | None = None
        self.finished = False
        self.late = 0  # arrived after their gap was given up: dropped
        self.given_up = 0  # never arrived in time: lost upstream

    def check(self, msg: Message) -> None:
        """MalformedMessage for a sequence number or total no stream could have here: far beyond what
        is held (a wait for it would hold every frame, and memory, for nothing)."""
        limit = self.next + WINDOW
        if msg.kind != "eos" and msg.header.get("seq", 0) >= limit:
            raise MalformedMessage(f"seq {msg.header.get('seq')} beyond the window (next {self.next})")
        total = msg.header.get("total") if msg.kind == "eos" else None
        if total is not None and not (self.next <= total < limit + len(self.held)):
            raise MalformedMessage(f"total {total} does not fit the stream (next {self.next})")

    def push(self, entry: Entry) -> tuple[list[Entry], bool]:
        """Take one arrival; return what can go on now, in order, and whether it came too late."""
        msg, _, mono = entry
        if msg.kind == "eos":
            self.ends.append(msg)
            if "total" in msg.header:
                self.total = int(msg.header["total"])
            return self._release(mono), False
        seq = int(msg.header["seq"])
        if seq < self.next or seq in self.held:
            self.late += msg.kind == "frame"
            return [], msg.kind == "frame"
        self.held[seq] = entry
        return self._release(mono), False

    def expire(self, now_mono: int) -> list[Entry]:
        """Give up a gap that has waited too long; end the stream when its grace is over."""
        if self.gap_since is not None and now_mono - self.gap_since > self.wait_ns:
            target = min(self.held) if self.held else (self.total if self.total is not None else self.next)
            out: list[Entry] = []
            for seq in range(self.next, target):
                out.append((Message.drop(seq, None), time.time_ns(), now_mono))
            self.given_up += target - self.next
            self.next = target
            self.gap_since = None
            return out + self._release(now_mono)
        return self._release(now_mono) if self.done_since is not None else []

    def defer(self, now_mono: int) -> None:
        """The wait for a gap (there is one) starts again: its stage could not take in what may be on its way."""
        self.gap_since = now_mono

    def _release(self, now: int) -> list[Entry]:
        out: list[Entry] = []
        start = self.next
        while self.next in self.held:
            out.append(self.held.pop(self.next))
            self.next += 1
        missing = bool(self.held) or (self.total is not None and self.next < self.total)
        if not missing:
            self.gap_since = None
        elif self.gap_since is None or self.next != start:
            self.gap_since = now
        if self.ends and not missing and not self.finished:
            self.done_since = self.done_since or now
            copies = max(int(e.header.get("copies", 1)) for e in self.ends)
            if len(self.ends) >= copies or now - self.done_since > END_GRACE_S * 1e9:
                out.append(self._end(now))
        return out

    def _end(self, now: int) -> Entry:
        self.finished = True
        self.done_since = None
        end = self.ends[0]
        stats = dict(end.header.get("stats", {}))
        stats[self.upstream] = merge_worker_stats([e.header.get("stats", {}).get(self.upstream, {}) for e in self.ends])
        end.header["stats"] = stats
        end.header.pop("copies", None)
        return (end, time.time_ns(), now)
