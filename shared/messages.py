"""The wire schema: one versioned message format for every link of the pipeline.

A message is a list of ZeroMQ frames: ``[header, *buffers]``. The header is a
msgpack map; each buffer is the raw bytes of one numpy array, described in the
header's ``arrays`` list as ``[name, dtype, shape]``. No pickle, no base64.

Header keys (schema version 1):

=============  ================================================================
``v``          schema version, always ``SCHEMA_VERSION``
``kind``       ``"frame"``, ``"eos"`` (end of stream) or ``"drop"`` (a notice that the
               frame with this ``seq`` was dropped, so no stage waits for it)
``frame``      source frame index (frames only)
``seq``        position among the messages capture sent (0, 1, 2, ... without gaps):
               the order a stage after scaled workers restores; frames and drops
``copies``     on ``eos`` into or out of scaled workers: how many copies were sent
``t_capture``  wall-clock capture time, seconds since the epoch (float)
``source``     ``{"width", "height", "fps"}`` of the input (frames only)
``face``       ``[x0, y0, x1, y1]`` in source pixels, or ``None``
``landmarks``  five ``[x, y]`` points in source pixels, or ``None``
``head_pose``  ``{"yaw", "pitch", "roll"}`` in degrees, or ``None``
``gaze``       unit vector ``[x, y, z]`` after roll correction, or ``None``
``pointer``    what the pointer stage did, or ``None``
``crop``       face detection to landmarks: the face's square ``[x0, y0, side]``
``region``     face detection to landmarks: the face region ``[x0, y0, x1, y1]`` (the
               square plus a margin, clipped); its pixels travel as the ``region``
               array, or on one host the frame's slot goes on as ``frame_ref``
``frame_ref``  on a same-host link: the frame's slot in the shared-memory ring
               (``shared/framering.py``) instead of a pixel buffer; small arrays that
               ride in the slot's scratch area (the eye crops) are listed in its
               ``arrays`` as ``[name, dtype, shape, offset]``; the last stage to use
               the slot sends it back
``trace``      one row per stage passed, see ``shared/metrics.py``:
               ``[stage, t_recv, t_send, queue, pre, infer, hold, post, worker, in_flight]``
``stats``      per-stage counters, carried by the ``eos`` message
``arrays``     ``[[name, dtype, shape], ...]`` describing the buffers that follow
=============  ================================================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import msgpack
import numpy as np

from . import checks, registry
from .errors import GazeflowError

SCHEMA_VERSION = 1
KINDS = ("frame", "eos", "drop")
ITEMSIZE = {"uint8": 1, "float32": 4}  # the dtypes an array on the wire may have
_NAME_OF = {"B": "uint8", "f": "float32"}  # numpy dtype.char -> name on the wire


class MalformedMessage(ValueError):
    """A message that does not follow this schema."""


@dataclass
class Message:
    """One message in memory: the header map and its named arrays."""

    kind: str
    header: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def frame(cls, index: int, t_capture: float, source: dict[str, Any]) -> Message:
        header: dict[str, Any] = {"frame": index, "t_capture": t_capture, "source": source}
        header.update(dict.fromkeys(result_defaults()))
        header["trace"] = []
        return cls("frame", header)

    @classmethod
    def eos(cls, stats: dict[str, Any] | None = None) -> Message:
        return cls("eos", {"stats": dict(stats or {})})

    @classmethod
    def drop(cls, seq: int, frame: int | None) -> Message:
        return cls("drop", {"seq": seq, "frame": frame})

    @property
    def index(self) -> int:
        return int(self.header["frame"])


def array_nbytes(dtype: Any, shape: Any, spec: Any = None) -> int:
    """Bytes of an array as a message describes it (on the wire or in a frame slot's scratch);
    MalformedMessage naming ``spec`` (default: dtype and shape) for a dtype or shape it cannot
    have. math.prod: np.prod costs ~0.15 ms on a cold CPU."""
    if not isinstance(dtype, str) or dtype not in ITEMSIZE or not isinstance(shape, list | tuple) or len(shape) > 8:
        raise MalformedMessage(f"bad array spec {spec if spec is not None else [dtype, shape]!r}")
    if not all(isinstance(n, int) and 0 <= n < 1 << 31 for n in shape):
        raise MalformedMessage(f"bad array spec {spec if spec is not None else [dtype, list(shape)]!r}")
    return math.prod(shape) * ITEMSIZE[dtype]


def dtype_name(array: np.ndarray) -> str:
    """An array's dtype as the wire names it. dtype.char, not dtype.name: the name is built by
    Python code in numpy (0.1 ms on a cold CPU)."""
    return _NAME_OF.get(array.dtype.char) or array.dtype.name


def encode(msg: Message) -> list[Any]:
    """Turn a message into ZeroMQ frames; array buffers are not copied."""
    header = dict(msg.header)
    header["v"] = SCHEMA_VERSION
    header["kind"] = msg.kind
    specs = []
    buffers: list[Any] = []
    for name, array in msg.arrays.items():
        array = np.ascontiguousarray(array)
        specs.append([name, dtype_name(array), list(array.shape)])
        buffers.append(memoryview(array).cast("B"))
    header["arrays"] = specs
    return [msgpack.packb(header, use_bin_type=True), *buffers]


def decode(frames: list[Any]) -> Message:
    """Parse ZeroMQ frames (bytes or zmq.Frame) into a message, or raise MalformedMessage."""
    if not frames:
        raise MalformedMessage("empty message")
    try:
        header = msgpack.unpackb(_bytes(frames[0]), raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types
        raise MalformedMessage(f"header is not msgpack ({type(exc).__name__})") from None
    if not isinstance(header, dict):
        raise MalformedMessage("header is not a map")
    version = header.pop("v", None)
    if version != SCHEMA_VERSION:
        raise MalformedMessage(f"schema version {version!r}, expected {SCHEMA_VERSION}")
    kind = header.pop("kind", None)
    if kind not in KINDS:
        raise MalformedMessage(f"unknown kind {kind!r}")
    specs = header.pop("arrays", [])
    if not isinstance(specs, list) or len(specs) != len(frames) - 1:
        raise MalformedMessage(f"{len(frames) - 1} buffers for {specs!r}")
    check_header(kind, header)
    arrays: dict[str, np.ndarray] = {}
    for spec, part in zip(specs, frames[1:], strict=True):
        name = _spec_name(spec)  # first: the value of ``arrays[k] = v`` is evaluated before k
        arrays[name] = _array(spec, part)
    return Message(kind, header, arrays)


# -- the header's fields: what each may hold (every message is checked once, as it is received) ---------
def _row(r: Any) -> bool:  # a trace row: [stage, t_recv, t_send, queue, pre, infer, hold, post, worker, in_flight]
    # msgpack's integers fit 64 bits already: only their type is checked (this runs for every row of every hop)
    return (
        type(r) is list
        and len(r) == 10
        and type(r[0]) is str
        and type(r[8]) is str
        and all(type(v) is int for v in r[1:8])
        and type(r[9]) is int
    )


CORE: dict[str, checks.Check] = {  # the fields of every frame, whatever the chain; (required) marks those it has
    "frame": checks.count,  # (required)
    "t_capture": lambda x: checks.number(x) and 0 <= x < 1e11,  # (required) seconds since the epoch
    "trace": lambda x: isinstance(x, list) and len(x) <= 64 and all(_row(r) for r in x),  # (required)
    "source": lambda x: isinstance(x, dict) and all(checks.number(v) for v in x.values()),  # width, height, fps
    "region": lambda x: checks.ints(4)(x) and x[0] < x[2] and x[1] < x[3],
    "seq": checks.count,
    "frame_ref": checks.table,
}
REQUIRED = ("frame", "t_capture", "trace")
OTHER_KINDS: dict[str, dict[str, Any]] = {
    "eos": {
        "stats": lambda x: isinstance(x, dict) and all(isinstance(v, dict) for v in x.values()),
        "total": checks.count,
        "copies": lambda x: checks.count(x, 1 << 10),
    },
    "drop": {"seq": checks.count, "frame": checks.optional(checks.count)},
}


@cache
def fields() -> dict[str, checks.Check]:
    """A frame's fields: the core ones and those the registered stages write (their manifests)."""
    out = dict(CORE)
    for spec in registry.stages().values():
        for key, check in spec.writes.items():
            if key in out:
                raise GazeflowError(f"stage {spec.name} writes the header field {key!r}, which is taken")
            out[key] = check
    return out


@cache
def result_defaults() -> tuple[str, ...]:
    """The results fields that are None until their stage writes them (every frame has them)."""
    return tuple(k for s in registry.stages().values() for k in s.results if s.writes[k](None))


def check_header(kind: str, header: dict[str, Any]) -> None:
    """Every field the header has holds what the schema says (a frame has the required ones, a drop its
    seq); MalformedMessage naming the first that does not. Fields the schema does not know are kept."""
    known = fields() if kind == "frame" else OTHER_KINDS[kind]
    for key in REQUIRED if kind == "frame" else ("seq",) if kind == "drop" else ():
        if key not in header:
            raise MalformedMessage(f"{kind} without {key!r}")
    for key, value in header.items():
        check = known.get(key)
        if check is not None and not check(value):
            raise MalformedMessage(f"bad {key!r}: {str(value)[:80]}")
    for key in result_defaults() if kind == "frame" else ():
        header.setdefault(key, None)


def check_array(msg: Message, name: str, shape: tuple[int | None, ...], dtype: str = "uint8") -> np.ndarray:
    """The message's array ``name``, of this dtype and shape (None: any length there); MalformedMessage if not."""
    a = msg.arrays.get(name)
    if a is None or dtype_name(a) != dtype or len(a.shape) != len(shape):
        raise MalformedMessage(f"array {name!r}: expected {dtype}{list(shape)}")
    if any(want is not None and have != want for have, want in zip(a.shape, shape, strict=True)):
        raise MalformedMessage(f"array {name!r} of shape {list(a.shape)}, expected {list(shape)}")
    return a


def _spec_name(spec: Any) -> str:
    if not (isinstance(spec, list) and len(spec) == 3 and isinstance(spec[0], str)):
        raise MalformedMessage(f"bad array spec {spec!r}")
    return spec[0]


def _array(spec: list[Any], part: Any) -> np.ndarray:
    name, dtype, shape = spec
    if not isinstance(shape, list):
        raise MalformedMessage(f"bad array spec {spec!r}")
    buf = part.buffer if hasattr(part, "buffer") else part
    expected = array_nbytes(dtype, shape, spec)
    if len(buf) != expected:
        raise MalformedMessage(f"array {name!r}: {len(buf)} bytes, expected {expected}")
    return np.frombuffer(buf, dtype=dtype).reshape(shape)


def _bytes(part: Any) -> bytes:
    return part.bytes if hasattr(part, "bytes") else bytes(part)
