"""OpenVINO models: compile with the right device, hint and layout; run sync or async.

``AsyncModel`` is the submit / collect shape of OpenVINO model_api's
AsyncPipeline: ``submit(inputs, key)`` starts a request, the completion callback
parks the outputs by key (and writes a byte to a wake-up pipe so the stage's
poll loop returns at once), ``take(key)`` collects them. An exception raised in
the callback is kept and re-raised in the stage's thread by ``check()``.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import openvino as ov

from .config import check_cache
from .errors import GazeflowError

log = logging.getLogger("gazeflow.inference")
_core: ov.Core | None = None


def core() -> ov.Core:
    global _core
    if _core is None:
        _core = ov.Core()
    return _core


def use_cache(cache_dir: str) -> None:
    """Keep compiled models in ``cache_dir`` (OpenVINO's model cache): a second start, and a restarted
    stage, load them instead of compiling. A folder that cannot be made or written is one line."""
    path = check_cache(cache_dir)
    if path:
        core().set_property({"CACHE_DIR": path})


def execution_precision(compiled: ov.CompiledModel) -> str:
    """The precision the device runs a compiled model in (f32, bf16, f16)."""
    try:
        name = str(compiled.get_property("INFERENCE_PRECISION_HINT")).lower()
    except Exception:
        return "?"
    for long, short in (("bfloat16", "bf16"), ("float32", "f32"), ("float16", "f16"), ("f32", "f32")):
        if long in name:
            return short
    return name


def check_device(device: str) -> None:
    """Raise a one-line error when a device (or a device inside AUTO:/HETERO:/MULTI:) is missing."""
    available = core().available_devices
    names = device.split(":", 1)[1].split(",") if ":" in device else [device]
    for name in names:
        base = name.split(".")[0]
        if base in ("AUTO", "HETERO", "MULTI", "BATCH"):
            continue
        if name not in available and base not in available:
            raise GazeflowError(f"device {name} is not available; this machine has: {', '.join(available)}")


def ov_reason(exc: BaseException) -> str:
    """The informative line of an OpenVINO exception (its first lines are source locations)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith("Exception from ")]
    return (useful or lines or [type(exc).__name__])[0]


def _looks_like_ir(xml: Path) -> bool:
    with xml.open("rb") as fh:
        head = fh.read(512).lstrip()
    return head.startswith(b"<?xml") and b"<net" in head


def read_model(
    xml: Path, batch: float = 0, mean: float = 0.0, scale: float = 1.0, layout: str = "NCHW", rgb: bool = False
) -> ov.Model:
    """Read an IR (or an ONNX, a TFLite) and let it take u8 NHWC BGR images (converted to the model's layout,
    colour order and range inside the graph: (x - mean) / scale, channels reversed for an RGB model);
    ``batch``: images per inference, when not the model's own."""
    c = core()
    if xml.suffix not in (".onnx", ".tflite") and not _looks_like_ir(xml):  # else every frontend tries it
        raise GazeflowError(f"corrupt model {xml}: not an OpenVINO IR (run 'gazeflow fetch' again)")
    try:
        model = c.read_model(xml)
    except Exception as exc:  # OpenVINO raises RuntimeError with a long message
        raise GazeflowError(f"corrupt model {xml}: {ov_reason(exc)}") from None
    if batch:
        model.reshape({i: [int(batch), *port.get_partial_shape()[1:]] for i, port in enumerate(model.inputs)})
    ppp = ov.preprocess.PrePostProcessor(model)
    for i, port in enumerate(model.inputs):
        if len(port.get_partial_shape()) == 4:  # image inputs: feed BGR u8 HWC, convert in the graph
            ppp.input(i).tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC"))
            ppp.input(i).model().set_layout(ov.Layout(layout))
            if rgb:
                ppp.input(i).tensor().set_color_format(ov.preprocess.ColorFormat.BGR)
                ppp.input(i).preprocess().convert_color(ov.preprocess.ColorFormat.RGB)
            if mean or scale != 1.0:
                ppp.input(i).preprocess().convert_element_type(ov.Type.f32).mean(mean).scale(scale)
    return ppp.build()


def load_model(assets_dir: str, model: str, precision: str) -> ov.Model:
    """A model of the catalog, read as the catalog says (its file, its batch, its input normalisation)."""
    from gazeflow.models.catalog import READING, require_ir

    return read_model(require_ir(assets_dir, model, precision), **READING.get(model, {}))


def compile_model(
    xml: Path | ov.Model, device: str, hint: str, requests: int = 0, threads: int = 0, precision: str = ""
) -> ov.CompiledModel:
    """Compile an IR (read with ``read_model``) or a model already read, with a performance hint and, when
    given, an execution precision (``INFERENCE_PRECISION_HINT``: f32, bf16, f16; "" = the device's default,
    which is bf16 for FP16 and FP32 models on CPUs with AMX or AVX512-BF16)."""
    check_device(device)
    model = read_model(xml) if isinstance(xml, Path) else xml
    label = xml.name if isinstance(xml, Path) else model.get_friendly_name()
    config: dict[str, Any] = {"PERFORMANCE_HINT": hint}
    if requests:
        config["PERFORMANCE_HINT_NUM_REQUESTS"] = requests
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    if precision:
        config["INFERENCE_PRECISION_HINT"] = precision
    try:
        return core().compile_model(model, device, config)
    except Exception as exc:
        raise GazeflowError(f"cannot compile {label} on {device}: {ov_reason(exc)}") from None


class Fusion:
    """Several models of one stage that run on every frame, compiled as one model.

    One request per frame instead of one per model: one submit, one wake-up of the
    device's executor, one completion. The graphs stay separate inside the model, so
    each output is exactly what the model alone gives (landmarks + head pose here:
    3.2 ms instead of 3.6 ms per frame on an idle CPU, measured). Inputs and outputs
    keep their per-model keys: ``merge`` and ``split`` translate.
    """

    def __init__(self, models: dict[str, ov.Model]) -> None:
        self.key = "+".join(models)
        self._inputs: dict[tuple[str, Any], int] = {}  # (model key, input index or name) -> fused index
        self.outputs: dict[str, list[str]] = {}
        parameters, results = [], []
        for key, model in models.items():
            for i, parameter in enumerate(model.get_parameters()):
                self._inputs[(key, i)] = len(parameters)
                for name in parameter.output(0).get_names():
                    self._inputs[(key, name)] = len(parameters)
                parameters.append(parameter)
            self.outputs[key] = [port.get_any_name() for port in model.outputs]
            results.extend(model.get_results())
        names = [name for key in self.outputs for name in self.outputs[key]]
        if len(set(names)) != len(names):
            raise ValueError(f"output names clash: {names}")
        self.model = ov.Model(results, parameters, self.key)

    @classmethod
    def of(cls, models: dict[str, ov.Model]) -> Fusion | None:
        """The fused model, or None when the models cannot share one (their output names clash)."""
        try:
            return cls(models)
        except ValueError:
            return None

    def index(self, key: str, name: Any) -> int:
        """The fused model's input for input ``name`` (index or name) of model ``key``."""
        return self._inputs[(key, name)]

    def merge(self, inputs: dict[str, dict[Any, np.ndarray]]) -> dict[int, np.ndarray]:
        """Per-model inputs -> the fused model's inputs (every model must have its inputs)."""
        if set(inputs) != set(self.outputs):
            raise GazeflowError(f"fused models {self.key} need inputs for all of them, got {sorted(inputs)}")
        return {self._inputs[(key, name)]: array for key, arrays in inputs.items() for name, array in arrays.items()}

    def split(self, outputs: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
        """The fused model's outputs -> per-model outputs."""
        return {key: {name: outputs[name] for name in names} for key, names in self.outputs.items()}


def _outputs(request: ov.InferRequest, names: list[str]) -> dict[str, np.ndarray]:
    return {name: request.get_tensor(name).data.copy() for name in names}


def warm_up(compiled: ov.CompiledModel) -> None:
    """One inference on zeros, so that the first real frame is not the slow first inference."""
    request = compiled.create_infer_request()
    request.infer(
        {i: np.zeros(port.get_shape(), port.get_element_type().to_dtype()) for i, port in enumerate(compiled.inputs)}
    )


def _input_view(request: ov.InferRequest, views: dict[Any, np.ndarray], name: Any) -> np.ndarray:
    """An input tensor's memory (by index or name), as a numpy view kept for the next frames."""
    if name not in views:
        tensor = request.get_input_tensor(name) if isinstance(name, int) else request.get_tensor(name)
        views[name] = tensor.data
    return views[name]


def _write_inputs(request: ov.InferRequest, views: dict[Any, np.ndarray], inputs: dict[Any, np.ndarray]) -> None:
    """Copy inputs into the request's own input tensors; an input that ``staging`` gave (written in
    place by the caller) is already there."""
    for name, array in inputs.items():
        view = _input_view(request, views, name)
        if array is view:
            continue
        if array.shape != view.shape:
            raise GazeflowError(f"input {name!r}: shape {array.shape}, the model takes {view.shape}")
        view[...] = array


class SyncModel:
    """One infer request, one inference at a time: the synchronous baseline."""

    def __init__(self, compiled: ov.CompiledModel) -> None:
        self.request = compiled.create_infer_request()
        self.names = [o.get_any_name() for o in compiled.outputs]
        self._views: dict[Any, np.ndarray] = {}

    def staging(self, name: Any) -> np.ndarray:
        """Where the caller may write input ``name`` of the next inference, so that it takes no copy."""
        return _input_view(self.request, self._views, name)

    def infer(self, inputs: dict[Any, np.ndarray]) -> dict[str, np.ndarray]:
        _write_inputs(self.request, self._views, inputs)
        self.request.infer()
        return _outputs(self.request, self.names)


class AsyncModel:
    """Several infer requests in flight; outputs parked by key as they complete.

    A pool of ``InferRequest`` objects rather than ``AsyncInferQueue``: each input is
    copied straight into the idle request's own input tensor (or written there in
    the first place, see ``staging``) and the request is started with no inputs,
    which skips OpenVINO's Python input dispatch (about 0.35 ms per submit on a CPU
    that has been idle, measured here).
    """

    def __init__(self, compiled: ov.CompiledModel, requests: int, wake_fd: int) -> None:
        n = requests or compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")
        self.requests = [compiled.create_infer_request() for _ in range(n)]
        for index, request in enumerate(self.requests):
            request.set_callback(self._done, index)
        self.names = [o.get_any_name() for o in compiled.outputs]
        self.size = n
        self._idle: deque[int] = deque(range(n))  # popped by the stage thread, appended by callbacks
        self._keys: list[Any] = [None] * n
        self._views: list[dict[Any, np.ndarray]] = [{} for _ in range(n)]  # input tensors' memory
        self._submitted = 0  # written by the stage thread only
        self._completed = 0  # written by the callback thread only
        self._wake_fd = wake_fd
        self._done_items: dict[Any, tuple[dict[str, np.ndarray], int]] = {}
        self._error: BaseException | None = None

    def _done(self, index: int) -> None:
        # Runs on an OpenVINO thread with the GIL held: keep it short, never raise.
        try:
            self._done_items[self._keys[index]] = (_outputs(self.requests[index], self.names), time.perf_counter_ns())
        except BaseException as exc:
            self._error = exc
        self._completed += 1
        self._idle.append(index)
        try:
            os.write(self._wake_fd, b"\0")
        except BlockingIOError:
            pass  # the pipe is full of wake-ups already

    @property
    def in_flight(self) -> int:
        return self._submitted - self._completed

    def free(self) -> bool:
        return bool(self._idle)

    def staging(self, name: Any) -> np.ndarray | None:
        """Where the caller may write input ``name`` for the next ``submit``: that input of the idle
        request it will start (the stage thread alone takes idle requests), so that the input takes
        no copy. None when no request is idle."""
        if not self._idle:
            return None
        index = self._idle[0]
        return _input_view(self.requests[index], self._views[index], name)

    def submit(self, inputs: dict[Any, np.ndarray], key: Any) -> int:
        """Write the inputs into an idle request and start it; returns when it started (perf_counter ns)."""
        index = self._idle.popleft()
        _write_inputs(self.requests[index], self._views[index], inputs)
        self._keys[index] = key
        self._submitted += 1
        started = time.perf_counter_ns()
        self.requests[index].start_async()
        return started

    def take(self, key: Any) -> tuple[dict[str, np.ndarray], int] | None:
        """The outputs and completion time (perf_counter ns) of a finished request, else None."""
        return self._done_items.pop(key, None)

    def check(self) -> None:
        if self._error is not None:
            raise GazeflowError(f"inference failed: {self._error}")

    def wait_all(self) -> None:
        for request in self.requests:
            request.wait()
