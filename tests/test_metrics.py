"""The metrics report of a short real replay: complete, consistent, readable."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hdrh.histogram import HdrHistogram
from hypothesis import given, settings
from hypothesis import strategies as st

from gazeflow.shared.metrics import BUCKETS_MS, Series
from gazeflow.shared.registry import default_chain

from conftest import gazeflow

pytestmark = pytest.mark.integration
STAGES = default_chain()
PATH = ("capture", "face_detection", "landmarks_headpose", "gaze", "pointer")


@pytest.fixture(scope="module")
def short_report(assets, tmp_path_factory):
    out = tmp_path_factory.mktemp("metrics")
    metrics = out / "m.json"
    proc = gazeflow(
        "run-all",
        "--input",
        "demo",
        "--lossless",  # at the recorded rate (2 s: several live lines), every frame kept
        "--max-frames",
        "60",
        "--pointer",
        "null",
        "--metrics",
        str(metrics),
        "--log-interval",
        "0.5",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(metrics.read_text()), proc, out


def test_report_has_every_stage_and_field(short_report):
    report, _, _ = short_report
    assert report["frames"] == 60 and report["seconds"] > 0 and report["fps"] > 0
    assert report["dropped"] == 0 and report["lost"] == 0
    assert set(report["e2e_ms"]) == {"p50", "p95", "p99", "max"}
    for name in STAGES:
        stage = report["stages"][name]
        for key in ("transport_ms", "queue_ms", "service_ms", "infer_ms"):
            assert set(stage[key]) == {"p50", "p95", "p99", "max"}, (name, key)
        assert stage["in"] == stage["out"] + stage["dropped"] == 60, name
    for name in ("face_detection", "landmarks_headpose", "gaze"):
        assert report["stages"][name]["infer_ms"]["p50"] > 0, name
        assert report["stages"][name]["transport_ms"]["p50"] > 0, name


def test_latencies_add_up(short_report):
    """End to end is at least the sum of the service times on the path, frame by frame. (Capture's
    service time, the decode, comes before a file frame's capture time: it is decoded ahead.)"""
    report, _, _ = short_report
    timeline = report["timeline"]
    services = timeline["service_ms"]
    after_capture = PATH[1:]
    for i, e2e in enumerate(timeline["e2e_ms"]):
        assert e2e + 0.01 >= sum(services[name][i] for name in after_capture), i
        assert services["face_detection"][i] + 0.01 >= timeline["infer_ms"]["face_detection"][i] >= 0, i
    assert sum(v > 0 for v in timeline["infer_ms"]["face_detection"]) >= len(timeline["e2e_ms"]) // 4  # detected
    assert report["e2e_ms"]["p50"] >= sum(report["stages"][n]["service_ms"]["p50"] for n in after_capture) * 0.5
    for stage in report["stages"].values():
        for key in ("transport_ms", "queue_ms", "service_ms", "infer_ms"):
            p = stage[key]
            assert 0 <= p["p50"] <= p["p95"] <= p["p99"] <= p["max"]


def test_live_line_while_running(short_report):
    _, proc, _ = short_report
    lines = [line for line in proc.stderr.splitlines() if "fps" in line and "e2e p50" in line]
    assert lines and all("face_detection" in line for line in lines[1:])


def test_report_command_prints_a_table_and_writes_plots(short_report):
    _, _, out = short_report
    proc = gazeflow("report", str(out / "m.json"), "--out", str(out / "plot"))
    assert proc.returncode == 0, proc.stderr
    assert "end to end: p50" in proc.stdout
    for name in STAGES:
        assert name in proc.stdout
    for suffix in ("latency", "e2e", "screen"):
        png = out / f"plot-{suffix}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    both = gazeflow("report", str(out / "m.json"), str(out / "m.json"))  # two runs side by side
    assert both.returncode == 0 and "end to end p50, ms" in both.stdout and "1.00x" in both.stdout


def test_report_of_a_file_that_is_not_one(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text("[1, 2]")
    proc = gazeflow("report", str(bad))
    assert proc.returncode == 2 and "is not a metrics report" in proc.stderr and "Traceback" not in proc.stderr


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=-5, max_value=5e3, allow_nan=False), max_size=200))
def test_a_series_counts_each_value_in_the_bucket_prometheus_puts_it_in(values):
    """The panel's /metrics histograms come from these counts: a value goes to the first edge at or above it
    (Prometheus's le), the sum is exact, and the count is the histogram's."""
    series = Series()
    for v in values:
        series.add(v)
    edges = np.array(BUCKETS_MS, dtype=float)
    expected = np.bincount(np.searchsorted(edges, values, side="left"), minlength=len(edges) + 1)
    assert series.counts == expected.tolist()
    assert series.total == pytest.approx(sum(values)) and len(series) == len(values)
    figures = series.figures(3)
    assert figures["count"] == len(values) and figures["buckets"] == series.counts
    assert figures["recent_ms"] == (pytest.approx(float(np.median(values[-3:]))) if values else None)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.floats(min_value=-5, max_value=5e3),
            st.floats(min_value=1e3, max_value=1e13),  # up to past the histogram's highest value
            st.sampled_from([float("nan"), float("inf"), -float("inf"), 0.0, 1e-4]),
        ),
        max_size=700,
    ),
    st.integers(min_value=0, max_value=700),
)
def test_a_series_records_in_bulk_exactly_what_each_value_alone_would(values, read_at):
    """Values are kept and recorded together (every FLUSH, or when read): the histogram's counts, the
    quantiles, the maximum and the live values are those of recording each finite value at once, whenever
    the series is read in between."""
    series = Series()
    alone = HdrHistogram(1, Series.HIGHEST_US, 2)
    finite = [v for v in values if np.isfinite(v)]
    for i, v in enumerate(values):
        series.add(v)
        if i == read_at:
            assert len(series) == sum(np.isfinite(values[: i + 1]))
    for v in finite:
        alone.record_value(min(max(int(v * 1e3), 1), Series.HIGHEST_US))
    assert len(series) == len(finite) == alone.get_total_count()
    assert [series.histogram.get_count_at_index(i) for i in range(alone.counts_len)] == [
        alone.get_count_at_index(i) for i in range(alone.counts_len)
    ]
    if finite:
        top = max(0.0, *finite)
        assert series.max == top
        want = alone.get_percentile_to_value_dict([50, 95, 99])
        q = series.quantiles()
        assert q["p50"] == min(want[50] / 1e3, round(top, 3)) and q["p99"] == min(want[99] / 1e3, round(top, 3))
    assert list(series.recent) == finite[-len(series.recent) :] if finite else not series.recent
