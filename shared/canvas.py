"""What the view draws on a frame, and the record of what it drew.

Each stage's manifest names its overlays (``registry.Overlay``): functions that draw its own header fields
on a ``Canvas``. The canvas draws with OpenCV and keeps a record of every shape (its layer, kind, points,
colour): a test, or the panel, reads what was drawn from the record instead of looking for colours in a
compressed video.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

GREEN, RED, BLUE, YELLOW = (0, 200, 0), (0, 0, 255), (255, 80, 0), (0, 220, 255)
WHITE, CYAN, GREY, MAGENTA = (255, 255, 255), (255, 255, 0), (160, 160, 160), (255, 0, 255)
FONT = cv2.FONT_HERSHEY_SIMPLEX
Colour = tuple[int, int, int]


@dataclass(frozen=True)
class Shape:
    layer: str
    kind: str  # rectangle, circle, arrow, text, status
    points: tuple[tuple[int, int], ...]
    colour: Colour
    thickness: int = 1
    text: str = ""


@dataclass
class Canvas:
    """A frame to draw on (BGR, a copy: never a slot of the ring) and the layers switched on."""

    image: np.ndarray
    layers: set[str]
    record: list[Shape] = field(default_factory=list)
    status: list[tuple[str, Colour]] = field(default_factory=list)  # lines for the top left, in order
    fps: float = 0.0  # the view's frame rate, for the figures

    @property
    def scale(self) -> float:
        return max(0.5, self.image.shape[1] / 1600)

    def px(self, n: float) -> int:
        """A size in pixels at this frame's scale (drawn for 1600 px wide frames)."""
        return max(1, round(n * self.scale))

    def rectangle(self, layer: str, p0: Any, p1: Any, colour: Colour, thickness: int) -> None:
        a, b = _pt(p0), _pt(p1)
        cv2.rectangle(self.image, a, b, colour, thickness, cv2.LINE_AA)
        self.record.append(Shape(layer, "rectangle", (a, b), colour, thickness))

    def circle(self, layer: str, centre: Any, radius: int, colour: Colour) -> None:
        c = _pt(centre)
        cv2.circle(self.image, c, radius, colour, -1, cv2.LINE_AA)
        self.record.append(Shape(layer, "circle", (c, (radius, radius)), colour, -1))

    def arrow(self, layer: str, start: Any, end: Any, colour: Colour, thickness: int, tip: float = 0.2) -> None:
        a, b = _pt(start), _pt(end)
        cv2.arrowedLine(self.image, a, b, colour, thickness, cv2.LINE_AA, tipLength=tip)
        self.record.append(Shape(layer, "arrow", (a, b), colour, thickness))

    def text(self, layer: str, text: str, at: Any, size: float, colour: Colour) -> None:
        """Text on a darkened box, so that it reads on any background."""
        a = _pt(at)
        corner, thickness = self._text(text, a, size, colour)
        self.record.append(Shape(layer, "text", (a, corner), colour, thickness, text))

    def _text(self, text: str, a: tuple[int, int], size: float, colour: Colour) -> tuple[tuple[int, int], int]:
        scale = size * self.scale
        thickness = max(1, round(1.5 * scale))
        (tw, th), base = cv2.getTextSize(text, FONT, scale, thickness)
        pad = max(2, round(4 * scale))
        self._shade(a[0] - pad, a[1] - th - pad, a[0] + tw + pad, a[1] + base + pad)
        cv2.putText(self.image, text, a, FONT, scale, colour, thickness, cv2.LINE_AA)
        return (a[0] + tw, a[1] - th), thickness

    def line(self, layer: str, text: str, colour: Colour) -> None:
        """A status line, top left, below the ones before it (drawn by ``finish``)."""
        self.status.append((text, colour))
        self.record.append(Shape(layer, "status", (), colour, text=text))

    def finish(self) -> np.ndarray:
        y = self.px(30)
        for text, colour in self.status:
            self._text(text, (self.px(12), y), 0.7, colour)
            y += self.px(30)
        return self.image

    def drawn(self, layer: str, kind: str = "") -> list[Shape]:
        return [s for s in self.record if s.layer == layer and (not kind or s.kind == kind)]

    def _shade(self, x0: int, y0: int, x1: int, y1: int) -> None:
        h, w = self.image.shape[:2]
        x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
        if x1 > x0 and y1 > y0:
            self.image[y0:y1, x0:x1] = (self.image[y0:y1, x0:x1] * 0.35).astype(np.uint8)


def _pt(p: Any) -> tuple[int, int]:
    return round(p[0]), round(p[1])
