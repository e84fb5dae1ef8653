"""What the panel knows of the run: the pipeline's figures as the pointer keeps them (asked once a second by
the server's thread through the ctl channel), the frames the live view asked for (the stage's thread), the
Prometheus collectors, and the processes' CPU and memory from /proc.

The panel does nothing per frame: with no page open the stage before it sends it no frame at all (the
watch channel), and every figure comes from the metrics the pointer keeps anyway."""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from gazeflow.shared import channels
from gazeflow.shared.messages import Message
from gazeflow.shared.metrics import BUCKETS_MS, SHOWN, percentiles

HISTORY = 600  # one point a second: the charts' last ten minutes
WANT_S = 3.0  # a frame is sent for the live view only while a page asked for one this recently
KEPT = ("frame", "t_capture", "source", "face", "landmarks", "head_pose", "iris", "gaze", "eyes", "pointer", "paused")


def _histogram(family: HistogramMetricFamily, labels: list[str], d: channels.Distribution) -> None:
    """A Distribution's bucket counts (ms) as a Prometheus histogram (seconds, cumulative)."""
    cumulative = np.cumsum(d.buckets).tolist()
    buckets = [(f"{edge / 1e3:g}", count) for edge, count in zip(BUCKETS_MS, cumulative, strict=False)]
    family.add_metric(labels, [*buckets, ("+Inf", d.count)], d.sum_ms / 1e3)


class Exported:
    """/metrics's figures of the pipeline, from the pointer's newest (a collector: nothing is counted here)."""

    def __init__(self, state: PanelState) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        f, fps = self.state.figures, self.state.fps
        if f is None:
            return
        yield CounterMetricFamily("gazeflow_frames", "frames that reached the end of the pipeline", f.frames)
        yield CounterMetricFamily("gazeflow_frames_with_gaze", "frames with a gaze", f.gazes)
        yield GaugeMetricFamily("gazeflow_fps", "frames a second over the last second", fps)
        yield GaugeMetricFamily("gazeflow_pointer_paused", "1 while the pointer is paused", float(f.paused))
        e2e = HistogramMetricFamily("gazeflow_e2e_latency_seconds", "capture to the pointer's decision")
        _histogram(e2e, [], f.e2e)
        yield e2e
        service = HistogramMetricFamily("gazeflow_stage_service_seconds", "a stage's work on a frame", labels=["stage"])
        queue = HistogramMetricFamily(
            "gazeflow_stage_queue_seconds", "a frame's wait in a stage's inbox", labels=["stage"]
        )
        frames = CounterMetricFamily("gazeflow_stage_frames", "frames a stage passed on", labels=["stage"])
        for name, series in f.stages.items():
            _histogram(service, [name], series["service_ms"])
            _histogram(queue, [name], series["queue_ms"])
            frames.add_metric([name], series["service_ms"].count)
        yield from (service, queue, frames)


class Prometheus:
    """The collectors of /metrics, on a registry of the panel's own (nothing of the process's defaults)."""

    def __init__(self, state: PanelState) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        r.register(Exported(state))
        self.cpu = Gauge(
            "gazeflow_process_cpu_cores", "cores a stage process used over the last second", ["process"], registry=r
        )
        self.rss = Gauge(
            "gazeflow_process_resident_bytes", "a stage process's resident memory", ["process"], registry=r
        )
        self.restarts = Gauge(
            "gazeflow_stage_restarts", "times run-all restarted a stage process", ["process"], registry=r
        )
        self.dropped = Gauge(
            "gazeflow_process_dropped_frames", "frames a stage process let go of", ["process"], registry=r
        )
        self.lost = Gauge(
            "gazeflow_process_lost_frames",
            "frames that never came to a stage process (a stage that died took them with it)",
            ["process"],
            registry=r,
        )
        self.malformed = Gauge(
            "gazeflow_process_malformed_messages",
            "messages a stage process refused at its door",
            ["process"],
            registry=r,
        )


class PanelState:
    def __init__(self, chain: tuple[str, ...], view_fps: float) -> None:
        self.lock = threading.Lock()
        self.chain = chain
        self.view_interval = 1.0 / view_fps if view_fps else 0.0  # 0: no live view
        self.figures: channels.Figures | None = None  # the pointer's newest
        self.fps = 0.0
        self.frame: np.ndarray | None = None
        self.frame_header: dict[str, Any] = {}
        self.frame_taken = 0.0
        self.wanted_until = 0.0
        self.history: deque[dict[str, Any]] = deque(maxlen=HISTORY)
        self._mark: tuple[float, int] | None = None  # when the figures were last taken, and their frames then
        self.processes = Processes()
        self.prometheus = Prometheus(self)
        self.ended = False

    # -- the stage's thread: a frame the live view asked for --------------------------------------------
    def add(self, msg: Message) -> None:
        now = time.monotonic()
        frame = msg.arrays.get("frame")
        due = self.view_interval and now < self.wanted_until and now - self.frame_taken >= self.view_interval
        if frame is not None and due:
            copy = frame.copy()  # the ring's slot goes back to capture: the live view draws on its own copy
            header = {k: msg.header.get(k) for k in KEPT}
            with self.lock:
                self.frame, self.frame_header, self.frame_taken = copy, header, now

    # -- the server's thread ----------------------------------------------------------------------------
    @property
    def since(self) -> int:
        """The frames the pipeline had passed when the figures were last taken."""
        return self._mark[1] if self._mark else 0

    def update(self, figures: channels.Figures | None) -> None:
        """The pointer's figures, once a second: a point of the charts, the fps, the processes' CPU and memory."""
        now = time.monotonic()
        if figures is not None:
            fps = self.fps
            if self._mark is not None and now > self._mark[0]:
                fps = max(0, figures.frames - self._mark[1]) / (now - self._mark[0])
            recent = figures.e2e.recent_ms
            point: dict[str, Any] = {"t": time.time(), "fps": round(fps, 2), "e2e_p50_ms": recent and round(recent, 2)}
            for name, series in figures.stages.items():
                if series["service_ms"].recent_ms is not None:
                    point[f"service_ms:{name}"] = round(series["service_ms"].recent_ms, 3)
            with self.lock:
                self.figures, self.fps, self._mark = figures, fps, (now, figures.frames)
                self.history.append(point)
        for name, used in self.processes.sample().items():
            self.prometheus.cpu.labels(name).set(used["cores"])
            self.prometheus.rss.labels(name).set(used["rss_mb"] * 1e6)

    def stats(self) -> dict[str, Any]:
        with self.lock:
            f = self.figures
            stages = {
                name: {key: _quantiles(series[key]) for key in SHOWN} | {"frames": series["service_ms"].count}
                for name, series in (f.stages.items() if f else ())
                if name in self.chain
            }
            return {
                "frames": f.frames if f else 0,
                "frames_with_face": f.faces if f else 0,
                "frames_with_gaze": f.gazes if f else 0,
                "fps": round(self.fps, 2),
                "e2e_ms": _quantiles(f.e2e) if f else percentiles([]),
                "stages": stages,
                "history": list(self.history),
                "processes": self.processes.last,
                "ended": self.ended,
            }

    def take_frame(self) -> tuple[np.ndarray | None, dict[str, Any]]:
        """The newest frame kept for the live view (and ask for more for a while)."""
        self.wanted_until = time.monotonic() + WANT_S
        with self.lock:
            return self.frame, self.frame_header


def _quantiles(d: channels.Distribution) -> dict[str, float]:
    return {k: round(getattr(d, k), 3) for k in ("p50", "p95", "p99", "max")}


class Processes:
    """CPU (cores over the last sample) and memory of run-all's stage processes, from /proc."""

    def __init__(self, parent: int | None = None) -> None:
        self.parent = parent or os.getppid()
        self.tick = os.sysconf("SC_CLK_TCK")
        self.page = os.sysconf("SC_PAGE_SIZE")
        self.marks: dict[int, tuple[float, float]] = {}
        self.last: dict[str, dict[str, float]] = {}

    def _children(self) -> list[int]:
        try:
            text = Path(f"/proc/{self.parent}/task/{self.parent}/children").read_text()
        except OSError:
            return [os.getpid()]
        return [int(p) for p in text.split()] or [os.getpid()]

    def sample(self) -> dict[str, dict[str, float]]:
        out = {}
        now = time.monotonic()
        for pid in self._children():
            try:
                title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if not title.startswith("gazeflow-stage "):
                continue
            name = title.removeprefix("gazeflow-stage ").split(" ")[0]
            cpu = (int(fields[11]) + int(fields[12])) / self.tick
            before = self.marks.get(pid)
            self.marks[pid] = (now, cpu)
            cores = (cpu - before[1]) / (now - before[0]) if before and now > before[0] else 0.0
            out[name] = {"pid": pid, "cores": round(max(0.0, cores), 3), "rss_mb": round(pages * self.page / 1e6, 1)}
        self.last = out
        return out
