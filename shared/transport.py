"""ZeroMQ plumbing: sockets, sending and receiving messages, and the two ends of a link.

Every data link goes one way and keeps order per peer; a full queue makes the
sender wait (replay) or drop and count (live), never drop silently. The sending
end is a ``PushSender`` (a DEALER socket) or, into the workers of a scaled stage,
a ``Distributor`` (ROUTER): each worker sends credits (how many more messages it
will take) and every message goes to the worker with the most credit, so a
slower worker gets less. Both are ``Sender``s. The receiving end is a
``Receiver``: a ROUTER socket, or a worker's DEALER. The end of the stream is
acknowledged: the receiver answers each end-of-stream message it gets with
``ACK``, so a sender knows that everything before it has arrived and may close.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable
from typing import Any, Protocol

import zmq

from .endpoint import Endpoint
from .messages import MalformedMessage, Message, decode, encode

MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # a 4K BGR frame is 25 MB; anything bigger is refused
CREDITS_MAX = 16  # most messages one worker may be given ahead
END_WAIT_S = 60.0  # at the end of a stream, how long a sender waits for the next stage's acknowledgement
ACK = b"end"  # the receiver's answer to an end-of-stream message
log = logging.getLogger("gazeflow.transport")
Abort = Callable[[], bool]


def open_socket(ctx: zmq.Context, kind: int, endpoint: Endpoint, hwm: int, curve: Any = None) -> zmq.Socket:
    """Create, configure and bind or connect one socket (CURVE on tcp when keys are given)."""
    sock = ctx.socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, hwm)
    sock.setsockopt(zmq.RCVHWM, hwm)
    sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
    if curve is not None:
        curve.apply(ctx, sock, endpoint.address, endpoint.mode == "bind")
    return sock


def attach(sock: zmq.Socket, endpoint: Endpoint) -> zmq.Socket:
    from .errors import GazeflowError

    if endpoint.mode == "connect":
        sock.connect(endpoint.address)
        return sock
    if endpoint.ipc_path is not None:
        endpoint.ipc_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        sock.bind(endpoint.address)
    except zmq.ZMQError as exc:
        sock.close()
        raise GazeflowError(f"cannot bind {endpoint.address}: {exc}") from None
    return sock


def close_socket(sock: zmq.Socket, endpoint: Endpoint) -> None:
    """Close a socket at once and remove the ipc file it bound, if any."""
    sock.close(linger=0)
    if endpoint.mode == "bind" and endpoint.ipc_path is not None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(endpoint.ipc_path)


def send(sock: zmq.Socket, msg: Message, block: bool = True, to: bytes | None = None) -> bool:
    """Send one message (to one peer of a ROUTER); with block=False, False when its queue is full."""
    frames = encode(msg)
    flags = 0 if block else zmq.NOBLOCK
    try:
        if to is not None:
            sock.send_multipart([to, *frames], flags=flags, copy=len(frames) == 1)
        elif len(frames) == 1:  # most messages: send_multipart's Python loop costs more than it does
            sock.send(frames[0], flags)
        else:
            sock.send_multipart(frames, flags=flags, copy=False)
    except zmq.Again:
        return False
    return True


def recv(sock: zmq.Socket, block: bool = True) -> Message | None:
    """Receive and decode one message (PULL or DEALER); None when nothing waits and block=False."""
    try:
        frames: list[Any] = sock.recv_multipart(flags=0 if block else zmq.NOBLOCK, copy=False)
    except zmq.Again:
        return None
    return decode(frames)


class PeerWatch:
    """Whether a socket has a peer connected (a socket monitor's connect and disconnect events)."""

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
        self._update(0)
        return self.peers > 0

    def wait_connected(self, stop: Any) -> bool:
        """Wait until a peer is connected; False if stopped first."""
        while not self.connected():
            if stop:
                return False
            self._update(100)
        return True

    def close(self) -> None:
        self.monitor.close(0)


class Sender(Protocol):
    endpoint: Endpoint
    watch: PeerWatch

    def send(self, msg: Message) -> bool:
        """Send without blocking; False when the next stage cannot take it now."""

    def wait(self, timeout_s: float) -> None:
        """Wait until a send may succeed (or the timeout)."""

    def send_end(self, msg: Message, abort: Abort) -> bool:
        """Send the end of the stream; False if aborted first."""

    def wait_end(self, who: str, abort: Abort) -> bool:
        """Wait for the next stage to acknowledge the end of the stream (warn and give up after END_WAIT_S)."""

    def close(self) -> None: ...


def _waited_too_long(who: str, deadline: float) -> bool:
    if time.monotonic() < deadline:
        return False
    log.warning("%s: the next stage did not acknowledge the end of the stream in %.0f s", who, END_WAIT_S)
    return True


class PushSender:
    """Sends on a DEALER socket to the one process of the next stage."""

    def __init__(self, ctx: zmq.Context, endpoint: Endpoint, hwm: int, curve: Any = None) -> None:
        self.endpoint = endpoint
        self.sock = open_socket(ctx, zmq.DEALER, endpoint, hwm, curve)
        self.watch = PeerWatch(self.sock)
        attach(self.sock, endpoint)

    def send(self, msg: Message) -> bool:
        return send(self.sock, msg, block=False)

    def wait(self, timeout_s: float) -> None:
        zmq.select([], [self.sock], [], timeout_s)

    def send_end(self, msg: Message, abort: Abort) -> bool:
        while not self.send(msg):
            if abort():
                return False
            self.wait(0.1)
        return True

    def wait_end(self, who: str, abort: Abort) -> bool:
        deadline = time.monotonic() + END_WAIT_S
        while not abort() and not _waited_too_long(who, deadline):
            if self.sock.poll(100) and self.sock.recv() == ACK:
                return True
        return False

    def close(self) -> None:
        self.watch.close()
        close_socket(self.sock, self.endpoint)


class Distributor:
    """Sends on a ROUTER socket to the workers of a scaled stage, by their credit."""

    def __init__(self, ctx: zmq.Context, endpoint: Endpoint, hwm: int, curve: Any = None) -> None:
        self.endpoint = endpoint
        self.sock = open_socket(ctx, zmq.ROUTER, endpoint, max(hwm, 2 * CREDITS_MAX), curve)
        self.sock.setsockopt(zmq.ROUTER_MANDATORY, 1)  # a send to a worker that has gone fails, not vanishes
        self.watch = PeerWatch(self.sock)
        attach(self.sock, endpoint)
        self.credits: dict[bytes, int] = {}  # worker identity -> messages it will still take
        self.end: Message | None = None  # the end of the stream, once sent
        self.ended: set[bytes] = set()  # workers that have been sent it
        self.acked: set[bytes] = set()  # workers that have acknowledged it

    def _take_credits(self, timeout_ms: int = 0) -> None:
        while self.sock.poll(timeout_ms, zmq.POLLIN):
            timeout_ms = 0
            parts = self.sock.recv_multipart(zmq.NOBLOCK)
            try:
                ident, payload = parts
                if payload == ACK:
                    self.acked.add(ident)
                    continue
                n = int(payload)
            except ValueError:
                log.warning("%s: ignored a malformed credit message", self.endpoint.address)
                continue
            self.credits[ident] = min(self.credits.get(ident, 0) + n, CREDITS_MAX)

    def _send_to(self, ident: bytes, msg: Message) -> bool | None:
        """True: sent; False: that worker's queue is full; None: that worker has gone."""
        try:
            return send(self.sock, msg, block=False, to=ident)
        except zmq.ZMQError as exc:
            if exc.errno != zmq.EHOSTUNREACH:
                raise
            self.credits.pop(ident, None)  # what it held is lost (and counted)
            log.info("%s: a worker has gone", self.endpoint.address)
            return None

    def send(self, msg: Message) -> bool:
        self._take_credits()
        while True:
            ready = [ident for ident, n in self.credits.items() if n > 0]
            if not ready:
                return False
            ident = max(ready, key=self.credits.__getitem__)  # the least busy; ties rotate (below)
            sent = self._send_to(ident, msg)
            if sent:
                self.credits[ident] = self.credits.pop(ident) - 1  # to the back of the order
                return True
            if sent is False:
                self.credits[ident] = 0

    def wait(self, timeout_s: float) -> None:
        self._take_credits(int(timeout_s * 1000))

    def send_end(self, msg: Message, abort: Abort) -> bool:
        """The end of the stream goes to every worker; each copy says how many were sent."""
        self._take_credits()
        msg.header["copies"] = len(self.credits)
        self.end = msg
        return self._end_to_new_workers(abort)

    def _end_to_new_workers(self, abort: Abort = lambda: False) -> bool:
        """Send the end of the stream to every worker not yet sent it (one restarted after the end, too)."""
        assert self.end is not None
        for ident in [i for i in self.credits if i not in self.ended]:
            while (sent := self._send_to(ident, self.end)) is False:
                if abort():
                    return False
                self._take_credits(100)
            if sent:
                self.ended.add(ident)
        return True

    def wait_end(self, who: str, abort: Abort) -> bool:
        deadline = time.monotonic() + END_WAIT_S
        while not abort() and not _waited_too_long(who, deadline):
            self._take_credits(100)
            self._end_to_new_workers()
            if self.ended <= self.acked:
                return True
        return False

    def close(self) -> None:
        self.watch.close()
        close_socket(self.sock, self.endpoint)


class Receiver:
    """The receiving end of a link: a ROUTER, or (a worker of a scaled stage) a DEALER that sends
    credits. Every end of the stream it receives is acknowledged to its sender at once."""

    def __init__(self, ctx: zmq.Context, endpoint: Endpoint, hwm: int, curve: Any, worker: bool) -> None:
        self.endpoint = endpoint
        self.worker = worker
        self.sock = attach(open_socket(ctx, zmq.DEALER if worker else zmq.ROUTER, endpoint, hwm, curve), endpoint)

    def recv(self, block: bool = False) -> Message | None:
        """One message, or None when nothing waits (block=False); MalformedMessage for a bad one."""
        try:
            frames: list[Any] = self.sock.recv_multipart(flags=0 if block else zmq.NOBLOCK, copy=False)
        except zmq.Again:
            return None
        peer = None if self.worker else frames.pop(0).bytes
        msg = decode(frames)
        if msg.kind == "eos":
            with contextlib.suppress(zmq.ZMQError):  # a sender that has gone needs no answer
                self.sock.send_multipart([ACK] if peer is None else [peer, ACK], zmq.NOBLOCK)
        return msg

    def give_credit(self, n: int) -> bool:
        """A worker tells the distributor it will take n more messages; False when that must wait."""
        try:
            self.sock.send(str(n).encode(), zmq.NOBLOCK)
        except zmq.Again:
            return False
        return True

    def close(self) -> None:
        close_socket(self.sock, self.endpoint)


__all__ = ["Endpoint", "MalformedMessage", "Sender"]
