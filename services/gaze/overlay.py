"""What the view draws of the gaze: an arrow from each eye, and each eye's state."""

from __future__ import annotations

import math
from typing import Any

from gazeflow.shared.canvas import GREEN, RED, YELLOW, Canvas


def gaze(canvas: Canvas, header: dict[str, Any]) -> None:
    points, vector = header.get("landmarks"), header.get("gaze")
    if not points or not vector:
        return
    length = 2.0 * math.dist(points[0], points[1])
    for x, y in points[:2]:  # the image's y goes down, the gaze's up
        canvas.arrow("gaze", (x, y), (x + vector[0] * length, y - vector[1] * length), YELLOW, max(2, canvas.px(2)))


def eyes(canvas: Canvas, header: dict[str, Any]) -> None:
    points, state = header.get("landmarks"), header.get("eyes")
    if not points or not state:
        return
    for (x, y), side in ((points[0], "right"), (points[1], "left")):  # the image's left eye is the person's right
        p = state[side]
        label = f"{'open' if p >= 0.5 else 'closed'} {p:.2f}"
        canvas.text("eyes", label, (x - 40 * canvas.scale, y - 25 * canvas.scale), 0.5, GREEN if p >= 0.5 else RED)
