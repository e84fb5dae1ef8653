import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from gazeflow.services.pointer.backends import NullBackend, make_backend
from gazeflow.services.pointer.controller import PointerController
from gazeflow.services.pointer.filters import make_filter
from gazeflow.services.pointer.gaze_model import FEATURES, Correction, Monitor
from gazeflow.services.pointer.settings import CameraConfig, PointerConfig
from gazeflow.shared.config import Config
from gazeflow.shared.errors import GazeflowError

from conftest import start_xvfb

MONITOR = Monitor(0, "test", 0, 0, 1920, 1080, 527.0, 296.0, True)
SOURCE = {"width": 1280, "height": 720, "fps": 30.0}
# eyes 63 px apart in the middle of a 1280-wide frame: with a 70-degree camera (f = 914 px), 914 mm away
EYES = [[608.5, 360.0], [671.5, 360.0], [640, 400], [615, 430], [665, 430]]
POSE = {"yaw": 0.0, "pitch": 0.0, "roll": 0.0}


def header(gaze, landmarks=EYES):
    return {"gaze": gaze, "landmarks": landmarks, "head_pose": POSE, "source": SOURCE}


def controller(**pointer):
    cfg = Config(pointer=PointerConfig(filter="none", **pointer))
    return PointerController(cfg, MONITOR)


D = 640 / np.tan(np.radians(35))  # mm: 63 px between the eyes, 63 mm apart, so distance = f


def towards(x_mm: float, y_mm: float, distance: float = D) -> list[float]:
    """The gaze from eyes in front of the camera at ``distance`` towards camera-plane point (x, y) mm."""
    v = np.array([x_mm, y_mm, -distance])
    return (v / np.linalg.norm(v)).tolist()


def test_the_ray_meets_the_screen_where_the_eyes_look():
    c = controller()
    distance = c.mapper.sample(header([0, 0, -1])).distance_mm
    assert abs(distance - D) < 1
    # looking 148 mm below the camera, straight: the middle of the screen, at its top-to-bottom middle
    p = c.update(header(towards(0.0, -148.0, distance)), 0.0)
    assert abs(p["x"] - 960) <= 2 and abs(p["y"] - 540) <= 2
    # to the image's left is to the user's right (the camera faces the user): 100 mm = 364 px to the right
    p = controller().update(header(towards(-100.0, -148.0, distance)), 0.0)
    assert abs(p["x"] - (960 + 100 * 1920 / 527)) <= 2
    unmirrored = PointerController(
        Config(pointer=PointerConfig(filter="none"), camera=CameraConfig(mirror=False)), MONITOR
    ).update(header(towards(-100.0, -148.0, distance)), 0.0)
    assert unmirrored["x"] < 960


def test_moving_the_head_moves_the_point_with_it():
    """The same gaze direction from eyes 50 mm further to the image's right lands 50 mm further left."""
    gaze = towards(0.0, -148.0)
    base = controller().update(header(gaze), 0.0)["raw"][0]
    c = controller()
    z = c.mapper.sample(header(gaze)).distance_mm
    f = 640 / np.tan(np.radians(35))
    dx_px = 50 * f / z  # 50 mm at that distance, in image pixels
    shifted_eyes = [[x + dx_px, y] for x, y in EYES]
    moved = c.update(header(gaze, shifted_eyes), 0.0)["raw"][0]
    assert abs((base - moved) - 50 * 1920 / 527) < 2


def test_the_camera_offset_and_a_second_monitor_place_the_point():
    cfg = Config(pointer=PointerConfig(filter="none"), camera=CameraConfig(offset_mm=(100.0, 20.0)))
    right = Monitor(1, "right", 1920, 0, 1280, 1024, 376.0, 301.0)
    p = PointerController(cfg, right).update(header(towards(0.0, -148.0)), 0.0)
    # camera 100 mm right of the top middle and 20 mm above it: the point is 100 mm right of the middle and
    # 148 - 20 mm below the top edge
    assert abs(p["raw"][0] - (1920 + (188 + 100) * 1280 / 376)) < 3
    assert abs(p["raw"][1] - (148 - 20) * 1024 / 301) < 3
    assert 1920 <= p["x"] < 1920 + 1280  # on the second monitor, in desktop coordinates


def test_targets_stay_off_the_fail_safe_corners_and_away_looks_hold_still():
    p = controller().update(header(towards(-2000.0, 2000.0)), 0.0)
    assert 1 <= p["x"] <= 1918 and 1 <= p["y"] <= 1078
    assert p["raw"][0] > 1920 and p["raw"][1] < 0  # the raw point says how far off it was
    assert controller().update(header([0.0, 0.0, 1.0]), 0.0) is None  # looking away from the screen


def test_dead_zone_and_pause():
    c = controller(dead_zone_px=20)
    assert c.update(header(towards(0, -148)), 0.0)["moved"]
    assert not c.update(header(towards(1, -148)), 0.03)["moved"]
    assert c.update({"gaze": None, "landmarks": None, "head_pose": None}, 0.06) is None  # no gaze: holds still
    assert c.moves == 1


def test_a_correction_moves_the_point_by_its_offset():
    k = len(FEATURES)
    shift = Correction([0.0] * k, [1.0] * k, [[0.0] * k, [0.0] * k], [10.0, -5.0])
    plain = controller().update(header(towards(0, -148)), 0.0)["raw"]
    cfg = Config(pointer=PointerConfig(filter="none"))
    corrected = PointerController(cfg, MONITOR, shift).update(header(towards(0, -148)), 0.0)["raw"]
    assert abs(corrected[0] - plain[0] - 10 * 1920 / 527) < 0.2 and abs(corrected[1] - plain[1] + 5 * 1080 / 296) < 0.2


def test_one_euro_steadies_a_fixation_and_follows_a_jump():
    """On a noisy fixation, then a jump: the One Euro filter's jitter is under a third of the raw
    signal's, and it crosses the jump's midpoint at most one frame after the raw signal (bench: the same
    on the demo)."""
    rng = np.random.default_rng(1)
    t = np.arange(120) / 30.0
    truth = np.where(np.arange(120) < 60, 500.0, 1400.0)
    raw = truth + rng.normal(0, 20, 120)
    f = make_filter(PointerConfig(), "one-euro")
    out = np.array([f(x, 300.0, ti)[0] for x, ti in zip(raw, t, strict=True)])
    assert out[20:60].std() < raw[20:60].std() / 3
    crossed = next(i for i in range(60, 120) if out[i] > 950)
    assert crossed - next(i for i in range(55, 120) if raw[i] > 950) <= 1


def test_auto_falls_back_to_null_without_a_display(monkeypatch, caplog):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert isinstance(make_backend(PointerConfig(backend="auto")), NullBackend)
    assert "no display" in caplog.text
    with pytest.raises(GazeflowError, match="needs a display"):
        make_backend(PointerConfig(backend="pyautogui"))


@pytest.fixture
def xvfb(monkeypatch):
    server, display = start_xvfb("1280x720x24")
    monkeypatch.setenv("DISPLAY", display)
    yield display
    server.terminate()
    server.wait(5)


def test_pyautogui_moves_the_real_pointer_without_blocking(xvfb, monkeypatch):
    backend = make_backend(PointerConfig(backend="auto"))
    assert backend.name == "pyautogui" and backend.size == (1280, 720)
    sleeps: list[float] = []
    real_sleep = time.sleep
    with monkeypatch.context() as m:
        m.setattr(time, "sleep", lambda s: (sleeps.append(s), real_sleep(s)))
        for x in range(100, 400, 3):
            backend.move(x, 200)
    assert not [s for s in sleeps if s > 0]  # no tween, no PAUSE: a move never waits
    out = subprocess.run(["xdotool", "getmouselocation"], capture_output=True, text=True, env=os.environ).stdout
    assert out.startswith("x:397 y:200")


def test_stale_gaze_never_moves_the_pointer_on_live_input(tmp_path):
    """After a stall upstream, gaze older than pointer.max_age_ms (since capture) does not move the pointer."""
    from gazeflow.services.pointer.processor import Pointer
    from gazeflow.shared.config import Config
    from gazeflow.shared.messages import Message

    cfg = Config(input="cam:0", pointer=PointerConfig(backend="null", filter="none"))  # live
    pointer = Pointer(cfg)
    pointer.name = "pointer"
    fresh, stale = Message.frame(1, time.time(), SOURCE), Message.frame(2, time.time() - 5.0, SOURCE)
    for msg in (fresh, stale):
        msg.header.update(header(towards(0, -148)))
    assert pointer.finish(fresh, {}).header["pointer"]["moved"]
    assert pointer.finish(stale, {}).header["pointer"] is None and pointer.stale == 1
    replay = Pointer(Config(pace="max-speed", pointer=PointerConfig(backend="null")))  # a replay is never stale
    assert replay.finish(stale, {}).header["pointer"] is not None and replay.stale == 0


def test_the_pointer_claim_refuses_a_second_holder_and_leaves_no_file(monkeypatch, tmp_path):
    from gazeflow.services.pointer.screen import PointerClaim
    from gazeflow.shared.errors import GazeflowError

    monkeypatch.setenv("DISPLAY", ":77")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    first = PointerClaim("run one")
    with pytest.raises(GazeflowError, match="already moves the pointer on display :77 \\(pid"):
        PointerClaim("run two")
    assert [p.name for p in Path(first.path).parent.glob("gazeflow-pointer-*")] == ["gazeflow-pointer-:77.lock"]
    first.release()
    assert not Path(first.path).exists()  # nothing left behind
    PointerClaim("run three").release()  # free again
