"""A stage's models: compiled, warmed up, several async infer requests each, outputs collected by frame.

The models of a stage that all run on every frame are compiled as one
(``inference.Fusion``): one request per frame. Inputs are written straight into
the idle request that will run them (``staging``); a completion writes a byte to
a pipe that the stage's loop polls (``wake_fd``), so the loop never blocks on
inference.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .messages import Message

if TYPE_CHECKING:
    from .config import Config

if TYPE_CHECKING:
    from .inference import Fusion

_LOADING = threading.Lock()
Inputs = dict[str, dict[Any, np.ndarray]]  # model key -> input name or index -> array
Outputs = dict[str, dict[str, np.ndarray]]  # model key -> output name -> array


@dataclass
class Item:
    """One message on its way through a stage (perf_counter ns unless said otherwise)."""

    msg: Message
    t_recv: int  # wall ns
    t_recv_mono: int
    t_start: int = 0
    t_submit: int = 0
    keys: tuple[str, ...] = ()  # the models it runs in
    tag: int = 0  # what its infer requests are tagged with
    outputs: Outputs = field(default_factory=dict)
    t_done: int = 0


class Engine:
    """``sync``: one request per model, inferred in the caller's thread (run-sync, the baseline): the same
    models, compiled the same way (fused), with the LATENCY hint and the configured threads."""

    def __init__(self, cfg: Config, stage: str, models: dict[str, str], sync: bool = False) -> None:
        self.wake_fd, self._wake_w = os.pipe()
        os.set_blocking(self.wake_fd, False)
        os.set_blocking(self._wake_w, False)
        self.sync = sync
        self.models: dict[str, Any] = {}
        self.sizes: dict[str, int] = {}
        self.precision = ""
        self.fusion: Fusion | None = None
        self.submitted = 0  # frames submitted so far: each one's tag
        if models:  # OpenVINO is imported only where there are models: the others start sooner
            with _LOADING:  # stages sharing a process load one at a time (one OpenVINO Core, its cache)
                self._load(cfg, stage, models)

    def _load(self, cfg: Config, stage: str, models: dict[str, str]) -> None:
        from .inference import (
            AsyncModel,
            Fusion,
            SyncModel,
            compile_model,
            execution_precision,
            load_model,
            use_cache,
            warm_up,
        )

        stage_cfg = cfg.stages[stage]
        read = {key: load_model(cfg.assets_dir, model, stage_cfg.precision) for key, model in models.items()}
        self.fusion = Fusion.of(read) if len(read) > 1 else None
        use_cache(cfg.model_cache)
        if self.sync:
            args = (stage_cfg.device, "LATENCY", 1, stage_cfg.threads, stage_cfg.inference_precision)
        else:
            args = (
                stage_cfg.device,
                cfg.hint_for(stage),
                stage_cfg.requests,
                cfg.threads_for(stage),
                stage_cfg.inference_precision,
            )
        if self.fusion is not None:
            compiled = {self.fusion.key: compile_model(self.fusion.model, *args)}
        else:
            compiled = {key: compile_model(model, *args) for key, model in read.items()}
        for key, model in compiled.items():
            warm_up(model)  # the first inference is slow: take it before the stream starts
            self.models[key] = SyncModel(model) if self.sync else AsyncModel(model, stage_cfg.requests, self._wake_w)
        self.sizes = {key: getattr(m, "size", 1) for key, m in self.models.items()}
        self.precision = ",".join(sorted({execution_precision(c) for c in compiled.values()}))  # what runs

    def infer(self, inputs: Inputs) -> Outputs:
        """A sync engine's inference of one frame's inputs, in the caller's thread."""
        if self.fusion is not None and inputs:
            fused = self.models[self.fusion.key].infer(self.fusion.merge(inputs))
            return self.fusion.split(fused)
        return {key: self.models[key].infer(model_inputs) for key, model_inputs in inputs.items()}

    def woken(self) -> None:
        """One read takes every wake-up byte (a byte per completion, a few in flight); reading on until
        BlockingIOError would cost an exception per completion."""
        os.read(self.wake_fd, 4096)

    def staging(self, key: str, name: Any) -> np.ndarray | None:
        """Where input ``name`` of model ``key`` may be written for the next submit (see AsyncModel)."""
        if self.fusion is not None:
            return self.models[self.fusion.key].staging(self.fusion.index(key, name))
        return self.models[key].staging(name)

    def free(self) -> bool:
        return all(m.free() for m in self.models.values())

    @property
    def in_flight(self) -> int:
        return sum(m.in_flight for m in self.models.values())

    def submit(self, item: Item, inputs: Inputs) -> None:
        """Start the item's inferences; t_submit is when the last input was in its request (as
        benchmark_app counts), or now when there is nothing to infer."""
        if self.fusion is not None and inputs:
            inputs = {self.fusion.key: self.fusion.merge(inputs)}
        item.keys = tuple(inputs)
        self.submitted += 1
        item.tag = self.submitted
        started = [self.models[key].submit(model_inputs, item.tag) for key, model_inputs in inputs.items()]
        item.t_submit = min(started) if started else time.perf_counter_ns()

    def check(self) -> None:
        for model in self.models.values():
            model.check()

    def collect(self, item: Item) -> bool:
        """Move the item's finished outputs into it; True when all are there."""
        for key in item.keys:
            if key not in item.outputs:
                got = self.models[key].take(item.tag)
                if got is not None:
                    item.outputs[key], done = got
                    item.t_done = max(item.t_done, done)
        return len(item.outputs) == len(item.keys)

    def outputs(self, item: Item) -> Outputs:
        """The item's outputs by model key, as the processor named its models."""
        if self.fusion is not None and item.outputs:
            return self.fusion.split(item.outputs[self.fusion.key])
        return item.outputs

    def close(self) -> None:
        for model in self.models.values():
            if not self.sync:
                model.wait_all()
        os.close(self.wake_fd)
        os.close(self._wake_w)
