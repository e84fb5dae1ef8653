"""Shared test fixtures: the fetched assets and a way to run the gazeflow command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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
