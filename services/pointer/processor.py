"""Pointer: the sink. Act on the gaze, write the results file, account the metrics."""

from __future__ import annotations

import json
import logging
import os
import time
from typing import IO, Any

from gazeflow.shared import metrics
from gazeflow.shared.config import Config
from gazeflow.shared.messages import RESULT_KEYS, Message
from gazeflow.shared.process import CONTROL_ENV
from gazeflow.shared.stage import Outputs, Processor

from . import profile, screen
from .backends import make_backend
from .controller import PointerController

log = logging.getLogger("gazeflow.pointer")


def frame_time(header: dict[str, Any], camera: bool = False) -> float:
    """The frame's position in the video in seconds (the same in every run of a file), or for a camera
    its wall-clock capture time."""
    fps = float(header.get("source", {}).get("fps") or 0.0)
    return header["t_capture"] if camera or fps <= 0 else round(header["frame"] / fps, 6)


def result_line(msg: Message, camera: bool = False) -> str:
    """One results line: the frame, its time, and what each stage found."""
    h = msg.header
    record: dict[str, Any] = {"frame": h["frame"], "t": frame_time(h, camera)}
    record.update({key: h[key] for key in RESULT_KEYS})
    return json.dumps(record, separators=(",", ":"))


class Pointer(Processor):
    def __init__(self, cfg: Config) -> None:
        super().__init__(cfg)
        self.backend = make_backend(cfg.pointer)
        monitor = screen.choose(cfg.pointer, screen.monitors() if self.backend.name != "null" else [])
        correction, which = profile.for_run(cfg.pointer.profile, monitor)
        self.camera = cfg.input.startswith("cam:")
        self.controller = PointerController(cfg, monitor, correction)
        self.metrics = metrics.PipelineMetrics(cfg.chain)
        self.results: IO[str] | None = open(cfg.results, "w") if cfg.results else None  # noqa: SIM115
        self._next_live = time.monotonic() + cfg.log_interval
        self.max_age_s = cfg.pointer.max_age_ms / 1e3
        self.stale = 0  # live frames whose gaze was too old to move the pointer
        log.info("pointer backend %s on %s, %s filter; %s", self.backend.name, monitor.describe(),
                 cfg.pointer.filter, which)  # fmt: skip

    def finish(self, msg: Message, outputs: Outputs) -> Message:
        if msg.kind == "eos":
            self._end(msg.header.get("stats", {}))
            return msg
        gaze = msg.header["gaze"]
        if gaze is not None and self.cfg.live and time.time() - msg.header["t_capture"] > self.max_age_s:
            self.stale += 1  # after a stall upstream: where the user looked then is not where they look now
            gaze = None
        decision = None if gaze is None else self.controller.update(msg.header, frame_time(msg.header, self.camera))
        if decision is not None and decision["moved"]:
            self.backend.move(decision["x"], decision["y"])
        msg.header["pointer"] = decision
        return msg

    def sent(self, msg: Message) -> None:
        """After the trace row is complete: results line and metrics."""
        if msg.kind != "frame":
            return
        if self.results is not None:
            self.results.write(result_line(msg, self.camera) + "\n")
        self.metrics.add(msg)
        if self.metrics.frames == 1:  # intervals count from the first frame, not from model loading
            self._next_live = time.monotonic() + self.cfg.log_interval

    def tick(self) -> None:
        """The live line, on time even when no frame comes (then its health part says which stage is silent)."""
        if self.cfg.log_interval <= 0 or not self.metrics.frames or time.monotonic() < self._next_live:
            return
        self._next_live = max(self._next_live + self.cfg.log_interval, time.monotonic())
        line = self.metrics.live_line()
        if line:
            last = self.controller.last_move
            where = f"pointer {self.backend.name} ({last[0]}, {last[1]})" if last else "pointer paused"
            workers = {name: stage.workers for name, stage in self.cfg.stages.items()}
            # under run-all the health line comes from each stage's own heartbeats (run-all prints it)
            health = "" if os.environ.get(CONTROL_ENV) else " | " + self.metrics.health_line(workers)
            log.info("%s | %s, %d moves%s", line, where, self.controller.moves, health)

    def _end(self, stats: dict[str, dict[str, int]]) -> None:
        stats = dict(stats)
        stats[self.name] = stats.get(self.name, {})
        report = self.metrics.report(stats)
        report["pointer_moves"] = self.controller.moves
        report["pointer_stale"] = self.stale
        report["pointer_backend"] = self.backend.name
        if self.results is not None:
            self.results.close()
            self.results = None
        if self.cfg.metrics:
            metrics.write_report(self.cfg.metrics, report)
        print(self.metrics.summary_line(report["dropped"], report["lost"]), flush=True)  # the run's one summary line
