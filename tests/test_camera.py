"""The camera path, with a stand-in for the device: OpenCV's VideoCapture replaced by frames we inject."""

from __future__ import annotations

import numpy as np
import pytest

from gazeflow.services.capture import source as source_mod
from gazeflow.services.capture.stage import frames
from gazeflow.shared.config import Config
from gazeflow.shared.errors import GazeflowError
from gazeflow.shared.stage import Counters


class FakeCamera:
    """Behaves like cv2.VideoCapture on /dev/videoN: frames until it is unplugged."""

    def __init__(self, index: int, frames: int = 5, opened: bool = True) -> None:
        self.index, self.left, self.opened = index, frames, opened

    def isOpened(self) -> bool:
        return self.opened

    def read(self, into=None):
        if self.left == 0:
            return False, None
        self.left -= 1
        frame = np.full((48, 64, 3), self.left, dtype=np.uint8)
        if into is not None:
            into[...] = frame
            return True, into
        return True, frame

    def grab(self) -> bool:
        ok, _ = self.read()
        return ok

    def get(self, prop: int) -> float:
        return 0.0  # many webcams report no rate

    def set(self, prop: int, value: float) -> bool:
        return False

    def release(self) -> None:
        pass


def test_camera_frames_flow_unpaced_and_an_unplugged_camera_is_one_line(monkeypatch):
    monkeypatch.setattr(source_mod.cv2, "VideoCapture", lambda index: FakeCamera(index))
    cam = source_mod.Source("cam:3")
    assert cam.camera and (cam.width, cam.height) == (64, 48) and cam.fps == 30.0
    cfg = Config(input="cam:3")
    assert cfg.live  # a camera is always live: stale frames are dropped, never queued
    counters = Counters()
    got = []
    with pytest.raises(GazeflowError, match="camera cam:3 stopped delivering frames"):
        for msg in frames(cfg, cam, counters=counters):
            got.append(msg.index)
    assert got == [0, 1, 2, 3, 4] and counters.received == 5


def test_missing_camera_and_bad_spec(monkeypatch):
    monkeypatch.setattr(source_mod.cv2, "VideoCapture", lambda index: FakeCamera(index, opened=False))
    with pytest.raises(GazeflowError, match=r"camera 7 not found \(cannot open /dev/video7\)"):
        source_mod.Source("cam:7")
    with pytest.raises(GazeflowError, match="bad camera 'cam:front'"):
        source_mod.Source("cam:front")
