"""The pointer's metrics stay small however long a run: streaming quantiles and a bounded timeline."""

from __future__ import annotations

import tracemalloc

import numpy as np

from gazeflow.shared.messages import Message
from gazeflow.shared.metrics import TIMELINE, PipelineMetrics, trace_row

STAGES = ("capture", "face_detection", "pointer")


def _frame(i: int, infer_ns: int) -> Message:
    msg = Message.frame(i, 1000.0 + i / 30, {})
    t = int((1000.0 + i / 30) * 1e9)
    msg.header["trace"] = [trace_row(s, t + k, t + k + infer_ns, infer=infer_ns) for k, s in enumerate(STAGES)]
    return msg


def test_quantiles_are_right_and_memory_stays_flat_over_a_long_run():
    n = 36_000  # 20 minutes at 30 fps
    infers_ns = (np.random.default_rng(1).gamma(9.0, 3.0, n) * 1e6).astype(int)  # about 27 ms, skewed
    infers = infers_ns / 1e6
    metrics = PipelineMetrics(STAGES)
    tracemalloc.start()
    for i in range(n):
        metrics.add(_frame(i, int(infers_ns[i])))
        if i == n // 3:
            early = tracemalloc.get_traced_memory()[0]
    late = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert late - early < 0.05 * early  # flat after warm-up (within 5%)
    report = metrics.report({})
    got = report["stages"]["face_detection"]["infer_ms"]
    for q in (50, 95, 99):
        assert abs(got[f"p{q}"] - np.percentile(infers, q)) <= 0.01 * np.percentile(infers, q)  # two digits
    assert got["max"] == round(float(infers.max()), 3)
    timeline = report["timeline"]
    assert len(timeline["frame"]) <= TIMELINE and timeline["every"] > 1
    assert timeline["frame"][0] == 0 and timeline["frame"][-1] >= n - 2 * timeline["every"]
    assert len(timeline["infer_ms"]["face_detection"]) == len(timeline["frame"])
