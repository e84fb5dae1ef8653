"""Per-model figures: load time, first inference, latency, throughput, complexity, hot layers.

The same method as OpenVINO's benchmark_app, in-process: LATENCY runs one
synchronous request at a time; THROUGHPUT keeps the device's optimal number of
requests in flight. Complexity is counted from the IR (FP16) graph.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import openvino as ov

from gazeflow.models.catalog import MODELS, ir_path
from gazeflow.shared.inference import core

PRECISIONS = ("FP32", "FP16", "FP16-INT8")
HINTS = ("LATENCY", "THROUGHPUT")


def _inputs(compiled: ov.CompiledModel) -> dict[int, np.ndarray]:
    rng = np.random.default_rng(0)
    out = {}
    for i, port in enumerate(compiled.inputs):
        shape = tuple(port.get_shape())
        out[i] = (rng.random(shape) * 255).astype(port.get_element_type().to_dtype())
    return out


def measure(xml: Path, hint: str, seconds: float, fps: float = 0.0) -> dict[str, float]:
    """Load time, first inference, median latency and throughput. With ``fps`` (LATENCY only), each
    inference starts fps times a second, idle in between as in a real-time pipeline, instead of back
    to back. As benchmark_app does, each request's inputs are filled once: the figures are inference
    alone, with no input copy."""
    c = core()
    t0 = time.perf_counter()
    compiled = c.compile_model(c.read_model(xml), "CPU", {"PERFORMANCE_HINT": hint})
    load_ms = (time.perf_counter() - t0) * 1e3
    inputs = _inputs(compiled)
    request = compiled.create_infer_request()
    t0 = time.perf_counter()
    request.infer(inputs)
    first_ms = (time.perf_counter() - t0) * 1e3
    if hint == "LATENCY":
        latencies, count, elapsed, requests = _one_at_a_time(request, seconds, fps)
    else:
        latencies, count, elapsed, requests = _in_flight(compiled, inputs, seconds)
    return {
        "load_ms": round(load_ms, 1),
        "first_ms": round(first_ms, 2),
        "median_ms": round(statistics.median(latencies), 3),
        "fps": round(count / elapsed, 1),
        "requests": requests,
    }


def _one_at_a_time(request: ov.InferRequest, seconds: float, fps: float) -> tuple[list[float], int, float, int]:
    """Inferences one after the other (or started ``fps`` times a second), on the inputs already set."""
    latencies: list[float] = []
    end = time.perf_counter() + seconds
    start = next_start = time.perf_counter()
    while time.perf_counter() < end or len(latencies) < 10:
        if fps:
            time.sleep(max(0.0, next_start - time.perf_counter()))
            next_start += 1.0 / fps
        t = time.perf_counter()
        request.infer()  # on the inputs set by the first inference
        latencies.append((time.perf_counter() - t) * 1e3)
    return latencies, len(latencies), time.perf_counter() - start, 1


def _in_flight(
    compiled: ov.CompiledModel, inputs: dict[Any, Any], seconds: float
) -> tuple[list[float], int, float, int]:
    """The device's optimal number of requests in flight, each started as soon as one is free."""
    requests = compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")
    queue = ov.AsyncInferQueue(compiled, requests)
    latencies: list[float] = []
    starts: dict[int, float] = {}

    def done(_request: ov.InferRequest, key: int) -> None:
        latencies.append((time.perf_counter() - starts.pop(key)) * 1e3)

    queue.set_callback(done)
    for i in range(len(queue)):
        for index, array in inputs.items():
            queue[i].get_input_tensor(index).data[...] = array
    start = time.perf_counter()
    end = start + seconds
    key = 0
    while time.perf_counter() < end or key < 10:
        queue.get_idle_request_id()  # waits for a free request
        starts[key] = time.perf_counter()
        queue.start_async(userdata=key)
        key += 1
    queue.wait_all()
    return latencies, key, time.perf_counter() - start, requests


def complexity(xml: Path) -> dict[str, float]:
    """GFLOPs (multiply-adds x 2 of convolutions and matrix products) and parameters of an IR."""
    model = core().read_model(xml)
    flops = 0
    params = 0
    for op in model.get_ordered_ops():
        kind = op.get_type_name()
        if kind == "Constant":
            et = op.get_output_element_type(0)
            if et.is_real():
                params += int(np.prod(list(op.get_output_shape(0)), dtype=np.int64))
        elif kind in ("Convolution", "GroupConvolution"):
            out = list(op.get_output_shape(0))
            weights = list(op.input(1).get_shape())
            per_output = int(np.prod(weights[-2:])) * (weights[-3] if kind == "GroupConvolution" else weights[1])
            flops += 2 * int(np.prod(out, dtype=np.int64)) * per_output
        elif kind == "MatMul":
            a = list(op.input(0).get_shape())
            out = list(op.get_output_shape(0))
            k = a[-2] if op.get_attributes().get("transpose_a") else a[-1]
            flops += 2 * int(np.prod(out, dtype=np.int64)) * k
    return {"gflops": round(flops / 1e9, 3), "mparams": round(params / 1e6, 3)}


def hot_layers(xml: Path, top: int = 5, runs: int = 20) -> list[dict[str, Any]]:
    c = core()
    compiled = c.compile_model(c.read_model(xml), "CPU", {"PERFORMANCE_HINT": "LATENCY", "PERF_COUNT": True})
    request = compiled.create_infer_request()
    inputs = _inputs(compiled)
    totals: dict[tuple[str, str, str], float] = {}
    for _ in range(runs):
        request.infer(inputs)
        for info in request.profiling_info:
            key = (info.node_name, info.node_type, info.exec_type)
            totals[key] = totals.get(key, 0.0) + info.real_time.total_seconds() * 1e3
    ranked = sorted(totals.items(), key=lambda kv: -kv[1])[:top]
    total = sum(totals.values()) or 1.0
    return [
        {"layer": k[0], "type": k[1], "exec": k[2], "ms": round(v / runs, 3), "share": round(v / total, 3)}
        for k, v in ranked
    ]


def bench_models(assets_dir: str, seconds: float = 1.5, paced_fps: float = 15.0) -> dict[str, Any]:
    """Every model at every precision and hint; with ``paced_fps``, the LATENCY runs also give their
    median when each inference starts paced_fps times a second (``paced_ms``): what a real-time
    pipeline sees, with the CPU idle between frames."""
    out: dict[str, Any] = {}
    for model in MODELS:
        entry: dict[str, Any] = {"runs": {}}
        for precision in PRECISIONS:
            xml = ir_path(assets_dir, model, precision)
            if not xml.is_file():
                continue
            for hint in HINTS:
                run = measure(xml, hint, seconds)
                if hint == "LATENCY" and paced_fps > 0:
                    run["paced_ms"] = measure(xml, hint, seconds, paced_fps)["median_ms"]
                entry["runs"][f"{precision}/{hint}"] = run
        fp16 = ir_path(assets_dir, model, "FP16")
        entry["complexity"] = complexity(fp16)
        entry["hot_layers_fp16"] = hot_layers(fp16)
        out[model] = entry
    return out
