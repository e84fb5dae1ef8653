"""Full frames in shared memory, for a frames link that stays on one host.

Capture decodes each frame straight into a slot of a memory-mapped ring file
(on tmpfs) and sends only ``frame_ref`` in the header: the 6 MB frame never
crosses the process boundary by copy. The consumer maps the same file, uses
the slot in place, and sends the slot number back on a small ``release``
socket when it is done with it (finished or dropped). Free slots are the
producer's credits: with none free, live input drops the frame before even
sending it, and lossless replay waits. Across hosts (a tcp frames link) the
pixels travel in the message instead.
"""

from __future__ import annotations

import mmap
import os
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from . import transport
from .errors import GazeflowError

SLOTS = 8
RELEASE_HWM = 1000  # slot numbers coming back: tiny, never worth blocking on
SLOT_TIMEOUT_S = 5.0  # a slot not released for this long is taken back (its consumer died)


class FrameRing:
    """A file of ``slots`` frames of one shape, mapped into memory."""

    def __init__(self, path: Path, slots: int, shape: tuple[int, ...], create: bool = False) -> None:
        self.path = Path(path)
        self.slots = slots
        self.shape = tuple(shape)
        self.frame_bytes = int(np.prod(self.shape))
        size = slots * self.frame_bytes
        flags = os.O_RDWR | (os.O_CREAT | os.O_TRUNC if create else 0)
        fd = os.open(self.path, flags, 0o600)
        try:
            if create:
                os.posix_fallocate(fd, 0, size)  # reserve now: a full tmpfs must fail here, not SIGBUS later
            self._map = mmap.mmap(fd, size)
        except OSError as exc:
            if create:
                self.path.unlink(missing_ok=True)
            raise GazeflowError(f"frame ring {self.path} ({size >> 20} MB): {exc}") from None
        finally:
            os.close(fd)
        self._views = [
            np.frombuffer(self._map, np.uint8, self.frame_bytes, i * self.frame_bytes).reshape(self.shape)
            for i in range(slots)
        ]

    def view(self, slot: int) -> np.ndarray:
        return self._views[slot]

    def unlink(self) -> None:
        self.path.unlink(missing_ok=True)


class RingProducer:
    """The capture side: owns the free slots, takes releases back."""

    def __init__(self, ctx: zmq.Context, run_dir: str, shape: tuple[int, ...], slots: int = SLOTS) -> None:
        self.ring = FrameRing(Path(run_dir) / "frames.ring", slots, shape, create=True)
        self.release = transport.Endpoint.parse(f"pull+bind:ipc://{run_dir}/release")
        self.release_address = self.release.address
        self.sock = transport.open_socket(ctx, self.release, RELEASE_HWM)
        self.free: deque[int] = deque(range(slots))
        self.in_use: dict[int, tuple[int, float]] = {}  # slot -> (generation, taken at)
        self.generation = 0
        self.expired = 0

    def reclaim(self, timeout_ms: int = 0) -> None:
        """Take back released slots; wait up to timeout_ms for the first one."""
        if timeout_ms and not self.sock.poll(timeout_ms):
            return
        while True:
            try:
                slot, gen = (int(v) for v in self.sock.recv(zmq.NOBLOCK).split(b":"))
            except zmq.Again:
                return
            except ValueError:
                continue  # not a release message: ignore it
            if self.in_use.get(slot, (None,))[0] == gen:  # a late release of a slot already taken back is ignored
                self.give_back(slot)

    def give_back(self, slot: int) -> None:
        del self.in_use[slot]
        self.free.append(slot)

    def _expire(self) -> None:
        now = time.monotonic()
        for slot, (_, taken) in list(self.in_use.items()):
            if now - taken > SLOT_TIMEOUT_S:
                self.expired += 1
                self.give_back(slot)

    def take(self) -> int | None:
        self.reclaim()
        if not self.free:
            self._expire()
        if not self.free:
            return None
        slot = self.free.popleft()
        self.generation += 1
        self.in_use[slot] = (self.generation, time.monotonic())
        return slot

    def ref(self, slot: int) -> dict[str, Any]:
        return {"ring": str(self.ring.path), "slot": slot, "gen": self.in_use[slot][0], "shape": list(self.ring.shape),
                "slots": self.ring.slots, "release": self.release_address}  # fmt: skip

    def close(self) -> None:
        transport.close_socket(self.sock, self.release)  # and its socket file
        self.ring.unlink()


class RingConsumer:
    """The consumer side: resolves frame_ref headers to arrays, sends slots back."""

    def __init__(self, ctx: zmq.Context) -> None:
        self.ctx = ctx
        self.ring: FrameRing | None = None
        self.sock: zmq.Socket | None = None

    def attach(self, header: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        ref = header.get("frame_ref")
        if ref is None:
            return
        if self.ring is None or str(self.ring.path) != ref["ring"]:
            self.ring = FrameRing(Path(ref["ring"]), ref["slots"], tuple(ref["shape"]))
            if self.sock is not None:
                self.sock.close(0)
            self.sock = self.ctx.socket(zmq.PUSH)
            self.sock.setsockopt(zmq.LINGER, 0)
            self.sock.connect(ref["release"])
        arrays["frame"] = self.ring.view(ref["slot"])

    def release(self, header: dict[str, Any]) -> None:
        self.give_back(header.pop("frame_ref", None))

    def give_back(self, ref: dict[str, Any] | None) -> None:
        """Send a slot back to capture (a ``frame_ref`` taken off a header; None: nothing to do)."""
        if ref is not None and self.sock is not None:
            try:
                self.sock.send(f"{ref['slot']}:{ref['gen']}".encode(), zmq.NOBLOCK)
            except zmq.Again:
                pass  # capture has gone away: nobody needs the slot back

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close(0)
