"""Calibration: the targets file, the fit (never worse than the geometry), profiles, and the whole command:
from a recorded calibration of the demo video, and live under Xvfb with a video standing in for the camera."""

from __future__ import annotations

import json
import math
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from gazeflow.services.calibration import fit, targets
from gazeflow.services.calibration.settings import CalibrationConfig
from gazeflow.services.pointer import profile
from gazeflow.services.pointer.gaze_model import ALL_FEATURES, FEATURES, Correction, Monitor
from gazeflow.shared.errors import GazeflowError

from conftest import gazeflow, read_results, start_xvfb

DEMO_TARGETS = Path(__file__).parents[1] / "docs" / "demo-targets.json"
MONITOR = Monitor(0, "test", 0, 0, 1920, 1080, 527.0, 296.0, True)
FAST = "[calibration]\ntarget_s = 1.5\nsettle_s = 0.5\n"  # shorter targets: the tests' time, not the user's


# --- the parts -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("points", [1, 5, 9, 13, 16])
def test_layouts_put_every_target_on_the_screen_and_checks_between(points):
    ts = targets.layout(points, 4, 1920, 1080)
    fits = [t for t in ts if t.use == "fit"]
    assert len(fits) == points and len({(t.x, t.y) for t in ts}) == len(ts)
    assert all(0 < t.x < 1920 and 0 < t.y < 1080 for t in ts)
    assert len(ts) - points == (0 if points == 1 else 4)


def _samples(rng, truth, noise_mm: float, n_targets: int = 9, per: int = 20, iris=None) -> list[fit.Samples]:
    """Synthetic sessions: the geometric model sees ``truth(target_mm) + noise``; ``iris(target_mm)``: the
    iris stage's four features of a sample (NaN: no iris stage)."""
    out = []
    for i, t in enumerate(targets.layout(9, 4, 1920, 1080)[: n_targets + 4]):
        target_mm = np.array([t.x * 527 / 1920, t.y * 296 / 1080])
        s = fit.Samples(t, target_mm)
        for _ in range(per):
            geo = truth(target_mm) + rng.normal(0, noise_mm, 2)
            eyes = iris(target_mm) + rng.normal(0, 0.002, 4) if iris else np.full(4, np.nan)
            eyes = np.concatenate([(eyes[:2] + eyes[2:]) / 2, eyes])  # the mean of both, then each
            features = np.concatenate([geo, rng.normal(0, 1, len(FEATURES) - 5), [0.0, 0.0, 600.0 + i], eyes])
            s.features.append(features)
            s.geo_mm.append(geo)
            s.distance_mm.append(600.0)
        out.append(s)
    return out


def test_a_distorted_geometry_is_corrected():
    rng = np.random.default_rng(0)
    result = fit.calibrate(_samples(rng, lambda p: 0.8 * p + np.array([40.0, -30.0]), 3.0), MONITOR)
    v = result.validation
    assert result.used == "calibrated" and v["calibrated"]["median_px"] < v["uncalibrated"]["median_px"] / 3
    assert v["calibrated"]["median_deg"] < 1.0


def test_the_fit_never_makes_it_worse():
    """The geometry is already right: no candidate may beat it on the validation targets, so the profile
    keeps the geometric model (and says so)."""
    rng = np.random.default_rng(1)
    result = fit.calibrate(_samples(rng, lambda p: p, 25.0), MONITOR)
    assert result.used == "uncalibrated" or (
        result.validation["calibrated"]["median_px"] < result.validation["uncalibrated"]["median_px"]
    )
    if result.used == "uncalibrated":
        assert result.correction is None


def test_the_iris_features_join_the_fit_where_they_tell_what_the_gaze_model_misses():
    """The gaze model misses where the eyes turn beyond the head (a part only the iris stage sees): the fit
    takes the iris features, chosen on targets it did not see, and says both of its errors."""
    rng = np.random.default_rng(2)
    centre = np.array([263.5, 148.0])

    def geometry(p):  # sees the head's part only: half of the way from the centre
        return centre + 0.5 * (p - centre)

    def irises(p):  # where each iris sits between its eye's corners: the eyes' part, in eye widths
        h, v = (p - centre) / 2000
        return np.array([h, v, h, v])

    plain = fit.calibrate(_samples(rng, geometry, 3.0), MONITOR)
    seeing = fit.calibrate(_samples(rng, geometry, 3.0, iris=irises), MONITOR)
    assert plain.model.endswith("over gaze") or plain.model in ("none", "offset")
    assert seeing.model.endswith("over gaze+iris") and seeing.correction.needs_iris
    for result in (plain, seeing):
        assert set(result.errors) == {"held_out_target", "same_target"}
        assert result.errors["held_out_target"]["median_px"] > 0 and result.errors["same_target"]["samples"] > 0
    assert seeing.errors["held_out_target"]["median_px"] < plain.errors["held_out_target"]["median_px"] / 2


def test_a_robust_loss_is_chosen_where_some_frames_look_elsewhere():
    """A fifth of each target's frames read 80 mm off (a glance, a half blink the outlier rule kept): the
    squared loss follows them, the Huber loss weighs them less; 'auto' chooses it by the held-out error, and
    'squared' keeps the fit as profiles were made before."""
    rng = np.random.default_rng(4)
    samples = _samples(rng, lambda p: 0.8 * p + np.array([40.0, -30.0]), 3.0)
    for s in samples:
        for i in range(0, len(s), 5):
            s.geo_mm[i] = s.geo_mm[i] + np.array([80.0, 0.0])
            s.features[i][:2] = s.geo_mm[i]
    squared = fit.calibrate(samples, MONITOR, loss="squared")
    chosen = fit.calibrate(samples, MONITOR)
    assert squared.model.startswith("ridge") and chosen.model.startswith("huber"), (squared.model, chosen.model)
    held_out = [r.errors["held_out_target"]["median_px"] for r in (chosen, squared)]
    assert held_out[0] < 0.8 * held_out[1], held_out
    assert chosen.validation["calibrated"]["median_px"] < squared.validation["calibrated"]["median_px"]


def test_a_correction_over_the_iris_features_needs_them_in_every_frame():
    rng = np.random.default_rng(3)
    result = fit.calibrate(
        _samples(rng, lambda p: 0.5 * p, 3.0, iris=lambda p: np.array([p[0], p[1], p[0], p[1]]) / 1000), MONITOR
    )
    correction = result.correction
    assert correction is not None and correction.needs_iris
    again = Correction.from_dict(json.loads(json.dumps(correction.to_dict())))
    assert again.features == correction.features
    with_iris = np.concatenate([np.zeros(len(FEATURES)), [0.1, 0.0, 0.1, 0.0, 0.1, 0.0]])
    assert np.isfinite(again.apply(with_iris)).all()
    assert not np.isfinite(again.apply(np.concatenate([np.zeros(len(FEATURES)), [np.nan] * 6]))).all()


def test_too_few_targets_with_samples_names_each_count_and_what_to_change():
    rng = np.random.default_rng(4)
    samples = _samples(rng, lambda p: p, 3.0)
    for s in samples[2:]:
        s.features, s.geo_mm, s.distance_mm, s.seen = [], [], [], 30
    for s in samples[1:2]:  # a target with a few samples does not count either
        s.features, s.geo_mm, s.distance_mm = s.features[:4], s.geo_mm[:4], s.distance_mm[:4]
    for s in samples:
        s.target.start, s.target.end = 10, 40
    with pytest.raises(ValueError, match="1 fit targets have 5 samples or more, at least 4") as got:
        fit.calibrate(samples, MONITOR, settle_s=0.6)
    assert ": 4 of 31 frames" in str(got.value) and ": 0 of 31 frames" in str(got.value)
    assert "shorten settle_s or lengthen the ranges" in str(got.value)
    with pytest.raises(ValueError, match="widen the targets' frame ranges"):
        fit.calibrate(samples, MONITOR, settle_s=0.0)


def test_a_targets_files_ranges_are_taken_as_given_and_a_recordings_keep_its_settle(tmp_path):
    """Hand-written ranges are where the person looks (every frame counts); a recording's targets file marks
    the frames each target was shown and the settle its samples wait for."""
    doc = json.loads(DEMO_TARGETS.read_text())
    assert "settle_s" not in doc
    assert targets.read(DEMO_TARGETS, 595).settle_s == 0.0
    recorded = tmp_path / "targets.json"
    targets.write(recorded, targets.read(DEMO_TARGETS, 595).targets, doc["screen"], settle_s=0.6)
    assert targets.read(recorded, 595).settle_s == 0.6
    for change, message in (
        ({"settle_s": -1}, "settle_s must be seconds"),
        ({"setle_s": 0.6}, "unknown key 'setle_s'"),
    ):
        (tmp_path / "bad.json").write_text(json.dumps({**doc, **change}))
        with pytest.raises(GazeflowError, match=message):
            targets.read(tmp_path / "bad.json", 595)
    overlapping = json.loads(DEMO_TARGETS.read_text())
    overlapping["targets"][1]["from"] = overlapping["targets"][0]["to"] - 3
    (tmp_path / "overlap.json").write_text(json.dumps(overlapping))
    with pytest.raises(GazeflowError, match=r"targets 0 .* and 1 .* share frames 62-65"):
        targets.read(tmp_path / "overlap.json", 595)


def test_outliers_and_the_saccade_are_not_samples():
    t = targets.Target(100, 100, "fit", start=0, end=99)
    records = [{"frame": i, "t_capture": 0.0} for i in range(100)]
    seen = []

    class Mapper:
        monitor = MONITOR

        def sample(self, rec):
            seen.append(rec["frame"])
            return None if rec["frame"] == 50 else _Sample(rec["frame"])

    class _Sample:
        def __init__(self, frame):
            far = frame in (60, 61)  # a glance away
            self.geo_mm = (500.0, 500.0) if far else (30.0 + frame % 3, 30.0)
            self.features, self.distance_mm = np.zeros(len(ALL_FEATURES)), 600.0

    rules = CalibrationConfig(settle_s=0.5)
    (s,) = fit.gather(records, [t], Mapper(), rules, 30.0, by_frame=True)
    assert min(seen) == 15  # the first 0.5 s (15 frames at 30 fps) of a target are the eyes on their way
    assert s.seen == 85 and len(s) == 82 and s.outliers == 2  # frame 50 had no face


def _run(*args: str, env=None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gazeflow.services.cli", *args],
        capture_output=True,
        text=True,
        env=env or os.environ.copy(),
        timeout=300,
    )


def _bad_targets(tmp_path: Path, change) -> Path:
    doc = json.loads(DEMO_TARGETS.read_text())
    change(doc)
    path = tmp_path / "targets.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["targets"][3].update({"to": 700}), "beyond the video's 595 frames"),
        (lambda d: d["targets"][0].update({"x": 2500}), "off the 1920x1080 screen"),
        (lambda d: d.update({"targets": [t for t in d["targets"] if t["use"] == "check"][:3]}), "0 fit targets"),
        (lambda d: d["screen"].pop("width_mm"), "screen.width_mm"),
    ],
    ids=["range", "off-screen", "too-few", "no-size"],
)
def test_a_bad_targets_file_is_one_line_and_no_profile(tmp_path, config_home, change, message):
    proc = _run("calibrate", "--input", "demo", "--targets", str(_bad_targets(tmp_path, change)))
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    written = [p for p in config_home.rglob("*") if p.is_file() and p.name != "config.toml"]  # the suite's own
    assert not written  # no profile


def test_a_bad_profile_is_refused_before_anything_starts(tmp_path, config_home):
    junk = tmp_path / "junk.json"
    junk.write_text("{not json")
    foreign = tmp_path / "foreign.json"
    foreign.write_text(json.dumps({"format": profile.FORMAT, "monitor": {**MONITOR.to_dict(), "width": 2560}}))
    alien = tmp_path / "alien.json"
    alien.write_text(json.dumps({"settings": 1}))
    for path, message in (
        (junk, "unreadable"),
        (foreign, "was made for test 2560x1080"),
        (alien, "not a gazeflow profile"),
        (tmp_path / "none.json", "no file"),
    ):
        proc = _run("run-all", "--input", "demo", "--pointer", "null", "--profile", str(path))
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr and "capture:" not in proc.stderr  # nothing started
    proc = _run("run-all", "--profile", "my profile")
    assert proc.returncode == 2 and "profile name" in proc.stderr


def test_without_a_display_calibrate_says_how_to_fit_from_a_recording(config_home):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    proc = _run("calibrate", "--input", "demo", env=env)
    assert proc.returncode == 2 and "--replay DIR" in proc.stderr and len(proc.stderr.splitlines()) == 1


# --- the whole command -------------------------------------------------------------------------------------


@pytest.mark.integration
def test_a_recorded_calibration_of_the_demo_puts_the_pointer_where_the_person_looks(tmp_path, config_home):
    """The demo with hand-made targets (docs/demo-targets.json: frame ranges where the person looks up,
    down, to each side, mapped to screen points that way): the fit is validated on four check targets,
    and run-all with the profile puts the pointer on the matching side of the screen for every target."""
    proc = gazeflow(
        "calibrate", "--input", "demo", "--targets", str(DEMO_TARGETS), "--profile", "demo", "--log-interval", "0"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert re.search(r"validation +uncalibrated: median \d+ px = [\d.]+ deg", proc.stdout), proc.stdout
    assert re.search(r"validation +calibrated: median \d+ px = [\d.]+ deg", proc.stdout), proc.stdout
    saved = profile.load("demo")
    assert saved["used"] == "calibrated" and saved["monitor"]["width"] == 1920
    assert saved["points"] == sum(t["use"] == "fit" for t in json.loads(DEMO_TARGETS.read_text())["targets"])
    assert saved["validation"]["calibrated"]["median_px"] < saved["validation"]["uncalibrated"]["median_px"]
    results = tmp_path / "r.jsonl"
    proc = gazeflow(
        "run-all",
        "--input",
        "demo",
        "--max-speed",
        "--profile",
        "demo",
        "--pointer",
        "null",
        "--results",
        str(results),
        "--log-interval",
        "0",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "profile " in proc.stderr and "validation error median" in proc.stderr
    rows = {r["frame"]: r for r in read_results(results)}
    # the margins come from the profile's own error, not from one CPU's numerics: a target nearer the centre
    # line than the validation error may fall on either side of it
    error = saved["validation"]["calibrated"]["median_px"]
    margin = max(2 * error, 250)
    checked, misses = 0, []
    for t in json.loads(DEMO_TARGETS.read_text())["targets"]:
        points = [
            rows[f]["pointer"]
            for f in range(t["from"] + 15, t["to"] + 1)
            if rows[f]["pointer"] and "x" in rows[f]["pointer"]
        ]
        if not points:  # the eyes read closed throughout (looking down): the pointer held still
            continue
        x, y = np.median([[p["x"] for p in points], [p["y"] for p in points]], axis=1)
        if abs(t["x"] - 960) > margin:
            assert (x > 960) == (t["x"] > 960), (t, x, y, margin)
        if abs(t["y"] - 540) > margin:
            assert (y > 540) == (t["y"] > 540), (t, x, y, margin)
        misses.append(math.dist((x, y), (t["x"], t["y"])))
        checked += 1
    assert checked >= 12 and np.median(misses) < 2 * error, (misses, error)
    pointers = [r["pointer"] for r in rows.values() if r["pointer"]]
    at_edge = sum(min(p["x"], p["y"], 1919 - p["x"], 1079 - p["y"]) < 5 for p in pointers) / len(pointers)
    assert at_edge < 0.25, at_edge


class _Lines:
    """A process's stderr, line by line, as it comes."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.q: queue.Queue[str] = queue.Queue()
        self.text: list[str] = []
        threading.Thread(target=self._read, args=(proc,), daemon=True).start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            self.text.append(line)
            self.q.put(line)
        self.q.put("")

    def next_target(self, timeout_s: float = 120) -> tuple[int, int] | None:
        """The next 'target ... shown at (x, y)' line's position; None at the end."""
        while True:
            line = self.q.get(timeout=timeout_s)
            if not line:
                return None
            m = re.search(r"target \d+ of \d+ shown at \((\d+), (\d+)\)", line)
            if m:
                return int(m[1]), int(m[2])


def _red_dot(display: str, tmp_path: Path) -> tuple[float, float]:
    """Where the red centre of the target is in a screenshot of the whole X screen."""
    shot = tmp_path / "shot.ppm"
    subprocess.run(["import", "-display", display, "-window", "root", str(shot)], check=True, timeout=30)
    import cv2

    image = cv2.imread(str(shot))
    red = (image[:, :, 2] > 200) & (image[:, :, 1] < 80) & (image[:, :, 0] < 80)
    ys, xs = np.nonzero(red)
    assert len(xs), "no target on the screen"
    return float(xs.mean()), float(ys.mean())


def _calibrate_live(display: str, tmp_path: Path, *args: str) -> tuple[subprocess.Popen[str], _Lines]:
    config = tmp_path / "fast.toml"
    config.write_text(FAST)
    env = {**os.environ, "DISPLAY": display}
    cmd = [
        sys.executable,
        "-m",
        "gazeflow.services.cli",
        "calibrate",
        "--config",
        str(config),
        "--input",
        "demo",
        "--log-interval",
        "0",
        *args,
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, _Lines(proc)


@pytest.mark.integration
def test_calibrate_under_xvfb_shows_each_target_where_it_should_be_and_saves_a_profile(tmp_path, config_home):
    if not shutil.which("import"):
        pytest.skip("ImageMagick's import is not installed (apt-get install imagemagick): no screenshots")
    server, display = start_xvfb("1280x720x24")
    record = tmp_path / "session"
    try:
        proc, lines = _calibrate_live(display, tmp_path, "--points", "9", "--profile", "me", "--record", str(record))
        shown = []
        while (where := lines.next_target()) is not None:
            dot = _red_dot(display, tmp_path)
            assert abs(dot[0] - where[0]) <= 3 and abs(dot[1] - where[1]) <= 3, (dot, where)
            shown.append(where)
        out, _ = proc.communicate(timeout=120)
    finally:
        server.terminate()
        server.wait(5)
    assert proc.returncode == 0, "".join(lines.text)[-3000:]
    assert len(shown) == 13 and len(set(shown)) == 13  # 9 to fit, 4 to check, each somewhere else
    expected = {(round(t.x), round(t.y)) for t in targets.layout(9, 4, 1280, 720)}
    assert set(shown) == expected
    assert "validation uncalibrated: median" in out and "validation   calibrated: median" in out
    saved = profile.load("me")
    assert (saved["monitor"]["width"], saved["monitor"]["height"]) == (1280, 720)
    # the session was recorded: a fit from the recording needs no display
    recorded = json.loads((record / "targets.json").read_text())
    assert len(recorded["targets"]) == 13 and (record / "video.avi").stat().st_size > 0
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    replay = _run("calibrate", "--replay", str(record), "--profile", "again", "--log-interval", "0", env=env)
    assert replay.returncode == 0, replay.stderr[-2000:]
    assert "validation" in replay.stdout and profile.load("again")["monitor"]["width"] == 1280


@pytest.mark.integration
def test_calibrate_on_the_second_of_two_monitors_and_esc_saves_nothing(tmp_path, config_home):
    """Xvfb +xinerama with two screens of different sizes: the window covers monitor 1 exactly and its
    targets are laid out for it; Esc cancels and no profile is written."""
    server, display = start_xvfb("1280x1024x24", "800x600x24")
    try:
        env = {**os.environ, "DISPLAY": display}
        listed = _run("calibrate", "--list-monitors", env=env).stdout
        assert "0: monitor 0 1280x1024" in listed and "1: monitor 1 800x600" in listed, listed
        proc, lines = _calibrate_live(display, tmp_path, "--monitor", "1", "--profile", "second")
        where = lines.next_target()
        first = targets.layout(9, 4, 800, 600)[0]
        assert where == (round(first.x), round(first.y))
        geometry = subprocess.run(
            ["xdotool", "search", "--name", "gazeflow calibrate", "getwindowgeometry"],
            capture_output=True,
            text=True,
            env=env,
        ).stdout
        assert "Geometry: 800x600" in geometry, geometry
        subprocess.run(
            ["xdotool", "search", "--name", "gazeflow calibrate", "windowfocus", "--sync", "key", "Escape"],
            env=env,
            check=True,
            timeout=30,
        )
        out, _ = proc.communicate(timeout=60)
    finally:
        server.terminate()
        server.wait(5)
    assert proc.returncode == 1 and "calibration cancelled: nothing saved" in out
    assert not profile.path_of("second").exists()


def test_a_profiles_line_says_both_of_its_errors_in_pixels_and_degrees():
    """What the log's first lines, 'gazeflow ctl status' and the panel show of a profile."""
    from gazeflow.services.pointer import profile

    error = {"median_px": 220.4, "median_deg": 5.2, "p95_px": 900.0, "p95_deg": 20.0}
    data = {
        "used": "calibrated",
        "validation": {"calibrated": error},
        "errors": {"held_out_target": error, "same_target": {**error, "median_px": 191.0, "median_deg": 4.3}},
        "model": "huber 0.1 over point+head+iris",
    }
    line = profile.summary(data)
    assert "on targets it never saw 220 px = 5.2 deg" in line and "on its own targets 191 px = 4.3 deg" in line
