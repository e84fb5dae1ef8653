"""``gazeflow panel``: the address and token of a running pipeline's panel, found by its run directory."""

from __future__ import annotations

from pathlib import Path

from gazeflow.services.pointer.control import runs
from gazeflow.shared.errors import GazeflowError

from .processor import TOKEN, URL


def attach(run_dir: str | None, open_browser: bool) -> int:
    if run_dir:
        folder = Path(run_dir)
    else:
        found = runs()
        if not found:
            raise GazeflowError("no running pipeline found (start one with 'gazeflow run-all --panel PORT')")
        if len(found) > 1:
            listed = ", ".join(str(p.parent) for p in found)
            raise GazeflowError(f"{len(found)} pipelines are running ({listed}): choose one with --run-dir")
        folder = found[0].parent
    try:
        url, token = (folder / URL).read_text().strip(), (folder / TOKEN).read_text().strip()
    except OSError:
        raise GazeflowError(
            f"the pipeline in {folder} serves no panel: start it with 'gazeflow run-all --panel [HOST:]PORT'"
        ) from None
    address = f"{url}?token={token}"
    print(address)
    if open_browser:
        import webbrowser

        webbrowser.open(address)
    return 0
