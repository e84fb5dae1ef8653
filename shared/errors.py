"""The one exception type users see as a one-line error, and reading a user's file with one."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any


class GazeflowError(Exception):
    """An error with a message fit to show the user on one line (no traceback)."""


def read_document(path: str | Path, what: str) -> Any:
    """A TOML or JSON file (by its suffix), parsed; one line naming the file and ``what`` it should
    be when it is missing, unreadable or not valid."""
    p = Path(path)
    try:
        text = p.read_text()
        return json.loads(text) if p.suffix == ".json" else tomllib.loads(text)
    except FileNotFoundError:
        raise GazeflowError(f"{what} not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise GazeflowError(f"{what} {path}: cannot read it ({exc})") from None
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise GazeflowError(f"{what} {path}: {exc}") from None
