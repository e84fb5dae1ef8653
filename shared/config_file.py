"""The configuration as a TOML file a person edits: every setting with its value and, as a comment, its help
(from the setting's declaration). ``gazeflow config`` prints it, deploy/local.toml is one, the panel saves
its changes with it."""

from __future__ import annotations

import json
import textwrap
from typing import Any

from .config import default_cache_dir
from .settings import Section

HEADER = """\
# gazeflow configuration: every setting, with what it does. Read in this order, later ones winning:
# the defaults, ~/.config/gazeflow/config.toml, --config FILE, the flags. Made by 'gazeflow config'.
# Endpoints may use {run_dir}; run-all makes a fresh run_dir per run.
"""
WIDTH = 28  # where the comments start
LINE = 118


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"no TOML for {value!r}")


def _line(key: str, value: Any, help_text: str) -> str:
    """``key = value`` with its help: beside it, or above it, wrapped, when it does not fit."""
    text = f"{key} = {_value(value)}"
    if not help_text:
        return text
    if max(len(text), WIDTH) + 2 + len(help_text) <= LINE:
        return f"{text:<{WIDTH}}# {help_text}"
    return "\n".join(textwrap.wrap(help_text, LINE - 2, initial_indent="# ", subsequent_indent="# ")) + "\n" + text


def _table(name: str, section: Section, defaults: bool, helps: bool = True) -> list[str]:
    """One table's lines (``helps``: with each key's help); the tables inside it after it: the stages' own,
    then those per stage and per link (the help once, on the first)."""
    lines, tables, per_name = [], [], []
    doc = " ".join((type(section).__doc__ or "").strip().split("\n\n")[0].split())
    if name:
        lines += [""] + ([f"# {doc}"] if doc and helps else []) + [f"[{name}]"]
    for key, info in type(section).model_fields.items():
        value = getattr(section, key)
        if key in ("assets_dir", "run_dir") and defaults:
            value = ""  # machine-dependent: "" means the default
        if key == "model_cache" and value == default_cache_dir():
            value = "auto"
        if isinstance(value, Section):
            tables += _table(f"{name}.{key}" if name else key, value, defaults)
        elif isinstance(value, dict):
            for i, (inner, table) in enumerate(value.items()):
                per_name += _table(f"{name + '.' if name else ''}{key}.{inner}", table, defaults, helps=i == 0)
        else:
            lines.append(_line(key, value, (info.description or "").replace("\n", " ") if helps else ""))
    return lines + tables + per_name


def to_toml(cfg: Section, defaults: bool = False) -> str:
    """The whole configuration as commented TOML (``defaults``: machine-dependent folders left as "")."""
    return HEADER + "\n".join(_table("", cfg, defaults)) + "\n"
