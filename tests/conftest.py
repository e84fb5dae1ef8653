"""Shared test fixtures: the fetched assets and a way to run the gazeflow command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from gazeflow.shared.config import default_assets_dir

ASSETS = Path(default_assets_dir())


@pytest.fixture(scope="session")
def assets() -> Path:
    if not (ASSETS / "videos" / "demo.mp4").is_file():
        pytest.fail(f"assets not fetched into {ASSETS}: run 'make setup ASSETS_MIRROR=...' first")
    return ASSETS


def gazeflow(*args: str, timeout: float = 300, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the gazeflow command as a user would, capturing its output."""
    return subprocess.run(
        [sys.executable, "-m", "gazeflow.services.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
    )


def read_results(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="session")
def demo_runs(assets: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The whole demo video through run-all (max speed) and run-sync, once per session."""
    out = tmp_path_factory.mktemp("demo")
    files = {}
    for command in ("run-all", "run-sync"):
        results, metrics = out / f"{command}.jsonl", out / f"{command}.json"
        proc = gazeflow(
            command, "--input", "demo", "--max-speed", "--pointer", "null",
            "--results", str(results), "--metrics", str(metrics), "--log-interval", "0",
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]
        files[command] = results
        files[command + "-metrics"] = metrics
        files[command + "-stdout"] = out / f"{command}.out"
        files[command + "-stdout"].write_text(proc.stdout)
    return files


def title(p: psutil.Process) -> str:
    """What ps shows for a process (setproctitle pads the argument list with empty strings)."""
    try:
        return " ".join(a for a in p.cmdline() if a)
    except psutil.Error:  # exited (a zombie until run-all reaps it) or gone
        return ""


RUNNING: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def _no_run_outlives_its_test():
    """A failing test must not leave a looping pipeline behind to slow down the rest of the suite."""
    yield
    while RUNNING:
        proc = RUNNING.pop()
        if proc.poll() is None:
            proc.kill()  # its stages get SIGTERM from Linux (PR_SET_PDEATHSIG)
            proc.wait(10)


def start_run(*args: str) -> subprocess.Popen[str]:
    """Start gazeflow run-all in the background; return once capture is running (frames flow)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "gazeflow.services.cli", "run-all", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    RUNNING.append(proc)
    parent = psutil.Process(proc.pid)
    deadline = time.monotonic() + 120
    while "gazeflow-stage capture" not in {title(c) for c in parent.children() if c.is_running()}:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"capture never started: {proc.communicate()[1][-2000:]}")
        time.sleep(0.2)
    return proc


def stage_process(proc: subprocess.Popen[str], name: str) -> psutil.Process:
    return next(c for c in psutil.Process(proc.pid).children() if title(c) == f"gazeflow-stage {name}")


def kill_in_replay(tmp_path: Path, victim: str, *args: str) -> tuple[str, dict, list[int]]:
    """kill -9 one stage process 3 s into a 300-frame lossless replay; check run-all restarted it and
    finished in frame order. Returns stdout, the metrics report and the frame numbers of the results."""
    results, metrics = tmp_path / "r.jsonl", tmp_path / "m.json"
    proc = start_run("--input", "demo", "--max-speed", "--max-frames", "300", "--pointer", "null",
                     "--results", str(results), "--metrics", str(metrics), "--log-interval", "0", *args)  # fmt: skip
    time.sleep(3)  # frames are flowing
    stage_process(proc, victim).kill()
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err[-2000:]
    assert f"stage {victim} died: killed by SIGKILL; restarting it" in err
    report = json.loads(metrics.read_text())
    frames = [r["frame"] for r in read_results(results)]
    assert frames == sorted(set(frames)) and len(frames) == report["frames"]
    return out, report, frames


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--containers", action="store_true", help="also build the image and run compose (slow)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--containers"):
        return
    skip = pytest.mark.skip(reason="builds and runs containers: make container-test")
    for item in items:
        if "container" in item.keywords:
            item.add_marker(skip)
