"""The stage registry: every stage declared once, and a new stage added by its declaration alone."""

from __future__ import annotations

import json
import textwrap

import pytest

from gazeflow.shared import config, registry
from gazeflow.shared.errors import GazeflowError

from conftest import gazeflow, read_results

PASS_THROUGH = '''
from gazeflow.shared.registry import Stage
from gazeflow.shared.stage import Processor


class PassThrough(Processor):
    """Counts the frames that have a gaze and passes every message on as it came."""

    keeps_pixels = False

    def finish(self, msg, outputs):
        return msg


STAGE = Stage("passthrough", "inference", "passthrough_stage:PassThrough", output="checked", restartable=True)
'''


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
        (["capture", "pointer", "gaze", "pointer"], "only inference stages"),
        (["capture", "detector", "pointer"], "unknown stage 'detector'"),
    ],
)
def test_a_bad_chain_is_one_line(tmp_path, chain, error):
    f = tmp_path / "c.toml"
    f.write_text(f"chain = {json.dumps(chain)}\n")
    with pytest.raises(GazeflowError, match=error):
        config.load(str(f))


@pytest.fixture
def plugin(tmp_path):
    """A stage in a package of its own, declared as an entry point in the group gazeflow.stages,
    and a topology that puts it between gaze and the pointer: nothing of gazeflow is edited."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "passthrough_stage.py").write_text(textwrap.dedent(PASS_THROUGH))
    dist = site / "gazeflow_passthrough-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: gazeflow-passthrough\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[gazeflow.stages]\npassthrough = passthrough_stage:STAGE\n")
    topology = tmp_path / "chain.toml"
    chain = [*registry.default_chain()[:-1], "passthrough", registry.default_chain()[-1]]
    topology.write_text(f"chain = {json.dumps(chain)}\n")
    return {"PYTHONPATH": str(site)}, topology


@pytest.mark.integration
@pytest.mark.parametrize("command", ["run-all", "run-sync"])
def test_a_stage_added_by_its_declaration_runs_in_run_all_and_run_sync(demo_runs, plugin, tmp_path, command):
    env, topology = plugin
    results, metrics = tmp_path / "r.jsonl", tmp_path / "m.json"
    proc = gazeflow(
        command, "--config", str(topology), "--input", "demo", "--max-speed", "--pointer", "null",
        "--results", str(results), "--metrics", str(metrics), "--log-interval", "0", env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert results.read_bytes() == demo_runs[command].read_bytes()  # it changes nothing, frame by frame
    report = json.loads(metrics.read_text())
    assert list(report["stages"])[-2:] == ["passthrough", "pointer"]
    assert report["stages"]["passthrough"]["in"] == report["stages"]["passthrough"]["out"] == 595
    if command == "run-all":  # its own process, with its own trace row in every frame
        assert report["stages"]["passthrough"]["service_ms"]["p50"] > 0
    assert len(read_results(results)) == 595
