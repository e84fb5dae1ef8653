"""What the view draws of the iris stage: each iris centre, and where it sits between the eye's corners."""

from __future__ import annotations

from typing import Any

from gazeflow.shared.canvas import MAGENTA, Canvas


def iris(canvas: Canvas, header: dict[str, Any]) -> None:
    found = header.get("iris")
    if not found:
        return
    for side in ("left", "right"):
        h, v, x, y = found[side]
        canvas.circle("iris", (x, y), max(2, canvas.px(3)), MAGENTA)
        canvas.text("iris", f"{h:+.2f} {v:+.2f}", (x - 40 * canvas.scale, y + 30 * canvas.scale), 0.45, MAGENTA)
