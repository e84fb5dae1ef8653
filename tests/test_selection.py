"""Selecting what you see: the magnifier's bias-cancelling point, the palette, drag and scroll, safe clicks, the
drift corrected by use, head and hybrid pointing; then the pointer stage on a simulated user's gaze."""

from __future__ import annotations

import math
import subprocess

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gazeflow.services.bench.select import SCREEN, Geometry
from gazeflow.services.pointer.adapt import Drift
from gazeflow.services.pointer.gaze_model import Monitor
from gazeflow.services.pointer.head import HeadMotion, Placement
from gazeflow.services.pointer.selection import (
    ACTIONS,
    LOOK_AWAY_S,
    Rect,
    Safety,
    Scroll,
    Selector,
    check_palette,
    magnifier,
    palette_layout,
)
from gazeflow.services.pointer.settings import CameraConfig, PointerConfig
from gazeflow.shared.errors import GazeflowError

from conftest import start_xvfb

MONITOR = Monitor(0, "test", 0, 0, 1920, 1080, 527.0, 296.0, True)
SECOND = Monitor(1, "right", 1920, 0, 1280, 1024, 376.0, 301.0, False)


@settings(max_examples=200, deadline=None)
@given(
    tx=st.floats(100, 1820),
    ty=st.floats(100, 980),
    angle=st.floats(0, 2 * math.pi),
    size=st.floats(0, 240),
    zoom=st.floats(1.5, 6),
)
def test_the_magnified_selection_cancels_the_gaze_bias(tx, ty, angle, size, zoom):
    """Looking at T reads T + b; the target shows in the window at W + zoom (T - S) and the second look reads
    that plus b: the chosen point is T, whatever the bias (within a pixel of rounding)."""
    bias = (size * math.cos(angle), size * math.sin(angle))
    seen = (tx + bias[0], ty + bias[1])
    zoomed = magnifier(PointerConfig(zoom=zoom), MONITOR, seen, 170.0, 0.0)
    shown = zoomed.shows((tx, ty))
    if shown not in zoomed.window:
        return  # the target is not in the region shown: the user looks away
    chosen = zoomed.target((shown[0] + bias[0], shown[1] + bias[1]))
    assert math.dist(chosen, (tx, ty)) <= 1.0
    r = zoomed.region
    assert MONITOR.x <= r.x and r.x + r.w <= MONITOR.x + MONITOR.width + 1  # the region stays on the monitor
    assert MONITOR.y <= r.y and r.y + r.h <= MONITOR.y + MONITOR.height + 1


@settings(max_examples=100, deadline=None)
@given(
    x=st.floats(-50, 3300), y=st.floats(-50, 1100), error=st.floats(20, 400), monitor=st.sampled_from([MONITOR, SECOND])
)
def test_the_magnifier_stays_on_its_monitor_and_holds_twice_the_error(x, y, error, monitor):
    zoomed = magnifier(PointerConfig(zoom=4.0), monitor, (x, y), error, 0.0)
    w = zoomed.window
    assert monitor.x <= w.x and w.x + w.w <= monitor.x + monitor.width
    assert monitor.y <= w.y and w.y + w.h <= monitor.y + monitor.height
    assert 1.5 <= zoomed.zoom <= 4.0
    assert zoomed.region.w >= min(2 * error, 0.9 * monitor.height / 1.5 - 1)  # it shrinks its zoom to fit first


@pytest.mark.parametrize("side", ["left", "right", "top", "bottom"])
@pytest.mark.parametrize("monitor", [MONITOR, SECOND])
def test_the_palette_docks_on_its_side_with_one_button_per_action(side, monitor):
    cfg = PointerConfig(palette=True, palette_side=side)
    rects = palette_layout(cfg, monitor)
    assert list(rects) == list(ACTIONS)
    check_palette(cfg, monitor)  # inside: no error
    boxes = list(rects.values())
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:  # no two buttons overlap
            assert a.x + a.w <= b.x or b.x + b.w <= a.x or a.y + a.h <= b.y or b.y + b.h <= a.y
    right, bottom = monitor.x + monitor.width, monitor.y + monitor.height
    at_edge = {"left": {monitor.x}, "right": {right}, "top": {monitor.y}, "bottom": {bottom}}[side]
    assert all(({r.x, r.x + r.w} if side in ("left", "right") else {r.y, r.y + r.h}) & at_edge for r in boxes)
    selector = Selector(cfg, monitor, 170.0)
    assert selector.trigger(rects["double"].centre, 0.0) == {"event": "palette", "action": "double"}
    assert selector.action == "double"


def test_a_palette_the_gaze_cannot_reach_is_refused():
    check_palette(PointerConfig(palette=True, palette_at=(1700, 100)), MONITOR)
    for at in ((1900, 100), (-5, 0), (2000, 10), (100, 900)):
        with pytest.raises(GazeflowError, match="would leave the monitor the pointer moves on"):
            check_palette(PointerConfig(palette=True, palette_at=at), MONITOR)
    check_palette(PointerConfig(palette=False, palette_at=(5000, 5000)), MONITOR)  # no palette: nothing to place


def test_drag_presses_at_one_selection_and_releases_at_the_next():
    selector = Selector(PointerConfig(select="none", action="drag"), MONITOR, 170.0)
    first, second = selector.trigger((400, 300), 0.0), selector.trigger((900, 500), 1.0)
    assert (first["do"], first["at"]) == ("press", [400, 300])
    assert (second["do"], second["at"]) == ("release", [900, 500])


def test_a_missed_magnifier_makes_the_next_one_wider():
    selector = Selector(PointerConfig(select="zoom", zoom=3.0), MONITOR, 120.0)
    first = selector.trigger((900, 500), 0.0)
    assert first["event"] == "open"
    selector.watch((100, 100), 1.0)  # looks away: the target was not in it
    assert selector.watch((100, 100), 1.0 + LOOK_AWAY_S)["why"] == "looked away"
    second = selector.trigger((930, 520), 2.0)
    assert selector.zoom is not None and selector.zoom.region.w > 1.3 * (first["window"][2] / first["zoom"])
    assert second["event"] == "open"
    act = selector.choose(selector.zoom.window.centre)
    assert act["event"] == "act" and act["at"] == [930, 520] and selector.widen == 0


def test_no_click_near_trouble_nor_within_the_cooldown():
    safety = Safety(PointerConfig(safe_ms=300, click_cooldown_ms=600))
    safety.see({"frame": 10, "face": None}, 1.0, stale=False, detect_every=1)
    assert not safety.allows(1.2)  # 200 ms after the face was lost
    assert safety.allows(1.31)
    assert not safety.allows(1.6)  # 290 ms after that click
    assert safety.allows(1.92)
    safety.see({"frame": 61, "face": [1, 2, 3, 4], "tracked": False}, 2.5, stale=False, detect_every=4)  # a reset
    assert not safety.allows(2.7)
    safety.see({"frame": 90, "face": [1, 2, 3, 4]}, 3.0, stale=True, detect_every=1)
    assert not safety.allows(3.1) and safety.blocked == 4


def test_scrolling_follows_the_gaze_above_or_below_the_middle_until_it_leaves():
    scroll = Scroll(Rect(0, 0, 800, 600))
    up = sum(scroll.step((400, 50), i / 30, 1 / 30, 15.0) or 0 for i in range(30))
    down = sum(scroll.step((400, 580), 1 + i / 30, 1 / 30, 15.0) or 0 for i in range(30))
    slow = sum(scroll.step((400, 250), 2 + i / 30, 1 / 30, 15.0) or 0 for i in range(30))
    assert up >= 12 and down <= -12 and 0 < slow < up  # faster further from the middle
    assert scroll.step((900, 50), 3.0, 1 / 30, 15.0) == 0  # a glance outside: still scrolling
    assert scroll.step((900, 50), 3.01 + LOOK_AWAY_S, 1 / 30, 15.0) is None  # gone: scrolling ends


def test_the_drift_correction_learns_a_steady_offset_and_ignores_one_mistake():
    drift = Drift(window=10)
    true_offset = (-60.0, 40.0)
    for i in range(8):
        chosen = (300.0 + 100 * i, 500.0)
        mapped = (chosen[0] - true_offset[0] + drift.offset[0], chosen[1] - true_offset[1] + drift.offset[1])
        drift.add(mapped, chosen)
    assert math.dist(drift.offset, true_offset) < 1 and drift.error_px is not None and drift.error_px < 1
    before = drift.offset
    drift.add((1000.0 + drift.offset[0], 200.0 + drift.offset[1]), (400.0, 900.0))  # one wrong selection
    assert math.dist(drift.offset, before) < 1
    for i in range(30):
        drift.add((float(i), float(i)), (float(i), float(i)))
    assert len(drift.samples) == 10  # a bounded window


def _face_at(x: float, y: float = 300.0, eyes: float = 90.0) -> dict:
    return {"face": [x - 110, y - 150, x + 110, y + 150], "landmarks": [[x - eyes / 2, y - 40], [x + eyes / 2, y - 40]]}


def test_the_head_moves_the_pointer_by_the_face_not_its_jitter_and_faster_when_quicker():
    """The face's centre in the image, in mm (90 px between the eyes: 0.7 mm a pixel): its jitter (half a
    pixel, as the demo's) keeps the pointer within a dwell's circle; moving the face to the image's left (the
    user's right) moves the pointer right, up moves it up; a quicker move goes further per mm; no face, no
    move."""
    cfg = PointerConfig(mode="head")
    motion = HeadMotion(cfg, CameraConfig())
    rng = np.random.default_rng(1)
    still = [motion.delta(_face_at(640 + rng.normal(0, 0.5), 300 + rng.normal(0, 0.5)), i / 30) for i in range(300)]
    wander = np.cumsum(still, axis=0)
    assert np.abs(wander).max() < PointerConfig().dwell_radius_px  # 10 s of jitter: within a dwell's circle
    moved = [motion.delta(_face_at(640 - 2 * i, 300 - i), 10 + i / 30) for i in range(1, 16)]
    assert sum(d[0] for d in moved) > 100 and sum(d[1] for d in moved) < -40  # right and up

    def travel(px_per_frame: float) -> float:
        quick = HeadMotion(PointerConfig(mode="head", head_min_cutoff=1000.0), CameraConfig())
        frames = round(30 / px_per_frame)
        return sum(quick.delta(_face_at(640 - px_per_frame * i), i / 30)[0] for i in range(frames + 1))

    assert travel(6.0) > 1.5 * travel(1.5)  # the same 30 px of face, four times quicker
    assert motion.delta({"face": None, "landmarks": None}, 11.0) == (0.0, 0.0)
    for i in range(60):  # a long move left, then still a second: settled
        motion.delta(_face_at(640 - i), 12 + i / 30)
    held = [motion.delta(_face_at(580), 14 + i / 30) for i in range(30)]
    assert held[-1] == (0.0, 0.0)
    for i in range(5):  # lost for 5 frames
        motion.delta({"face": None, "landmarks": None}, 15 + i / 30)
    back = [motion.delta(_face_at(600), 15.2 + i / 30) for i in range(30)]  # found again, elsewhere
    assert np.abs(np.sum(back, axis=0)).max() < 1  # its move while lost is not known: no jump


def test_hybrid_jumps_on_a_saccade_not_on_a_blip_and_fine_tunes_by_head():
    placement = Placement(PointerConfig(mode="hybrid"), 1920, 1080, saccade_px=150.0)
    assert placement.hybrid((0, 0), (500, 500)) == (500, 500)
    assert placement.hybrid((5, -3), (520, 490)) == (505, 497)  # the gaze holds: the head moves it
    assert placement.hybrid((0, 0), (1200, 300)) == (505, 497)  # one frame far: a blip
    assert placement.hybrid((0, 0), (1200, 300)) == (1200, 300)  # two: a saccade


def _pointer(tmp_path, **pointer):
    from gazeflow.services.pointer.processor import Pointer
    from gazeflow.shared.config import Config

    geometry = Geometry.virtual()
    settings_ = {"backend": "null", "screen_mm": (geometry.width_mm, geometry.height_mm), "profile": "", **pointer}
    proc = Pointer(Config(pace="max-speed", run_dir=str(tmp_path), pointer=PointerConfig(**settings_)))
    proc.name = "pointer"
    return proc, geometry


def _frame(geometry, frame, point, shift=(0.0, 0.0)):
    from gazeflow.services.bench.select import CAMERA, FPS, T0
    from gazeflow.shared.messages import Message

    return Message(
        "frame",
        {
            "frame": frame,
            "t_capture": T0 + frame / FPS,
            "source": {"width": CAMERA[0], "height": CAMERA[1], "fps": FPS},
            "face": geometry.face(shift),
            "landmarks": geometry.marks(shift),
            "head_pose": {"yaw": 0.0, "pitch": 0.0, "roll": 0.0},
            "gaze": geometry.gaze(point, shift),
            "eyes": {"left": 0.95, "right": 0.95},
            "trace": [],
        },
    )


def test_two_dwells_through_the_magnifier_select_a_small_target_despite_a_large_bias(tmp_path):
    """The pointer stage itself (null backend): a user 150 px off looks at a 20-px target; the first dwell
    opens the magnifier where the gaze read; looking at the target inside it, the second dwell acts on the
    target; the results say what happened, with the live error estimate."""
    pointer, geometry = _pointer(tmp_path, select="zoom", zoom=4.0, magnifier_error_px=170.0)
    target, bias = (700.0, 420.0), (120.0, -90.0)
    events, frame, look = [], 0, target
    while frame < 300 and not any(e["event"] == "act" for e in events):
        seen = (look[0] + bias[0], look[1] + bias[1])
        decision = pointer.finish(_frame(geometry, frame, seen), {}).header["pointer"] or {}
        frame += 1
        if "select" in decision:
            events.append(decision["select"])
            if decision["select"]["event"] == "open":
                w, r = decision["select"]["window"], decision["select"]["region"]
                wx, wy, z = w[0] + w[2] / 2, w[1] + w[3] / 2, decision["select"]["zoom"]
                cx, cy = r[0] + r[2] / 2, r[1] + r[3] / 2
                look = (wx + z * (target[0] - cx), wy + z * (target[1] - cy))
    kinds = [e["event"] for e in events]
    assert kinds == ["open", "act"], events
    assert math.dist(events[-1]["at"], target) <= 10  # inside a 20-px target
    assert events[-1]["action"] == "left" and events[-1]["do"] == "left"
    assert pointer.report()["selection"]["opened"] == 1 and pointer.clicks["left"] == 1
    pointer.finish(_frame(geometry, frame, target), {})
    assert pointer.status()["action"] == "left" and "px" in pointer.status()["live error"]


def test_head_mode_moves_by_the_head_and_recentres(tmp_path):
    pointer, geometry = _pointer(tmp_path, mode="head", dead_zone_px=0)
    first = pointer.finish(_frame(geometry, 0, (300.0, 300.0)), {}).header["pointer"]
    for i in range(1, 10):  # the face moves to the image's left (the user turns right); the gaze jumps away
        moved = pointer.finish(_frame(geometry, i, (1500.0, 900.0), (-3.0 * i, 0.0)), {}).header["pointer"]
    assert moved["x"] > first["x"] + 50 and abs(moved["y"] - first["y"]) <= 2  # only the head moved it
    for i in range(10, 40):  # held still: the filter settles
        pointer.finish(_frame(geometry, i, (1500.0, 900.0), (-27.0, 0.0)), {})
    pointer.controller.recenter()
    centre = pointer.finish(_frame(geometry, 40, (1500.0, 900.0), (-27.0, 0.0)), {}).header["pointer"]
    assert (centre["x"], centre["y"]) == (960, 540)


def test_with_the_magnifier_the_palette_too_is_chosen_inside_it_and_a_drag_is_never_left_down():
    """A palette button is larger than a target but smaller than the gaze error: in zoom mode it is chosen
    through the magnifier like anything else, and choosing it never clicks on our own window."""
    selector = Selector(PointerConfig(select="zoom", palette=True, action="drag"), MONITOR, 170.0)
    selector.trigger((500, 500), 0.0)
    assert selector.choose(selector.zoom.window.centre)["do"] == "press" and selector.dragging
    bias = (-110.0, 95.0)
    button = selector.palette["right"].centre
    opened = selector.trigger((button[0] + bias[0], button[1] + bias[1]), 1.0)
    assert opened["event"] == "open" and selector.zoom is not None
    shown = selector.zoom.shows(button)
    chosen = selector.choose((shown[0] + bias[0], shown[1] + bias[1]))
    assert chosen == {"event": "palette", "action": "right", "do": "release"} and not selector.dragging
    assert selector.counts["acted"] == 1  # the press only


@pytest.mark.integration
def test_the_magnifier_and_palette_are_real_windows_and_each_selection_reaches_its_target(tmp_path, monkeypatch):
    """Under Xvfb, the pointer stage as a user runs it (pyautogui, its Tk windows) on a simulated user's gaze
    150 px off: the palette docks on the right with the chosen action lit; a 24-px target is found inside the
    magnifier's screenshot and left-clicked; 'right' is chosen on the palette through the magnifier and the
    next target is right-clicked; Esc closes an open magnifier with no action. Screenshots in tmp_path."""
    import cv2
    import mss
    import numpy as np

    from gazeflow.services.bench import select as bench

    server, display = start_xvfb("1920x1080x24")
    monkeypatch.setenv("DISPLAY", display)
    geometry = Geometry.virtual()
    settings_ = {
        "select": "zoom",
        "zoom": 4.0,
        "palette": True,
        "magnifier_error_px": 150.0,
        "click": "dwell",
        "screen_mm": [geometry.width_mm, geometry.height_mm],
    }
    scene = bench.Scene()
    pointer = bench.Pointer(tmp_path / "pointer", settings_, display)
    user = bench.User(np.random.default_rng(7), geometry, 150.0, bench.Jitter([np.zeros((1, 2))], [np.zeros((1, 2))]))
    session = bench.Session(scene, pointer, user, geometry, "zoom")

    def shot(name: str, box: list[int] | None = None) -> np.ndarray:
        with mss.MSS() as grab:
            where = {"left": 0, "top": 0, "width": SCREEN[0], "height": SCREEN[1]}
            if box is not None:
                where = {"left": box[0], "top": box[1], "width": box[2], "height": box[3]}
            image = np.asarray(grab.grab(where))[:, :, :3]
        cv2.imwrite(str(tmp_path / f"{name}.png"), image)
        return image

    magnified = []
    real_in_magnifier = session._in_magnifier

    def seen_in_magnifier(window: list[int], size: int) -> tuple[float, float]:
        found = real_in_magnifier(window, size)
        magnified.append((window, shot(f"magnifier-{len(magnified)}", window)))
        return found

    monkeypatch.setattr(session, "_in_magnifier", seen_in_magnifier)
    try:
        session.step((960.0, 540.0), (960, 540))  # the first frame: the stage and its windows are up
        from gazeflow.services.pointer.selection import palette_layout

        rects = palette_layout(PointerConfig(**{k: v for k, v in settings_.items() if k != "screen_mm"}), MONITOR)
        screen = shot("palette")
        lit = screen[rects["left"].y + 20, rects["left"].x + 20]
        plain = screen[rects["right"].y + 20, rects["right"].x + 20]
        assert tuple(lit) == (0x00, 0x80, 0xD0) and tuple(plain) == (0x40, 0x40, 0x40)  # BGR: left lit

        first = session.trial((700, 420), 24)
        assert first["hit"] and first["button"] == 1, first
        window, image = magnified[-1]
        magenta = (image[:, :, 2] > 200) & (image[:, :, 0] > 200) & (image[:, :, 1] < 80)
        zoom = window[2] / (2 * 150.0 * 1.15 + 48)  # the region: twice the error and a margin (it fits the screen)
        assert zoom > 2 and magenta.sum() == pytest.approx(zoom**2 * math.pi * 12**2, rel=0.3)  # enlarged

        button, event = rects["right"].centre, {}
        user.new_trial()
        while event.get("event") != "open":
            event = session.step(button, (700, 420))
        w, r, z = event["window"], event["region"], event["zoom"]
        inside = tuple(w[i] + w[i + 2] / 2 + z * (button[i] - r[i] - r[i + 2] / 2) for i in (0, 1))
        assert not (w[0] + w[2] > rects["right"].x)  # the magnifier never covers the docked palette
        shot("magnifier-palette", event["window"])
        while event.get("event") != "palette":
            event = session.step(inside, (700, 420))
        assert event["action"] == "right"
        lit = shot("palette-right")[rects["right"].y + 20, rects["right"].x + 20]
        assert tuple(lit) == (0x00, 0x80, 0xD0)

        second = session.trial((1200, 700), 24)
        assert second["hit"] and second["button"] == 3, second

        user.new_trial()
        while event.get("event") != "open":
            event = session.step((900.0, 500.0), (900, 500))
        subprocess.run(["xdotool", "key", "Escape"], check=True)
        for _ in range(30):
            event = session.step((900.0, 500.0), (900, 500))
            if event.get("event") == "close":
                break
        assert event == {"event": "close", "why": "Esc"}
        assert not scene.presses  # nothing clicked
    finally:
        pointer.close()
        scene.close()
        server.terminate()
        server.wait(5)


@pytest.mark.integration
@pytest.mark.parametrize("mode", ["gaze", "head", "hybrid"])
def test_every_mode_selects_the_same_way_in_run_all_and_run_sync(tmp_path, mode):
    """The demo through the five processes and through one, in each mode with the magnifier and the palette
    (short dwells, so that the demo's wandering gaze makes selections): the same pointer, frame by frame,
    selections included; every selection's point on the monitor."""
    from conftest import gazeflow, read_results

    config = tmp_path / "select.toml"
    config.write_text("[pointer]\ndwell_ms = 400.0\ndwell_radius_px = 150.0\nselect_dwell_ms = 300.0\n")
    rows = {}
    for command in ("run-all", "run-sync"):
        results = tmp_path / f"{command}.jsonl"
        proc = gazeflow(
            command,
            "--config",
            str(config),
            "--input",
            "demo",
            "--max-speed",
            "--pointer",
            "null",
            "--mode",
            mode,
            "--select",
            "zoom",
            "--palette",
            "--results",
            str(results),
            "--log-interval",
            "0",
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        rows[command] = [(r["frame"], r["pointer"]) for r in read_results(results)]
    assert rows["run-all"] == rows["run-sync"]
    events = [p["select"] for _, p in rows["run-all"] if p and "select" in p]
    assert any(e["event"] == "open" for e in events), events
    for e in events:
        if "at" in e:
            assert 0 < e["at"][0] < 1919 and 0 < e["at"][1] < 1079, e
