"""The four Open Model Zoo models of the gaze chain, and where their IR files live."""

from __future__ import annotations

from pathlib import Path

from gazeflow.shared.errors import GazeflowError

FACE = "face-detection-adas-0001"
LANDMARKS = "landmarks-regression-retail-0009"
HEAD_POSE = "head-pose-estimation-adas-0001"
GAZE = "gaze-estimation-adas-0002"
MODELS = (FACE, LANDMARKS, HEAD_POSE, GAZE)
DEMO_VIDEO = "videos/demo.mp4"


def ir_path(assets_dir: str | Path, model: str, precision: str) -> Path:
    return Path(assets_dir) / "models" / "intel" / model / precision / f"{model}.xml"


def require_ir(assets_dir: str | Path, model: str, precision: str) -> Path:
    xml = ir_path(assets_dir, model, precision)
    for path in (xml, xml.with_suffix(".bin")):
        if not path.is_file():
            raise GazeflowError(f"model file not found: {path} (run 'make setup' or 'gazeflow fetch')")
    return xml


def demo_video(assets_dir: str | Path) -> Path:
    return Path(assets_dir) / DEMO_VIDEO
