"""The models of the gaze chain, and where their files live.

Four are Intel IRs per precision (Open Model Zoo); the eye-state model is published
as one ONNX file and MediaPipe's iris model (the optional iris stage) as one TFLite
file inside the mediapipe wheel: OpenVINO reads both directly (every precision uses
them; the CPU plugin picks its inference precision as for the others).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gazeflow.shared.errors import GazeflowError

FACE = "face-detection-adas-0001"
LANDMARKS = "landmarks-regression-retail-0009"
HEAD_POSE = "head-pose-estimation-adas-0001"
GAZE = "gaze-estimation-adas-0002"
EYE_STATE = "open-closed-eye-0001"
IRIS = "iris-landmark"
MODELS = (FACE, LANDMARKS, HEAD_POSE, GAZE)  # the IRs, per precision
ONE_FILE = {  # models published as one file that every precision reads
    EYE_STATE: "models/public/open-closed-eye-0001/open_closed_eye.onnx",
    IRIS: "models/mediapipe/iris_landmark/iris_landmark.tflite",
}
# how a model is read: images per inference (both eyes in one), the input normalisation it expects
# ((x - 127) / 255 from the OMZ model.yml; 0..1 RGB for MediaPipe's, whose layout is NHWC; the IRs take
# 0..255 BGR as they are)
READING: dict[str, dict[str, Any]] = {
    EYE_STATE: {"batch": 2, "mean": 127.0, "scale": 255.0},
    IRIS: {"batch": 2, "scale": 255.0, "layout": "NHWC", "rgb": True},
}
DEMO_VIDEO = "videos/demo.mp4"


LOCAL_INT8 = "local-INT8"  # made on this machine by 'gazeflow quantize' from the user's own video


def user_models_dir() -> Path:
    """Where 'gazeflow quantize' writes its IRs: the user's data directory, not the fetched assets."""
    import os

    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "gazeflow" / "models"


KEPT_FP16 = "KEPT-FP16"  # in a local-INT8 folder: quantize found INT8 not worth it here, the FP16 IR is read


def ir_path(assets_dir: str | Path, model: str, precision: str) -> Path:
    """A model's IR; for local-INT8, the one 'gazeflow quantize' wrote, or the FP16 one where it measured
    that INT8 does not pay on this machine (a KEPT_FP16 note in the folder says why)."""
    if precision.upper() == LOCAL_INT8.upper():
        local = user_models_dir() / "intel" / model / LOCAL_INT8
        if not (local / KEPT_FP16).is_file():
            return local / f"{model}.xml"
        precision = "FP16"
    return Path(assets_dir) / "models" / "intel" / model / precision / f"{model}.xml"


def model_files(assets_dir: str | Path, model: str, precision: str) -> list[Path]:
    """The files a model is read from: its IR (xml, bin) for this precision, or its one file."""
    if model in ONE_FILE:
        return [Path(assets_dir) / ONE_FILE[model]]
    xml = ir_path(assets_dir, model, precision)
    return [xml, xml.with_suffix(".bin")]


def require_ir(assets_dir: str | Path, model: str, precision: str) -> Path:
    """The file to read a model from (an IR's xml, or its one file), after checking that its files exist."""
    files = model_files(assets_dir, model, precision)
    xml = files[0]
    for path in files:
        if not path.is_file():
            local = precision.upper() == LOCAL_INT8.upper()
            how = "'gazeflow quantize --input VIDEO'" if local else "'make setup' or 'gazeflow fetch'"
            raise GazeflowError(f"model file not found: {path} (run {how})")
    return xml


def demo_video(assets_dir: str | Path) -> Path:
    return Path(assets_dir) / DEMO_VIDEO
