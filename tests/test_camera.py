"""The camera path, with a stand-in for the device: OpenCV's VideoCapture replaced by frames we inject."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest

from gazeflow.services.capture import source as source_mod
from gazeflow.services.capture import stage as stage_mod
from gazeflow.services.capture.stage import frames
from gazeflow.shared.config import Config
from gazeflow.shared.errors import GazeflowError
from gazeflow.shared.metrics import Counters


class Clock:
    """Virtual time for the capture loop: it moves only when the code sleeps or a camera or decode takes
    time, so pacing is checked exactly, whatever the machine's speed."""

    def __init__(self) -> None:
        self.t = 1_000_000.0

    def monotonic(self) -> float:
        return self.t

    time = perf_counter = monotonic

    def time_ns(self) -> int:
        return round(self.t * 1e9)

    perf_counter_ns = time_ns

    def process_time(self) -> float:
        return 0.0

    def sleep(self, seconds: float) -> None:
        self.t += max(seconds, 0.0)


@pytest.fixture
def clock(monkeypatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(source_mod, "time", c)
    monkeypatch.setattr(stage_mod, "time", c)
    return c


class FakeCamera:
    """Behaves like cv2.VideoCapture on /dev/videoN: frames until it is unplugged."""

    def __init__(self, index: int, frames: int = 5, opened: bool = True, clock: Clock | None = None) -> None:
        self.index, self.left, self.opened = index, frames, opened
        self.decode_s = self.wait_s = 0.0
        self.grabbed: list[int] = []
        self.clock = clock or time

    def isOpened(self) -> bool:
        return self.opened

    def read(self, into=None):
        return self.retrieve(into) if self.grab() else (False, None)

    def grab(self) -> bool:
        """Wait for the driver's next frame (not decoded yet)."""
        if self.left == 0:
            return False
        self.left -= 1
        self.clock.sleep(self.wait_s)
        self.grabbed.append(self.clock.time_ns())
        return True

    def retrieve(self, into=None):
        """Decode the grabbed frame (MJPEG on a real webcam: it takes a while)."""
        self.clock.sleep(self.decode_s)
        frame = np.full((48, 64, 3), self.left, dtype=np.uint8)
        if into is not None:
            into[...] = frame
            return True, into
        return True, frame

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


def test_camera_capture_time_is_when_the_driver_handed_the_frame_over(monkeypatch, clock):
    """Decoding comes after the stamp: a slow MJPEG decode shows in end-to-end latency, a wait for
    the next frame does not."""
    camera = FakeCamera(0, frames=4, clock=clock)
    monkeypatch.setattr(source_mod.cv2, "VideoCapture", lambda index: camera)
    cam = source_mod.Source("cam:0")
    camera.decode_s = camera.wait_s = 0.02
    got = list(itertools.islice(frames(Config(input="cam:0"), cam), 1, 4))  # frame 0 was read when opening
    for msg, grabbed in zip(got, camera.grabbed[1:], strict=True):
        assert round(msg.header["t_capture"] * 1e9) == grabbed
        assert msg.header["trace"][0][4] == 20e6  # its decode, reported as capture's service time


def test_paced_file_frames_leave_at_their_release_time_decoded_ahead(assets, monkeypatch, clock):
    """A replayed file is decoded just before each frame's release time, so frames leave on the beat
    (each decode here takes 15 ms of the virtual clock)."""
    source = source_mod.Source(source_mod.resolve_input("demo", str(assets)))
    read = source.read

    def slow_read(into=None):
        clock.sleep(0.015)
        return read(into)

    monkeypatch.setattr(source, "read", slow_read)
    cfg = Config(input="demo", fps=10.0, max_frames=6)
    stamps, late = [], []
    for msg in frames(cfg, source):
        late.append(clock.time() - msg.header["t_capture"])
        stamps.append(msg.header["t_capture"])
        assert msg.header["trace"][0][4] == 15e6  # it was decoded (before its release)
    source.close()
    gaps = np.diff(stamps)
    # the first frame leaves when its decode is done; from then on, each on its beat
    assert gaps[0] == pytest.approx(0.1 - 0.015) and gaps[1:] == pytest.approx([0.1] * 4), gaps
    assert late == [0.0] * 6  # yielded at its release time, not one decode after it


def test_a_camera_is_asked_for_the_configured_format_size_and_rate_in_that_order(monkeypatch):
    """V4L2 takes the format before the size: MJPG, then 1280x720, then 30 fps (the defaults); 'any' asks
    for no format. What the camera grants is what is read (the stand-in grants nothing: 64x48)."""
    import cv2

    from gazeflow.services.capture.settings import CaptureConfig

    asked: list[tuple[int, float]] = []
    camera = FakeCamera(0)
    camera.set = lambda prop, value: asked.append((prop, value)) or False
    monkeypatch.setattr(source_mod.cv2, "VideoCapture", lambda index: camera)
    cam = source_mod.Source("cam:0", camera=CaptureConfig())
    mjpg = float(cv2.VideoWriter.fourcc(*"MJPG"))
    assert asked == [
        (cv2.CAP_PROP_FOURCC, mjpg),
        (cv2.CAP_PROP_FRAME_WIDTH, 1280),
        (cv2.CAP_PROP_FRAME_HEIGHT, 720),
        (cv2.CAP_PROP_FPS, 30.0),
    ]
    assert (cam.width, cam.height) == (64, 48)
    asked.clear()
    source_mod.Source("cam:0", camera=CaptureConfig(camera_format="any", camera_size=(640, 480)))
    assert [p for p, _ in asked] == [cv2.CAP_PROP_FRAME_WIDTH, cv2.CAP_PROP_FRAME_HEIGHT, cv2.CAP_PROP_FPS]
    assert Config(capture={"camera_size": (640, 480)}).capture.camera_size == (640, 480)
