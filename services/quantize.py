"""``gazeflow quantize``: NNCF post-training quantization of the stages' models, calibrated on the user's own
video with the inputs the pipeline itself gives each model (frames for the detector, face crops for
landmarks and head pose, eye crops and angles for gaze). The INT8 IRs go to the user's data directory as
the precision ``local-INT8`` (``--precision STAGE=local-INT8``). The first CALIBRATE_SHARE of the video
calibrates; the rest is held out for ``make bench`` to compare against FP16 and the published FP16-INT8.

INT8 is kept only where it pays on this machine: each quantized model is timed against its FP16 IR, and one
that saves less than MIN_SAVING of all the models' time per frame is not written (a KEPT_FP16 note says why,
and local-INT8 reads its FP16 IR). On a CPU with AMX the small models are no faster in INT8 (0.1-0.5 ms
either way) while each moves gaze by about 2.5 degrees; the detector is 1.7x faster and moves it 1.5.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gazeflow.models.catalog import KEPT_FP16, LOCAL_INT8, ONE_FILE, require_ir, user_models_dir
from gazeflow.shared import registry
from gazeflow.shared.errors import GazeflowError

from .capture.source import frame_count

if TYPE_CHECKING:
    from gazeflow.shared.config import Config

log = logging.getLogger("gazeflow.quantize")
CALIBRATE_SHARE = 0.7
MAX_SAMPLES = 300
MIN_SAVING = 0.05  # INT8 is kept when it saves at least this share of all the models' FP16 time per frame
TIMING_S = 1.0  # each timing (median latency, one request at a time), taken three times, alternating


def latency_ms(xmls: list[Path]) -> list[float]:
    """Median latency of each model, one request at a time: the best of three alternating timings (on a
    shared machine a neighbour's load only ever adds time, and the per-round medians moved by 30%)."""
    from .model_bench import measure

    rounds = [[measure(xml, "LATENCY", TIMING_S)["median_ms"] for xml in xmls] for _ in range(3)]
    return [min(r[i] for r in rounds) for i in range(len(xmls))]


def collect(cfg: Config, video: str, frames: int) -> dict[tuple[str, str], list[dict[Any, np.ndarray]]]:
    """Each model's inputs on the first ``frames`` frames, as the pipeline makes them (every frame detected)."""
    from gazeflow.shared.inference import SyncModel, compile_model, load_model
    from gazeflow.shared.stage import build

    from .capture.source import Source

    cfg = cfg.model_copy(
        update={"input": video, "pace": "max-speed", "max_frames": frames, "detect_every": 1, "loop": False}
    )
    procs = [build(name, cfg) for name in cfg.chain[1:] if registry.get(name).models]
    recorded: dict[tuple[str, str], list[dict[Any, np.ndarray]]] = {}
    models: dict[str, dict[str, SyncModel]] = {}
    for proc in procs:
        models[proc.name] = {
            key: SyncModel(compile_model(load_model(cfg.assets_dir, model, "FP16"), "CPU", "LATENCY"))
            for key, model in registry.get(proc.name).models.items()
        }
    source = Source(video)
    frames_of = registry.get(cfg.source).load().frames
    try:
        for msg in frames_of(cfg, source):
            for proc in procs:
                inputs = proc.prepare(msg)
                outputs = {}
                for key, value in inputs.items():
                    recorded.setdefault((proc.name, key), []).append({k: np.array(v) for k, v in value.items()})
                    outputs[key] = models[proc.name][key].infer(value)
                msg = proc.finish(msg, outputs)
    finally:
        source.close()
    return recorded


def _to_model_layout(sample: dict[Any, np.ndarray], model: Any) -> dict[Any, np.ndarray]:
    """A recorded input (u8 NHWC images, as the stages feed the graph with its pre-processing) for the bare
    IR (f32 NCHW)."""
    out = {}
    for key, array in sample.items():
        port = model.inputs[key] if isinstance(key, int) else model.input(key)
        if array.ndim == 4 and array.dtype == np.uint8:
            array = array.transpose(0, 3, 1, 2).astype(np.float32)
        out[port.get_any_name()] = array
    return out


def quantize(cfg: Config, stages: list[str], video: str) -> list[Path]:
    chosen = stages or [n for n in cfg.chain if registry.get(n).models]
    for name in chosen:
        spec = registry.get(name)  # an unknown stage: one line
        if not spec.models:
            raise GazeflowError(f"stage {name} runs no model: nothing to quantize")
    total = frame_count(video)
    if total < 10:
        raise GazeflowError(f"{video}: {total} frames; quantizing needs a video of at least 10 frames")
    calibrate = max(1, int(total * CALIBRATE_SHARE))
    log.info(
        "quantize: collecting the models' inputs on frames 0-%d of %s (the rest is held out)", calibrate - 1, video
    )
    recorded = collect(cfg, video, calibrate)
    jobs = []
    for name in chosen:
        for key, model_name in registry.get(name).models.items():
            if model_name in ONE_FILE:
                log.info("quantize: %s is left as it is (a 0.01-GFLOP model read from ONNX)", model_name)
                continue
            samples = recorded.get((name, key), [])
            if not samples:  # checked for every model before any is written
                raise GazeflowError(
                    f"no face in the first {calibrate} frames of {video}: nothing to calibrate "
                    f"{model_name} on (use a video where your face is in view)"
                )
            jobs.append((model_name, samples))
    every = [m for n in cfg.chain for m in registry.get(n).models.values() if m not in ONE_FILE]
    total_ms = sum(latency_ms([require_ir(cfg.assets_dir, m, "FP16") for m in every]))
    return [path for model_name, samples in jobs if (path := _one(cfg, model_name, samples, total_ms))]


def _one(cfg: Config, model_name: str, samples: list[Any], total_ms: float) -> Path | None:
    """Quantize one model, time it against its FP16 IR, keep it (its path) or a KEPT-FP16 note (None)."""
    import nncf
    import openvino as ov

    fp16 = require_ir(cfg.assets_dir, model_name, "FP16")
    model = ov.Core().read_model(fp16)
    step = max(1, len(samples) // MAX_SAMPLES)
    data = nncf.Dataset(samples[::step], lambda s, m=model: _to_model_layout(s, m))
    log.info("quantize: %s on %d samples", model_name, len(samples[::step]))
    quantized = nncf.quantize(model, data, subset_size=len(samples[::step]))
    folder = user_models_dir() / "intel" / model_name / LOCAL_INT8
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".quantize-", dir=folder.parent))
    try:  # written aside, then moved into place: never a half-written model
        ov.save_model(quantized, tmp / fp16.name)
        fp16_ms, int8_ms = latency_ms([fp16, tmp / fp16.name])
        saving = (fp16_ms - int8_ms) / max(total_ms, 1e-9)
        keep = saving >= MIN_SAVING
        if not keep:  # not worth the accuracy INT8 costs
            for f in tmp.iterdir():
                f.unlink()
            gain = f"saves {100 * saving:.1f}% of" if saving > 0 else "saves nothing of"
            why = (
                f"INT8 {int8_ms:.2f} ms against FP16 {fp16_ms:.2f} ms per inference on this CPU: it {gain} the "
                f"models' {total_ms:.1f} ms per frame (under {100 * MIN_SAVING:.0f}%), so local-INT8 reads the FP16 IR"
            )
            (tmp / KEPT_FP16).write_text(why + "\n")
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not keep:
        print(f"kept FP16 for {model_name}: {why}")
        return None
    print(f"wrote {folder / fp16.name}: INT8 {int8_ms:.2f} ms against FP16 {fp16_ms:.2f} ms per inference")
    return folder / fp16.name


def quantize_command(cfg: Config, stages: list[str], video: str) -> int:
    from .capture.source import Source, resolve_input

    path = resolve_input(video, cfg.assets_dir)
    if path.startswith("cam:"):
        raise GazeflowError("gazeflow quantize needs a video file (--input FILE), not a camera")
    Source(path).close()  # a missing or unreadable video: one line
    from gazeflow.shared.inference import use_cache

    use_cache(cfg.model_cache)  # a model cache folder that cannot be written: one line
    try:
        import nncf  # noqa: F401
    except ImportError:
        raise GazeflowError("gazeflow quantize needs NNCF: pip install 'gazeflow[quantize]'") from None
    quantize(cfg, stages, path)
    print("use them with --precision local-INT8 (or --precision STAGE=local-INT8); make bench compares them")
    return 0
