"""The view's settings: the [view] table."""

from __future__ import annotations

from pathlib import Path

from pydantic import field_validator

from gazeflow.shared import registry
from gazeflow.shared.settings import Section, setting


def layers() -> list[str]:
    """Every overlay the registered stages draw (their manifests)."""
    return [o.layer for o in registry.overlays()]


class ViewConfig(Section):
    show: bool = setting(
        False,
        "a window with the annotated frames (keys f l h i g e p s toggle overlays, Space pauses, Esc stops)",
        flag={"--show": True},
        group="View",
    )
    output: str = setting(
        "",
        "write the annotated frames to a video, .mp4 or .avi (every frame of a replay)",
        flag="--output",
        group="View",
        metavar="FILE.mp4",
    )
    width: int = setting(960, "the window's width in pixels (the frame is scaled to it)", ge=160, le=7680)
    overlays: list[str] = setting(layers, "what is drawn, at the start (each stage's overlays: face, landmarks, ...)")

    @property
    def wanted(self) -> bool:
        return self.show or bool(self.output)

    @field_validator("output")
    @classmethod
    def _video(cls, value: str) -> str:
        if value and Path(value).suffix.lower() not in (".mp4", ".avi"):
            raise ValueError(f"{value!r}: a .mp4 or .avi file")
        return value

    @field_validator("overlays")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(layers()))
        if unknown:
            raise ValueError(f"{', '.join(unknown)}: not an overlay (overlays: {', '.join(layers())})")
        return value
