"""Putting frames from several workers back in capture order, within a bounded wait."""

from __future__ import annotations

from gazeflow.shared.messages import Message
from gazeflow.shared.reorder import Reorder, merge_worker_stats

MS = 1_000_000


def frame(seq: int) -> Message:
    msg = Message.frame(seq, 0.0, {})
    msg.header["seq"] = seq
    return msg


def end(total: int, copies: int, worker_in: int) -> Message:
    msg = Message.eos({"capture": {"out": total}, "face_detection": {"in": worker_in, "out": worker_in}})
    msg.header.update(total=total, copies=copies)
    return msg


def kinds(entries) -> list[tuple[str, int | None]]:
    return [(m.kind, m.header.get("seq")) for m, _, _ in entries]


def test_out_of_order_arrivals_leave_in_order_and_the_end_waits_for_every_copy():
    r = Reorder("face_detection", wait_s=5)
    assert kinds(r.push((frame(1), 0, 0))[0]) == []
    assert kinds(r.push((frame(0), 0, 1))[0]) == [("frame", 0), ("frame", 1)]
    assert r.push((end(3, 2, 1), 0, 2))[0] == []  # frame 2 still missing
    assert kinds(r.push((frame(2), 0, 3))[0]) == [("frame", 2)]  # and one copy of the end still missing
    out, _ = r.push((end(3, 2, 2), 0, 4))
    assert kinds(out) == [("eos", None)]
    assert out[0][0].header["stats"]["face_detection"]["in"] == 3  # the workers' counters summed
    assert "copies" not in out[0][0].header


def test_drop_notices_fill_their_place():
    r = Reorder("face_detection", wait_s=5)
    r.push((frame(1), 0, 0))
    assert kinds(r.push((Message.drop(0, 0), 0, 1))[0]) == [("drop", 0), ("frame", 1)]


def test_a_gap_is_given_up_after_the_wait_and_its_frame_then_counts_as_late():
    r = Reorder("face_detection", wait_s=0.1)
    r.push((frame(0), 0, 0))
    r.push((frame(2), 0, 10 * MS))
    assert r.expire(50 * MS) == []
    assert kinds(r.expire(200 * MS)) == [("drop", 1), ("frame", 2)]  # later reorders are told
    assert r.given_up == 1
    out, late = r.push((frame(1), 0, 300 * MS))
    assert out == [] and late and r.late == 1


def test_a_lost_tail_and_a_missing_copy_end_after_the_wait_and_the_grace():
    r = Reorder("gaze", wait_s=0.1)
    r.push((frame(0), 0, 0))
    assert r.push((end(2, 2, 1), 0, 0))[0] == []  # frame 1 died with a worker, and so did its copy
    out = r.expire(200 * MS)
    assert kinds(out) == [("drop", 1)]
    assert kinds(r.expire(2_000 * MS)) == [("eos", None)]  # after END_GRACE_S


def test_merge_worker_stats_keeps_each_worker():
    merged = merge_worker_stats(
        [
            {"in": 3, "out": 3, "dropped": 1, "cpu_s": 0.5, "in_flight_max": 2, "in_flight_mean": 1.0},
            {"in": 4, "out": 4, "dropped": 0, "cpu_s": 0.25, "in_flight_max": 1, "in_flight_mean": 2.0},
        ]
    )
    assert merged["in"] == 7 and merged["dropped"] == 1 and merged["cpu_s"] == 0.75
    assert merged["in_flight_max"] == 2 and merged["in_flight_mean"] == 1.5 and len(merged["workers"]) == 2


def test_a_sequence_number_or_total_far_beyond_the_stream_is_refused_and_frames_keep_flowing():
    """A drop notice with seq = 10**12 once grew this stage by 90 MB/s; seq = 10**5 stalled it for 21 minutes."""
    import tracemalloc

    import pytest

    from gazeflow.shared.messages import MalformedMessage
    from gazeflow.shared.reorder import WINDOW

    r = Reorder("face_detection", wait_s=5)
    tracemalloc.start()
    for seq in (10**12, 10**5, WINDOW):
        with pytest.raises(MalformedMessage, match="beyond the window"):
            r.check(Message.drop(seq, None))
    with pytest.raises(MalformedMessage, match="does not fit"):
        r.check(end(10**9, 1, 0))
    assert tracemalloc.get_traced_memory()[0] < 1 << 20  # nothing was allocated for the gap
    tracemalloc.stop()
    for seq in range(3):  # valid frames are unaffected
        r.check(frame(seq))
        assert kinds(r.push((frame(seq), 0, seq))[0]) == [("frame", seq)]


def test_a_gap_waited_for_while_its_stage_could_not_read_is_not_given_up():
    """A stage held up downstream (its inbox full) or behind on its socket defers the wait: the missing frame
    may be in its own queue (the compose topology lost frames that way while the panel started)."""
    r = Reorder("face_detection", wait_s=5)
    r.push((frame(1), 0, 0))  # frame 0 missing from here
    r.defer(9000 * MS)  # the stage could not read until now
    assert r.expire(9001 * MS) == []
    assert kinds(r.push((frame(0), 0, 9002 * MS))[0]) == [("frame", 0), ("frame", 1)]
    assert r.given_up == 0 and r.late == 0
