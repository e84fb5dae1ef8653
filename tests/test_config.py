from pathlib import Path

import pytest

from gazeflow.services.cli import pipeline_config
from gazeflow.shared import config
from gazeflow.shared.errors import GazeflowError
from gazeflow.shared.links import LinkEnd

REPO = Path(__file__).resolve().parents[1]


def test_the_shipped_config_file_is_every_setting_at_its_default_with_its_help():
    """deploy/local.toml is what 'gazeflow config --defaults' writes: the settings' declarations, nothing by hand."""
    from gazeflow.shared.config_file import to_toml

    shipped = (REPO / "deploy/local.toml").read_text()
    assert shipped == to_toml(config.load(None, user_file=False), defaults=True), "make config-file"
    cfg = config.load(str(REPO / "deploy/local.toml"))
    assert cfg.assets_dir == config.default_assets_dir() and cfg.chain == list(config.registry.default_chain())
    assert "# pointer backend: auto" in shipped and "[stages.gaze]" in shipped


def test_flags_override_the_file(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('pace = "realtime"\n[stages.gaze]\nprecision = "FP32"\n')
    cfg = pipeline_config(
        [
            "--config",
            str(f),
            "--max-speed",
            "--device",
            "gaze=AUTO",
            "--requests",
            "face_detection=3",
            "--pointer",
            "null",
        ]
    )
    assert cfg.pace == "max-speed" and cfg.stages["gaze"].precision == "FP32"
    assert cfg.stages["gaze"].device == "AUTO" and cfg.stages["face_detection"].requests == 3
    assert cfg.pointer.backend == "null" and cfg.hint_for("face_detection") == "THROUGHPUT"


def test_the_users_config_file_comes_first_then_config_then_flags(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    (tmp_path / "gazeflow").mkdir()
    (tmp_path / "gazeflow" / "config.toml").write_text('fps = 10.0\nloop = true\n[pointer]\nclick = "dwell"\n')
    f = tmp_path / "c.toml"
    f.write_text("fps = 20.0\n")
    cfg = pipeline_config(["--config", str(f), "--click", "blink"])
    assert (cfg.fps, cfg.loop, cfg.pointer.click) == (20.0, True, "blink")


def test_precision_flag_for_every_stage_then_one():
    cfg = pipeline_config(["--precision", "FP16-INT8", "--precision", "gaze=FP32"])
    assert cfg.stages["face_detection"].precision == "FP16-INT8"
    assert cfg.stages["landmarks_headpose"].precision == "FP16-INT8" and cfg.stages["gaze"].precision == "FP32"
    with pytest.raises(GazeflowError, match=r"--precision INT4: one of FP32, .* \(stages.gaze.precision\)"):
        pipeline_config(["--precision", "gaze=INT4"])
    for flag in ("--precision", "--device"):
        with pytest.raises(GazeflowError, match=f"{flag} capture=CPU: capture runs no model"):
            pipeline_config([flag, "capture=CPU"])


def test_every_error_names_the_flag_or_the_file_and_key(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text("[pointer]\ndwell_ms = -5\n")
    with pytest.raises(GazeflowError, match=r"^c.toml: pointer.dwell_ms -5: Input should be greater than 0$"):
        config.load(str(f))
    with pytest.raises(GazeflowError, match=r"^--max-frames -1: .*greater than or equal to 0 \(max_frames\)$"):
        pipeline_config(["--max-frames", "-1"])
    f.write_text("[pointer]\ndwel_ms = 5\n")
    with pytest.raises(GazeflowError, match=r"c.toml: pointer.dwel_ms: unknown key 'dwel_ms' \(did you mean dwell_ms"):
        config.load(str(f))


@pytest.mark.parametrize(
    "text, error",
    [
        ("colour = 1", "unknown key 'colour'"),
        ("[stages.detector]\ndevice = 'CPU'", "unknown stage 'detector'"),
        ("[stages.gaze]\nprecision = 'INT4'", "precision 'INT4'"),
        ("fps = 'fast'", "fps 'fast': Input should be a valid number"),
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
    cfg = pipeline_config(["--workers", "landmarks_headpose=3"])
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
        ("[stages.gaze]\nworkers = 0", "stages.gaze.workers 0: Input should be greater than or equal to 1"),
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
        _cfg(
            tmp_path,
            "[stages.gaze]\noutput = 'push+bind:tcp://0.0.0.0:5557'\n"
            f"[stages.pointer]\ninput = 'pull+connect:tcp://gaze.example:5557'\n{links}",
        )
    assert error in str(exc.value) and "\n" not in str(exc.value)
    loopback = (
        "[stages.gaze]\noutput = 'push+bind:tcp://127.0.0.1:5557'\n[stages.pointer]\ninput = "
        "'pull+connect:tcp://127.0.0.1:5557'"
    )
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
