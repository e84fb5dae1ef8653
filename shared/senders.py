"""The sending end of a link: a ``PushSender`` or, into the workers of a scaled stage, a ``Distributor``.

Both are ``Sender``s. The Distributor (a ROUTER socket) gives every message to
the worker with the most credit (how many more messages it will take), so a
slower worker (another device, a busier host) gets less; the end of the stream
goes to every worker, a worker restarted after it too. Either sender closes
only once the next stage has acknowledged the end of the stream.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

import zmq

from .endpoint import Endpoint
from .messages import Message
from .transport import ACK, OUTPUT_IO, PeerWatch, attach, close_socket, open_socket, send

CREDITS_MAX = 16  # most messages one worker may be given ahead
WORKERS_WAIT_S = 60.0  # a replay's first message waits this long at most for every worker of a scaled stage
END_WAIT_S = 60.0  # at the end of a stream, how long a sender waits for the next stage's acknowledgement
log = logging.getLogger("gazeflow.transport")
Abort = Callable[[], bool]


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


def _until_acknowledged(who: str, abort: Abort, acknowledged: Callable[[], bool]) -> bool:
    """Call ``acknowledged`` (which waits a little) until it says so; False if aborted or after END_WAIT_S."""
    deadline = time.monotonic() + END_WAIT_S
    while not abort():
        if acknowledged():
            return True
        if time.monotonic() > deadline:
            log.warning("%s: the next stage did not acknowledge the end of the stream in %.0f s", who, END_WAIT_S)
            return False
    return False


class _Socket:
    """The socket a sender sends on, watched for peers; closed with the ipc file it bound."""

    def __init__(
        self, ctx: zmq.Context, kind: int, endpoint: Endpoint, hwm: int, curve: Any, live: bool = True, **options: int
    ) -> None:
        self.endpoint = endpoint
        self.sock = open_socket(ctx, kind, endpoint, hwm, curve, live, OUTPUT_IO)
        for option, value in options.items():
            self.sock.setsockopt(getattr(zmq, option), value)
        self.watch = PeerWatch(self.sock)
        attach(self.sock, endpoint)

    def close(self) -> None:
        self.watch.close()
        close_socket(self.sock, self.endpoint)


class PushSender(_Socket):
    """Sends on a DEALER socket to the one process of the next stage."""

    def __init__(self, ctx: zmq.Context, endpoint: Endpoint, hwm: int, curve: Any = None, live: bool = True) -> None:
        super().__init__(ctx, zmq.DEALER, endpoint, hwm, curve, live)

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
        return _until_acknowledged(who, abort, lambda: bool(self.sock.poll(100)) and self.sock.recv() == ACK)


class Distributor(_Socket):
    """Sends on a ROUTER socket to the workers of a scaled stage, by their credit."""

    def __init__(
        self, ctx: zmq.Context, endpoint: Endpoint, hwm: int, curve: Any = None, live: bool = True, workers: int = 1
    ) -> None:
        # ROUTER_MANDATORY: a send to a worker that has gone fails, not vanishes
        super().__init__(ctx, zmq.ROUTER, endpoint, max(hwm, 2 * CREDITS_MAX), curve, live, ROUTER_MANDATORY=1)
        # a replay's first message waits (WORKERS_WAIT_S at most) until every worker has said it takes some, so
        # that one started late (compiling its models, without run-all's go) shares the work and gets the end
        self.expected = 0 if live else workers
        self.first_by: float | None = None
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

    def _all_there(self) -> bool:
        """Whether the first message may go: every worker is there, or the wait for them is over."""
        if len(self.credits) >= self.expected:
            self.expected = 0
            return True
        now = time.monotonic()
        if self.first_by is None:
            self.first_by = now + WORKERS_WAIT_S
            log.info("%s: waiting for %d workers before the first frame", self.endpoint.address, self.expected)
        if now < self.first_by:
            return False
        came, address = len(self.credits), self.endpoint.address
        log.warning("%s: %d of %d workers came in %.0f s: going on", address, came, self.expected, WORKERS_WAIT_S)
        self.expected = 0
        return True

    def send(self, msg: Message) -> bool:
        self._take_credits()
        if self.expected and not self._all_there():
            return False
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
        def acknowledged() -> bool:
            self._take_credits(100)
            self._end_to_new_workers()
            return self.ended <= self.acked

        return _until_acknowledged(who, abort, acknowledged)
