"""What the view draws of the iris stage: each iris centre, and where it sits between the eye's corners."""

from __future__ import annotations

from typing import Any

from gazeflow.shared.canvas import MAGENTA, Canvas


def iris(canvas: Canvas, header: dict[str, Any]) -> None:
    found = header.get("iris")
    if not found:
        return
    for side, shift in (("right", -110), ("left", 10)):  # the person's right eye is on the image's left
        h, v, x, y = found[side]
        canvas.circle("iris", (x, y), max(2, canvas.px(3)), MAGENTA)
        at = (x + shift * canvas.scale, y + 30 * canvas.scale)  # each label on its own side: apart when turned
        canvas.text("iris", f"{h:+.2f} {v:+.2f}", at, 0.45, MAGENTA)
