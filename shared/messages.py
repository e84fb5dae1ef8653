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
from typing import Any

import msgpack
import numpy as np

SCHEMA_VERSION = 1
KINDS = ("frame", "eos", "drop")
RESULT_KEYS = ("face", "landmarks", "head_pose", "gaze", "pointer")
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
        header.update(dict.fromkeys(RESULT_KEYS))
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
    if dtype not in ITEMSIZE or not all(isinstance(n, int) and n >= 0 for n in shape):
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
    if kind == "frame":
        for key in ("frame", "t_capture", "trace"):
            if key not in header:
                raise MalformedMessage(f"frame without {key!r}")
        if not isinstance(header["frame"], int) or header["frame"] < 0:
            raise MalformedMessage(f"bad frame index {header['frame']!r}")
    seq = header.get("seq", 0 if kind != "drop" else None)
    if not isinstance(seq, int) or seq < 0:
        raise MalformedMessage(f"bad sequence number {seq!r}")
    arrays: dict[str, np.ndarray] = {}
    for spec, part in zip(specs, frames[1:], strict=True):
        arrays[_spec_name(spec)] = _array(spec, part)
    return Message(kind, header, arrays)


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
