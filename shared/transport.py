"""ZeroMQ plumbing: endpoint specs, socket options and send/receive of messages.

An endpoint is written as ``pattern+mode:address``, for example
``push+bind:ipc:///tmp/run/frames`` or ``pull+connect:tcp://10.0.0.2:5555``.

Every data link is PUSH -> PULL: one direction, FIFO per peer, and a full
queue blocks the sender instead of silently dropping (PUB/SUB would drop at
its high-water mark without telling anyone). Live sources send with NOBLOCK
and count a refused send as a dropped frame; lossless replay blocks instead.

A link into a scaled stage (several worker processes) is ROUTER -> DEALER
instead: each worker sends credits (how many more messages it will take) and
the ``Distributor`` gives every message to the worker with the most credit, so
a slow worker (another device, a busy host) gets less; the end of the stream
goes to every worker. Stages send through ``open_sender``: a ``PushSender``, or
a ``Distributor`` when the endpoint says router.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq

from .errors import GazeflowError
from .messages import Message, decode, encode

PATTERNS = {"push": zmq.PUSH, "pull": zmq.PULL, "router": zmq.ROUTER, "dealer": zmq.DEALER}
MODES = ("bind", "connect")
SCHEMES = ("ipc", "tcp", "inproc")
MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # a 4K BGR frame is 25 MB; anything bigger is refused
CREDITS_MAX = 16  # most messages one worker may be given ahead
END_WAIT_S = 60.0  # at the end of a stream, how long a sender waits for the next stage to take everything
log = logging.getLogger("gazeflow.transport")


@dataclass(frozen=True)
class Endpoint:
    pattern: str
    mode: str
    address: str

    @classmethod
    def parse(cls, spec: str) -> Endpoint:
        try:
            head, address = spec.split(":", 1)
            pattern, mode = head.split("+", 1)
        except ValueError:
            raise GazeflowError(f"bad endpoint {spec!r}: expected pattern+mode:address") from None
        scheme = address.split("://", 1)[0]
        if pattern not in PATTERNS or mode not in MODES or scheme not in SCHEMES or "://" not in address:
            raise GazeflowError(
                f"bad endpoint {spec!r}: pattern one of {sorted(PATTERNS)}, mode bind|connect, "
                f"address {'|'.join(SCHEMES)}://..."
            )
        if scheme == "tcp" and mode == "bind" and address.split("://", 1)[1].startswith("*"):
            raise GazeflowError(f"bad endpoint {spec!r}: bind tcp to an explicit address, not '*'")
        return cls(pattern, mode, address)

    @property
    def ipc_path(self) -> Path | None:
        return Path(self.address[len("ipc://") :]) if self.address.startswith("ipc://") else None

    def __str__(self) -> str:
        return f"{self.pattern}+{self.mode}:{self.address}"


def open_socket(ctx: zmq.Context, endpoint: Endpoint, hwm: int, curve: Any = None) -> zmq.Socket:
    """Create, configure and bind or connect one socket (CURVE on tcp when curve keys are given)."""
    sock = _configured(ctx, endpoint, hwm, curve)
    _attach(sock, endpoint)
    return sock


def open_watched_socket(
    ctx: zmq.Context, endpoint: Endpoint, hwm: int, curve: Any = None
) -> tuple[zmq.Socket, PeerWatch]:
    """A sending socket whose peers are counted from before its first connection."""
    sock = _configured(ctx, endpoint, hwm, curve)
    watch = PeerWatch(sock)
    _attach(sock, endpoint)
    return sock, watch


def _configured(ctx: zmq.Context, endpoint: Endpoint, hwm: int, curve: Any) -> zmq.Socket:
    sock = ctx.socket(PATTERNS[endpoint.pattern])
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, hwm)
    sock.setsockopt(zmq.RCVHWM, hwm)
    sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
    if curve is not None:
        curve.apply(ctx, sock, endpoint.address, endpoint.mode == "bind")
    return sock


def _attach(sock: zmq.Socket, endpoint: Endpoint) -> None:
    if endpoint.mode == "bind":
        path = endpoint.ipc_path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        try:
            sock.bind(endpoint.address)
        except zmq.ZMQError as exc:
            sock.close()
            raise GazeflowError(f"cannot bind {endpoint.address}: {exc}") from None
    else:
        sock.connect(endpoint.address)


def close_socket(sock: zmq.Socket, endpoint: Endpoint) -> None:
    """Close a socket at once and remove the ipc file it bound, if any."""
    sock.close(linger=0)
    path = endpoint.ipc_path
    if endpoint.mode == "bind" and path is not None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _stopped(stop: Any) -> bool:
    """A stop flag, or a function that says whether to stop."""
    return bool(stop()) if callable(stop) else bool(stop)


class PeerWatch:
    """Counts the peers of a sending socket, so that it closes only after they hang up.

    Closing right after the end-of-stream message can lose the last messages:
    bytes the receiver has read but not yet queued (its high-water mark was
    reached) are discarded when the connection drops. A receiving stage exits
    once it has handled the end of the stream, so "every peer has hung up"
    means "everything was received".
    """

    EVENTS = zmq.EVENT_ACCEPTED | zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED

    def __init__(self, sock: zmq.Socket) -> None:
        self.monitor = sock.get_monitor_socket(self.EVENTS)
        self.peers = 0

    def _update(self, timeout_ms: int) -> None:
        from zmq.utils.monitor import recv_monitor_message

        while self.monitor.poll(timeout_ms):
            event = recv_monitor_message(self.monitor)["event"]
            self.peers += -1 if event == zmq.EVENT_DISCONNECTED else 1
            timeout_ms = 0

    def connected(self) -> bool:
        """Whether some peer is connected now."""
        self._update(0)
        return self.peers > 0

    def wait_connected(self, stop: Any = None) -> bool:
        """Wait until at least one peer is connected; False if stopped first."""
        self._update(0)
        while self.peers <= 0:
            if _stopped(stop):
                return False
            self._update(100)
        return True

    def wait_gone(
        self, who: str, stop: Any = None, timeout_s: float = END_WAIT_S, meanwhile: Callable[[], None] | None = None
    ) -> bool:
        """After the end of a stream: wait until every peer has hung up; warn and give up on timeout."""
        deadline = time.monotonic() + timeout_s
        self._update(0)
        while self.peers > 0:
            if _stopped(stop):
                return False
            if time.monotonic() > deadline:
                log.warning("%s: next stage still connected %.0f s after the end of the stream", who, timeout_s)
                return False
            if meanwhile is not None:
                meanwhile()
            self._update(100)
        return True

    def close(self) -> None:
        self.monitor.close(0)


class PushSender:
    """Sends on one PUSH socket: the next stage is one process."""

    def __init__(self, ctx: zmq.Context, endpoint: Endpoint, hwm: int, curve: Any = None) -> None:
        self.endpoint = endpoint
        self.sock, self.watch = open_watched_socket(ctx, endpoint, hwm, curve)

    def send(self, msg: Message) -> bool:
        """Send without blocking; False when the next stage's queue is full."""
        return send(self.sock, msg, block=False)

    def wait(self, timeout_s: float) -> None:
        """Wait until a send may succeed (or the timeout)."""
        zmq.select([], [self.sock], [], timeout_s)

    def send_end(self, msg: Message, abort: Callable[[], bool]) -> bool:
        """Send the end of the stream (blocking); False if aborted first."""
        while not self.send(msg):
            if abort():
                return False
            self.wait(0.1)
        return True

    def wait_end(self, who: str, stop: Any) -> bool:
        """After send_end: wait until the next stage has taken everything and hung up."""
        return self.watch.wait_gone(who, stop)

    def close(self) -> None:
        self.watch.close()
        close_socket(self.sock, self.endpoint)


class Distributor(PushSender):
    """Sends on a ROUTER socket to the workers of a scaled stage, by their credit."""

    def __init__(self, ctx: zmq.Context, endpoint: Endpoint, hwm: int, curve: Any = None) -> None:
        super().__init__(ctx, endpoint, max(hwm, 2 * CREDITS_MAX), curve)
        self.sock.setsockopt(zmq.ROUTER_MANDATORY, 1)  # a send to a worker that has gone fails, not vanishes
        self.credits: dict[bytes, int] = {}  # worker identity -> messages it will still take
        self.end: list[Any] | None = None  # the end of the stream, once sent
        self.ended: set[bytes] = set()  # workers that have been sent it

    def _take_credits(self, timeout_ms: int = 0) -> None:
        while self.sock.poll(timeout_ms, zmq.POLLIN):
            timeout_ms = 0
            parts = self.sock.recv_multipart(zmq.NOBLOCK)
            try:
                ident, payload = parts
                n = int(payload)
            except ValueError:
                log.warning("%s: ignored a malformed credit message", self.endpoint.address)
                continue
            self.credits[ident] = min(self.credits.get(ident, 0) + n, CREDITS_MAX)

    def send(self, msg: Message) -> bool:
        self._take_credits()
        frames: list[Any] | None = None
        while True:
            ready = [ident for ident, n in self.credits.items() if n > 0]
            if not ready:
                return False
            ident = max(ready, key=self.credits.__getitem__)  # the least busy; ties rotate (below)
            frames = frames or encode(msg)
            try:
                self.sock.send_multipart([ident, *frames], flags=zmq.NOBLOCK, copy=len(frames) == 1)
            except zmq.Again:
                self.credits[ident] = 0
                continue
            except zmq.ZMQError as exc:
                if exc.errno != zmq.EHOSTUNREACH:
                    raise
                del self.credits[ident]  # that worker has gone; what it held is lost (and counted)
                log.info("%s: a worker has gone", self.endpoint.address)
                continue
            self.credits[ident] = self.credits.pop(ident) - 1  # to the back of the order
            return True

    def wait(self, timeout_s: float) -> None:
        self._take_credits(int(timeout_s * 1000))

    def send_end(self, msg: Message, abort: Callable[[], bool]) -> bool:
        """The end of the stream goes to every worker; each copy says how many were sent."""
        self._take_credits()
        msg.header["copies"] = len(self.credits)
        self.end = encode(msg)
        return self._end_to_new_workers(abort)

    def _end_to_new_workers(self, abort: Callable[[], bool] = lambda: False) -> bool:
        """Send the end of the stream to every worker not yet sent it (one restarted after the end, too)."""
        assert self.end is not None
        for ident in [i for i in self.credits if i not in self.ended]:
            while True:
                try:
                    self.sock.send_multipart([ident, *self.end], flags=zmq.NOBLOCK)
                    self.ended.add(ident)
                    break
                except zmq.Again:
                    if abort():
                        return False
                    self._take_credits(100)
                except zmq.ZMQError as exc:
                    if exc.errno != zmq.EHOSTUNREACH:
                        raise
                    del self.credits[ident]
                    break
        return True

    def wait_end(self, who: str, stop: Any) -> bool:
        def meanwhile() -> None:
            self._take_credits()
            self._end_to_new_workers()

        return self.watch.wait_gone(who, stop, meanwhile=meanwhile)


def open_sender(ctx: zmq.Context, endpoint: Endpoint, hwm: int, curve: Any = None) -> PushSender:
    cls = Distributor if endpoint.pattern == "router" else PushSender
    return cls(ctx, endpoint, hwm, curve)


def give_credit(sock: zmq.Socket, n: int) -> bool:
    """A worker (DEALER input) tells its distributor it will take n more messages."""
    try:
        sock.send(str(n).encode(), zmq.NOBLOCK)
    except zmq.Again:
        return False
    return True


def send(sock: zmq.Socket, msg: Message, block: bool = True) -> bool:
    """Send one message; with block=False return False when the peer's queue is full."""
    frames = encode(msg)
    flags = 0 if block else zmq.NOBLOCK
    try:
        if len(frames) == 1:  # most messages: send_multipart's Python loop costs more than it does
            sock.send(frames[0], flags)
        else:
            sock.send_multipart(frames, flags=flags, copy=False)
    except zmq.Again:
        return False
    return True


def recv(sock: zmq.Socket, block: bool = True) -> Message | None:
    """Receive and decode one message; None when block=False and nothing is waiting.

    Raises MalformedMessage for a message that breaks the schema.
    """
    try:
        frames: list[Any] = sock.recv_multipart(flags=0 if block else zmq.NOBLOCK, copy=False)
    except zmq.Again:
        return None
    return decode(frames)
