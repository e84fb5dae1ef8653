"""ZeroMQ plumbing: sockets, sending and receiving messages, and the receiving end of a link.

Every data link goes one way and keeps order per peer; a full queue makes the
sender wait (replay) or drop and count (live), never drop silently. The
sending end is in ``senders.py``. The receiving end is a ``Receiver``: a ROUTER
socket, or a worker's DEALER that sends credits (how many more messages it will
take). The end of the stream is acknowledged: the receiver answers each
end-of-stream message it gets with ``ACK``, so a sender knows that everything
before it has arrived and may close.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Any

import zmq

from .endpoint import Endpoint
from .messages import MalformedMessage, Message, decode, encode

MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # a 4K BGR frame is 25 MB; anything bigger is refused
HEARTBEAT_MS = 1000  # live tcp links: ZeroMQ pings its peer this often and drops the connection after 3 missed
# replays: no ZMTP heartbeats. A receiver that waits on its own full queue (back-pressure, a replay's rule) stops
# reading its socket, its peer's pings go unanswered and ZeroMQ drops the connection with the messages queued on
# it (libzmq #2709, #4167): frames lost in a lossless replay. TCP keepalive notices a host that has gone instead.
KEEPALIVE_S = (10, 5, 3)  # idle seconds before the first probe, seconds between probes, probes
ACK = b"end"  # the receiver's answer to an end-of-stream message
IO_THREADS = 2  # a stage process's ZeroMQ I/O threads: its links' inputs on one, their outputs on the other
INPUT_IO, OUTPUT_IO = 1, 2
log = logging.getLogger("gazeflow.transport")


def open_socket(
    ctx: zmq.Context, kind: int, endpoint: Endpoint, hwm: int, curve: Any = None, live: bool = True, io: int = 0
) -> zmq.Socket:
    """Create and configure one socket (CURVE on tcp when keys are given; ``live``: ZMTP heartbeats on tcp,
    else TCP keepalive, so that back-pressure in a replay never drops a connection). ``io``: over tcp, the
    context's I/O thread it uses (INPUT_IO, OUTPUT_IO): libzmq resolves a host name in the I/O thread, and a
    link's reconnect to a peer that has gone (its name no longer resolves, the lookup waits for DNS) stalls
    every socket of that thread; with the input apart, the last frames still leave on the output."""
    sock = ctx.socket(kind)
    if io and endpoint.address.startswith("tcp://") and ctx.get(zmq.IO_THREADS) >= io:
        sock.setsockopt(zmq.AFFINITY, 1 << (io - 1))
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, hwm)
    sock.setsockopt(zmq.RCVHWM, hwm)
    sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
    if endpoint.address.startswith("tcp://") and live:  # a peer that vanishes (host down, cable out) is noticed
        sock.setsockopt(zmq.HEARTBEAT_IVL, HEARTBEAT_MS)
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 3 * HEARTBEAT_MS)
        sock.setsockopt(zmq.HEARTBEAT_TTL, 6 * HEARTBEAT_MS)
    elif endpoint.address.startswith("tcp://"):
        idle, interval, count = KEEPALIVE_S
        sock.setsockopt(zmq.TCP_KEEPALIVE, 1)
        sock.setsockopt(zmq.TCP_KEEPALIVE_IDLE, idle)
        sock.setsockopt(zmq.TCP_KEEPALIVE_INTVL, interval)
        sock.setsockopt(zmq.TCP_KEEPALIVE_CNT, count)
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


class Receiver:
    """The receiving end of a link: a ROUTER, or (a worker of a scaled stage) a DEALER that sends
    credits. Every end of the stream it receives is acknowledged to its sender at once."""

    def __init__(
        self, ctx: zmq.Context, endpoint: Endpoint, hwm: int, curve: Any, worker: bool, live: bool = True
    ) -> None:
        self.endpoint = endpoint
        self.worker = worker
        kind = zmq.DEALER if worker else zmq.ROUTER
        self.sock = attach(open_socket(ctx, kind, endpoint, hwm, curve, live, INPUT_IO), endpoint)

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


__all__ = ["Endpoint", "MalformedMessage"]
