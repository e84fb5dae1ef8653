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
        command, "--config", str(chain_with(tmp_path / "chain.toml", "passthrough")), "--input", "demo",
        "--max-speed", "--pointer", "null", "--results", str(results), "--metrics", str(metrics),
        "--log-interval", "0", env=test_stages,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert results.read_bytes() == demo_runs[command].read_bytes()  # it changes nothing, frame by frame
    report = json.loads(metrics.read_text())
    assert list(report["stages"])[-2:] == ["passthrough", "pointer"]
    assert report["stages"]["passthrough"]["in"] == report["stages"]["passthrough"]["out"] == 595
    if command == "run-all":  # its own process, with its own trace row in every frame
        assert report["stages"]["passthrough"]["service_ms"]["p50"] > 0
    assert len(read_results(results)) == 595
