"""The view: annotated frames in a video (every frame of a replay) and in a window under Xvfb, drawn on the
frame ring's pixels after the pointer."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

from gazeflow.services.view.draw import annotate

from conftest import gazeflow, read_results, start_xvfb, wait_for

ALL = {"face", "landmarks", "head_pose", "iris", "gaze", "eyes", "pointer", "figures"}  # every stage's overlays
HEADER = {
    "frame": 7,
    "t_capture": 0.0,
    "trace": [],
    "face": [100.0, 80.0, 300.0, 330.0],
    "landmarks": [[160.0, 170.0], [240.0, 170.0], [200.0, 220.0], [170.0, 270.0], [230.0, 270.0]],
    "head_pose": {"yaw": 10.0, "pitch": -5.0, "roll": 3.0},
    "iris": {"left": [0.1, -0.02, 243.0, 171.0], "right": [0.08, -0.01, 163.0, 170.0]},
    "gaze": [0.3, 0.2, -0.93],
    "eyes": {"left": 0.95, "right": 0.1},
    "pointer": {"x": 5, "y": 6, "moved": True, "dwell": 0.4},
    "paused": False,
}


def _colour(image: np.ndarray, bgr: tuple[int, int, int], tol: int = 40) -> int:
    return int((np.abs(image.astype(int) - np.array(bgr)).max(axis=2) <= tol).sum())


def test_the_overlays_are_drawn_and_each_can_be_switched_off():
    blank = np.full((480, 640, 3), 90, np.uint8)
    canvas = annotate(blank.copy(), HEADER, ALL, 30.0)
    (box,) = canvas.drawn("face", "rectangle")
    assert box.points == ((100, 80), (300, 330)) and _colour(canvas.image, (0, 200, 0)) > 500
    assert len(canvas.drawn("landmarks", "circle")) == 5 and len(canvas.drawn("gaze", "arrow")) == 2
    assert sorted(s.points[0] for s in canvas.drawn("iris", "circle")) == [(163, 170), (243, 171)]
    assert len(canvas.drawn("head_pose", "arrow")) == 3 and [s.text for s in canvas.drawn("eyes")] == [
        "closed 0.10",
        "open 0.95",
    ]
    assert [s.text for s in canvas.drawn("pointer")] == ["pointer 5, 6 moved  dwell 40%"]
    assert canvas.drawn("figures")[0].text.startswith("frame 7  30.0 fps")
    assert _colour(annotate(blank.copy(), HEADER, ALL - {"gaze"}, 30.0).image, (0, 220, 255)) < 20
    assert (annotate(blank.copy(), HEADER, set(), 30.0).image == blank).all()


def _changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(int) - b.astype(int)).max(axis=2) > 40


@pytest.mark.integration
@pytest.mark.parametrize("command", ["run-all", "run-sync"])
def test_output_writes_every_annotated_frame_of_a_replay(tmp_path, assets, command):
    """Every frame of the replay is in the video, drawn where the drawing's own record says: the first frame
    re-drawn from its results line gives the shapes, and the video differs from the plain frame there."""
    video, results = tmp_path / "a.mp4", tmp_path / "r.jsonl"
    proc = gazeflow(
        command,
        "--input",
        "demo",
        "--max-speed",
        "--pointer",
        "null",
        "--output",
        str(video),
        "--results",
        str(results),
        "--log-interval",
        "0",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = read_results(results)
    assert len(rows) == 595 and all(r["eyes"] for r in rows if r["gaze"])
    cap = cv2.VideoCapture(str(video))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 595
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (1920, 1080)
    ok, first = cap.read()
    cap.release()
    plain = cv2.VideoCapture(str(assets / "videos" / "demo.mp4")).read()[1]
    header = {**rows[0], "t_capture": 0.0, "trace": []}
    canvas = annotate(plain.copy(), header, {"face", "landmarks", "gaze"}, 30.0)
    expected = _changed(canvas.image, plain)  # the pixels the face box, the points and the arrows cover
    (box,) = canvas.drawn("face", "rectangle")
    assert box.points == tuple((round(x), round(y)) for x, y in (rows[0]["face"][:2], rows[0]["face"][2:]))
    seen = _changed(first, plain)
    assert ok and expected.sum() > 1000 and (seen & expected).sum() > 0.6 * expected.sum(), "not drawn where recorded"


def test_show_without_a_display_is_one_line():
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    proc = subprocess.run(
        [sys.executable, "-m", "gazeflow.services.cli", "run-all", "--show"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 2 and "--show needs a display" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.integration
def test_show_under_xvfb_shows_the_annotated_frame_and_esc_ends_the_run(tmp_path):
    if not shutil.which("import"):
        pytest.skip("ImageMagick's import is not installed (apt-get install imagemagick): no screenshots")
    server, display = start_xvfb("1280x720x24")
    env = {**os.environ, "DISPLAY": display}
    metrics = tmp_path / "m.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gazeflow.services.cli",
            "run-all",
            "--input",
            "demo",
            "--loop",
            "--pointer",
            "null",
            "--show",
            "--metrics",
            str(metrics),
            "--log-interval",
            "0",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def window() -> str:
            found = subprocess.run(
                ["xdotool", "search", "--name", "gazeflow view"], capture_output=True, text=True, env=env
            ).stdout.split()
            return found[0] if found else ""

        wait_for(lambda: window() != "" or proc.poll() is not None, "the view window")
        shot = tmp_path / "view.png"

        def annotated() -> bool:
            subprocess.run(["import", "-display", display, "-window", window(), str(shot)], check=True, timeout=30)
            image = cv2.imread(str(shot))
            return image is not None and _colour(image, (0, 200, 0)) > 200 and _colour(image, (0, 220, 255)) > 30

        wait_for(annotated, "an annotated frame in the window", 60)
        image = cv2.imread(str(shot))
        assert image.shape[1] == 960  # the window's width (view.width)
        assert _colour(image[:60, :400], (255, 255, 255), 30) > 50  # the figures' white text, top left
        subprocess.run(
            ["xdotool", "search", "--name", "gazeflow view", "windowfocus", "--sync", "key", "Escape"],
            env=env,
            check=True,
            timeout=30,
        )
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        server.terminate()
        server.wait(5)
    assert "frames" in out and metrics.exists(), err[-2000:]  # ended as by Ctrl-C: summary and metrics written
