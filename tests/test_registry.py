"""The stage registry: every stage declared once, and a new stage added by its declaration alone."""

from __future__ import annotations

import json

import pytest

from gazeflow.shared import config, registry
from gazeflow.shared.errors import GazeflowError

from conftest import chain_with, gazeflow, read_results


def test_the_default_chain_and_its_links_come_from_the_registry():
    chain = registry.default_chain()
    assert chain[0] == "capture" and chain[-1] == "pointer"
    assert [link.name for link in registry.links(chain)] == ["frames", "faces", "eyes", "gaze"]
    assert config.Config().chain == list(chain)
    for name in chain[1:-1]:
        spec = registry.get(name)
        assert spec.role == "inference" and spec.models and spec.restartable and spec.scalable


@pytest.mark.parametrize(
    "chain, error",
    [
        (["capture", "gaze"], "end with a sink"),
        (["face_detection", "pointer"], "start with a source"),
        (["capture", "pointer", "gaze", "pointer"], "inference stages, then sinks"),
        (["capture", "gaze", "calibration", "view"], "calibration ends a chain"),
        (["capture", "gaze", "pointer", "pointer"], "each stage once"),
        (["capture", "detector", "pointer"], "unknown stage 'detector'"),
    ],
)
def test_a_bad_chain_is_one_line(tmp_path, chain, error):
    f = tmp_path / "c.toml"
    f.write_text(f"chain = {json.dumps(chain)}\n")
    with pytest.raises(GazeflowError, match=error):
        config.load(str(f))


@pytest.mark.integration
@pytest.mark.parametrize("command", ["run-all", "run-sync"])
def test_a_stage_added_by_its_declaration_runs_in_run_all_and_run_sync(demo_runs, test_stages, tmp_path, command):
    """A pass-through stage in a package of its own (tests/conftest.py: an entry point in the group
    gazeflow.stages), put between gaze and the pointer by a topology file: nothing of gazeflow is edited."""
    results, metrics = tmp_path / "r.jsonl", tmp_path / "m.json"
    proc = gazeflow(
        command,
        "--config",
        str(chain_with(tmp_path / "chain.toml", "passthrough")),
        "--input",
        "demo",
        "--max-speed",
        "--pointer",
        "null",
        "--results",
        str(results),
        "--metrics",
        str(metrics),
        "--log-interval",
        "0",
        env=test_stages,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert results.read_bytes() == demo_runs[command].read_bytes()  # it changes nothing, frame by frame
    report = json.loads(metrics.read_text())
    assert list(report["stages"])[-2:] == ["passthrough", "pointer"]
    assert report["stages"]["passthrough"]["in"] == report["stages"]["passthrough"]["out"] == 595
    if command == "run-all":  # its own process, with its own trace row in every frame
        assert report["stages"]["passthrough"]["service_ms"]["p50"] > 0
    assert len(read_results(results)) == 595


@pytest.fixture
def marker_here(test_stages, monkeypatch):
    """The test stages' package importable in this process too, and the registry read again with it."""
    import importlib
    import sys

    from gazeflow.services.view import draw

    monkeypatch.setattr(sys, "path", [test_stages["PYTHONPATH"], *sys.path])
    importlib.invalidate_caches()
    registry.stages.cache_clear()
    draw._drawers.cache_clear()
    yield
    monkeypatch.undo()
    registry.stages.cache_clear()
    draw._drawers.cache_clear()


@pytest.mark.integration
@pytest.mark.parametrize("command", ["run-all", "run-sync"])
def test_a_stage_brings_its_setting_and_its_result_field(marker_here, test_stages, tmp_path, command, assets):
    """marker (tests/conftest.py), from an entry point: its table [marker] and its flag --mark come from its
    manifest; its field is in every results line, its counts in the metrics, its overlay in the view."""
    import cv2
    import numpy as np

    from gazeflow.services.view.draw import annotate

    results, metrics, video = tmp_path / "r.jsonl", tmp_path / "m.json", tmp_path / "v.mp4"
    chain = chain_with(tmp_path / "chain.toml", "marker")
    proc = gazeflow(
        command,
        "--config",
        str(chain),
        "--mark",
        "7",
        "--input",
        "demo",
        "--max-speed",
        "--max-frames",
        "30",
        "--pointer",
        "null",
        "--results",
        str(results),
        "--metrics",
        str(metrics),
        "--output",
        str(video),
        "--log-interval",
        "0",
        env=test_stages,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = read_results(results)
    assert len(rows) == 30 and all(r["mark"] == 7 for r in rows)
    assert list(rows[0])[-3:] == ["mark", "pointer", "paused"]  # in chain order
    report = json.loads(metrics.read_text())
    assert report["stages"]["marker"]["marked"] == 30 and report["stages"]["marker"]["mark"] == 7
    plain = cv2.VideoCapture(str(assets / "videos" / "demo.mp4")).read()[1]
    canvas = annotate(plain.copy(), {**rows[0], "t_capture": 0.0, "trace": []}, {"mark"}, 30.0)
    (text,) = canvas.drawn("mark", "text")
    assert text.text == "mark 7"
    (x0, y1), (x1, y0) = text.points
    first = cv2.VideoCapture(str(video)).read()[1]
    box = (slice(y0, y1), slice(x0, x1))
    assert np.abs(first[box].astype(int) - plain[box].astype(int)).mean() > 20  # drawn where it says
    shown = gazeflow("config", "--config", str(chain), env=test_stages)
    assert "[marker]" in shown.stdout and "mark = 1" in shown.stdout
    assert "--mark" in gazeflow("run-all", "--help", env=test_stages).stdout
