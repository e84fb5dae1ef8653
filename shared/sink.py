"""The end of the stream, for any sink: the results file, the metrics, the live line and the summary line.

The chain's first sink (the pointer, or the calibration sink in its place) acts on each frame; the runtime
(shared/stage.py, and run-sync) hands every frame it has finished to its ``SinkEnd``, which writes the
results line (the fields the chain's stages declare for it, in chain order), accounts the metrics, prints
the live line each interval and, at the end of the stream, writes the metrics report and prints the run's
one summary line. The sink's processor adds its own words: ``live()`` to the live line, ``report()`` to the
report, ``result_extras`` to each results line.
"""

from __future__ import annotations

import json
import logging
import time
from typing import IO, Any

from . import metrics, registry
from .messages import Message

log = logging.getLogger("gazeflow.sink")


def frame_time(header: dict[str, Any], camera: bool = False) -> float:
    """The frame's position in the video in seconds (the same in every run of a file), or for a camera
    its wall-clock capture time."""
    fps = float(header.get("source", {}).get("fps") or 0.0)
    return header["t_capture"] if camera or fps <= 0 else round(header["frame"] / fps, 6)


class SinkEnd:
    def __init__(self, cfg: Any, proc: Any, under_supervisor: bool = False) -> None:
        self.cfg, self.proc = cfg, proc
        chain = registry.through_first_sink(cfg.chain)  # not the view after it
        self.keys = registry.result_keys(chain)
        self.extras: tuple[str, ...] = tuple(getattr(proc, "result_extras", ()))
        self.camera = cfg.input.startswith("cam:")
        self.metrics = metrics.PipelineMetrics(chain)
        # line-buffered: each result can be read (tail -f, another program) as soon as its frame is done
        self.results: IO[str] | None = open(cfg.results, "w", buffering=1) if cfg.results else None  # noqa: SIM115
        self.next_live = time.monotonic() + cfg.log_interval
        self.under_supervisor = under_supervisor  # run-all prints the health line from the heartbeats
        self.source_fps = 0.0

    def result_line(self, msg: Message) -> str:
        """One results line: the frame, its time, and what each stage found."""
        h = msg.header
        record: dict[str, Any] = {"frame": h["frame"], "t": frame_time(h, self.camera)}
        record.update({key: h.get(key) for key in self.keys})
        record.update({key: h.get(key) for key in self.extras})
        return json.dumps(record, separators=(",", ":"))

    def add(self, msg: Message) -> None:
        """A frame the sink has finished: its results line and its metrics."""
        if msg.kind != "frame":
            return
        self.source_fps = (msg.header.get("source") or {}).get("fps", 0)
        if self.results is not None:
            self.results.write(self.result_line(msg) + "\n")
        self.metrics.add(msg)
        if self.metrics.frames == 1:  # intervals count from the first frame, not from model loading
            self.next_live = time.monotonic() + self.cfg.log_interval

    def figures(self) -> str:
        return self.metrics.live_line() or "no frame yet"

    def health(self) -> str:
        return self.metrics.health_line({name: stage.workers for name, stage in self.cfg.stages.items()})

    def tick(self) -> None:
        """The live line, on time even when no frame comes (then its health part says which stage is silent)."""
        if self.cfg.log_interval <= 0 or not self.metrics.frames or time.monotonic() < self.next_live:
            return
        self.next_live = max(self.next_live + self.cfg.log_interval, time.monotonic())
        line = self.metrics.live_line()
        if line:
            own = self.proc.live()
            health = "" if self.under_supervisor else " | " + self.health()
            log.info("%s%s%s", line, f" | {own}" if own else "", health)

    def end(self, stats: dict[str, Any]) -> dict[str, Any]:
        """The end of the stream: the results file closed, the report written, the summary line printed."""
        stats = dict(stats)
        stats.setdefault(self.proc.name, {})
        report = self.metrics.report(stats)
        used = {
            k: v["inference_precision"] for k, v in stats.items() if isinstance(v, dict) and "inference_precision" in v
        }
        report["inference_precision"] = used
        report["run"] = self._run(used)
        for key, value in self.proc.report().items():
            report[key] = {**report[key], **value} if isinstance(report.get(key), dict) else value
        if self.results is not None:
            self.results.close()
            self.results = None
        if self.cfg.metrics:
            metrics.write_report(self.cfg.metrics, report)
        summary = self.metrics.summary_line(report["dropped"], report["lost"])
        if used:
            summary += ", inference " + "/".join(sorted(set(used.values())))
        print(summary, flush=True)  # the run's one summary line
        return report

    def _run(self, used: dict[str, str]) -> dict[str, Any]:
        """The run's settings, for the report's titles and comparisons."""
        cfg = self.cfg
        return {
            "input": cfg.input,
            "pace": cfg.pace,
            "fps": cfg.fps or float(self.source_fps or 0),
            "precision": sorted({cfg.stages[n].precision for n in cfg.chain if registry.get(n).models}),
            "inference": sorted(set(used.values())),
            "detect_every": cfg.detect_every,
        }
