"""Every side channel of the pipeline, besides its data links (those are shared/messages.py): what travels
on each, as typed schemas (msgspec structs, MessagePack on the wire) validated at the door, and its socket.

========  ====================  ==========================  ==================================================
channel   served (binds) by     used (connects) by          what
========  ====================  ==========================  ==================================================
control   run-all               every stage                 ready, error, alive (heartbeats with frame counts)
go        run-all               the source                  every stage is ready: send the first frame
release   capture               the last stage of a frame   a frame slot back; run-all's "a stage died"
track     face detection        landmarks                   the tracked box for a later frame
ctl       the pointer           gazeflow ctl, the panel     pause, resume, toggle, recenter, status, set; figures
health    the pointer           run-all                     each stage's health from its heartbeats
tune      the pointer           stages that take settings   a setting of theirs changed while running (ctl set)
watch     the panel             the stage before it         a page is open: send frames for its live view
========  ====================  ==========================  ==================================================

Every channel is an ipc socket of its name in the run directory (``ctl`` also tcp, with CURVE, when
``pointer.control`` is set). A message that does not decode into its channel's schema is counted and
skipped, never acted on; no file is used as a message.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
import zmq

from .errors import GazeflowError

log = logging.getLogger("gazeflow.channels")
Count = Annotated[int, msgspec.Meta(ge=0, le=1 << 40)]
Coordinate = Annotated[float, msgspec.Meta(ge=-1e7, le=1e7)]  # also refuses NaN
Name = Annotated[str, msgspec.Meta(max_length=200)]
COMMANDS = ("pause", "resume", "toggle", "recenter", "status", "set", "calibrate")  # 'gazeflow ctl' sends these
Millis = Annotated[float, msgspec.Meta(ge=-1e9, le=1e12)]  # also refuses NaN


# -- control: stages -> run-all ------------------------------------------------------------------------------
class Ready(msgspec.Struct, tag="ready"):
    stage: Name
    pid: Count


class Failed(msgspec.Struct, tag="error"):
    stage: Name
    pid: Count
    message: Annotated[str, msgspec.Meta(max_length=2000)]


class Alive(msgspec.Struct, tag="alive", omit_defaults=True):
    stage: Name
    pid: Count
    frames_in: Count | None = None  # what it has taken in and passed on: the health line's figures
    frames_out: Count | None = None
    dropped: Count | None = None  # frames it let go of (live: too late), and messages refused at its door
    malformed: Count | None = None
    lost: Count | None = None  # frames that never came (a stage that died took them with it)


Event = Ready | Failed | Alive


# -- go: run-all -> the source; health: run-all -> the pointer -----------------------------------------------
class Go(msgspec.Struct, tag="go"):
    pass


class ProcessHealth(msgspec.Struct, array_like=True):
    """One stage process as run-all sees it: its stages ("a+b"), up, STALLED or SILENT, the frames it has
    taken in and passed on, and how many times it was restarted."""

    name: Name
    state: Annotated[str, msgspec.Meta(max_length=40)]
    frames_in: Count
    frames_out: Count
    restarts: Count = 0
    dropped: Count = 0
    malformed: Count = 0
    lost: Count = 0


class Health(msgspec.Struct):
    line: Annotated[str, msgspec.Meta(max_length=4000)]
    processes: Annotated[list[ProcessHealth], msgspec.Meta(max_length=64)] = []


# -- release: a frame's last stage -> capture (and run-all, when a stage died) -------------------------------
class Release(msgspec.Struct, tag="release", array_like=True):
    slot: Annotated[int, msgspec.Meta(ge=0, le=64)]
    gen: Count


class Died(msgspec.Struct, tag="died", array_like=True):
    pass


Slots = Release | Died


# -- track: landmarks -> face detection ----------------------------------------------------------------------
class Track(msgspec.Struct, array_like=True):
    frame: Count
    box: Annotated[list[Coordinate], msgspec.Meta(min_length=4, max_length=4)] | None


# -- tune: the pointer -> the stages whose manifests name settings they take while running -------------------
class Tune(msgspec.Struct, tag="tune"):
    key: Name  # the setting as the config file names it ("detect_every"); the receiving stage validates it
    value: int | float | bool | Annotated[str, msgspec.Meta(max_length=200)]


# -- watch: the panel -> the stage before it ------------------------------------------------------------------
class Watch(msgspec.Struct, tag="watch"):
    seconds: Annotated[float, msgspec.Meta(ge=0, le=60)]  # a page wants frames for this long from now


# -- ctl: gazeflow ctl (or the panel) -> the pointer, and its reply --------------------------------------------
class Request(msgspec.Struct):
    # figures: the panel's, once a second (value: the frames the pipeline had passed when it last asked)
    command: Literal["pause", "resume", "toggle", "recenter", "status", "set", "calibrate", "figures"]
    # a setting to change while running (the panel): [section, key] and its new value
    key: Annotated[list[Name], msgspec.Meta(max_length=2)] = []
    value: Any = None


class Distribution(msgspec.Struct):
    """One timing's figures (shared/metrics.py Series.figures): ms; bucket counts per metrics.BUCKETS_MS."""

    count: Count
    sum_ms: Millis
    buckets: Annotated[list[Count], msgspec.Meta(max_length=32)]
    recent_ms: Millis | None  # the median of the values since the panel last asked
    p50: Millis
    p95: Millis
    p99: Millis
    max: Millis


class Figures(msgspec.Struct):
    """The pipeline's figures as the pointer's metrics keep them (PipelineMetrics.figures)."""

    frames: Count
    faces: Count
    gazes: Count
    e2e: Distribution
    stages: Annotated[dict[Name, dict[Name, Distribution]], msgspec.Meta(max_length=64)]
    paused: bool = False  # the pointer's state


class Reply(msgspec.Struct, omit_defaults=True):
    ok: bool
    state: str = ""
    error: str = ""
    status: dict[str, Any] = {}
    figures: Figures | None = None


@dataclass(frozen=True)
class Spec:
    """A channel: the socket types of its two ends, what each end receives, its limits."""

    server: int  # the binding end's socket type
    client: int
    to_server: Any  # the schema of what the server receives
    to_client: Any = None  # and of what the client receives (request/reply)
    max_bytes: int = 4096
    hwm: int = 1000


SPECS: dict[str, Spec] = {
    "control": Spec(zmq.PULL, zmq.PUSH, Event),
    "go": Spec(zmq.PUSH, zmq.PULL, None, Go, max_bytes=64, hwm=1),
    "release": Spec(zmq.PULL, zmq.PUSH, Slots, max_bytes=64),
    "track": Spec(zmq.PULL, zmq.PUSH, Track, max_bytes=256),
    "ctl": Spec(zmq.REP, zmq.REQ, Request, Reply, max_bytes=1 << 16),
    "health": Spec(zmq.PULL, zmq.PUSH, Health, hwm=2),
    "tune": Spec(zmq.PUB, zmq.SUB, None, Tune, max_bytes=512, hwm=16),
    "watch": Spec(zmq.PUB, zmq.SUB, None, Watch, max_bytes=64, hwm=4),
}
_ENCODER = msgspec.msgpack.Encoder()


def address(run_dir: str | Path, name: str) -> str:
    return f"ipc://{Path(run_dir) / name}"


class End:
    """One end of a channel: ``serves`` binds (and removes its socket file on close), else connects.
    ``secure(sock)``, when given, is called before bind/connect (CURVE on a tcp ctl)."""

    def __init__(
        self, ctx: zmq.Context, name: str, where: str, serves: bool, secure: Any = None, linger_ms: int = 0
    ) -> None:
        spec = SPECS[name]
        self.name, self.where, self.serves = name, where, serves
        self.sock = ctx.socket(spec.server if serves else spec.client)
        self.sock.setsockopt(zmq.LINGER, linger_ms)
        self.sock.setsockopt(zmq.MAXMSGSIZE, spec.max_bytes)
        self.sock.setsockopt(zmq.SNDHWM, spec.hwm)
        self.sock.setsockopt(zmq.RCVHWM, spec.hwm)
        schema = spec.to_server if serves else spec.to_client
        self.decoder = msgspec.msgpack.Decoder(schema) if schema is not None else None
        self.malformed = 0
        if self.sock.type == zmq.SUB:
            self.sock.setsockopt(zmq.SUBSCRIBE, b"")
        if secure is not None:
            secure(self.sock)
        try:
            (self.sock.bind if serves else self.sock.connect)(where)
        except zmq.ZMQError as exc:
            self.sock.close(0)
            raise GazeflowError(f"{name}: cannot {'bind' if serves else 'connect'} {where}: {exc}") from None

    @classmethod
    def local(cls, ctx: zmq.Context, run_dir: str | Path, name: str, serves: bool, **kwargs: Any) -> End:
        """The channel's ipc socket in the run directory."""
        return cls(ctx, name, address(run_dir, name), serves, **kwargs)

    def send(self, message: Any, block: bool = False) -> bool:
        """Send one message; False when it cannot go now (no peer, or the peer is full)."""
        try:
            self.sock.send(_ENCODER.encode(message), 0 if block else zmq.NOBLOCK)
            return True
        except zmq.Again:
            return False

    def receive(self) -> Any:
        """The next valid message, or None when none waits (those that fail their schema: counted, skipped)."""
        while True:
            try:  # every part: a reply socket can answer only once the whole request is read
                parts = self.sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return None
            try:
                if len(parts) != 1:
                    raise msgspec.DecodeError(f"{len(parts)} parts, expected 1")
                return self.decoder.decode(parts[0]) if self.decoder is not None else None
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                self.malformed += 1
                log.debug("%s: malformed message skipped: %s", self.name, exc)
                if self.sock.type == zmq.REP:  # a request must be answered before the next one
                    self.send(Reply(ok=False, error=f"not a request: {exc}"))

    def poll(self, timeout_ms: int) -> bool:
        return bool(self.sock.poll(timeout_ms))

    def close(self) -> None:
        self.sock.close()  # after its linger: 0 unless the end was made to deliver what it sent last
        if self.serves and self.where.startswith("ipc://"):
            Path(self.where[len("ipc://") :]).unlink(missing_ok=True)
