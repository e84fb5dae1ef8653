"""run-sync: the same processors in one process, one synchronous request at a time.

The reference for correctness (the pipeline must give the same results) and the
baseline for speed.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from gazeflow.shared import registry, tracking
from gazeflow.shared.config import Config
from gazeflow.shared.inference import SyncModel, compile_model, execution_precision, load_model, use_cache, warm_up
from gazeflow.shared.messages import Message
from gazeflow.shared.metrics import T_SEND, trace_row
from gazeflow.shared.process import StopFlag
from gazeflow.shared.stage import build

from .capture.source import Source, resolve_input

log = logging.getLogger("gazeflow.run_sync")


def run_sync(cfg: Config) -> int:
    from .supervisor import preflight

    preflight(cfg)  # the same checks as run-all, before anything is loaded
    stop = StopFlag()
    use_cache(cfg.model_cache)
    source = Source(resolve_input(cfg.input, cfg.assets_dir), cfg.loop)
    frames = registry.get(cfg.source).load().frames
    procs = [build(name, cfg) for name in cfg.chain[1:]]
    models: dict[str, dict[str, SyncModel]] = {}
    for proc in procs:
        stage = cfg.stages[proc.name]
        models[proc.name] = {
            key: SyncModel(
                compile_model(
                    load_model(cfg.assets_dir, model, stage.precision),
                    stage.device,
                    "LATENCY",
                    1,
                    stage.threads,
                    stage.inference_precision,
                )
            )
            for key, model in registry.get(proc.name).models.items()
        }
    if tracking.active(cfg):  # the same tracking as the stages, the feedback in memory
        feedback = tracking.Feedback()
        for proc in procs:
            if proc.tracking_role:
                proc.feedback = feedback  # type: ignore[attr-defined]
    for proc in procs:  # prepare writes model inputs in place, as in the stages
        proc.staging = lambda key, name, stage_models=models[proc.name]: stage_models[key].staging(name)
    for stage_models in models.values():
        for model in stage_models.values():
            warm_up(model.request.get_compiled_model())
    log.info("run-sync: %s, one request at a time", source.spec)
    sinks = [p for p in procs if registry.get(p.name).role == "sink"]  # the pointer, then (--show) the view
    reads = {p.name: registry.get(p.name).reads_frames for p in procs}
    cpu0 = time.process_time()
    frames_done = 0
    try:
        for msg in frames(cfg, source, stop):
            msg.header["trace"][0][T_SEND] = time.time_ns()
            frame = msg.arrays.get("frame")
            for proc in procs:
                if reads[proc.name]:  # the view draws on the frame, as the ring gives it to it in run-all
                    msg.arrays["frame"] = frame
                t_recv, t0 = time.time_ns(), time.perf_counter_ns()
                inputs = proc.prepare(msg)
                t1 = time.perf_counter_ns()
                outputs = {key: models[proc.name][key].infer(value) for key, value in inputs.items()}
                t2 = time.perf_counter_ns()
                msg = proc.finish(msg, outputs)
                t3 = time.perf_counter_ns()
                row = trace_row(proc.name, t_recv, time.time_ns(), pre=t1 - t0, infer=t2 - t1, post=t3 - t2)
                msg.header["trace"].append(row)
                proc.sent(msg)
            for sink in sinks:
                sink.tick()
            frames_done += 1
        if stop:
            log.info("run-sync: stopped by signal")
            return 130
        stats: dict[str, dict[str, Any]] = {p.name: {"in": frames_done, "out": frames_done, **p.stats()} for p in procs}
        for name, stage_models in models.items():
            if stage_models:
                used = {execution_precision(m.request.get_compiled_model()) for m in stage_models.values()}
                stats[name]["inference_precision"] = ",".join(sorted(used))
        stats[cfg.source] = {"in": frames_done, "out": frames_done}
        stats["run_sync"] = {"cpu_s": round(time.process_time() - cpu0, 3)}
        for sink in sinks:
            sink.finish(Message.eos(stats), {})
    finally:
        source.close()
    return 0
