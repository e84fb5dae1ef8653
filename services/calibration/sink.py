"""The calibration sink: in place of the pointer, it moves nothing and writes every frame's findings as a sample
line (the results line plus the capture time and the frame's size), which ``gazeflow calibrate`` fits from."""

from __future__ import annotations

import json
from typing import IO

from gazeflow.shared import metrics
from gazeflow.shared.config import Config
from gazeflow.shared.messages import Message
from gazeflow.shared.stage import Outputs, Processor

from ..pointer.processor import result_line


class CalibrationSink(Processor):
    keeps_pixels = False

    def __init__(self, cfg: Config) -> None:
        super().__init__(cfg)
        self.samples: IO[str] | None = open(cfg.results, "w") if cfg.results else None  # noqa: SIM115
        self.metrics = metrics.PipelineMetrics(cfg.chain)
        self.camera = cfg.input.startswith("cam:")

    def finish(self, msg: Message, outputs: Outputs) -> Message:
        if msg.kind == "eos":
            if self.samples is not None:
                self.samples.close()
                self.samples = None
            if self.cfg.metrics:
                metrics.write_report(self.cfg.metrics, self.metrics.report(dict(msg.header.get("stats", {}))))
        return msg

    def sent(self, msg: Message) -> None:
        if msg.kind != "frame":
            return
        self.metrics.add(msg)
        if self.samples is not None:
            line = json.loads(result_line(msg, self.camera))
            line["t_capture"], line["source"] = msg.header["t_capture"], msg.header.get("source")
            self.samples.write(json.dumps(line, separators=(",", ":")) + "\n")
            self.samples.flush()  # the window follows the session from this file
