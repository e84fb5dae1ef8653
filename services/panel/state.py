"""What the panel knows of the run: each frame's trace and findings as they reach it (the stage's thread),
read by the web server's thread; the Prometheus collectors; the processes' CPU and memory from /proc."""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from gazeflow.shared.messages import Message
from gazeflow.shared.metrics import INFER, POST, PRE, QUEUE, PipelineMetrics

HISTORY = 600  # one point a second: the charts' last ten minutes
WANT_S = 3.0  # a frame is kept for the live view only while a page asked for one this recently
BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5)
KEPT = ("frame", "t_capture", "source", "face", "landmarks", "head_pose", "iris", "gaze", "eyes", "pointer", "paused")


class Prometheus:
    """The collectors of /metrics, on a registry of the panel's own (nothing of the process's defaults)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.frames = Counter("gazeflow_frames", "frames that reached the end of the pipeline", registry=r)
        self.gazes = Counter("gazeflow_frames_with_gaze", "frames with a gaze", registry=r)
        self.fps = Gauge("gazeflow_fps", "frames a second over the last second", registry=r)
        self.paused = Gauge("gazeflow_pointer_paused", "1 while the pointer is paused", registry=r)
        self.e2e = Histogram(
            "gazeflow_e2e_latency_seconds", "capture to the pointer's decision", buckets=BUCKETS, registry=r
        )
        self.service = Histogram(
            "gazeflow_stage_service_seconds", "a stage's work on a frame", ["stage"], buckets=BUCKETS, registry=r
        )
        self.queue = Histogram(
            "gazeflow_stage_queue_seconds", "a frame's wait in a stage's inbox", ["stage"], buckets=BUCKETS, registry=r
        )
        self.stage_frames = Counter("gazeflow_stage_frames", "frames a stage passed on", ["stage"], registry=r)
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
        self.malformed = Gauge(
            "gazeflow_process_malformed_messages",
            "messages a stage process refused at its door",
            ["process"],
            registry=r,
        )


class PanelState:
    def __init__(self, chain: tuple[str, ...], view_fps: float) -> None:
        self.lock = threading.Lock()
        self.metrics = PipelineMetrics(chain)
        self.prometheus = Prometheus()
        self.view_interval = 1.0 / view_fps if view_fps else 0.0  # 0: no live view
        self.header: dict[str, Any] = {}
        self.frame: np.ndarray | None = None
        self.frame_header: dict[str, Any] = {}
        self.frame_taken = 0.0
        self.wanted_until = 0.0
        self.history: deque[dict[str, float]] = deque(maxlen=HISTORY)
        self._mark = (time.monotonic(), 0)
        self.processes = Processes()
        self.ended = False

    # -- the stage's thread -----------------------------------------------------------------------------
    def add(self, msg: Message) -> None:
        h = msg.header
        p = self.prometheus
        with self.lock:
            self.metrics.add(msg)
            self.header = {k: h.get(k) for k in KEPT}
        p.frames.inc()
        if h.get("gaze") is not None:
            p.gazes.inc()
        p.paused.set(1.0 if h.get("paused") else 0.0)
        if self.metrics.e2e.recent:
            p.e2e.observe(self.metrics.e2e.recent[-1] / 1e3)
        for row in h["trace"]:
            stage = row[0]
            p.service.labels(stage).observe((row[PRE] + row[INFER] + row[POST]) / 1e9)
            p.queue.labels(stage).observe(row[QUEUE] / 1e9)
            p.stage_frames.labels(stage).inc()
        now = time.monotonic()
        frame = msg.arrays.get("frame")
        due = self.view_interval and now < self.wanted_until and now - self.frame_taken >= self.view_interval
        if frame is not None and due:
            copy = frame.copy()  # the ring's slot goes back to capture: the live view draws on its own copy
            with self.lock:
                self.frame, self.frame_header, self.frame_taken = copy, {**self.header, "trace": []}, now
        self.tick()

    def tick(self) -> None:
        """Once a second: a point of the charts, the fps gauge, the processes' CPU and memory."""
        now = time.monotonic()
        since, frames = self._mark
        if now - since < 1.0:
            return
        with self.lock:
            total = self.metrics.frames
            fps = (total - frames) / (now - since)
            recent = list(self.metrics.e2e.recent)[-max(1, total - frames) :] if total > frames else []
            point = {
                "t": time.time(),
                "fps": round(fps, 2),
                "e2e_p50_ms": round(float(np.median(recent)), 2) if recent else None,
            }
            point.update(self._service_medians(max(1, total - frames)))
            self.history.append(point)
            self._mark = (now, total)
        self.prometheus.fps.set(fps)
        for name, figures in self.processes.sample().items():
            self.prometheus.cpu.labels(name).set(figures["cores"])
            self.prometheus.rss.labels(name).set(figures["rss_mb"] * 1e6)

    def _service_medians(self, n: int) -> dict[str, float]:
        out = {}
        for name, series in self.metrics.stage.items():
            values = list(series["service_ms"].recent)[-n:]
            if values:
                out[f"service_ms:{name}"] = round(float(np.median(values)), 3)
        return out

    # -- the server's thread ----------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        with self.lock:
            m = self.metrics
            stages = {}
            for name in m.chain:
                series = m.stage.get(name)
                if series is None:
                    continue
                stages[name] = {
                    key: series[key].quantiles() for key in ("service_ms", "infer_ms", "queue_ms", "transport_ms")
                } | {"frames": len(series["service_ms"])}
            return {
                "frames": m.frames,
                "frames_with_face": m.faces,
                "frames_with_gaze": m.gazes,
                "fps": self.history[-1]["fps"] if self.history else 0.0,
                "e2e_ms": m.e2e.quantiles(),
                "stages": stages,
                "history": list(self.history),
                "findings": dict(self.header),
                "processes": self.processes.last,
                "ended": self.ended,
            }

    def take_frame(self) -> tuple[np.ndarray | None, dict[str, Any]]:
        """The newest frame kept for the live view (and ask for more for a while)."""
        self.wanted_until = time.monotonic() + WANT_S
        with self.lock:
            return self.frame, self.frame_header


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
