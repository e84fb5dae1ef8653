from pathlib import Path

import pytest

from gazeflow.services.cli import build_parser, overrides
from gazeflow.shared import config
from gazeflow.shared.errors import GazeflowError
from gazeflow.shared.links import LinkEnd

REPO = Path(__file__).resolve().parents[1]


def test_the_shipped_config_file_lists_every_key_with_its_default():
    import dataclasses
    import tomllib

    text = tomllib.loads((REPO / "deploy/local.toml").read_text())
    defaults = dataclasses.asdict(config.Config())
    defaults["assets_dir"] = defaults["run_dir"] = ""  # "" stands for the default, which depends on the host

    def same(file, default, where):
        if isinstance(default, dict):
            assert set(file) == set(default), (where, set(default) ^ set(file))
            for key in default:
                same(file[key], default[key], f"{where}.{key}")
        else:
            assert file == (list(default) if isinstance(default, tuple) else default), where

    same(text, defaults, "local.toml")
    cfg = config.load(str(REPO / "deploy/local.toml"))
    assert cfg.assets_dir == config.default_assets_dir() and cfg.chain == list(config.registry.default_chain())


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


def test_precision_flag_for_every_stage_then_one():
    args = build_parser().parse_args(["run-all", "--precision", "FP16-INT8", "--precision", "gaze=FP32"])
    cfg = config.load(None, overrides(args))
    assert cfg.stages["face_detection"].precision == "FP16-INT8"
    assert cfg.stages["landmarks_headpose"].precision == "FP16-INT8" and cfg.stages["gaze"].precision == "FP32"
    bad = build_parser().parse_args(["run-all", "--precision", "gaze=INT4"])
    with pytest.raises(GazeflowError, match=r"precision 'INT4' \(stages.gaze.precision"):
        config.load(None, overrides(bad))
    for flag in ("--precision", "--device"):
        with pytest.raises(GazeflowError, match=f"{flag} capture=CPU: capture runs no model"):
            overrides(build_parser().parse_args(["run-all", flag, "capture=CPU"]))


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


def test_default_links_bind_upstream_or_on_the_side_that_stays_single():
    cfg = config.Config(run_dir="/r")
    assert str(cfg.endpoint("capture", "output")) == "push+bind:ipc:///r/frames"
    assert str(cfg.endpoint("face_detection", "input")) == "pull+connect:ipc:///r/frames"
    assert str(cfg.endpoint("face_detection", "output")) == "push+bind:ipc:///r/faces"
    assert str(cfg.endpoint("landmarks_headpose", "input")) == "pull+connect:ipc:///r/faces"
    cfg.stages["face_detection"].workers = 2  # its workers connect to the single processes on both sides
    assert str(cfg.endpoint("face_detection", "input")) == "pull+connect:ipc:///r/frames"
    assert LinkEnd.of(cfg, "face_detection", "input").into_workers  # credits go back to the distributor
    assert str(cfg.endpoint("face_detection", "output")) == "push+connect:ipc:///r/faces"
    assert str(cfg.endpoint("landmarks_headpose", "input")) == "pull+bind:ipc:///r/faces"


def test_endpoint_specs():
    from gazeflow.shared.transport import Endpoint

    ep = Endpoint.parse("pull+connect:tcp://10.0.0.2:5555")
    assert (ep.pattern, ep.mode, ep.address) == ("pull", "connect", "tcp://10.0.0.2:5555")
    for bad in ("tcp://x:1", "pub+bind:ipc:///x", "push+bind:tcp://*:5555", "push+listen:ipc:///x"):
        with pytest.raises(GazeflowError):
            Endpoint.parse(bad)


def _cfg(tmp_path, text: str) -> config.Config:
    f = tmp_path / "t.toml"
    f.write_text(text)
    return config.load(str(f))


def test_workers_flag_and_links_next_to_a_scaled_stage(tmp_path):
    args = build_parser().parse_args(["run-all", "--workers", "landmarks_headpose=3"])
    cfg = config.load(None, overrides(args))
    assert cfg.workers("landmarks_headpose") == 3 and cfg.scaled
    # the single neighbours bind; the link into the workers carries credits (ROUTER -> DEALER)
    assert str(cfg.endpoint("face_detection", "output")).startswith("push+bind:ipc://")
    assert LinkEnd.of(cfg, "face_detection", "output").into_workers  # distributed by credit
    assert str(cfg.endpoint("landmarks_headpose", "input")).startswith("pull+connect:ipc://")
    assert str(cfg.endpoint("landmarks_headpose", "output")).startswith("push+connect:ipc://")
    assert str(cfg.endpoint("gaze", "input")).startswith("pull+bind:ipc://")
    plain = config.load(None)
    assert str(plain.endpoint("face_detection", "output")).startswith("push+bind:")  # upstream binds by default


@pytest.mark.parametrize(
    "text, error",
    [
        ("[stages.capture]\nworkers = 2", "stages.capture.workers 2: must be 1 (one process holds its state)"),
        ("[stages.gaze]\nworkers = 0", "stages.gaze.workers 0: must be 1 or more"),
        (
            "[stages.face_detection]\nworkers = 2\n[stages.landmarks_headpose]\nworkers = 2",
            "both scaled: scale one of two neighbours (faces link)",
        ),
        (
            "[stages.gaze]\noutput = 'push+bind:tcp://10.0.0.2:5557'",
            "link gaze (gaze -> pointer): stages.pointer.input is not set",
        ),
        (
            "[stages.gaze]\noutput = 'push+bind:tcp://10.0.0.2:5557'\n"
            "[stages.pointer]\ninput = 'pull+connect:tcp://10.0.0.2:5558'",
            "tcp://10.0.0.2:5558 does not reach tcp://10.0.0.2:5557",
        ),
        (
            "[stages.gaze]\noutput = 'push+bind:tcp://10.0.0.2:5557'\n"
            "[stages.pointer]\ninput = 'pull+bind:tcp://10.0.0.2:5557'",
            "one end binds and the other connects",
        ),
        (
            "[stages.gaze]\nworkers = 2\noutput = 'push+bind:tcp://10.0.0.2:5557'\n"
            "[stages.pointer]\ninput = 'pull+connect:tcp://10.0.0.2:5557'",
            "gaze is scaled, so pointer must bind and its workers connect",
        ),
        ("[stages.gaze]\noutput = 'push+bind:tcp://*:5557'", "not '*'"),
    ],
)
def test_topology_errors_are_one_clear_line(tmp_path, text, error):
    with pytest.raises(GazeflowError) as exc:
        _cfg(tmp_path, text)
    assert error in str(exc.value) and "\n" not in str(exc.value)


def test_a_bind_on_every_interface_is_reached_by_a_host_name(tmp_path):
    cfg = _cfg(
        tmp_path,
        "[stages.gaze]\noutput = 'push+bind:tcp://0.0.0.0:5557'\n"
        "[stages.pointer]\ninput = 'pull+connect:tcp://gaze.example:5557'\n"
        "[links.gaze]\nbind_all = true\ninsecure = true",
    )
    assert str(cfg.endpoint("pointer", "input")) == "pull+connect:tcp://gaze.example:5557"


@pytest.mark.parametrize(
    "links, error",
    [
        ("", "link gaze (gaze -> pointer): stages.gaze.output binds every interface (0.0.0.0): name one address"),
        (
            "[links.gaze]\nbind_all = true",
            "stages.pointer.input crosses the network (tcp://gaze.example:5557) unencrypted: set curve_keys",
        ),
    ],
)
def test_secure_by_default_across_hosts_one_line_naming_the_link(tmp_path, links, error):
    with pytest.raises(GazeflowError) as exc:
        _cfg(tmp_path, "[stages.gaze]\noutput = 'push+bind:tcp://0.0.0.0:5557'\n"
                       f"[stages.pointer]\ninput = 'pull+connect:tcp://gaze.example:5557'\n{links}")  # fmt: skip
    assert error in str(exc.value) and "\n" not in str(exc.value)
    loopback = "[stages.gaze]\noutput = 'push+bind:tcp://127.0.0.1:5557'\n[stages.pointer]\ninput = " \
               "'pull+connect:tcp://127.0.0.1:5557'"  # fmt: skip
    assert _cfg(tmp_path, loopback).curve_keys == ""  # on this host plaintext is fine


def test_inference_threads_default_to_one_where_processes_outnumber_cores(monkeypatch):
    """Fewer cores than processes: one thread per request everywhere; more cores: the device's default,
    except one for the sub-millisecond models at real-time pace; a configured number always wins."""
    import os

    from gazeflow.shared.config import Config

    cfg = Config(pace="realtime")
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(2)))
    assert [cfg.threads_for(s) for s in ("face_detection", "landmarks_headpose", "gaze")] == [1, 1, 1]
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(16)))
    assert [cfg.threads_for(s) for s in ("face_detection", "landmarks_headpose", "gaze")] == [0, 1, 1]
    fast = Config(pace="max-speed")
    assert [fast.threads_for(s) for s in ("face_detection", "landmarks_headpose", "gaze")] == [0, 0, 0]
    cfg.stages["face_detection"].threads = 3
    assert cfg.threads_for("face_detection") == 3
    assert not cfg.few_cores  # 16 cores: capture's decoder keeps FFmpeg's own thread count


def test_a_video_decodes_the_same_on_one_thread(assets):
    from gazeflow.services.capture.source import Source

    one, default = (
        Source(str(assets / "videos" / "demo.mp4"), decode_threads=1),
        Source(str(assets / "videos" / "demo.mp4")),
    )
    for _ in range(20):
        assert (one.read() == default.read()).all()
