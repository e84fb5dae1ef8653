"""Metrics: everything derived from the timing that travels in each frame's header.

Each stage appends one trace row to the header before sending:
``[stage, t_recv, t_send, queue_ns, pre_ns, infer_ns, hold_ns, post_ns, worker, in_flight]``.
``t_recv`` and ``t_send`` are wall-clock nanoseconds (comparable across processes;
across hosts only as far as their clocks are synchronised, e.g. by chrony/PTP);
the four durations are measured inside the process with a monotonic clock.
``worker`` names the process of a scaled stage and ``in_flight`` is how many
infer requests it still had running as the frame left: with the time of the
row, that is the stage's health (alive, last frame, requests in flight).

The sink (pointer stage, or run-sync) feeds every frame to ``PipelineMetrics``,
which gives the live line, the summary line and the final JSON report.
"""

from __future__ import annotations

import itertools
import json
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from hdrh.histogram import HdrHistogram

from . import geometry, registry
from .messages import Message

RECENT = 512  # the most recent values kept per series, for the live line's medians
TIMELINE = 4096  # at most this many points per series of the per-frame timeline
T_RECV, T_SEND, QUEUE, PRE, INFER, HOLD, POST, WORKER, IN_FLIGHT = range(1, 10)
SILENT_S = 2.0  # a stage (worker) that has passed no frame for this long is reported silent
SERIES = ("transport_ms", "queue_ms", "pre_ms", "infer_ms", "hold_ms", "post_ms", "service_ms")
# the upper edges (ms) of the buckets each series counts, for a Prometheus histogram (the panel's /metrics)
BUCKETS_MS = (1, 2, 5, 10, 20, 35, 50, 75, 100, 150, 250, 500, 1000, 2500)
SHOWN = ("service_ms", "infer_ms", "queue_ms", "transport_ms")  # the series the panel shows of each stage


@dataclass
class Counters:
    """A stage's counts, carried to the sink by the end of the stream."""

    received: int = 0
    sent: int = 0
    dropped: int = 0
    malformed: int = 0
    submits: int = 0
    in_flight_sum: int = 0  # requests in flight just after each submit, summed
    in_flight_max: int = 0
    unwatched: int = 0  # of those sent: frames a sink fed on demand (the panel) did not ask for, done here
    lost: int = 0  # frames that never came: taken back from a stage that died (capture), given up by a reorder

    def submitted(self, in_flight: int) -> None:
        self.submits += 1
        self.in_flight_sum += in_flight
        self.in_flight_max = max(self.in_flight_max, in_flight)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"in": self.received, "out": self.sent}
        out.update(dropped=self.dropped, malformed=self.malformed)
        if self.unwatched:
            out["unwatched"] = self.unwatched
        if self.submits:
            out["in_flight_mean"] = round(self.in_flight_sum / self.submits, 2)
            out["in_flight_max"] = self.in_flight_max
        return out


def trace_row(
    stage: str,
    t_recv: int,
    t_send: int = 0,
    queue: int = 0,
    pre: int = 0,
    infer: int = 0,
    hold: int = 0,
    post: int = 0,
    worker: str = "0",
    in_flight: int = 0,
) -> list[Any]:
    """One stage's trace row, in the order above (wall ns, then durations in ns)."""
    return [stage, t_recv, t_send, queue, pre, infer, hold, post, worker, in_flight]


def percentiles(values: Any) -> dict[str, float]:
    a = np.asarray(list(values), dtype=np.float64)
    if a.size == 0:
        return {"p50": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0}
    p50, p95, p99 = np.percentile(a, [50, 95, 99])
    return {
        "p50": round(float(p50), 3),
        "p95": round(float(p95), 3),
        "p99": round(float(p99), 3),
        "max": round(float(a.max()), 3),
    }


class Series:
    """One timing's distribution in bounded memory: an HDR histogram (1 µs to 1 h, two significant digits,
    26 KB whatever the run's length), the exact maximum and sum, the counts in BUCKETS_MS (exact, for
    Prometheus) and the most recent values for the live line.

    A value is only kept as it comes (one append: the sink adds 36 a frame); every FLUSH values, and before
    anything is read, they are recorded together: the buckets, sum and maximum with numpy, the histogram
    once per HDR bucket they fall in (its own ``record_value`` with a count), so the figures are exactly
    those of recording each value alone."""

    HIGHEST_US = 3_600_000_000
    FLUSH = 256

    def __init__(self) -> None:
        self.histogram = HdrHistogram(1, self.HIGHEST_US, 2)
        self._max = 0.0
        self._total = 0.0
        self._counts = np.zeros(len(BUCKETS_MS) + 1, dtype=np.int64)  # the last: above the highest edge
        self._recent: deque[float] = deque(maxlen=RECENT)
        self._pending: list[float] = []

    def add(self, ms: float) -> None:
        self._pending.append(ms)
        if len(self._pending) >= self.FLUSH:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        a = np.asarray(self._pending, dtype=np.float64)
        self._pending = []
        a = a[np.isfinite(a)]
        if not a.size:
            return
        self._max = max(self._max, float(a.max()))
        self._total += float(a.sum())
        self._counts += np.bincount(np.searchsorted(_EDGES, a, side="left"), minlength=len(_EDGES) + 1)
        self._recent.extend(a.tolist())
        # below 1 µs (or negative: clocks of two hosts apart) counts as 1 µs
        us = np.clip(np.trunc(a * 1e3), 1, self.HIGHEST_US).astype(np.int64)
        first, n = _hdr_groups(self.histogram, us)
        for i, c in zip(first.tolist(), n.tolist(), strict=True):
            self.histogram.record_value(int(us[i]), c)

    @property
    def max(self) -> float:
        self._flush()
        return self._max

    @property
    def total(self) -> float:
        self._flush()
        return self._total

    @property
    def counts(self) -> list[int]:
        self._flush()
        return self._counts.tolist()

    @property
    def recent(self) -> deque[float]:
        self._flush()
        return self._recent

    def figures(self, newest: int) -> dict[str, Any]:
        """Its distribution as the panel takes it: quantiles, bucket counts, sum, and the median of the
        ``newest`` values (those since the panel last asked)."""
        recent_values = self.recent
        n = min(newest, len(recent_values))
        recent = float(np.median(list(itertools.islice(reversed(recent_values), n)))) if n else None
        quantiles = self.quantiles()
        return {"count": len(self), "sum_ms": self._total, "buckets": self.counts, "recent_ms": recent, **quantiles}

    def __len__(self) -> int:
        self._flush()
        return self.histogram.get_total_count()

    def quantiles(self) -> dict[str, float]:
        if not len(self):
            return percentiles([])
        top = round(self._max, 3)  # a bucket's upper edge can be above the largest value seen: never report that
        p = self.histogram.get_percentile_to_value_dict([50, 95, 99])
        return {"p50": min(p[50] / 1e3, top), "p95": min(p[95] / 1e3, top), "p99": min(p[99] / 1e3, top), "max": top}


_EDGES = np.array(BUCKETS_MS, dtype=np.float64)


def _hdr_groups(h: HdrHistogram, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The values (integers in the histogram's range) grouped by the HDR bucket each falls in: the index of
    one value of each group and the group's size. The bucket is HdrHistogram's own arithmetic (the bit
    length of the value, then its top bits), on the whole array at once."""
    bits = np.frexp((values | h.sub_bucket_mask).astype(np.float64))[1]  # exact: values < 2**53
    bucket = bits - h.unit_magnitude - (h.sub_bucket_half_count_magnitude + 1)
    sub = values >> (bucket + h.unit_magnitude)
    index = ((bucket + 1) << h.sub_bucket_half_count_magnitude) + sub - h.sub_bucket_half_count
    _, first, n = np.unique(index, return_index=True, return_counts=True)
    return first, n


class Timeline:
    """Per-frame values for the plots, in bounded memory: at most TIMELINE points per series; once full,
    every other point goes and only every second frame is kept from then on (the whole run, coarser)."""

    def __init__(self) -> None:
        self.series: dict[str, list[float]] = defaultdict(list)
        self.stride = 1
        self.seen = 0

    def add(self, values: dict[str, float]) -> None:
        self.seen += 1
        if (self.seen - 1) % self.stride:
            return
        for key, value in values.items():
            self.series[key].append(value)
        if len(self.series["frame"]) >= TIMELINE:
            for key in self.series:
                self.series[key] = self.series[key][::2]
            self.stride *= 2

    def as_dict(self, stages: tuple[str, ...]) -> dict[str, Any]:
        out: dict[str, Any] = {k: self.series[k] for k in ("frame", "t", "e2e_ms")}
        for kind in ("service_ms", "infer_ms", "wait_ms"):
            out[kind] = {name: self.series[f"{kind}:{name}"] for name in stages if f"{kind}:{name}" in self.series}
        out["pointer"] = {"x": self.series.get("pointer_x", []), "y": self.series.get("pointer_y", [])}
        out["gaze"] = {"h": self.series.get("gaze_h", []), "v": self.series.get("gaze_v", [])}
        out["every"] = self.stride  # one point per this many frames
        return out


class PipelineMetrics:
    def __init__(self, chain: tuple[str, ...] | list[str] | None = None) -> None:
        self.chain = tuple(chain or registry.default_chain())  # the stages, in order, for the reports
        self.frames = 0
        self.faces = 0
        self.gazes = 0
        self.first_capture: float | None = None
        self.last_send = 0.0
        self.e2e = Series()
        self.stage: dict[str, dict[str, Series]] = defaultdict(lambda: {name: Series() for name in SERIES})
        self.timeline = Timeline()
        self._interval_start = time.monotonic()
        self._interval_frames = 0
        # health: (stage, worker) -> [last frame, wall time it left that stage, requests in flight]
        self.health: dict[tuple[str, str], list[Any]] = {}

    def add(self, msg: Message) -> None:
        """Account one frame that reached the end of the pipeline."""
        h = msg.header
        self.frames += 1
        self.faces += h["face"] is not None
        self.gazes += h["gaze"] is not None
        t_capture = float(h["t_capture"])
        if self.first_capture is None:
            self.first_capture = t_capture
            self._interval_start = time.monotonic()  # the first interval starts with the first frame
        trace = h["trace"]
        end_ns = trace[-1][T_SEND] if trace else time.time_ns()
        self.last_send = end_ns / 1e9
        e2e = (end_ns / 1e9 - t_capture) * 1e3
        self.e2e.add(e2e)
        self._interval_frames += 1
        point = {"frame": h["frame"], "t": round(end_ns / 1e9 - self.first_capture, 4), "e2e_ms": round(e2e, 3)}
        previous_send = previous_wait_from = None
        for row in trace:
            if len(row) > IN_FLIGHT:
                self.health[(row[0], str(row[WORKER]))] = [h["frame"], row[T_SEND], row[IN_FLIGHT]]
            s = self.stage[row[0]]
            if previous_send is not None:
                s["transport_ms"].add((row[T_RECV] - previous_send) / 1e6)
            previous_send = row[T_SEND]
            s["queue_ms"].add(row[QUEUE] / 1e6)
            s["pre_ms"].add(row[PRE] / 1e6)
            s["infer_ms"].add(row[INFER] / 1e6)
            s["hold_ms"].add(row[HOLD] / 1e6)
            s["post_ms"].add(row[POST] / 1e6)
            service = (row[PRE] + row[INFER] + row[POST]) / 1e6
            s["service_ms"].add(service)
            point[f"service_ms:{row[0]}"] = round(service, 3)
            point[f"infer_ms:{row[0]}"] = round(row[INFER] / 1e6, 3)
            # the rest of the frame's time at this stage: on the way, in the queue, waiting for earlier frames
            on_the_way = (row[T_RECV] - previous_wait_from) / 1e6 if previous_wait_from else 0.0
            wait = (row[QUEUE] + row[HOLD]) / 1e6 + on_the_way
            point[f"wait_ms:{row[0]}"] = round(max(0.0, wait), 3)
            previous_wait_from = row[T_SEND]
        pointer, gaze = h.get("pointer") or {}, h.get("gaze")
        point["pointer_x"], point["pointer_y"] = pointer.get("x"), pointer.get("y")
        angles = geometry.gaze_angles(gaze) if gaze else (None, None)
        point["gaze_h"] = round(angles[0], 2) if gaze else None
        point["gaze_v"] = round(angles[1], 2) if gaze else None
        self.timeline.add(point)

    def figures(self, since: int) -> dict[str, Any]:
        """What the panel shows and exports, for a pipeline that has passed ``since`` frames when it last asked
        (the ctl channel's 'figures'; its shape is channels.Figures)."""
        newest = max(0, self.frames - since)
        stages = {
            name: {key: self.stage[name][key].figures(newest) for key in SHOWN}
            for name in self.chain
            if name in self.stage
        }
        return {
            "frames": self.frames,
            "faces": self.faces,
            "gazes": self.gazes,
            "e2e": self.e2e.figures(newest),
            "stages": stages,
        }

    def live_line(self) -> str | None:
        """One compact line for the interval since the last call; None if called too soon."""
        now = time.monotonic()
        span = now - self._interval_start
        if span <= 0:
            return None
        fps = self._interval_frames / span
        n = max(1, self._interval_frames)  # the interval's frames (the most recent RECENT at most)
        recent = list(itertools.islice(reversed(self.e2e.recent), n)) if self._interval_frames else [0.0]
        p50, p95 = np.percentile(recent, [50, 95])
        parts = [f"fps {fps:5.1f}", f"e2e p50 {p50:6.1f} ms", f"p95 {p95:6.1f} ms"]
        for name in self.chain:
            if name in self.stage and len(self.stage[name]["service_ms"]):
                recent = list(itertools.islice(reversed(self.stage[name]["service_ms"].recent), n))
                parts.append(f"{name} {float(np.median(recent)):.1f}")
        self._interval_start, self._interval_frames = now, 0
        return " | ".join(parts)

    def health_line(self, workers: dict[str, int] | None = None) -> str:
        """Per stage process: up or silent (no frame for SILENT_S), its last frame, requests in flight."""
        now = time.time_ns()
        workers = workers or {}
        parts = []
        for name in self.chain:
            seen = sorted(w for (stage, w) in self.health if stage == name)
            scaled = workers.get(name, 1) > 1 or len(seen) > 1
            for w in seen:
                frame, t_send, in_flight = self.health[(name, w)]
                quiet = (now - t_send) / 1e9
                state = "up" if quiet < SILENT_S else f"SILENT {quiet:.0f}s"
                label = f"{name}[{w}]" if scaled else name
                parts.append(f"{label} {state} f{frame}" + (f" q{in_flight}" if in_flight else ""))
            missing = workers.get(name, 1) - len(seen)
            if seen and missing > 0:
                parts.append(f"{name}: {missing} worker(s) never seen")
        return "health " + ", ".join(parts) if parts else ""

    @property
    def seconds(self) -> float:
        return max(self.last_send - (self.first_capture or self.last_send), 1e-9)

    def summary_line(self, dropped: int = 0, lost: int = 0) -> str:
        fps = self.frames / self.seconds if self.frames else 0.0
        line = (
            f"frames {self.frames}, seconds {self.seconds:.2f}, fps {fps:.1f}, "
            f"frames with a face {self.faces}, frames with gaze {self.gazes}, dropped {dropped}"
        )
        return line + (f", lost {lost} (a stage died)" if lost else "")

    def report(self, stats: dict[str, dict[str, int]]) -> dict[str, Any]:
        stages: dict[str, Any] = {}
        for name in self.chain:
            series = self.stage.get(name)
            entry: dict[str, Any] = {key: series[key].quantiles() if series else percentiles([]) for key in SERIES}
            entry.update({"in": 0, "out": 0, "dropped": 0, "malformed": 0})
            entry.update(stats.get(name, {}))
            stages[name] = entry
        return {
            "frames": self.frames,
            "seconds": round(self.seconds, 4),
            "fps": round(self.frames / self.seconds, 3) if self.frames else 0.0,
            "frames_with_face": self.faces,
            "frames_with_gaze": self.gazes,
            "dropped": sum(int(s.get("dropped", 0)) for s in stats.values()),
            # frames capture sent that neither arrived nor were dropped: lost with a stage that died
            "lost": max(
                0,
                int(stats.get(self.chain[0], {}).get("out", self.frames))
                - self.frames
                - sum(int(s.get("dropped", 0)) for name, s in stats.items() if name != self.chain[0]),
            ),
            "cpu_ms_per_frame": round(
                1e3 * sum(float(s.get("cpu_s", 0)) for s in stats.values()) / max(self.frames, 1), 3
            ),
            # the cores all processes used together while the stream ran (CPU seconds / wall seconds)
            "cores": round(sum(float(s.get("cpu_s", 0)) for s in stats.values()) / max(self.seconds, 1e-9), 3),
            "e2e_ms": self.e2e.quantiles(),
            "stages": stages,
            "timeline": self.timeline.as_dict(self.chain),
        }


def write_report(path: str | Path, report: dict[str, Any]) -> None:
    Path(path).write_text(json.dumps(report, indent=1) + "\n")
