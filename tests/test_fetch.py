import shutil

import pytest

from gazeflow.models import fetch
from gazeflow.shared.errors import GazeflowError


def small_assets():
    return [a for a in fetch.manifest() if a.size < 250_000]


def test_mirror_fetch_verifies_and_skips_what_is_cached(assets, tmp_path):
    picked = small_assets()
    assert picked
    for asset in picked:
        assert fetch.fetch_one(asset, tmp_path, assets) is True
        assert fetch.sha384(tmp_path / asset.path) == asset.sha384
        assert fetch.fetch_one(asset, tmp_path, assets) is False  # already there and verified


def test_corrupt_mirror_file_is_named(assets, tmp_path):
    asset = small_assets()[0]
    mirror = tmp_path / "mirror"
    (mirror / asset.path).parent.mkdir(parents=True)
    shutil.copyfile(assets / asset.path, mirror / asset.path)
    with (mirror / asset.path).open("ab") as fh:
        fh.write(b"tampered")
    with pytest.raises(GazeflowError, match=f"{asset.path}: sha384 mismatch"):
        fetch.fetch_one(asset, tmp_path / "cache", mirror)
    assert not (tmp_path / "cache" / asset.path).exists()  # nothing unverified is left behind


def test_missing_mirror_file_is_named(tmp_path):
    asset = small_assets()[0]
    (tmp_path / "mirror").mkdir()
    with pytest.raises(GazeflowError, match=f"{asset.path}: not in mirror"):
        fetch.fetch_one(asset, tmp_path / "cache", tmp_path / "mirror")


def test_the_cache_is_complete(assets):
    fetch.verify_all(assets)
    for model in ("face-detection-adas-0001", "head-pose-estimation-adas-0001", "gaze-estimation-adas-0002"):
        assert (assets / f"models/intel/{model}/FP32/{model}.bin").is_file()  # derived from FP16


def test_fetched_files_get_the_umask_mode_not_the_temporary_files_0600(assets, tmp_path):
    """Fetched as root in an image, the assets must stay readable by its unprivileged user."""
    import os

    asset = small_assets()[0]
    old = os.umask(0o022)
    try:
        fetch.fetch_one(asset, tmp_path, assets)
    finally:
        os.umask(old)
    assert (tmp_path / asset.path).stat().st_mode & 0o777 == 0o644
    old = os.umask(0o077)
    try:
        fetch.fetch_one(asset, tmp_path / "private", assets)
    finally:
        os.umask(old)
    assert (tmp_path / "private" / asset.path).stat().st_mode & 0o777 == 0o600
