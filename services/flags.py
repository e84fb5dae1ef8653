"""The command line's options, made from the settings' declarations (``shared/settings.py``), and back.

Each setting declared with a ``flag`` becomes a click option of the pipeline commands, listed under its
group in --help, with the setting's help, default and choices. A setting of ``[stages.NAME]`` becomes a
repeatable option taking VALUE (every stage with models) or STAGE=VALUE (one stage). What the user gave
turns back into a partial config, nested like the file, with the flag that set each key (for the one-line
error that names it).
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Any

import click
import cloup

from gazeflow.shared import config as config_mod
from gazeflow.shared import registry
from gazeflow.shared.errors import GazeflowError
from gazeflow.shared.settings import GROUPS, Section, flag_of

PER_STAGE = "stages"


@dataclass(frozen=True)
class Target:
    """Where an option's value goes: a dotted key of the config, or per stage ``stages.*.KEY``."""

    path: tuple[str, ...]
    flag: str
    per_stage: bool = False
    value: Any = None  # an option that sets a fixed value (--max-speed): that value


def _choices(annotation: Any) -> list[str] | None:
    if typing.get_origin(annotation) is typing.Literal:
        return [str(a) for a in typing.get_args(annotation) if a != ""]
    return None


def _click_type(annotation: Any) -> Any:
    choices = _choices(annotation)
    if choices and all(isinstance(a, int) for a in typing.get_args(annotation)):
        return click.INT  # numbers to choose from (--points): the setting's own check names them
    if choices:
        return click.Choice(choices, case_sensitive=False)
    if typing.get_origin(annotation) is tuple:  # a pair: --palette-at X Y
        return click.Tuple([_click_type(a) for a in typing.get_args(annotation)])
    return {int: click.INT, float: click.FLOAT}.get(annotation, click.STRING)


def _settings(model: type[Section], prefix: tuple[str, ...] = ()) -> typing.Iterator[tuple[tuple[str, ...], Any]]:
    """Every field of the tree with a flag: (its path, its FieldInfo)."""
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, Section):
            yield from _settings(annotation, (*prefix, name))
        elif name == PER_STAGE and not prefix:
            yield from _settings(config_mod.StageConfig, (PER_STAGE, "*"))
        elif flag_of(info):
            yield (*prefix, name), info


def _help(info: Any, per_stage: bool) -> str:
    text = info.description or ""
    default = info.get_default(call_default_factory=True)
    if per_stage and "STAGE=N" in (flag_of(info).get("metavar") or ""):
        text += " (repeatable)"
    elif per_stage:
        text += " (VALUE for every stage with models, STAGE=VALUE for one; repeatable)"
    elif default not in ("", None, False) and not isinstance(default, bool):
        text += f" (default {default})"
    return text


def options(command: str) -> list[click.Option]:
    """The options of a pipeline command, from the settings (their groups in --help), with their targets."""
    groups = {name: cloup.OptionGroup(name) for name in GROUPS}
    out = []
    for path, info in _settings(config_mod.config_model()):
        meta = flag_of(info)
        if meta.get("commands") and command not in meta["commands"]:
            continue
        per_stage = path[0] == PER_STAGE
        flags = meta["flag"] if isinstance(meta["flag"], dict) else {meta["flag"]: None}
        dest = "__".join(p for p in path if p != "*")
        for flag, spec in flags.items():
            value, text = spec if isinstance(spec, tuple) else (spec, info.description)
            kwargs: dict[str, Any] = {"default": None, "help": _help(info, per_stage), "metavar": meta.get("metavar")}
            if value is not None:
                kwargs.update(flag_value=value, is_flag=True, help=text)
            elif per_stage:
                kwargs.update(multiple=True, default=())
            else:
                kwargs["type"] = _click_type(info.annotation)
            opt = cloup.Option([flag, dest], **kwargs)
            opt.group = groups[meta["group"]]
            opt.target = Target(path, flag, per_stage, value)  # type: ignore[attr-defined]
            out.append(opt)
    return sorted(out, key=lambda o: GROUPS.index(o.group.title))


def overrides(params: dict[str, Any], opts: list[click.Option]) -> tuple[dict[str, Any], dict[str, str]]:
    """What the user gave, as a partial config nested like the file, and the flag of each dotted key."""
    out: dict[str, Any] = {}
    named: dict[str, str] = {}
    seen: set[str] = set()
    for opt in opts:
        target: Target = opt.target  # type: ignore[attr-defined]
        value = params.get(opt.name or "")
        if opt.name in seen or value in (None, ()):
            continue
        seen.add(opt.name or "")
        flag = next((o.opts[0] for o in opts if o.name == opt.name and o.flag_value == value), target.flag)
        if target.per_stage:
            for stage, item in _per_stage(target, value).items():
                _put(out, (PER_STAGE, stage, target.path[-1]), item)
                named[f"{PER_STAGE}.{stage}.{target.path[-1]}"] = flag
            continue
        _put(out, target.path, value)
        named[".".join(target.path)] = flag
    return out, named


def _per_stage(target: Target, items: tuple[str, ...] | str) -> dict[str, Any]:
    """--precision FP16 (every stage with models) and --precision gaze=FP32 (one stage), in that order."""
    out: dict[str, Any] = {}
    with_models = registry.with_models()
    for item in (items,) if isinstance(items, str) else items:
        stage, sep, value = item.rpartition("=")
        any_stage = target.path[-1] in ("workers", "process")  # not only the stages with models
        if not sep:
            if target.path[-1] in ("requests", "workers", "process"):
                raise GazeflowError(f"{target.flag} {item!r}: expected STAGE=VALUE")
            out.update(dict.fromkeys(with_models, value))
            continue
        if stage in registry.stages() and stage not in with_models and not any_stage:
            raise GazeflowError(
                f"{target.flag} {item}: {stage} runs no model (inference stages: {', '.join(with_models)})"
            )
        out[stage] = _number(target, stage, value) if target.path[-1] in ("requests", "workers") else value
    return out


def _number(target: Target, stage: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise GazeflowError(f"{target.flag} {stage}={value}: expected a number") from None


def _put(tree: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        tree = tree.setdefault(key, {})
    tree[path[-1]] = value
