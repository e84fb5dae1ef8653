"""Drawing a frame's findings on it, as the Open Model Zoo gaze demo shows them: the face box, the landmarks,
the head pose's axes, a gaze arrow from each eye, the eye state; then the pointer's state and the figures."""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np

from gazeflow.shared.metrics import INFER, POST, PRE, T_SEND

GREEN, RED, BLUE, YELLOW, WHITE, CYAN, GREY = (0, 200, 0), (0, 0, 255), (255, 80, 0), (0, 220, 255), (255, 255, 255), (
    255, 255, 0), (160, 160, 160)  # fmt: skip
FONT = cv2.FONT_HERSHEY_SIMPLEX


def _rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Head pose angles (degrees) as a rotation in image axes (x right, y down, z into the scene)."""
    y, p, r = (math.radians(a) for a in (yaw, pitch, roll))
    rx = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    ry = np.array([[math.cos(y), 0, -math.sin(y)], [0, 1, 0], [math.sin(y), 0, math.cos(y)]])
    rz = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    return rz @ ry @ rx


def head_axes(image: np.ndarray, center: tuple[float, float], pose: dict[str, float], length: float) -> None:
    """The head's x (red, to its left in the image's right), y (green, down) and z (blue, out of the face)."""
    r = _rotation(pose["yaw"], pose["pitch"], pose["roll"])
    cx, cy = center
    for axis, color in ((np.array([1.0, 0, 0]), RED), (np.array([0, 1.0, 0]), GREEN), (np.array([0, 0, -1.0]), BLUE)):
        v = r @ axis
        end = (round(cx + v[0] * length), round(cy + v[1] * length))
        cv2.arrowedLine(image, (round(cx), round(cy)), end, color, 2, cv2.LINE_AA, tipLength=0.15)


def _shade(image: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> None:
    """Darken a box of the image, so that text on it reads on any background."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if x1 > x0 and y1 > y0:
        image[y0:y1, x0:x1] = (image[y0:y1, x0:x1] * 0.35).astype(np.uint8)


def _text(image: np.ndarray, text: str, at: tuple[int, int], scale: float, color: tuple[int, int, int]) -> None:
    thickness = max(1, round(1.5 * scale))
    (tw, th), base = cv2.getTextSize(text, FONT, scale, thickness)
    pad = max(2, round(4 * scale))
    _shade(image, at[0] - pad, at[1] - th - pad, at[0] + tw + pad, at[1] + base + pad)
    cv2.putText(image, text, at, FONT, scale, color, thickness, cv2.LINE_AA)


def stage_times(header: dict[str, Any]) -> list[tuple[str, float]]:
    """Each stage's service time for this frame, in ms, from its trace row."""
    return [(row[0], (row[PRE] + row[INFER] + row[POST]) / 1e6) for row in header.get("trace", []) if len(row) > POST]


def annotate(image: np.ndarray, header: dict[str, Any], overlays: set[str], fps: float) -> np.ndarray:
    """Draw on ``image`` (a copy of the frame, BGR) and return it."""
    scale = max(0.5, image.shape[1] / 1600)
    face, points, pose = header.get("face"), header.get("landmarks"), header.get("head_pose")
    gaze, eyes, pointer = header.get("gaze"), header.get("eyes"), header.get("pointer")
    if face and "face" in overlays:
        x0, y0, x1, y1 = (round(v) for v in face)
        cv2.rectangle(image, (x0, y0), (x1, y1), GREEN, max(2, round(2 * scale)), cv2.LINE_AA)
    if points and "landmarks" in overlays:
        for x, y in points:
            cv2.circle(image, (round(x), round(y)), max(3, round(3 * scale)), CYAN, -1, cv2.LINE_AA)
    if points and pose and "head_pose" in overlays:
        (lx, ly), (rx, ry), (nx, ny) = points[0], points[1], points[2]
        head_axes(image, (nx, ny), pose, 0.9 * math.dist((lx, ly), (rx, ry)))
    if points and gaze and "gaze" in overlays:
        length = 2.0 * math.dist(points[0], points[1])
        for x, y in points[:2]:  # the image's y goes down, the gaze's up
            end = (round(x + gaze[0] * length), round(y - gaze[1] * length))
            cv2.arrowedLine(
                image, (round(x), round(y)), end, YELLOW, max(2, round(2 * scale)), cv2.LINE_AA, tipLength=0.2
            )
    if points and eyes and "eyes" in overlays:
        # the image's left eye is the person's right one
        for (x, y), side in ((points[0], "right"), (points[1], "left")):
            p = eyes[side]
            label = f"{'open' if p >= 0.5 else 'closed'} {p:.2f}"
            _text(image, label, (round(x - 40 * scale), round(y - 25 * scale)), 0.5 * scale, GREEN if p >= 0.5 else RED)
    lines: list[tuple[str, tuple[int, int, int]]] = []
    if "pointer" in overlays:
        if header.get("paused"):
            lines.append(("PAUSED", RED))
        if pointer and "x" in pointer:
            state = f"pointer {pointer['x']}, {pointer['y']}" + (" moved" if pointer.get("moved") else "")
            if "dwell" in pointer and pointer["dwell"] > 0:
                state += f"  dwell {pointer['dwell']:.0%}"
            lines.append((state, WHITE))
            if pointer.get("click"):
                lines.append((f"CLICK {pointer['click']}", YELLOW))
        elif not header.get("paused"):
            shut = eyes is not None and min(eyes.values()) < 0.5
            lines.append((f"pointer holds still ({'an eye is closed' if shut else 'no face or gaze'})", GREY))
    if "figures" in overlays:
        trace = header.get("trace") or []
        e2e = (trace[-1][T_SEND] / 1e9 - header["t_capture"]) * 1e3 if trace and len(trace[-1]) > T_SEND else 0.0
        lines.append((f"frame {header['frame']}  {fps:.1f} fps  end to end {e2e:.1f} ms", WHITE))
        lines.append(("  ".join(f"{name} {ms:.1f}" for name, ms in stage_times(header) if ms > 0) + " ms", GREY))
    y = round(30 * scale)
    for text, color in lines:
        _text(image, text, (round(12 * scale), y), 0.7 * scale, color)
        y += round(30 * scale)
    return image
