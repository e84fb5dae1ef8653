import msgpack
import numpy as np
import pytest

from gazeflow.shared.messages import SCHEMA_VERSION, MalformedMessage, Message, decode, encode


def test_round_trip_keeps_header_and_arrays():
    msg = Message.frame(7, 1795632240.91, {"width": 4, "height": 3, "fps": 30.0})
    msg.header["face"] = [1.0, 2.0, 3.0, 4.0]
    msg.arrays["frame"] = np.arange(36, dtype=np.uint8).reshape(3, 4, 3)
    msg.arrays["angles"] = np.array([[1.5, -2.0, 0.0]], dtype=np.float32)
    frames = encode(msg)
    assert len(frames) == 3  # header + one raw buffer per array, no pickle, no base64
    back = decode([bytes(f) for f in frames])
    assert back.kind == "frame" and back.index == 7
    assert back.header["face"] == [1.0, 2.0, 3.0, 4.0]
    assert back.header["source"]["width"] == 4
    np.testing.assert_array_equal(back.arrays["frame"], msg.arrays["frame"])
    np.testing.assert_array_equal(back.arrays["angles"], msg.arrays["angles"])


def test_non_contiguous_array_is_sent_whole():
    big = np.arange(5 * 6 * 3, dtype=np.uint8).reshape(5, 6, 3)
    msg = Message.frame(0, 0.0, {})
    msg.arrays["crop"] = big[1:4, 2:5]
    back = decode([bytes(f) for f in encode(msg)])
    np.testing.assert_array_equal(back.arrays["crop"], big[1:4, 2:5])


def test_eos_round_trip():
    back = decode([bytes(f) for f in encode(Message.eos({"capture": {"in": 3}}))])
    assert back.kind == "eos" and back.header["stats"] == {"capture": {"in": 3}}


def _header(**fields):
    base = {"v": SCHEMA_VERSION, "kind": "frame", "frame": 0, "t_capture": 0.0, "trace": [], "arrays": []}
    base.update(fields)
    return msgpack.packb(base)


@pytest.mark.parametrize(
    "frames, reason",
    [
        ([], "empty"),
        ([b"\xc1not msgpack"], "not msgpack"),
        ([msgpack.packb([1, 2])], "not a map"),
        ([_header(v=99)], "schema version 99"),
        ([_header(kind="video")], "unknown kind"),
        ([_header(frame=-1)], "bad 'frame'"),
        ([_header(trace=7)], "bad 'trace'"),
        ([_header(trace=[["gaze", 1]])], "bad 'trace'"),
        ([_header(face=[1, 2, "x", 4])], "bad 'face'"),
        ([_header(gaze=[0, 0, 0])], "bad 'gaze'"),
        ([_header(head_pose={"yaw": 1.0})], "bad 'head_pose'"),
        ([_header(t_capture=float("nan"))], "bad 't_capture'"),
        ([_header(arrays=[7]), b"x"], "bad array spec"),
        ([_header(arrays=[["a", ["uint8"], [1]]]), b"x"], "bad array spec"),
        ([_header(arrays=[["a", "uint8", [1, -1]]]), b"x"], "bad array spec"),
        ([msgpack.packb({"v": SCHEMA_VERSION, "kind": "drop", "arrays": []})], "drop without 'seq'"),
        ([msgpack.packb({"v": SCHEMA_VERSION, "kind": "eos", "total": -3, "arrays": []})], "bad 'total'"),
        ([_header(t_capture=0.0, frame=1).replace(b"", b"")[:-1]], "not msgpack"),
        ([_header(arrays=[["frame", "uint8", [2, 2, 3]]])], "0 buffers"),
        ([_header(arrays=[["frame", "uint8", [2, 2, 3]]]), b"short"], "expected 12"),
        ([_header(arrays=[["frame", "object", [1]]]), b"x"], "bad array spec"),
    ],
)
def test_malformed_messages_are_refused_with_a_reason(frames, reason):
    with pytest.raises(MalformedMessage, match=reason):
        decode(frames)
