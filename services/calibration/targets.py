"""Where the targets go, and the targets file of a recorded calibration (documented in the README).

    {"screen": {"width": 1920, "height": 1080, "width_mm": 527, "height_mm": 296},
     "targets": [{"x": 960, "y": 540, "from": 30, "to": 75, "use": "fit"},
                 {"x": 200, "y": 900, "from": 90, "to": 120, "use": "check"}]}

``from`` and ``to`` are 0-based frame indices of the video, both included; ``use``
is ``fit`` (trains) or ``check`` (validates). The ranges are taken as given: every
frame in them is one where the person looks at the target. A recording made by
``gazeflow calibrate --record`` writes the frames each target was shown and
``"settle_s"``: its samples count from that long after each target appeared (the
saccade and the settling of the eyes), as in the live session. An optional
``"camera"`` table takes the config's camera keys.
"""

from __future__ import annotations

import itertools
import json
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gazeflow.shared.errors import GazeflowError

MARGIN = 0.1  # targets this far (a fraction of the side) from the screen's edges
_CHECKS = [
    (0.3, 0.3),
    (0.7, 0.7),
    (0.7, 0.3),
    (0.3, 0.7),
    (0.5, 0.25),
    (0.5, 0.75),
    (0.25, 0.5),
    (0.75, 0.5),
    (0.6, 0.4),
]


@dataclass
class Target:
    x: float  # pixels on the monitor
    y: float
    use: str  # fit | check
    start: int = -1  # frames, both included (a recording), or
    end: int = -1
    shown: tuple[float, float] = (0.0, 0.0)  # wall-clock seconds it was on the screen (a live session)

    def to_dict(self) -> dict[str, Any]:
        return {"x": round(self.x), "y": round(self.y), "from": self.start, "to": self.end, "use": self.use}


def _grid(n: int) -> list[float]:
    return [MARGIN + i * (1 - 2 * MARGIN) / (n - 1) for i in range(n)]


def layout(points: int, checks: int, width: int, height: int) -> list[Target]:
    """The fit targets (in an order that makes the eyes jump across the screen) then the check targets,
    which lie between them."""
    if points == 1:
        spots = [(0.5, 0.5)]
    elif points == 5:
        spots = [(0.5, 0.5), (MARGIN, MARGIN), (1 - MARGIN, MARGIN), (1 - MARGIN, 1 - MARGIN), (MARGIN, 1 - MARGIN)]
    elif points in (9, 13):
        spots = [(x, y) for y in _grid(3) for x in _grid(3)]
        if points == 13:
            spots += [(0.3, 0.3), (0.7, 0.3), (0.7, 0.7), (0.3, 0.7)]
    elif points == 16:
        spots = [(x, y) for y in _grid(4) for x in _grid(4)]
    else:
        raise GazeflowError(f"--points {points}: one of 1, 5, 9, 13, 16")
    order = list(range(len(spots)))
    random.Random(points).shuffle(order)  # the same order every time: sessions compare
    fits = [spots[i] for i in order]
    free = [c for c in _CHECKS if all(math.dist(c, s) > 0.05 for s in fits)][:checks] if points > 1 else []
    return [Target(x * width, y * height, "fit") for x, y in fits] + [
        Target(x * width, y * height, "check") for x, y in free
    ]


def write(
    path: Path,
    targets: list[Target],
    screen: dict[str, Any],
    camera: dict[str, Any] | None = None,
    settle_s: float = 0.0,
) -> None:
    """A targets file; ``settle_s``: the ranges are the frames each target was shown, and its samples count
    from this long after it appeared."""
    doc: dict[str, Any] = {"screen": screen, "settle_s": settle_s, "targets": [t.to_dict() for t in targets]}
    if camera:
        doc["camera"] = camera
    path.write_text(json.dumps(doc, indent=1) + "\n")


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _no_overlap(targets: list[Target], where: str) -> None:
    """A frame is where the person looks at one target: two ranges that share frames are refused."""
    ordered = sorted(enumerate(targets), key=lambda it: it[1].start)
    for (i, a), (j, b) in itertools.pairwise(ordered):
        if b.start <= a.end:
            raise GazeflowError(
                f"{where}: targets {i} ({a.x:.0f}, {a.y:.0f}) and {j} ({b.x:.0f}, {b.y:.0f}) share frames "
                f"{b.start}-{min(a.end, b.end)}: a frame is where the person looks at one target"
            )


@dataclass
class TargetsFile:
    targets: list[Target]
    screen: dict[str, Any]
    camera: dict[str, Any]
    settle_s: float  # 0: the ranges are where the person looks; else shown ranges, samples from settle_s in


def read(path: str | Path, frames: int) -> TargetsFile:
    """A targets file, checked against a video of ``frames`` frames; one line naming the problem otherwise."""
    where = f"targets file {path}"
    try:
        doc = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise GazeflowError(f"{where}: not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GazeflowError(f"{where}: unreadable: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("targets"), list) or not isinstance(doc.get("screen"), dict):
        raise GazeflowError(f'{where}: expected {{"screen": {{...}}, "targets": [...]}}')
    unknown = sorted(set(doc) - {"screen", "targets", "camera", "settle_s"})
    if unknown:
        raise GazeflowError(f"{where}: unknown key {unknown[0]!r} (known: screen, targets, camera, settle_s)")
    screen = doc["screen"]
    for key in ("width", "height", "width_mm", "height_mm"):
        if not _number(screen.get(key)) or screen[key] <= 0:
            raise GazeflowError(f"{where}: screen.{key} must be a positive number")
    camera = doc.get("camera") or {}
    if not isinstance(camera, dict):
        raise GazeflowError(f"{where}: camera must be a table of the config's camera keys")
    settle_s = doc.get("settle_s", 0.0)
    if not _number(settle_s) or not 0 <= settle_s < 10:
        raise GazeflowError(f"{where}: settle_s must be seconds from 0 to 10 (0: the ranges are taken as given)")
    out = []
    for i, t in enumerate(doc["targets"]):
        at = f"{where}: target {i}"
        if not isinstance(t, dict) or not all(_number(t.get(k)) for k in ("x", "y")):
            raise GazeflowError(f"{at}: needs numbers x and y")
        if not (0 <= t["x"] < screen["width"] and 0 <= t["y"] < screen["height"]):
            raise GazeflowError(f"{at}: ({t['x']}, {t['y']}) is off the {screen['width']}x{screen['height']} screen")
        start, end = t.get("from"), t.get("to")
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (start, end)) or not 0 <= start <= end:
            raise GazeflowError(f"{at}: from and to must be frame indices with 0 <= from <= to")
        if end >= frames:
            raise GazeflowError(f"{at}: frames {start}-{end} are beyond the video's {frames} frames (0-{frames - 1})")
        use = t.get("use", "fit")
        if use not in ("fit", "check"):
            raise GazeflowError(f"{at}: use {use!r}: fit or check")
        out.append(Target(float(t["x"]), float(t["y"]), use, start, end))
    _no_overlap(out, where)
    fits = sum(t.use == "fit" for t in out)
    if fits < 4 and not (fits == 1 and len(out) == 1):
        raise GazeflowError(f"{where}: {fits} fit targets; at least 4 (or exactly one, to recentre a profile)")
    return TargetsFile(out, screen, camera, float(settle_s))
