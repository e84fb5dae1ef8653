"""run-sync: the same processors in one process, one synchronous request at a time.

The reference for correctness (the pipeline must give the same results) and the baseline for speed. Its
models are the stages' own engines (shared/engine.py) in their synchronous mode: loaded, fused and compiled
as the stages do, with one request each.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import zmq

from gazeflow.shared import registry, tracking
from gazeflow.shared.engine import Engine
from gazeflow.shared.errors import GazeflowError
from gazeflow.shared.messages import Message
from gazeflow.shared.metrics import T_SEND, trace_row
from gazeflow.shared.process import StopFlag
from gazeflow.shared.sink import SinkEnd
from gazeflow.shared.stage import Processor, build

from .capture.source import Source, resolve_input

if TYPE_CHECKING:
    from gazeflow.shared.config import Config

log = logging.getLogger("gazeflow.run_sync")


def _processors(cfg: Config) -> tuple[list[Processor], dict[str, Engine]]:
    """Every stage after the source, with its engine; tracking's feedback in memory, as the stages track."""
    procs = [build(name, cfg) for name in cfg.chain[1:]]
    engines = {p.name: Engine(cfg, p.name, registry.get(p.name).models, sync=True) for p in procs}
    for proc in procs:  # prepare writes model inputs in place, as in the stages
        proc.staging = engines[proc.name].staging
    if tracking.active(cfg):
        feedback = tracking.Feedback()
        for proc in procs:
            if registry.get(proc.name).tracking:
                proc.feedback = feedback  # type: ignore[attr-defined]
    return procs, engines


def _through(msg: Message, procs: list[Processor], engines: dict[str, Engine], sink: SinkEnd) -> None:
    """One frame through every stage, each one's trace row as a stage process writes it."""
    frame = msg.arrays.get("frame")
    for proc in procs:
        if registry.reads_frames(proc.name, sink.cfg):  # the view draws on the frame, as the ring gives it to it
            msg.arrays["frame"] = frame
        t_recv, t0 = time.time_ns(), time.perf_counter_ns()
        inputs = proc.prepare(msg)
        t1 = time.perf_counter_ns()
        outputs = engines[proc.name].infer(inputs)
        t2 = time.perf_counter_ns()
        msg = proc.finish(msg, outputs)
        t3 = time.perf_counter_ns()
        msg.header["trace"].append(
            trace_row(proc.name, t_recv, time.time_ns(), pre=t1 - t0, infer=t2 - t1, post=t3 - t2)
        )
        proc.sent(msg)
        if proc is sink.proc:
            sink.add(msg)


def run_sync(cfg: Config) -> int:
    from .supervisor import preflight

    if "panel" in cfg.chain:  # it serves from a run directory (token, sockets) that only run-all makes
        raise GazeflowError("--panel: the panel watches a run of 'gazeflow run-all'; run-sync has none to serve")
    preflight(cfg)  # the same checks as run-all, before anything is loaded
    stop = StopFlag()
    source = Source(resolve_input(cfg.input, cfg.assets_dir), cfg.loop, camera=cfg.capture)
    frames = registry.get(cfg.source).load().frames
    procs, engines = _processors(cfg)
    first_sink = registry.through_first_sink(cfg.chain)[-1]
    sink = SinkEnd(cfg, next(p for p in procs if p.name == first_sink))
    sink.proc.sink_end = sink
    log.info("run-sync: %s, one request at a time", source.spec)
    sinks = [p for p in procs if registry.get(p.name).role == "sink"]  # the pointer, then (--show) the view
    wakers = zmq.Poller()  # the sinks' own channels (the pointer's ctl), as run-all's stage loop polls them
    woken = {sock: proc for proc in sinks for sock in proc.wakers()}
    for sock in woken:
        wakers.register(sock, zmq.POLLIN)
    cpu0 = time.process_time()
    done = 0
    try:
        for msg in frames(cfg, source, stop):
            msg.header["trace"][0][T_SEND] = time.time_ns()
            _through(msg, procs, engines, sink)
            for sock, _ in wakers.poll(0) if woken else ():
                woken[sock].woken()
            for proc in sinks:
                proc.tick()
            sink.tick()
            done += 1
        if stop:
            log.info("run-sync: stopped by signal")
            return 130
        _end(cfg, procs, engines, sink, done, time.process_time() - cpu0)
    finally:
        source.close()
    return 0


def _end(
    cfg: Config, procs: list[Processor], engines: dict[str, Engine], sink: SinkEnd, done: int, cpu_s: float
) -> None:
    """The end of the stream, as the stages report it: each one's counts, then the sinks' ends."""
    stats: dict[str, dict[str, Any]] = {p.name: {"in": done, "out": done, **p.stats()} for p in procs}
    for name, engine in engines.items():
        if engine.precision:
            stats[name]["inference_precision"] = engine.precision
    stats[cfg.source] = {"in": done, "out": done}
    stats["run_sync"] = {"cpu_s": round(cpu_s, 3)}
    for proc in procs:
        if registry.get(proc.name).role == "sink":
            proc.finish(Message.eos(stats), {})
            if proc is sink.proc:
                sink.end(stats)
