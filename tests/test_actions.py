"""Clicks, pause and resume: the eye state in every result, blink and dwell clicks, the gesture, auto-pause;
gazeflow ctl, the hotkey and the real mouse on a running pipeline under Xvfb."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from gazeflow.services.pointer import actions
from gazeflow.services.pointer.settings import PointerConfig

from conftest import gazeflow, read_results, start_run, start_xvfb, wait_for

OPEN, SHUT = {"left": 0.98, "right": 0.97}, {"left": 0.01, "right": 0.02}
WINK = {"left": 0.02, "right": 0.99}


def _events(cfg: PointerConfig, pattern: list[tuple[dict | None, int]], fps: float = 30.0) -> list[tuple[int, str]]:
    eyes, out, i = actions.Eyes(cfg), [], 0
    for state, frames in pattern:
        for _ in range(frames):
            _, event = eyes.update(state, i / fps)
            if event:
                out.append((i, event))
            i += 1
    return out


def test_natural_blinks_never_click_a_deliberate_one_does_and_resting_the_eyes_does_not():
    cfg = PointerConfig(click="blink")
    assert _events(cfg, [(OPEN, 10), (SHUT, 4), (OPEN, 10), (SHUT, 12), (OPEN, 5)]) == []  # 133 and 400 ms
    assert _events(cfg, [(OPEN, 10), (SHUT, 24), (OPEN, 5)]) == [(34, "left")]  # 0.8 s: at the reopening
    assert _events(cfg, [(OPEN, 10), (SHUT, 54), (OPEN, 5)]) == []  # 1.8 s: resting the eyes
    assert _events(PointerConfig(click="none"), [(OPEN, 10), (SHUT, 24), (OPEN, 5)]) == []
    assert _events(cfg, [(OPEN, 5), (SHUT, 10), (None, 20), (OPEN, 5)]) == []  # the face lost: no click


def test_closing_the_eyes_two_seconds_toggles_pause_and_never_also_clicks():
    cfg = PointerConfig(click="blink")
    assert _events(cfg, [(OPEN, 5), (SHUT, 70), (OPEN, 5)]) == [(65, "toggle")]
    assert _events(PointerConfig(click="blink", pause_closed_s=0), [(OPEN, 5), (SHUT, 70), (OPEN, 5)]) == []


def test_a_wink_right_clicks_when_asked():
    assert _events(PointerConfig(click="blink", wink=True), [(OPEN, 5), (WINK, 20), (OPEN, 3)]) == [(25, "right")]
    assert _events(PointerConfig(click="blink"), [(OPEN, 5), (WINK, 20), (OPEN, 3)]) == []


def test_dwell_clicks_once_per_stay_and_never_while_moving():
    d = actions.Dwell(PointerConfig(click="dwell", dwell_ms=1000, dwell_radius_px=40))
    clicks = [i for i in range(90) if d.update((500 + (i % 3) * 5, 300), i / 30)[1]]
    assert clicks == [30]  # 1 s after it settled, once, though it stays
    assert not any(d.update((500 + 60 * i, 300), (90 + i) / 30)[1] for i in range(60))  # moving: never
    assert d.update(None, 5.0) == (0.0, False)


def test_auto_pause_on_a_lost_face_and_on_the_real_mouse(monkeypatch):
    p = actions.Pause(PointerConfig(face_lost_s=2.0, hands_off_s=1.5))
    p.face_seen(True, 0.0)
    p.face_seen(False, 1.9)
    assert not p.paused
    p.face_seen(False, 2.0)
    assert p.paused and p.reason() == "no face"
    p.face_seen(True, 2.1)
    assert not p.paused
    now = [100.0]
    monkeypatch.setattr(actions.time, "monotonic", lambda: now[0])
    p.mouse_check((500, 500), (500, 500))
    p.moved_to((600, 500))  # gazeflow's own move is not the user's
    p.mouse_check((600, 500), (600, 500))
    assert not p.paused
    p.mouse_check((100, 100), (600, 500))  # someone moved it
    assert p.paused and p.reason() == "mouse in use"
    now[0] += 1.0
    p.mouse_check((120, 100), (600, 500))  # still moving
    now[0] += 1.0
    p.mouse_check((120, 100), (600, 500))
    assert p.paused  # 1.0 s still: not yet
    now[0] += 0.6
    p.mouse_check((120, 100), (600, 500))
    assert not p.paused


@pytest.mark.integration
def test_every_result_has_the_eye_state_and_blinks_click_only_when_held(tmp_path):
    """The demo's blinks (eye state, confirmed on the frames: 191-193, 201-203, 394) never click; its long
    closure (looking down with the lids closed: frames 252-293, 1.4 s) does."""
    results = tmp_path / "r.jsonl"
    proc = gazeflow(
        "run-all",
        "--input",
        "demo",
        "--max-speed",
        "--pointer",
        "null",
        "--click",
        "blink",
        "--results",
        str(results),
        "--log-interval",
        "0",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = read_results(results)
    assert all(set(r["eyes"]) == {"left", "right"} for r in rows if r["gaze"])
    closed = {r["frame"] for r in rows if r["eyes"] and max(r["eyes"].values()) < 0.5}
    assert closed & set(range(190, 205))  # the natural blinks are seen
    clicks = [r["frame"] for r in rows if r["pointer"] and r["pointer"].get("click")]
    assert 294 in clicks, clicks  # the end of the 1.4 s closure
    for c in clicks:  # each after both eyes stayed closed 0.5-1.5 s, never at a natural blink
        assert not (185 <= c <= 210 or 385 <= c <= 400), c
        assert sum(f in closed for f in range(c - 45, c)) >= 15, c
    assert not any(r["pointer"] and r["pointer"].get("moved") for r in rows if r["frame"] in clicks)


def _ctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gazeflow.services.cli", "ctl", *args], capture_output=True, text=True, timeout=30
    )


def test_ctl_without_a_pipeline_or_with_a_bad_command_is_one_line(tmp_path):
    for args, message in (
        (["status"], "no running pipeline"),
        (["bogus"], "one of pause"),
        (["status", "--run-dir", str(tmp_path)], "no running pipeline in"),
    ):
        proc = _ctl(*args)
        assert proc.returncode == 2 and message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.integration
def test_ctl_pauses_and_resumes_a_running_pipeline(tmp_path):
    results = tmp_path / "r.jsonl"
    proc = start_run("--input", "demo", "--loop", "--pointer", "null", "--results", str(results), "--log-interval", "0")
    try:
        wait_for(lambda: results.exists() and len(results.read_text().splitlines()) > 10, "results")
        paused = _ctl("pause")
        assert paused.returncode == 0 and paused.stdout.strip() == "paused", paused.stderr
        seen = len(results.read_text().splitlines())
        wait_for(lambda: len(results.read_text().splitlines()) > seen + 20, "frames while paused")
        status = _ctl("status")
        assert "state: paused (by you)" in status.stdout and "health" in status.stdout, status.stdout
        assert _ctl("resume").stdout.strip() == "running"
        seen = len(results.read_text().splitlines())
        wait_for(lambda: len(results.read_text().splitlines()) > seen + 20, "frames after resuming")
        assert _ctl("recenter").returncode == 0
    finally:
        proc.send_signal(2)
        proc.communicate(timeout=30)
    rows = read_results(results)
    paused_rows = [r for r in rows if r["paused"]]
    assert len(paused_rows) > 20 and not any(r["pointer"] and r["pointer"]["moved"] for r in paused_rows)
    first = rows.index(paused_rows[0])
    assert any(r["pointer"] and r["pointer"]["moved"] for r in rows[first + len(paused_rows) :])  # moves again
    frames = [r["frame"] for r in rows]
    assert frames == sorted(frames)  # paused frames flow like the others


@pytest.mark.integration
def test_hotkey_and_the_real_mouse_pause_under_xvfb(tmp_path):
    server, display = start_xvfb("1280x720x24")
    env = {"DISPLAY": display}
    try:
        proc = start_run("--input", "demo", "--loop", "--pointer", "pyautogui", "--log-interval", "0", env=env)
        try:
            wait_for(lambda: "running" in _ctl("status").stdout, "the pointer running")
            xdo = {**os.environ, **env}
            subprocess.run(["xdotool", "key", "ctrl+alt+p"], env=xdo, check=True)
            wait_for(lambda: "paused (by you)" in _ctl("status").stdout, "the hotkey's pause", 20)
            subprocess.run(["xdotool", "key", "ctrl+alt+p"], env=xdo, check=True)
            wait_for(lambda: "state: running" in _ctl("status").stdout, "the hotkey's resume", 20)
            for x in range(200, 600, 50):  # the user takes the mouse
                subprocess.run(["xdotool", "mousemove", str(x), "300"], env=xdo, check=True)
            wait_for(lambda: "mouse in use" in _ctl("status").stdout, "the auto-pause", 20)
            wait_for(lambda: "state: running" in _ctl("status").stdout, "resuming with hands off", 20)
        finally:
            proc.send_signal(2)
            proc.communicate(timeout=30)
    finally:
        server.terminate()
        server.wait(5)


@pytest.mark.integration
def test_blink_clicks_reach_a_window_under_xvfb_where_the_pointer_is(tmp_path, demo_profile):
    """A Tk window covering the screen records the clicks it receives: the demo's held closures click it,
    at the pointer's position in the results (the demo's calibrated profile, at max speed)."""
    server, display = start_xvfb("1920x1080x24")
    env = {**os.environ, "DISPLAY": display}
    clicks_file = tmp_path / "clicks.txt"
    window = subprocess.Popen([sys.executable, "-c", CLICK_RECORDER, str(clicks_file)], env=env)
    try:
        wait_for(lambda: clicks_file.exists(), "the test window")
        results, config = tmp_path / "r.jsonl", tmp_path / "screen.toml"
        config.write_text("[pointer]\nscreen_mm = [527.0, 296.0]\n")  # the size the profile was made for
        proc = gazeflow(
            "run-all",
            "--config",
            str(config),
            "--input",
            "demo",
            "--max-speed",
            "--pointer",
            "pyautogui",
            "--click",
            "blink",
            "--profile",
            str(demo_profile),
            "--results",
            str(results),
            "--log-interval",
            "0",
            env={"DISPLAY": display},
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        expected = [
            (r["pointer"]["x"], r["pointer"]["y"])
            for r in read_results(results)
            if r["pointer"] and r["pointer"].get("click")
        ]
        assert expected
        wait_for(lambda: len(clicks_file.read_text().splitlines()) >= len(expected), "the clicks in the window", 20)
        got = [tuple(json.loads(line)) for line in clicks_file.read_text().splitlines()]
        assert got == [(x, y, 1) for x, y in expected]
    finally:
        window.terminate()
        window.wait(5)
        server.terminate()
        server.wait(5)


CLICK_RECORDER = """
import json, sys, tkinter as tk
out = open(sys.argv[1], "w", buffering=1)
root = tk.Tk()
root.overrideredirect(True)
root.geometry(f"{root.winfo_screenwidth()}x{root.winfo_screenheight()}+0+0")
root.bind("<ButtonPress>", lambda e: out.write(json.dumps([e.x_root, e.y_root, e.num]) + "\\n"))
root.after(200, lambda: out.flush())
root.mainloop()
"""


@pytest.mark.integration
def test_ctl_reaches_a_pointer_over_tcp_only_with_the_keys(tmp_path):
    """pointer.control: 'gazeflow ctl --connect' over tcp, CurveZMQ with the ctl key pair of 'gazeflow keys';
    other keys get no answer (one line), and the pipeline goes on."""
    import socket

    from gazeflow.shared.config import Config
    from gazeflow.shared.security import make_keys

    keys, other = (
        make_keys(tmp_path / "keys", Config().chain_links),
        make_keys(tmp_path / "other", Config().chain_links),
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = tmp_path / "ctl.toml"
    config.write_text(f'curve_keys = "{keys}"\n[pointer]\ncontrol = "tcp://127.0.0.1:{port}"\n')
    proc = start_run("--config", str(config), "--input", "demo", "--loop", "--pointer", "null", "--log-interval", "0")
    try:
        address = f"tcp://127.0.0.1:{port}"
        wait_for(
            lambda: "state: running" in _ctl("status", "--connect", address, "--keys", str(keys)).stdout,
            "the pointer over tcp",
            60,
        )
        assert _ctl("pause", "--connect", address, "--keys", str(keys)).stdout.strip() == "paused"
        refused = _ctl("status", "--connect", address, "--keys", str(other))
        assert refused.returncode == 2 and "did not answer" in refused.stderr
        assert _ctl("resume", "--connect", address, "--keys", str(keys)).stdout.strip() == "running"
        assert proc.poll() is None
    finally:
        proc.send_signal(2)
        proc.communicate(timeout=30)
