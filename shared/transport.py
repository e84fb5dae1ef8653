"""ZeroMQ plumbing: endpoint specs, socket options and send/receive of messages.

An endpoint is written as ``pattern+mode:address``, for example
``push+bind:ipc:///tmp/run/frames`` or ``pull+connect:tcp://10.0.0.2:5555``.

Every data link is PUSH -> PULL: one direction, FIFO per peer, and a full
queue blocks the sender instead of silently dropping (PUB/SUB would drop at
its high-water mark without telling anyone). Live sources send with NOBLOCK
and count a refused send as a dropped frame; lossless replay blocks instead.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq

from .errors import GazeflowError
from .messages import Message, decode, encode

PATTERNS = {"push": zmq.PUSH, "pull": zmq.PULL}
MODES = ("bind", "connect")
SCHEMES = ("ipc", "tcp", "inproc")
MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # a 4K BGR frame is 25 MB; anything bigger is refused


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


def open_socket(ctx: zmq.Context, endpoint: Endpoint, hwm: int) -> zmq.Socket:
    """Create, configure and bind or connect one socket."""
    sock = ctx.socket(PATTERNS[endpoint.pattern])
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, hwm)
    sock.setsockopt(zmq.RCVHWM, hwm)
    sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
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
    return sock


def close_socket(sock: zmq.Socket, endpoint: Endpoint, linger_ms: int = 0) -> None:
    """Close a socket and remove the ipc file it bound, if any.

    linger_ms > 0 lets queued messages (the end of a stream) leave first.
    """
    sock.close(linger=linger_ms)
    path = endpoint.ipc_path
    if endpoint.mode == "bind" and path is not None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def send(sock: zmq.Socket, msg: Message, block: bool = True) -> bool:
    """Send one message; with block=False return False when the peer's queue is full."""
    frames = encode(msg)
    try:
        sock.send_multipart(frames, flags=0 if block else zmq.NOBLOCK, copy=len(frames) == 1)
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
