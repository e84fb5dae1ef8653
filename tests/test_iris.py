"""The optional iris stage: MediaPipe's iris model, fetched from the mediapipe wheel by the manifest's rules,
run by OpenVINO on the eye crops; its features in the results of both pipelines, its checks at the start."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import zipfile
from pathlib import Path

import pytest

from gazeflow.models import fetch
from gazeflow.models.catalog import IRIS, ONE_FILE
from gazeflow.shared.errors import GazeflowError

from conftest import gazeflow, read_results

MEMBER = "mediapipe/modules/iris_landmark/iris_landmark.tflite"


def _wheel(tmp_path: Path, payload: bytes) -> str:
    """A wheel-shaped archive holding the payload where the mediapipe wheel holds the iris model: its URL."""
    wheel = tmp_path / "mediapipe-0.10.21-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("mediapipe/__init__.py", "")
        zf.writestr(MEMBER, payload)
    return f"{wheel.as_uri()}#{MEMBER}"


def _asset(url: str, payload: bytes, optional: bool = True) -> fetch.Asset:
    return fetch.Asset(ONE_FILE[IRIS], len(payload), hashlib.sha384(payload).hexdigest(), url, optional)


def test_the_manifest_takes_the_iris_model_out_of_the_mediapipe_wheel():
    (asset,) = [a for a in fetch.manifest() if a.path == ONE_FILE[IRIS]]
    assert asset.optional and asset.member == MEMBER
    assert asset.url.startswith("https://files.pythonhosted.org/") and "/mediapipe-0.10.21-" in asset.url


def test_a_wheel_member_is_extracted_and_verified_and_nothing_else_is_left(tmp_path):
    payload = b"tflite bytes" * 100
    asset = _asset(_wheel(tmp_path, payload), payload)
    cache = tmp_path / "cache"
    assert fetch.fetch_one(asset, cache, None) is True
    assert (cache / asset.path).read_bytes() == payload
    assert sorted(p.name for p in (cache / asset.path).parent.iterdir()) == ["iris_landmark.tflite"]
    assert fetch.fetch_one(asset, cache, None) is False  # verified, not fetched again
    wrong = fetch.Asset(asset.path, asset.size, "0" * 96, asset.url, True)
    with pytest.raises(GazeflowError, match="sha384 mismatch"):
        fetch.fetch_one(wrong, tmp_path / "other", None)
    missing = fetch.Asset(asset.path, asset.size, asset.sha384, asset.url.replace("iris_landmark.tflite", "x"), True)
    with pytest.raises(GazeflowError, match="download from"):
        fetch.fetch_one(missing, tmp_path / "third", None)


def test_a_mirror_without_an_optional_asset_downloads_it_and_one_without_a_required_asset_fails(tmp_path):
    payload = b"iris" * 64
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    fetch.fetch_one(_asset(_wheel(tmp_path, payload), payload), tmp_path / "cache", mirror)
    assert (tmp_path / "cache" / ONE_FILE[IRIS]).read_bytes() == payload
    with pytest.raises(GazeflowError, match="not in mirror"):
        fetch.fetch_one(_asset(_wheel(tmp_path, payload), payload, optional=False), tmp_path / "c2", mirror)


def test_a_run_with_the_iris_stage_and_no_iris_model_says_how_to_get_it(tmp_path, assets):
    """One line, exit 2, before any stage starts; the rest of the pipeline still runs without it."""
    bare = tmp_path / "assets"
    shutil.copytree(assets, bare, ignore=shutil.ignore_patterns("*.tflite"))
    proc = gazeflow("run-all", "--assets-dir", str(bare), "--input", "demo", "--pointer", "null", "--iris")
    assert proc.returncode == 2 and "the iris stage needs" in proc.stderr and "gazeflow fetch" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


@pytest.mark.integration
def test_the_iris_stage_writes_each_iris_between_its_eyes_corners_the_same_in_both_pipelines(tmp_path, assets):
    """run-all (its own process or sharing one) and run-sync give the same results, byte for byte; each iris
    lies near its eye's landmark and inside the eye's width."""
    if not (assets / ONE_FILE[IRIS]).is_file():  # an optional asset: fetched from the package index
        pytest.skip(f"{ONE_FILE[IRIS]} was not fetched (no package index when 'make setup' ran)")
    outputs = {}
    for command, extra in (("run-sync", ()), ("run-all", ("--placement", "separate")), ("run-all", ())):
        results = tmp_path / f"{command}{len(extra)}.jsonl"
        proc = gazeflow(
            command,
            "--input",
            "demo",
            "--max-speed",
            "--max-frames",
            "120",
            "--pointer",
            "null",
            "--iris",
            "--results",
            str(results),
            "--log-interval",
            "0",
            *extra,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        outputs[(command, extra)] = results.read_bytes()
    assert len(set(outputs.values())) == 1
    rows = read_results(results)
    assert len(rows) == 120 and list(rows[0]).index("iris") == list(rows[0]).index("head_pose") + 1
    offsets = []
    for row in rows:
        (rx, ry), (lx, ly) = row["landmarks"][:2]  # the image's left eye is the person's right
        apart = math.dist((rx, ry), (lx, ly))
        for side, (ex, ey) in (("right", (rx, ry)), ("left", (lx, ly))):
            h, v, x, y = row["iris"][side]
            assert abs(h) < 1 and abs(v) < 1, row["iris"]  # within an eye's width of its middle
            assert math.dist((x, y), (ex, ey)) < 0.3 * apart, (row["frame"], side, row["iris"], (ex, ey))
            offsets.append(abs(h))
    assert sorted(offsets)[len(offsets) // 2] < 0.2  # mostly near the middle: the person looks ahead


def test_a_profile_fitted_with_the_iris_features_needs_the_iris_stage(tmp_path, config_home):
    from gazeflow.services.pointer import profile
    from gazeflow.services.pointer.gaze_model import FEATURES, IRIS_FEATURES, Correction
    from gazeflow.services.pointer.screen import null_monitor
    from gazeflow.services.pointer.settings import PointerConfig

    names = (*FEATURES, *IRIS_FEATURES)
    k = len(names)
    correction = Correction([0.0] * k, [1.0] * k, [[0.0] * k, [0.0] * k], [1.0, 2.0], names)
    monitor = null_monitor(PointerConfig())
    profile.save("eyes", {"monitor": monitor.to_dict(), "correction": correction.to_dict(), "used": "calibrated"})
    proc = gazeflow("run-all", "--input", "demo", "--pointer", "null", "--profile", "eyes")
    assert proc.returncode == 2 and "fitted with the iris features: run with --iris" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    saved = json.loads(profile.path_of("eyes").read_text())
    assert saved["correction"]["features"] == list(names)
