"""Shared test fixtures: the fetched assets and a way to run the gazeflow command."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from gazeflow.shared.config import default_assets_dir

ASSETS = Path(default_assets_dir())
DEMO_TARGETS = Path(__file__).parents[1] / "docs" / "demo-targets.json"


def pytest_configure(config: pytest.Config) -> None:
    """The suite never reads the user's own profiles (a 'default' profile would change every result), nor
    writes into the user's model cache. With --inference-precision, every run of the suite computes in that
    precision (the user's config file of the suite's own config folder says so)."""
    import tempfile

    for var in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME"):
        os.environ[var] = tempfile.mkdtemp(prefix=f"gazeflow-test-{var.split('_')[1].lower()}-")
    precision = config.getoption("--inference-precision")
    if precision:
        from gazeflow.shared import registry

        folder = Path(os.environ["XDG_CONFIG_HOME"]) / "gazeflow"
        folder.mkdir(parents=True, exist_ok=True)
        tables = "".join(f'[stages.{n}]\ninference_precision = "{precision}"\n' for n in registry.with_models())
        (folder / "config.toml").write_text(tables)


def pytest_unconfigure(config: pytest.Config) -> None:
    import shutil

    for var in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME"):
        if "gazeflow-test-" in os.environ.get(var, ""):
            shutil.rmtree(os.environ[var], ignore_errors=True)


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
    """The whole demo video through run-all (max speed) and run-sync, once per session; and run-all detecting
    every frame, the reference of topologies that cannot track (several face-detection workers, tcp)."""
    out = tmp_path_factory.mktemp("demo")
    files = {}
    for name, command, extra in (
        ("run-all", "run-all", []),
        ("run-sync", "run-sync", []),
        ("run-all-every-frame", "run-all", ["--detect-every", "1"]),
    ):
        results, metrics = out / f"{name}.jsonl", out / f"{name}.json"
        proc = gazeflow(
            command,
            "--input",
            "demo",
            "--max-speed",
            "--pointer",
            "null",
            *extra,
            "--results",
            str(results),
            "--metrics",
            str(metrics),
            "--log-interval",
            "0",
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        files[name] = results
        files[name + "-metrics"] = metrics
        files[name + "-stdout"] = out / f"{name}.out"
        files[name + "-stdout"].write_text(proc.stdout)
    return files


@pytest.fixture(scope="session")
def demo_profile(assets: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A profile fitted from the demo's recorded calibration (docs/demo-targets.json), once per session."""
    path = tmp_path_factory.mktemp("profile") / "demo.json"
    proc = gazeflow(
        "calibrate", "--input", "demo", "--targets", str(DEMO_TARGETS), "--profile", str(path), "--log-interval", "0"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return path


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


def start_run(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Start gazeflow run-all in the background; return once capture is running and every other stage is
    ready (run-all has told capture to go: frames flow; until then its title says it waits)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "gazeflow.services.cli", "run-all", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )
    RUNNING.append(proc)
    parent = psutil.Process(proc.pid)
    deadline = time.monotonic() + 120
    while "gazeflow-stage capture" not in {title(c) for c in parent.children() if c.is_running()}:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"capture never started: {proc.communicate()[1][-2000:]}")
        time.sleep(0.2)
    return proc


def run_dir_of(proc: subprocess.Popen[str]) -> Path:
    """The run directory of a run-all started by ``start_run``."""
    from gazeflow.shared.config import runtime_root

    found = [d for d in Path(runtime_root()).glob("gazeflow-*") if _read(d / "run-all.pid") == str(proc.pid)]
    assert found, "no run directory for this run-all"
    return found[0]


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def stage_process(proc: subprocess.Popen[str], name: str) -> psutil.Process:
    """The process that runs stage ``name`` (alone, or with neighbours: landmarks_headpose+gaze+pointer)."""
    children = psutil.Process(proc.pid).children()
    return next(c for c in children if name == process_label(c) or name in process_label(c).split("+"))


def process_label(p: psutil.Process) -> str:
    """A stage process's name: its stages, as run-all names it (ps: gazeflow-stage LABEL)."""
    return title(p).removeprefix("gazeflow-stage ")


def start_xvfb(*screens: str) -> tuple[subprocess.Popen[bytes], str]:
    """A virtual X display on a free number (Xvfb picks it: -displayfd), one screen per size given
    (several: a xinerama desktop), ready for clients; skip where Xvfb or xdotool is missing."""
    if not shutil.which("Xvfb") or not shutil.which("xdotool"):
        pytest.skip("Xvfb and xdotool are not installed (apt-get install xvfb xdotool)")
    read, write = os.pipe()
    args = [arg for i, size in enumerate(screens) for arg in ("-screen", str(i), size)]
    extra = ["+xinerama"] if len(screens) > 1 else []
    server = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write), *args, *extra, "-noreset", "-nolisten", "tcp"],
        stderr=subprocess.DEVNULL,
        pass_fds=(write,),
    )
    os.close(write)
    with os.fdopen(read) as fh:
        number = fh.readline().strip()
    if not number:
        server.kill()
        pytest.fail("Xvfb did not start")
    display = f":{number}"
    Path.home().joinpath(".Xauthority").touch()
    env = {**os.environ, "DISPLAY": display}
    wait_for(
        lambda: subprocess.run(["xdotool", "getmouselocation"], capture_output=True, env=env).returncode == 0,
        "the X display",
        10,
    )
    return server, display


KILL_FRAMES = 150  # frames of a replay in which a stage is killed


def wait_for(condition, what: str, timeout_s: float = 120) -> None:
    """Wait for an event (a condition polled), not for a time: fail naming it if it never comes."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def config_home(tmp_path, monkeypatch):
    """A config folder of the test's own (its profiles), with the suite's config file (--inference-precision)."""
    home = tmp_path / "config"
    suite = Path(os.environ["XDG_CONFIG_HOME"]) / "gazeflow" / "config.toml"
    if suite.exists():
        (home / "gazeflow").mkdir(parents=True)
        shutil.copy(suite, home / "gazeflow" / "config.toml")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    return home


def kill_in_replay(tmp_path: Path, env: dict[str, str], victim: str, *args: str) -> tuple[str, dict, list[int]]:
    """kill -9 one stage process in the middle of a lossless replay of KILL_FRAMES frames: once results
    are being written, while a slow stage before the sink (50 ms a frame) keeps frames in flight in
    every stage before it. Check that run-all restarted it and finished in frame order. Returns stdout,
    the metrics report and the frame numbers of the results."""
    results, metrics = tmp_path / "r.jsonl", tmp_path / "m.json"
    proc = start_run(
        "--config",
        str(chain_with(tmp_path / "slow.toml", "slow")),
        "--input",
        "demo",
        "--max-speed",
        "--max-frames",
        str(KILL_FRAMES),
        "--pointer",
        "null",
        "--results",
        str(results),
        "--metrics",
        str(metrics),
        "--log-interval",
        "0",
        *args,
        env=env,
    )
    wait_for(lambda: results.exists() and results.stat().st_size > 0, "the first results")  # mid-stream
    stage_process(proc, victim).kill()
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err[-2000:]
    assert f"stage {victim} died: killed by SIGKILL; restarting it" in err
    report = json.loads(metrics.read_text())
    frames = [r["frame"] for r in read_results(results)]
    assert frames == sorted(set(frames)) and len(frames) == report["frames"]
    return out, report, frames


TEST_STAGES = '''
"""Stages for the tests, declared as any package declares one (entry points in gazeflow.stages)."""
import os
import time

from gazeflow.shared import checks
from gazeflow.shared.canvas import YELLOW
from gazeflow.shared.registry import Overlay, Stage
from gazeflow.shared.settings import Section, setting
from gazeflow.shared.stage import Processor


class PassThrough(Processor):
    """Passes every message on as it came."""

    keeps_pixels = False


class MarkConfig(Section):
    """The marking stage's own table: [marker]."""

    mark: int = setting(1, "what the marker writes in every frame", flag="--mark", group="Output", ge=0)


class Marker(PassThrough):
    """Writes its setting into every frame's header: a result field of its own."""

    def __init__(self, cfg):
        super().__init__(cfg)
        self.marked = 0

    def finish(self, msg, outputs):
        msg.header["mark"] = self.cfg.marker.mark
        self.marked += 1
        return msg

    def stats(self):
        return {"marked": self.marked, "mark": self.cfg.marker.mark}


def draw_mark(canvas, header):
    if header.get("mark") is not None:
        canvas.text("mark", f"mark {header['mark']}", (40, 200), 2.0, YELLOW)


class Slow(PassThrough):
    """Takes GAZEFLOW_TEST_SLOW_MS per frame: slowness injected, whatever the machine's speed."""

    def __init__(self, cfg):
        super().__init__(cfg)
        self.delay_s = float(os.environ.get("GAZEFLOW_TEST_SLOW_MS", "50")) / 1e3

    def finish(self, msg, outputs):
        time.sleep(self.delay_s)
        return msg


PASSTHROUGH = Stage("passthrough", "inference", "gazeflow_test_stages:PassThrough", output="checked",
                    restartable=True, optional=True)
MARKER = Stage("marker", "inference", "gazeflow_test_stages:Marker", output="marked", optional=True,
               sections={"marker": MarkConfig}, writes={"mark": checks.optional(checks.count)}, results=("mark",),
               overlay=(Overlay("mark", "m", "gazeflow_test_stages:draw_mark"),))
SLOW = Stage("slow", "inference", "gazeflow_test_stages:Slow", output="slowed", restartable=True, optional=True)
'''


@pytest.fixture(scope="session")
def test_stages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A package with three test stages (passthrough, slow, marker) on PYTHONPATH: the environment for gazeflow."""
    site = tmp_path_factory.mktemp("site")
    (site / "gazeflow_test_stages.py").write_text(TEST_STAGES)
    dist = site / "gazeflow_test_stages-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: gazeflow-test-stages\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[gazeflow.stages]\npassthrough = gazeflow_test_stages:PASSTHROUGH\nslow = gazeflow_test_stages:SLOW\n"
        "marker = gazeflow_test_stages:MARKER\n"
    )
    return {"PYTHONPATH": str(site)}


def chain_with(path: Path, stage: str) -> Path:
    """A topology file whose chain has ``stage`` just before the sink."""
    from gazeflow.shared.registry import default_chain

    chain = [*default_chain()[:-1], stage, default_chain()[-1]]
    path.write_text(f"chain = {json.dumps(chain)}\n")
    return path


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--containers", action="store_true", help="also build the image and run compose (slow)")
    parser.addoption("--inference-precision", default="", help="run every pipeline of the suite in f32, bf16 or f16")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--containers"):
        return
    skip = pytest.mark.skip(reason="builds and runs containers: make container-test")
    for item in items:
        if "container" in item.keywords:
            item.add_marker(skip)
