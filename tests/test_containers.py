"""The image and the compose topology for real: built and run with podman (or docker) on the demo replay.

Run by ``make container-test`` (``pytest --containers``); skipped in ``make test``. The image is built
offline from an asset mirror in the build context (deploy/mirror/), on a base made from the Debian
archive when no registry can be pulled from (deploy/container/base.sh). The compose topology of
deploy/ runs with a test override: the demo file at max speed for a bounded number of frames, a null
pointer, no camera device, results and metrics written to a folder of the test. Every container,
image, network and volume the test made is removed at the end, even when a step fails, and the test
checks that none is left. Each step's time goes to out/container-test.json and is printed.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from conftest import ASSETS

pytestmark = pytest.mark.container

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
MIRROR = DEPLOY / "mirror"  # the build context's mirror folder (only its README is in git)
FRAMES = 150
BASE = "python:3.11-slim"  # what the Dockerfile builds on by default
LOCAL_BASE = "localhost/gazeflow-base:ct"
UID = 10001  # the image's user


class Engine:
    """podman (with the project's own engine settings) or docker, and its compose."""

    def __init__(self) -> None:
        self.name = "podman" if shutil.which("podman") else "docker"
        self.env = dict(os.environ)
        if self.name == "podman":
            self.env["CONTAINERS_CONF"] = str(DEPLOY / "container" / "containers.conf")
            self.compose = ["podman-compose"] if shutil.which("podman-compose") else None
        else:
            probe = subprocess.run(["docker", "compose", "version"], capture_output=True, env=self.env)
            self.compose = ["docker", "compose"] if probe.returncode == 0 else None
        self.timings: dict[str, float] = {}  # seconds per step
        self.figures: dict[str, float] = {}  # what else was measured

    def run(self, *args: str, timeout: float = 900, check: bool = True, step: str = "") -> subprocess.CompletedProcess:
        t0 = time.monotonic()
        proc = subprocess.run([self.name, *args], capture_output=True, text=True, timeout=timeout, env=self.env)
        if step:
            self.timings[step] = round(time.monotonic() - t0, 1)
        if check and proc.returncode != 0:
            pytest.fail(f"{self.name} {' '.join(args[:3])}... exited {proc.returncode}:\n{proc.stderr[-3000:]}")
        return proc

    def ids(self, kind: str) -> set[str]:
        """Every container, image, network or volume the engine has now."""
        args = {
            "container": ["ps", "-a", "--format", "{{.ID}}"],
            "image": ["images", "-a", "--format", "{{.ID}}"],
            "network": ["network", "ls", "--format", "{{.Name}}"],
            "volume": ["volume", "ls", "--format", "{{.Name}}"],
        }[kind]
        return set(self.run(*args).stdout.split())


def _engine_or_skip() -> Engine:
    if not (shutil.which("podman") or shutil.which("docker")):
        pytest.skip("no container engine (install podman, or docker with a running daemon)")
    engine = Engine()
    probe = subprocess.run([engine.name, "info"], capture_output=True, text=True, env=engine.env, timeout=60)
    if probe.returncode != 0:
        pytest.skip(f"{engine.name} cannot run containers here: {probe.stderr.strip().splitlines()[-1:]}")
    return engine


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    engine = _engine_or_skip()
    before = {kind: engine.ids(kind) for kind in ("container", "image", "network", "volume")}
    yield engine
    left = {kind: sorted(engine.ids(kind) - ids) for kind, ids in before.items()}
    engine.timings["total"] = round(sum(engine.timings.values()), 1)
    figures = {"engine": engine.name, "seconds": engine.timings, **engine.figures}
    out = REPO / "out"
    out.mkdir(exist_ok=True)
    (out / "container-test.json").write_text(json.dumps(figures, indent=1) + "\n")
    print(f"\ncontainer-test: {json.dumps(figures)}")
    assert not any(left.values()), f"left behind: {left}"


@pytest.fixture(scope="module")
def image(engine: Engine) -> Iterator[str]:
    """The project's image, built offline from the asset mirror; removed (with a base it made) at the end."""
    tag = f"localhost/gazeflow-ct:{uuid.uuid4().hex[:8]}"
    made: list[str] = []
    base = os.environ.get("GAZEFLOW_BASE", "")
    try:
        if not base:
            pulled = engine.run("pull", BASE, timeout=300, check=False, step="pull base")
            if pulled.returncode == 0:
                base = BASE
                made.append(BASE)
            else:  # no registry: a base from the Debian archive the host uses
                t0 = time.monotonic()
                subprocess.run(
                    [str(DEPLOY / "container" / "base.sh"), engine.name, LOCAL_BASE],
                    check=True,
                    env=engine.env,
                    timeout=1200,
                    capture_output=True,
                    text=True,
                )
                engine.timings["base from the Debian archive"] = round(time.monotonic() - t0, 1)
                base, made = LOCAL_BASE, [*made, LOCAL_BASE]
        _fill_mirror()
        layers = ["--layers=false"] if engine.name == "podman" else []  # no cached stage images left behind
        engine.run(
            "build",
            "-f",
            "deploy/Dockerfile",
            *layers,
            "--build-arg",
            f"BASE={base}",
            "--build-arg",
            "ASSETS_MIRROR=/mirror",
            "-t",
            tag,
            str(REPO),
            step="build image",
        )
        made.append(tag)
        size = engine.run("image", "inspect", tag, "--format", "{{.Size}}").stdout.strip()
        engine.figures["image MB"] = round(int(size) / 1e6, 1)
        yield tag
    finally:
        _empty_mirror()
        for name in reversed(made):
            engine.run("rmi", "-f", name, check=False)
        if engine.name == "podman":
            engine.run("image", "prune", "-f", check=False)  # untagged stage images of this build


def _fill_mirror() -> None:
    """The fetched assets (the manifest's layout) as the build context's mirror."""
    for part in ("models", "videos"):
        shutil.copytree(ASSETS / part, MIRROR / part, dirs_exist_ok=True)


def _empty_mirror() -> None:
    for entry in MIRROR.iterdir():
        if entry.name != "README.md":
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()


def test_a_stage_container_runs_as_its_unprivileged_user_and_reads_its_models(engine, image):
    assert engine.run("run", "--rm", "--entrypoint", "id", image, "-u").stdout.strip() == str(UID)
    proc = engine.run(
        "run",
        "--rm",
        image,
        "run-sync",
        "--input",
        "demo",
        "--max-speed",
        "--max-frames",
        "30",
        "--pointer",
        "null",
        "--log-interval",
        "0",
        step="run-sync, 30 frames",
    )
    assert "frames 30," in proc.stdout, proc.stdout + proc.stderr[-2000:]


def test_the_offline_build_used_the_mirror_and_left_it_out_of_the_image(engine, image):
    proc = engine.run(
        "run",
        "--rm",
        "--entrypoint",
        "sh",
        image,
        "-c",
        "test ! -e /mirror && gazeflow fetch --verify && stat -c %a /var/lib/gazeflow/assets/videos/demo.mp4",
    )
    assert proc.stdout.strip().splitlines()[-1] == "644"


def compose_file(image: str, keys: Path, out: Path) -> dict:
    """deploy/docker-compose.yml with the test override applied (keys replaced, not merged, so that the
    camera device can be taken out): the demo at max speed, FRAMES frames, a null pointer."""
    base = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    compose = copy.deepcopy(base)
    for name, svc in compose["services"].items():
        svc.pop("build", None)
        svc["image"] = image
        svc["restart"] = "no"
        stage = svc["command"][1]  # each mounts only its own stage's keys, as deployed
        shared = [v for v in svc["volumes"] if v.startswith("run:")]  # the pointer's and the panel's run folder
        svc["volumes"] = [
            f"{DEPLOY / 'cluster.toml'}:/etc/gazeflow/cluster.toml:ro",
            f"{keys / stage}:/etc/gazeflow/keys/{stage}:ro",
            *shared,
        ]
        svc.pop("ports", None)  # the panel's: nothing on the host's ports
        # every stage: a replay (cam:0 would make them drop like a live run), at max speed
        svc["command"] = [*svc["command"], "--input", "demo", "--max-speed", "--log-interval", "0"]
        if name == "capture":
            svc.pop("devices", None)
            svc.pop("group_add", None)
            svc["command"] += ["--max-frames", str(FRAMES)]
        if name == "pointer":
            svc.pop("environment", None)
            svc["volumes"].append(f"{out}:/out")
            svc["command"] += ["--pointer", "null", "--results", "/out/r.jsonl", "--metrics", "/out/m.json"]
    return compose


def test_the_compose_topology_passes_every_frame_through_every_stage(engine, image, tmp_path):
    if engine.compose is None:
        pytest.skip(f"no compose for {engine.name} (podman-compose, or docker compose)")
    from gazeflow.shared import config
    from gazeflow.shared.security import make_keys

    topology = config.load(str(DEPLOY / "cluster.toml"))
    keys, out = make_keys(tmp_path / "keys", topology.chain_links), tmp_path / "out"
    out.mkdir()
    for path in (keys, *keys.rglob("*"), out):  # the image's user reads the keys and writes the results
        os.chown(path, UID, UID)
    project = f"gazeflow-ct-{uuid.uuid4().hex[:6]}"
    file = tmp_path / "compose.yml"
    file.write_text(yaml.safe_dump(compose_file(image, keys, out)))
    up = [*engine.compose, "-p", project, "-f", str(file)]
    t0 = time.monotonic()
    try:
        subprocess.run([*up, "up", "-d"], check=True, capture_output=True, env=engine.env, timeout=300)
        names = engine.run(
            "ps", "-a", "--filter", f"label=com.docker.compose.project={project}", "--format", "{{.Names}}"
        ).stdout.split()
        for sink in ("pointer", "panel"):  # the panel ends after the pointer, at the end of the stream
            engine.run("wait", next(n for n in names if sink in n), timeout=600)
        engine.timings[f"compose run, {FRAMES} frames, {len(names)} containers"] = round(time.monotonic() - t0, 1)
        logs = {n: engine.run("logs", n, check=False).stderr for n in names}
        codes = {n: engine.run("inspect", n, "--format", "{{.State.ExitCode}}").stdout.strip() for n in names}
    finally:
        t1 = time.monotonic()
        subprocess.run([*up, "down", "-v"], capture_output=True, env=engine.env, timeout=300)
        engine.run("network", "rm", "-f", f"{project}_default", check=False)  # podman-compose 1.0 leaves it
        engine.timings["compose down"] = round(time.monotonic() - t1, 1)
    assert (out / "m.json").is_file(), "\n".join(f"== {n}\n{text[-1500:]}" for n, text in logs.items())
    report = json.loads((out / "m.json").read_text())
    results = [json.loads(line) for line in (out / "r.jsonl").read_text().splitlines()]
    stages = report["stages"]
    rows = [f"  {n}: exit {codes[n]}" for n in names]
    for name, stage in stages.items():
        rows.append(f"  {name}: in {stage['in']}, out {stage['out']}, dropped {stage['dropped']}")
        rows += [f"    worker {w.get('worker')}: in {w['in']}, out {w['out']}" for w in stage.get("workers", [])]
    print(f"\ncompose topology ({len(names)} containers), {report['frames']} frames at {report['fps']} fps:")
    print("\n".join(rows))
    engine.figures["compose fps"] = report["fps"]
    said = "\n".join(f"== {n}\n{text[-3000:]}" for n, text in logs.items())  # what each container said, if not
    assert [r["frame"] for r in results] == list(range(FRAMES)), said
    assert report["frames"] == FRAMES and report["dropped"] == 0 and report["lost"] == 0
    for name in ("capture", "face_detection", "landmarks_headpose", "gaze"):
        assert stages[name]["out"] == FRAMES, (name, stages[name])
    workers = stages["face_detection"]["workers"]
    assert len(workers) == 2 and all(w["in"] > 0 for w in workers), said  # the scaled stage split the work
    assert sum(w["in"] for w in workers) == FRAMES
    assert set(codes.values()) == {"0"}, codes
    panel = next(n for n in names if "panel" in n)  # it served, with the token 'gazeflow keys' made
    assert "panel: open http://0.0.0.0:9300/" in logs[panel], logs[panel][-1500:]
