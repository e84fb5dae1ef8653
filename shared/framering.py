"""Full frames in shared memory, for a frames link that stays on one host.

Capture decodes each frame straight into a slot of a memory-mapped ring file
(on tmpfs) and sends only ``frame_ref`` in the header: the 6 MB frame never
crosses the process boundary by copy. The consumer maps the same file, uses
the slot in place, and sends the slot number back on a small ``release``
socket when it is done with it (finished or dropped). Free slots are the
producer's credits: with none free, live input drops the frame before even
sending it, and lossless replay waits. Across hosts (a tcp frames link) the
pixels travel in the message instead.

Each slot also has a small scratch area after its pixels. A stage that passes
the slot on to the next one on this host puts its small output arrays there
(``stash``: the eye crops, 21 KB) and lists them in ``frame_ref["arrays"]``,
so they too stay off the socket. The last stage to use the slot releases it.
"""

from __future__ import annotations

import math
import mmap
import os
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from . import channels
from .errors import GazeflowError
from .messages import ITEMSIZE, MalformedMessage, array_nbytes, dtype_name

SLOTS = 8
HOLDER_BYTES = 16  # per slot: the pid of the process that has it, and whether it holds it or sent it on
HELD, SENT = 1, 2
DEAD_GRACE_S = 2.0  # after a death, how long slots sent before it may still arrive somewhere alive
SCRATCH = 64 << 10  # bytes after each frame for small arrays that go on with it
_ALIGN = 64


class FrameRing:
    """A file of ``slots`` frames of one shape, mapped into memory."""

    def __init__(
        self, path: Path, slots: int, shape: tuple[int, ...], scratch: int = SCRATCH, create: bool = False
    ) -> None:
        self.path = Path(path)
        self.slots = slots
        self.shape = tuple(shape)
        self.frame_bytes = int(np.prod(self.shape))
        self.scratch = scratch
        self.holder_at = -(-self.frame_bytes // 8) * 8  # after the pixels: who has the slot (see Holder)
        self.stride = -(-(self.holder_at + HOLDER_BYTES + scratch) // _ALIGN) * _ALIGN
        size = slots * self.stride
        if create:  # a file left by a run that was killed goes; a link there is removed, never followed
            self.path.unlink(missing_ok=True)
        flags = os.O_RDWR | os.O_NOFOLLOW | (os.O_CREAT | os.O_EXCL if create else 0)
        try:
            fd = os.open(self.path, flags, 0o600)
        except OSError as exc:
            if not create:
                raise  # a consumer: a bad reference, which attach counts
            raise GazeflowError(f"frame ring {self.path}: {exc.strerror}") from None
        try:
            if not create and os.fstat(fd).st_size != size:
                raise ValueError(f"{self.path} is not a ring of {slots} frames of {list(self.shape)}")
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
            np.frombuffer(self._map, np.uint8, self.frame_bytes, i * self.stride).reshape(self.shape)
            for i in range(slots)
        ]
        self._scratch_views: dict[tuple[Any, ...], np.ndarray] = {}  # made once: np.frombuffer is slow on a cold CPU
        self._holders = [np.frombuffer(self._map, np.int64, 2, i * self.stride + self.holder_at) for i in range(slots)]

    def hold(self, slot: int, state: int) -> None:
        """Say in the slot who has it now: this process, holding it (HELD) or sending it on (SENT)."""
        self._holders[slot][:] = (os.getpid(), state)

    def holder(self, slot: int) -> tuple[int, int]:
        pid, state = self._holders[slot]
        return int(pid), int(state)

    def view(self, slot: int) -> np.ndarray:
        return self._views[slot]

    def scratch_view(self, slot: int, offset: int, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
        """An array in a slot's scratch area; ValueError when it is not inside it."""
        key = (slot, offset, dtype, shape)
        view = self._scratch_views.get(key)
        if view is None:
            nbytes = array_nbytes(dtype, shape)  # MalformedMessage is a ValueError
            count = nbytes // ITEMSIZE[dtype]
            if not (0 <= slot < self.slots and offset >= 0 and offset + nbytes <= self.scratch):
                raise ValueError(f"{dtype}{list(shape)} at {offset} is not inside slot {slot}'s scratch")
            start = slot * self.stride + self.holder_at + HOLDER_BYTES + offset
            view = self._scratch_views[key] = np.frombuffer(self._map, dtype, count, start).reshape(shape)
        return view

    def unlink(self) -> None:
        self.path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie (a stage that died before run-all reaped it)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except (OSError, IndexError):
        return False


class RingProducer:
    """The capture side: owns the free slots, takes releases back."""

    def __init__(self, ctx: zmq.Context, run_dir: str, shape: tuple[int, ...], slots: int = SLOTS) -> None:
        self.ring = FrameRing(Path(run_dir) / "frames.ring", slots, shape, create=True)
        self.release = channels.End.local(ctx, run_dir, "release", serves=True)
        self.free: deque[int] = deque(range(slots))
        self.in_use: dict[int, tuple[int, float]] = {}  # slot -> (generation, taken at)
        self.generation = 0
        self.expired = 0
        self.died_at: float | None = None  # when run-all last said a stage died

    def reclaim(self, timeout_ms: int = 0) -> None:
        """Take back released slots; wait up to timeout_ms for the first one."""
        if timeout_ms and not self.release.poll(timeout_ms):
            return
        while (message := self.release.receive()) is not None:
            if isinstance(message, channels.Died):
                self.died_at = time.monotonic()
            elif self.in_use.get(message.slot, (None,))[0] == message.gen:  # a late one, for a slot taken back: no
                self.give_back(message.slot)

    def give_back(self, slot: int) -> None:
        del self.in_use[slot]
        self.free.append(slot)

    def expire(self) -> None:
        """Take back the slots of stages that died, never of slow ones: a slot whose holder's process is
        gone; or, after run-all said a stage died, one that was on its way (sent on before the death, not
        taken up since) once DEAD_GRACE_S has passed: it was in the dead stage's queue."""
        now = time.monotonic()
        for slot, (_, taken) in list(self.in_use.items()):
            pid, state = self.ring.holder(slot)
            lost = self.died_at is not None and taken < self.died_at and now - self.died_at > DEAD_GRACE_S
            if (pid != os.getpid() and not _alive(pid)) or (state == SENT and lost):
                self.expired += 1
                self.give_back(slot)

    def take(self) -> int | None:
        self.reclaim()
        if not self.free:
            self.expire()
        if not self.free:
            return None
        slot = self.free.popleft()
        self.generation += 1
        self.in_use[slot] = (self.generation, time.monotonic())
        self.ring.hold(slot, SENT)  # capture decodes into it and sends it on
        return slot

    def ref(self, slot: int) -> dict[str, Any]:
        return {
            "ring": str(self.ring.path),
            "slot": slot,
            "gen": self.in_use[slot][0],
            "shape": list(self.ring.shape),
            "slots": self.ring.slots,
            "scratch": self.ring.scratch,
        }

    def close(self) -> None:
        self.release.close()  # and its socket file
        self.ring.unlink()


def _span(dtype: str, shape: Any) -> int:
    """Bytes an array takes in a scratch area, rounded up to keep the next one aligned. Every spec
    it sees was checked where it came in (``scratch_view``, from ``attach``), or is this stage's own:
    no second check per frame."""
    return -(-math.prod(shape) * ITEMSIZE[dtype] // _ALIGN) * _ALIGN


def _end(specs: Any) -> int:
    """Where the arrays listed in a scratch area end."""
    return max((at + _span(dtype, shape) for _, dtype, shape, at in specs), default=0)


class RingConsumer:
    """The consumer side: resolves frame_ref headers to arrays, passes small arrays on in a slot, sends slots back.

    A ``frame_ref`` is honoured only from a link on this host (``local``) and only for this run's own
    ring (``run_dir``/frames.ring); slots go back to this run's release socket. Nothing in a message
    names a file to map or an address to connect to.
    """

    def __init__(self, ctx: zmq.Context, run_dir: str = "", local: bool = False) -> None:
        self.ctx = ctx
        self.path = Path(run_dir) / "frames.ring"
        self.run_dir = run_dir
        self.local = local and bool(run_dir)
        self.ring: FrameRing | None = None
        self.slots_back: channels.End | None = None

    def _open(self, ref: dict[str, Any]) -> FrameRing:
        """This run's ring, as the reference describes it (checked against the file's size)."""
        slots, shape, scratch = ref["slots"], tuple(ref["shape"]), ref["scratch"]
        if not (isinstance(slots, int) and 0 < slots <= 64 and isinstance(scratch, int) and 0 <= scratch <= SCRATCH):
            raise ValueError(f"{slots!r} slots of scratch {scratch!r}")
        if len(shape) != 3 or not all(isinstance(n, int) and 0 < n <= 8192 for n in shape) or shape[2] > 4:
            raise ValueError(f"frame shape {list(shape)}")
        if self.ring is not None and (self.ring.slots, self.ring.shape, self.ring.scratch) == (slots, shape, scratch):
            return self.ring
        ring = FrameRing(self.path, slots, shape, scratch)
        if self.slots_back is None:
            # its last releases go out even when the stage ends right after them (inproc neighbours end fast)
            self.slots_back = channels.End.local(self.ctx, self.run_dir, "release", serves=False, linger_ms=1000)
        return ring

    def attach(self, header: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Put the frame (and what rides in its scratch) into ``arrays``; MalformedMessage for a bad ref."""
        ref = header.get("frame_ref")
        if ref is None:
            return
        try:
            if not self.local:
                raise ValueError("a frame_ref came over a link from another host")
            if not isinstance(ref, dict) or ref.get("ring") != str(self.path):
                raise ValueError("not this run's frame ring")
            self.ring = self._open(ref)
            slot = ref["slot"]
            if not isinstance(ref.get("gen"), int):
                raise ValueError(f"generation {ref.get('gen')!r}")
            if not (isinstance(slot, int) and 0 <= slot < self.ring.slots):
                raise ValueError(f"no slot {slot!r}")
            arrays["frame"] = self.ring.view(slot)
            for name, dtype, shape, offset in ref.get("arrays", ()):
                arrays[name] = self.ring.scratch_view(slot, offset, dtype, tuple(shape))
            self.ring.hold(slot, HELD)
        except (KeyError, TypeError, ValueError, IndexError, OSError, GazeflowError) as exc:
            header.pop("frame_ref", None)  # nothing to give back: it may not even name a slot
            raise MalformedMessage(f"bad frame_ref: {exc}") from None

    def place(self, ref: dict[str, Any], name: str, shape: tuple[int, ...], dtype: str = "uint8") -> np.ndarray | None:
        """Room in the slot's scratch for an array that goes on with the slot: write it there and
        no copy is made on the way (see ``stash``). None when it does not fit."""
        if self.ring is None:
            return None
        specs = ref.setdefault("arrays", [])
        at = _end(specs)
        if at + _span(dtype, shape) > self.ring.scratch:
            return None
        view = self.ring.scratch_view(ref["slot"], at, dtype, shape)
        specs.append([name, dtype, list(shape), at])
        return view

    def stash(self, ref: dict[str, Any], arrays: dict[str, np.ndarray]) -> bool:
        """Let the slot carry the message's arrays on: the frame is the slot itself; the others are
        the arrays ``place`` gave out, or are copied into its scratch. They are listed in
        ``ref["arrays"]`` and taken out of ``arrays``. False, and nothing changed, when they do not fit."""
        if self.ring is None:
            return False
        slot = ref["slot"]
        placed = {spec[0]: spec for spec in ref.get("arrays", ())}
        specs, copies = [], []
        at = _end(placed.values())
        for name, array in arrays.items():
            if name == "frame":
                continue
            spec = placed.get(name)
            if spec is not None and array is self.ring.scratch_view(slot, spec[3], spec[1], tuple(spec[2])):
                specs.append(spec)  # written in place
                continue
            dtype = dtype_name(array)
            if dtype not in ITEMSIZE or at + array.nbytes > self.ring.scratch:
                return False
            specs.append([name, dtype, list(array.shape), at])
            copies.append((specs[-1], array))
            at += _span(dtype, array.shape)
        for (_, dtype, shape, offset), array in copies:
            self.ring.scratch_view(slot, offset, dtype, tuple(shape))[...] = array
        if specs:
            ref["arrays"] = specs
        else:
            ref.pop("arrays", None)
        arrays.clear()
        return True

    def send_on(self, ref: dict[str, Any]) -> None:
        """The slot goes on with the message to the next stage."""
        if self.ring is not None:
            self.ring.hold(ref["slot"], SENT)

    def release(self, header: dict[str, Any]) -> None:
        self.give_back(header.pop("frame_ref", None))

    def give_back(self, ref: dict[str, Any] | None) -> None:
        """Send a slot back to capture (a ``frame_ref`` taken off a header; None: nothing to do)."""
        if ref is not None and self.slots_back is not None:  # capture gone: nobody needs it back (not sent)
            self.slots_back.send(channels.Release(ref["slot"], ref["gen"]))

    def close(self) -> None:
        if self.slots_back is not None:
            self.slots_back.close()
