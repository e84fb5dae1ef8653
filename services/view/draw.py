"""Drawing a frame's findings on it, as the Open Model Zoo gaze demo shows them: each stage of the chain draws
its own fields (its manifest's overlays: the face box, the landmarks, the head pose's axes, a gaze arrow from
each eye, the eye state, the pointer's state); the view adds the figures."""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np

from gazeflow.shared import registry
from gazeflow.shared.canvas import GREY, WHITE, Canvas
from gazeflow.shared.metrics import INFER, POST, PRE, T_SEND


def stage_times(header: dict[str, Any]) -> list[tuple[str, float]]:
    """Each stage's service time for this frame, in ms, from its trace row."""
    return [(row[0], (row[PRE] + row[INFER] + row[POST]) / 1e6) for row in header.get("trace", []) if len(row) > POST]


def figures(canvas: Canvas, header: dict[str, Any]) -> None:
    """The frame, the view's rate, the end-to-end time and each stage's time."""
    trace = header.get("trace") or []
    e2e = (trace[-1][T_SEND] / 1e9 - header["t_capture"]) * 1e3 if trace and len(trace[-1]) > T_SEND else 0.0
    canvas.line("figures", f"frame {header['frame']}  {canvas.fps:.1f} fps  end to end {e2e:.1f} ms", WHITE)
    canvas.line("figures", "  ".join(f"{n} {ms:.1f}" for n, ms in stage_times(header) if ms > 0) + " ms", GREY)


@cache
def _drawers(chain: tuple[str, ...] | None) -> tuple[tuple[str, Any], ...]:
    return tuple((o.layer, registry.load_ref(o.draw)) for o in registry.overlays(chain))


def annotate(
    image: np.ndarray, header: dict[str, Any], overlays: set[str], fps: float, chain: tuple[str, ...] | None = None
) -> Canvas:
    """Draw on ``image`` (a copy of the frame, BGR) the overlays switched on, the chain's stages' in order
    (every registered stage's without a chain); the canvas holds the image and the record of the drawing."""
    canvas = Canvas(image, overlays, fps=fps)
    for layer, draw in _drawers(chain):
        if layer in overlays:
            draw(canvas, header)
    canvas.finish()
    return canvas
