"""Fetch the assets listed in manifest.tsv: from the official URLs or a local mirror.

Every file is verified by its sha384 before it is used; a file already in the
cache with the right checksum is not fetched again. A source URL with a fragment
names a member of the archive it points to (a file inside a wheel of the package
index: MediaPipe's iris model): the archive is downloaded, the member taken out
and verified. With a mirror folder the required assets come from it alone; an
optional one (for an optional stage) that the mirror lacks is downloaded from its
URL, and one that cannot be had is reported, not an error. FP32 IRs that are not
published in the mirror are made locally from the FP16 IR (same graph, weights
decompressed to FP32).
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
import shutil
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from gazeflow.shared.errors import GazeflowError

from .catalog import MODELS, ir_path

log = logging.getLogger("gazeflow.fetch")
MANIFEST = Path(__file__).with_name("manifest.tsv")


@dataclass(frozen=True)
class Asset:
    path: str
    size: int
    sha384: str
    url: str
    optional: bool = False  # only an optional stage reads it: a fetch without it still succeeds

    @property
    def member(self) -> str:
        """The file inside the archive the URL points to ("" when the URL is the file itself)."""
        return self.url.partition("#")[2]


def manifest() -> list[Asset]:
    with MANIFEST.open(newline="") as fh:
        return [
            Asset(row["path"], int(row["bytes"]), row["sha384"], row["source_url"], row.get("optional") == "yes")
            for row in csv.DictReader(fh, delimiter="\t")
        ]


def sha384(path: Path) -> str:
    digest = hashlib.sha384()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verified(path: Path, asset: Asset) -> bool:
    return path.is_file() and path.stat().st_size == asset.size and sha384(path) == asset.sha384


def fetch_one(asset: Asset, dest_dir: Path, mirror: Path | None) -> bool:
    """Make dest_dir/asset.path a verified copy; return True when something was fetched."""
    dest = dest_dir / asset.path
    if _verified(dest, asset):
        return False
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=dest.parent, delete=False) as tmp:
        tmp_path = Path(tmp.name)
    try:
        if mirror is not None and (mirror / asset.path).is_file():
            shutil.copyfile(mirror / asset.path, tmp_path)
        elif mirror is not None and not asset.optional:
            raise GazeflowError(f"{asset.path}: not in mirror {mirror}")
        else:
            if mirror is not None:
                log.info("%s: not in mirror %s; downloading it from %s", asset.path, mirror, asset.url)
            _download(asset, tmp_path)
        got = sha384(tmp_path)
        if got != asset.sha384:
            raise GazeflowError(f"{asset.path}: sha384 mismatch (got {got[:16]}..., expected {asset.sha384[:16]}...)")
        # the temporary file is 0600; the asset gets the mode any new file would (umask), so that other
        # users (an image's unprivileged user, after a fetch as root) can read it
        tmp_path.chmod(0o666 & ~_umask())
        tmp_path.replace(dest)
    finally:
        tmp_path.unlink(missing_ok=True)
    return True


def _download(asset: Asset, dest: Path) -> None:
    """The asset from its URL into dest: the file itself, or the member of the archive it points to."""
    url = asset.url.partition("#")[0]
    archive = dest.with_suffix(".archive") if asset.member else dest
    try:
        with urllib.request.urlopen(url, timeout=60) as resp, archive.open("wb") as out:
            shutil.copyfileobj(resp, out)
        if asset.member:
            with zipfile.ZipFile(archive) as zf, zf.open(asset.member) as src, dest.open("wb") as out:
                shutil.copyfileobj(src, out)
    except (OSError, zipfile.BadZipFile, KeyError) as exc:
        raise GazeflowError(f"{asset.path}: download from {asset.url} failed: {exc}") from None
    finally:
        if asset.member:
            archive.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def derive_fp32(assets_dir: Path) -> list[Path]:
    """Write FP32 IRs from the FP16 ones for the models whose FP32 IR is missing."""
    import openvino as ov

    made = []
    core = ov.Core()
    for model in MODELS:
        fp32 = ir_path(assets_dir, model, "FP32")
        if fp32.is_file() and fp32.with_suffix(".bin").is_file():
            continue
        fp16 = ir_path(assets_dir, model, "FP16")
        ov.save_model(core.read_model(fp16), fp32, compress_to_fp16=False)
        made.append(fp32)
    return made


def fetch_all(dest_dir: str | Path, mirror: str | Path | None = None) -> None:
    dest = Path(dest_dir)
    mirror_path = Path(mirror) if mirror else None
    if mirror_path is not None and not mirror_path.is_dir():
        raise GazeflowError(f"asset mirror not found: {mirror_path}")
    fetched = 0
    for asset in manifest():
        try:
            got = fetch_one(asset, dest, mirror_path)
        except GazeflowError as exc:
            if not asset.optional:
                raise
            log.warning("optional asset not fetched (the stage that reads it cannot run): %s", exc)
            continue
        if got:
            fetched += 1
            log.info("fetched %s", asset.path)
    made = derive_fp32(dest)
    for path in made:
        log.info("derived %s from FP16", path.relative_to(dest))
    log.info("assets in %s: %d fetched, %d derived, all verified", dest, fetched, len(made))


def verify_files(paths: list[Path], assets_dir: str | Path) -> None:
    """Check the given cached files against the manifest (files it does not list are skipped)."""
    known = {asset.path: asset for asset in manifest()}
    for path in paths:
        if not Path(path).is_relative_to(assets_dir):  # made on this machine (gazeflow quantize)
            continue
        asset = known.get(Path(path).relative_to(assets_dir).as_posix())
        if asset is not None and not _verified(Path(path), asset):
            raise GazeflowError(f"corrupt asset (sha384 mismatch): {path} (run 'make setup' again)")


def verify_all(dest_dir: str | Path) -> None:
    """Check every manifest file in the cache (an optional one where it is there); raise naming the first
    bad one."""
    for asset in manifest():
        path = Path(dest_dir) / asset.path
        if not path.is_file() and asset.optional:
            continue
        if not path.is_file():
            raise GazeflowError(f"missing asset: {path} (run 'make setup')")
        if not _verified(path, asset):
            raise GazeflowError(f"corrupt asset (sha384 mismatch): {path}")
