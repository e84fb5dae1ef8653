"""How a setting is declared: once, as a typed field with its default, help, limits and (optionally) its flag.

Every section of the configuration is a pydantic model whose fields are made with ``setting``. From that one
declaration come the TOML key (the field's name in its table), the default, the validation (the field's type
and limits, a section's own cross-field rules), the flag of the command line (``flag``: the CLI builds its
options from the fields, ``services/cli.py``) and its help (``--help`` and the docs). A stage that has
settings of its own declares its section in its folder and names it in its manifest; the configuration
(``shared/config.py``) gathers the sections of every registered stage.

This module imports nothing of gazeflow: stage manifests import it while the registry is being read.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

GROUPS = ("Input", "Pace", "Models", "Pointer", "Clicks", "Selection", "View", "Output", "Calibration", "Run")


class Section(BaseModel):
    """A table of the configuration: unknown keys are refused (a typo is an error, not a silent default)."""

    model_config = ConfigDict(extra="forbid", validate_default=False, allow_inf_nan=False)  # a setting is finite

    @property
    def wanted(self) -> bool:
        """Whether these settings ask for their (optional) stage to join the chain (the view: --show)."""
        return False


def setting(
    default: Any,
    help: str,
    *,
    flag: str | dict[str, Any] | None = None,
    group: str = "",
    metavar: str | None = None,
    commands: tuple[str, ...] = (),
    **limits: Any,
) -> Any:
    """A field of a config section.

    ``flag``: the option that sets it ("--max-frames"), or options that each set one value
    ({"--realtime": "realtime", "--max-speed": "max-speed"}; {"--loop": True}). ``group``: where its option
    is listed in --help. ``commands``: only these commands have the flag (default: every pipeline command).
    ``limits``: pydantic's (ge, gt, le, lt, min_length, ...). A callable default is a factory.
    """
    assert not flag or group in GROUPS, f"setting {help!r}: group {group!r} not in {GROUPS}"
    extra = {"flag": flag, "group": group, "metavar": metavar, "commands": list(commands)}
    extra = {k: v for k, v in extra.items() if v}
    if callable(default):
        return Field(default_factory=default, description=help, json_schema_extra=extra, **limits)
    return Field(default, description=help, json_schema_extra=extra, **limits)


def flag_of(info: Any) -> dict[str, Any]:
    """A field's CLI metadata (flag, group, metavar, commands), or {} for a setting with no flag."""
    extra = info.json_schema_extra
    return dict(extra) if isinstance(extra, dict) and extra.get("flag") else {}
