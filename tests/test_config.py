from pathlib import Path

import pytest

from gazeflow.services.cli import build_parser, overrides
from gazeflow.shared import config
from gazeflow.shared.errors import GazeflowError

REPO = Path(__file__).resolve().parents[1]


def test_the_shipped_config_file_loads():
    cfg = config.load(str(REPO / "deploy/local.toml"))
    assert cfg.pace == "realtime" and cfg.stages["face_detection"].precision == "FP16"


def test_flags_override_the_file(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('pace = "realtime"\n[stages.gaze]\nprecision = "FP32"\n')
    args = build_parser().parse_args(
        ["run-all", "--max-speed", "--device", "gaze=AUTO", "--requests", "face_detection=3", "--pointer", "null"]
    )
    cfg = config.load(str(f), overrides(args))
    assert cfg.pace == "max-speed" and cfg.stages["gaze"].precision == "FP32"
    assert cfg.stages["gaze"].device == "AUTO" and cfg.stages["face_detection"].requests == 3
    assert cfg.pointer.backend == "null" and cfg.hint_for("face_detection") == "THROUGHPUT"


@pytest.mark.parametrize(
    "text, error",
    [
        ("colour = 1", "unknown key 'colour'"),
        ("[stages.detector]\ndevice = 'CPU'", "unknown stage 'detector'"),
        ("[stages.gaze]\nprecision = 'INT4'", "precision 'INT4'"),
        ("fps = 'fast'", "expected float"),
        ("pace = [", "c.toml"),
    ],
)
def test_bad_config_is_one_clear_line(tmp_path, text, error):
    f = tmp_path / "c.toml"
    f.write_text(text)
    with pytest.raises(GazeflowError, match=error):
        config.load(str(f))


def test_default_links_bind_on_the_side_that_stays_single():
    cfg = config.Config(run_dir="/r")
    assert cfg.endpoint("capture", "output") == "push+bind:ipc:///r/frames"
    assert cfg.endpoint("face_detection", "input") == "pull+connect:ipc:///r/frames"
    assert cfg.endpoint("face_detection", "output") == "push+connect:ipc:///r/faces"
    assert cfg.endpoint("landmarks_headpose", "input") == "pull+bind:ipc:///r/faces"


def test_endpoint_specs():
    from gazeflow.shared.transport import Endpoint

    ep = Endpoint.parse("pull+connect:tcp://10.0.0.2:5555")
    assert (ep.pattern, ep.mode, ep.address) == ("pull", "connect", "tcp://10.0.0.2:5555")
    for bad in ("tcp://x:1", "pub+bind:ipc:///x", "push+bind:tcp://*:5555", "push+listen:ipc:///x"):
        with pytest.raises(GazeflowError):
            Endpoint.parse(bad)
