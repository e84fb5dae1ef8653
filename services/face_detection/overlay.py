"""What the view draws of face detection's findings: the face box."""

from __future__ import annotations

from typing import Any

from gazeflow.shared.canvas import GREEN, Canvas


def face(canvas: Canvas, header: dict[str, Any]) -> None:
    box = header.get("face")
    if box:
        canvas.rectangle("face", box[:2], box[2:], GREEN, max(2, canvas.px(2)))
