"""How one stage process runs: the source its own way, every other stage in the stage runtime."""

from __future__ import annotations

from typing import TYPE_CHECKING

import zmq

from gazeflow.shared import registry
from gazeflow.shared.process import Control, StopFlag, private_dir

if TYPE_CHECKING:
    from gazeflow.shared.config import Config


def process_name(name: str, worker: str, cfg: Config) -> str:
    """How a stage process is named in ps, logs and run-all's messages: face_detection/1 for a worker."""
    return f"{name}/{worker}" if cfg.workers(name) > 1 else name


def stage_body(name: str, cfg: Config, worker: str = "0"):
    """The function run_stage runs for stage `name` (worker `worker` of a scaled stage)."""

    def body(ctx: zmq.Context, control: Control, stop: StopFlag) -> None:
        private_dir(cfg.run_dir)  # before any socket or the frame ring is made there
        spec = registry.get(name)
        if spec.role == "source":
            spec.load().run(cfg, ctx, control, stop)
        else:
            from gazeflow.shared.stage import StageRuntime  # imported here: run-all names processes without it

            StageRuntime(name, cfg, ctx, control, stop, worker).run()

    return body
