"""Tiny OpenVINO models made with the OpenVINO API, for unit tests of the real runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openvino as ov
import openvino.opset13 as ops


def scale_model(path: Path, size: int = 8, factor: float = 2.0, output: str = "y") -> Path:
    """An IR with one 1x3xSxS image input 'x' and an output 'y' = mean(x) * factor, shape 1x1."""
    x = ops.parameter([1, 3, size, size], np.float32, name="x")
    mean = ops.reduce_mean(x, ops.constant(np.array([1, 2, 3], dtype=np.int64)), keep_dims=False)
    y = ops.multiply(
        ops.reshape(mean, ops.constant(np.array([1, 1], dtype=np.int64)), False), ops.constant(np.float32(factor))
    )
    y.output(0).get_tensor().set_names({output})
    path.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(ov.Model([y], [x], "scale"), path)
    return path
