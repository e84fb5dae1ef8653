"""The first ten minutes: every mistake gets one line before any stage starts; the README's commands exist."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

from conftest import start_run, start_xvfb, wait_for

REPO = Path(__file__).parents[1]


def _gazeflow(*args: str, display: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    if display:
        env["DISPLAY"] = display
    return subprocess.run(
        [sys.executable, "-m", "gazeflow.services.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--device", "GPU"], "--device GPU (face_detection): device GPU is not available"),
        (["--device", "gaze=npu"], "--device NPU (gaze): device NPU is not available"),
        (["--pointer", "pyautogui"], "--pointer pyautogui needs a display"),
        (["--max-frames", "-1"], "--max-frames -1: Input should be greater than or equal to 0"),
        (["--precision", "INT4"], "--precision INT4: one of FP32, FP16, FP16-INT8, LOCAL-INT8"),
        (["--fps", "-3"], "--fps -3.0: Input should be greater than or equal to 0"),
        (["--input", "nothing.mp4"], "video not found: nothing.mp4"),
        (["--show"], "--show needs a display"),
        (["--detect-every", "0"], "--detect-every 0: Input should be greater than or equal to 1"),
        (["--output", "a.gif"], "a .mp4 or .avi file"),
        (["--profile", "no-such-profile"], "profile no-such-profile: no file"),
    ],
)
@pytest.mark.parametrize("command", ["run-all", "run-sync"])
def test_each_mistake_is_one_line_before_any_stage_starts(command, args, message):
    proc = _gazeflow(command, *args)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert "gazeflow.stage" not in proc.stderr and "capture:" not in proc.stderr  # nothing was started


def test_a_precision_in_any_case_is_accepted():
    proc = _gazeflow(
        "run-sync",
        "--precision",
        "fp16",
        "--inference-precision",
        "F32",
        "--max-frames",
        "2",
        "--pointer",
        "null",
        "--log-interval",
        "0",
    )
    assert proc.returncode == 0, proc.stderr[-1500:]
    assert "inference f32" in proc.stdout


def test_a_mistyped_flag_names_the_nearest_one_with_the_commands_usage():
    proc = _gazeflow("run-all", "--max-frams", "5")
    assert proc.returncode == 2
    assert "Usage: gazeflow run-all" in proc.stderr and "Did you mean one of: '--max-frames'" in proc.stderr
    proc = _gazeflow("run-al")
    assert proc.returncode == 2 and "Did you mean 'run-all'?" in proc.stderr


@pytest.mark.integration
def test_a_second_run_on_the_same_display_is_refused(tmp_path):
    server, display = start_xvfb("1280x720x24")
    try:
        first = start_run(
            "--input", "demo", "--loop", "--pointer", "pyautogui", "--log-interval", "0", env={"DISPLAY": display}
        )
        try:
            wait_for(lambda: _gazeflow("ctl", "status").returncode == 0, "the first run's pointer")
            second = _gazeflow("run-all", "--input", "demo", "--pointer", "pyautogui", display=display)
            assert second.returncode == 2 and "already moves the pointer" in second.stderr, second.stderr
            assert "gazeflow.stage" not in second.stderr
        finally:
            first.send_signal(2)
            first.communicate(timeout=30)
    finally:
        server.terminate()
        server.wait(5)


def _readme_commands() -> list[list[str]]:
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```(?:sh|bash)\n(.*?)```", text, re.S)
    out = []
    for block in blocks:
        for line in block.splitlines():
            line = line.split("#", 1)[0].split("&&", 1)[0].strip()
            if line.startswith("gazeflow "):
                out.append(line.split())
    return out


def test_every_gazeflow_command_in_the_readme_exists_and_its_flags_parse():
    """Each 'gazeflow ...' line of the README, parsed as the command would parse it (its --help runs too)."""
    from gazeflow.services.cli import _commands, cli

    _commands()
    commands = _readme_commands()
    assert len(commands) > 10
    for words in commands:
        args = words[1:]
        if "|" in args:  # a line that lists alternatives, such as 'ctl pause | resume'
            args = args[: args.index("|")]
        try:
            cli.commands[args[0]].make_context(f"gazeflow {args[0]}", args[1:])  # raises on an unknown flag
        except click.exceptions.Exit:  # --help
            pass
    for name in sorted({w[1] for w in commands}):
        assert _gazeflow(name, "--help").returncode == 0, name


def test_a_worker_label_the_config_does_not_have_is_one_line():
    for name, message in (("face_detection:1", "has one process in this config"), ("gaze:x", "one process")):
        proc = _gazeflow("stage", name, "--config", str(REPO / "deploy" / "local.toml"))
        assert proc.returncode == 2 and message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
