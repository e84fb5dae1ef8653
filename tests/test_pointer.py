import os
import subprocess
import time

import pytest

from gazeflow.services.pointer.backends import NullBackend, make_backend
from gazeflow.services.pointer.controller import PointerController
from gazeflow.shared.config import PointerConfig
from gazeflow.shared.errors import GazeflowError

from conftest import start_xvfb


def controller(**kw):
    cfg = PointerConfig(smoothing=0.0, **kw)
    return PointerController(cfg, (1920, 1080))


def test_looking_into_the_camera_is_the_screen_centre():
    assert controller().update([0.0, 0.0, -1.0]) == {"x": 960, "y": 540, "moved": True}


def test_direction_mapping_with_and_without_mirror():
    right_in_image, up = [0.3, 0.0, -0.95], [0.0, 0.3, -0.95]
    assert controller().update(right_in_image)["x"] < 960  # the user looks to their left: pointer left
    assert controller(mirror=False).update(right_in_image)["x"] > 960
    assert controller().update(up)["y"] < 540


def test_targets_stay_off_the_fail_safe_corners():
    p = controller().update([-0.99, 0.99, -0.1])
    assert 1 <= p["x"] <= 1918 and 1 <= p["y"] <= 1078


def test_dead_zone_and_pause():
    c = controller(dead_zone_px=20)
    assert c.update([0.0, 0.0, -1.0])["moved"]
    assert not c.update([0.005, 0.0, -1.0])["moved"]
    assert c.update(None) is None  # no gaze: the pointer stays where it is
    assert c.moves == 1


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

    cfg = Config(input="cam:0", pointer=PointerConfig(backend="null", smoothing=0.0))  # live
    pointer = Pointer(cfg)
    pointer.name = "pointer"
    fresh, stale = Message.frame(1, time.time(), {}), Message.frame(2, time.time() - 5.0, {})
    for msg in (fresh, stale):
        msg.header["gaze"] = [0.1, 0.0, -0.99]
    assert pointer.finish(fresh, {}).header["pointer"]["moved"]
    assert pointer.finish(stale, {}).header["pointer"] is None and pointer.stale == 1
    replay = Pointer(Config(pace="max-speed", pointer=PointerConfig(backend="null")))  # a replay is never stale
    assert replay.finish(stale, {}).header["pointer"] is not None and replay.stale == 0
