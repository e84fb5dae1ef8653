"""The gazeflow command: run the pipeline, one stage, the sync baseline; calibrate, control, measure, fetch.

Built with click (and cloup for grouped help); the pipeline commands' options come from the settings'
declarations (``services/flags.py``). A mistake of the user's is one line and exit code 2.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import cloup

from gazeflow.shared import config as config_mod
from gazeflow.shared import registry
from gazeflow.shared.errors import GazeflowError
from gazeflow.shared.process import setup_logging

from . import flags

log = logging.getLogger("gazeflow")

DESCRIPTION = """\
An eye-gaze pointer controller built as a streaming pipeline of processes (capture -> face_detection ->
landmarks_headpose -> gaze -> pointer) over ZeroMQ.

\b
examples:
  gazeflow fetch --mirror ../shared/assets        verify and cache the models and demo video
  gazeflow run-all --input demo                   the demo video, real-time, pointer moves
  gazeflow run-all --input demo --max-speed --pointer null --results r.jsonl
  gazeflow run-all --input cam:0                  live from the first webcam
  gazeflow run-sync --input demo --max-speed      the one-process synchronous baseline
  gazeflow run-all --input demo --workers face_detection=2   two face-detection processes
  gazeflow stage face_detection --config deploy/cluster.toml   one stage on this host
"""
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 110, "terminal_width": 110}
SECTIONS = {
    "run": cloup.Section("Run the pipeline"),
    "use": cloup.Section("Calibrate and control"),
    "measure": cloup.Section("Measure and optimise"),
    "set": cloup.Section("Set up"),
}


def _option(*decls: str, **kwargs: Any) -> click.Option:
    return cloup.Option(list(decls), **kwargs)


CONFIG_OPTION = ("--config", "config_file")


def _pipeline_command(name: str, body: Callable[..., int], help: str, extra: list[click.Parameter] = ()) -> Any:
    """A command that runs the pipeline (or part of it): its options are the settings' flags."""
    generated = flags.options(name)
    config = _option(*CONFIG_OPTION, metavar="FILE", help="TOML config file (flags override it); see deploy/local.toml")
    config.group = next(o.group for o in generated if o.group.title == "Run")

    def callback(config_file: str | None, **params: Any) -> int:
        overrides, named = flags.overrides(params, generated)
        cfg = config_mod.load(config_file, overrides, named)
        return body(cfg, params=params, given=named)

    return cloup.Command(
        name,
        callback=_guarded(callback),
        help=help,
        params=[*extra, *generated, config],
        context_settings=CONTEXT,
        align_option_groups=False,
    )


def _guarded(fn: Callable[..., int]) -> Callable[..., int]:
    """One line and exit 2 for the user's mistakes, 130 for Ctrl-C, 141 for a closed pipe."""

    def run(**kwargs: Any) -> int:
        try:
            return fn(**kwargs)
        except GazeflowError as exc:
            log.error("%s", exc)
            return 2
        except KeyboardInterrupt:
            return 130
        except BrokenPipeError:  # e.g. `gazeflow report m.json | head`
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 141

    return run


# -- the pipeline ---------------------------------------------------------------------------------------
def _run_all(cfg: Any, **_: Any) -> int:
    from .supervisor import run_all

    return run_all(cfg)


def _run_sync(cfg: Any, **_: Any) -> int:
    from .run_sync import run_sync

    return run_sync(cfg)


def _stage(cfg: Any, params: dict[str, Any], **_: Any) -> int:
    from gazeflow.shared.process import run_stage, run_stages

    from .pipeline import process_name, stage_body

    label = params["name"]
    if cfg.placement == "auto":  # by hand: a process per stage, unless the config places stages together
        cfg = cfg.model_copy(update={"placement": "separate"})
    names = [part.partition(":")[0] for part in label.split("+")]
    for name in names:
        registry.get(name)  # an unknown stage: one line naming the known ones
        if name not in cfg.chain:
            raise GazeflowError(f"stage {name!r} is not in the chain {cfg.chain} of this config")
    group = cfg.group_of(names[0])
    if tuple(names) != group:
        raise GazeflowError(
            f"{label}: this config runs {'+'.join(group)} as one process (stages.NAME.process): "
            f"run 'gazeflow stage {'+'.join(group)}'"
        )
    if len(names) > 1:
        return run_stages({name: stage_body(name, cfg) for name in names})
    name, _, worker = label.partition(":")
    if worker and cfg.workers(name) == 1:
        raise GazeflowError(
            f"{label}: {name} has one process in this config (workers = 1): run it as '{name}', "
            f"or set stages.{name}.workers"
        )
    if worker.isdigit() and int(worker) >= cfg.workers(name):
        raise GazeflowError(f"{label}: {name} has workers 0-{cfg.workers(name) - 1} in this config")
    worker = params["worker"] or worker or (socket.gethostname() if cfg.workers(name) > 1 else "0")
    return run_stage(process_name(name, worker, cfg), stage_body(name, cfg, worker))


def _calibrate(cfg: Any, params: dict[str, Any], given: dict[str, str]) -> int:
    from .calibration.command import Request, calibrate

    request = Request(
        params["record"], params["replay"], params["targets"], params["list_monitors"], input_given="input" in given
    )
    return calibrate(cfg, request)


STAGE_ARGS = [
    cloup.Argument(["name"], metavar="STAGE[:WORKER]|STAGE+STAGE..."),
    _option(
        "--worker",
        default=os.environ.get("GAZEFLOW_WORKER"),
        metavar="LABEL",
        help="the worker label of a scaled stage, shown in health reports (default: $GAZEFLOW_WORKER, else "
        "the host name for a scaled stage, else 0)",
    ),
]
CALIBRATE_ARGS = [
    _option("--record", metavar="DIR", help="also save the session: the camera's frames and targets.json"),
    _option("--replay", metavar="DIR", help="fit from a recording made with --record (no display needed)"),
    _option("--targets", metavar="FILE.json", help="fit from --input VIDEO and this targets file"),
    _option("--list-monitors", is_flag=True, help="print the monitors and their numbers, then exit"),
]
CALIBRATE_HELP = (
    "Calibrate the pointer: look at targets, get a profile with its accuracy in pixels and degrees.\n\n"
    "Runs the pipeline with a calibration sink in place of the pointer and shows targets full screen on the "
    "chosen monitor, one at a time: look at each red dot until it disappears. Then a few validation targets "
    "elsewhere. The fit corrects the geometric gaze-to-screen model; the validation error (median and p95, in "
    "pixels and degrees) is printed before and after, and the better of the two is saved in the profile. Esc "
    "cancels and saves nothing. The camera is cam:0 unless --input says otherwise (a video stands in for it, "
    "looped). Without a display, fit from a recording: --replay DIR (made by --record DIR), or --input VIDEO "
    "--targets FILE.json (README: the targets format)."
)


# -- the commands that do not run the pipeline --------------------------------------------------------
@cloup.command("ctl", context_settings=CONTEXT)
@cloup.argument("action", metavar="ACTION", help="pause, resume, toggle, recenter, status or set")
@cloup.argument("setting", nargs=-1, metavar="[SETTING VALUE]")
@cloup.option("--run-dir", help="the run directory of the pipeline (when several are running)")
@cloup.option("--connect", metavar="tcp://HOST:PORT", help="a pointer on another host (its pointer.control)")
@cloup.option("--keys", metavar="DIR", help="the keys made by 'gazeflow keys' (its ctl/ folder is used)")
def ctl(action: str, setting: tuple[str, ...], run_dir: str | None, connect: str | None, keys: str | None) -> int:
    """Pause, resume, toggle, recenter, ask the status of or change a setting of a running pipeline.

    Talks to the pointer of the pipeline running for you (run-all, or a pointer stage started by hand): pause
    and resume the pointer (frames keep flowing and are counted), recenter it on where you look now (the
    middle of the screen), print its status (fps, paused, profile, clicks, each stage's health), or change one
    of its settings at once (gazeflow ctl set pointer.dwell_ms 800; the ones that can change while running:
    the pointer's click, dwell, blink, filter, mode and magnifier settings, and detect_every, which the pointer
    sends on to face detection).
    """
    from .pointer.control import ctl_command

    if action != "set" and setting:
        raise GazeflowError(f"ctl {action}: takes no more arguments (only 'set' does: ctl set pointer.dwell_ms 800)")
    if action == "set" and len(setting) != 2:
        raise GazeflowError("ctl set: give a setting and a value, as in: ctl set pointer.dwell_ms 800")
    return ctl_command(action, run_dir, connect or "", keys or "", (setting[0], setting[1]) if setting else None)


@cloup.command("panel", context_settings=CONTEXT)
@cloup.option("--run-dir", help="the run directory of the pipeline (when several are running)")
@cloup.option("--open", "open_browser", is_flag=True, help="open it in your web browser")
def panel(run_dir: str | None, open_browser: bool) -> int:
    """The address of a running pipeline's web panel, with its token (run-all --panel [HOST:]PORT serves it).

    Open it in a browser to watch the run (the annotated live view, each stage's figures, CPU and memory,
    the last minutes in charts) and tune it (pause, resume, recentre, click, dwell and filter settings, saved
    as your defaults on request); its /metrics is for Prometheus (the token as a bearer credential).
    """
    from .panel.attach import attach

    return attach(run_dir, open_browser)


@cloup.command("quantize", context_settings=CONTEXT)
@cloup.argument("stages", nargs=-1, metavar="[STAGE]...")
@cloup.option("--input", "-i", "video", default="demo", help="the video to calibrate on (default: the demo video)")
@cloup.option("--assets-dir", help="where the fetched models are (default: .assets in the checkout)")
def quantize(stages: tuple[str, ...], video: str, assets_dir: str | None) -> int:
    """Quantize the models to INT8 with NNCF, calibrated on your own video (precision local-INT8).

    Runs the pipeline on the first 70% of VIDEO to collect each model's real inputs, quantizes the chosen
    stages' models (default: every stage with models) with NNCF, times each against its FP16 IR on this CPU
    and keeps INT8 only where it saves at least 5% of the models' time per frame (elsewhere it costs accuracy
    for nothing: the FP16 IR is used). They go to ~/.local/share/gazeflow/models as the precision local-INT8.
    Example: gazeflow quantize --input me.mp4, then gazeflow run-all --precision local-INT8.
    """
    from .quantize import quantize_command

    cfg = config_mod.load(None, {"assets_dir": assets_dir} if assets_dir else None)
    return quantize_command(cfg, list(stages), video)


@cloup.command("fetch", context_settings=CONTEXT)
@cloup.option(
    "--mirror",
    metavar="DIR",
    default=lambda: os.environ.get("ASSETS_MIRROR") or None,
    help="copy from this local mirror instead of downloading (default: $ASSETS_MIRROR)",
)
@cloup.option("--assets-dir", help="where to put them (default: .assets in the checkout)")
@cloup.option("--verify", is_flag=True, help="only check what is in the cache")
def fetch(mirror: str | None, assets_dir: str | None, verify: bool) -> int:
    """Fetch the models and the demo video, verified by sha384."""
    from gazeflow.models import fetch as fetch_mod

    dest = assets_dir or config_mod.default_assets_dir()
    if verify:
        fetch_mod.verify_all(dest)
        log.info("assets in %s verified", dest)
    else:
        fetch_mod.fetch_all(dest, mirror)
    return 0


@cloup.command("keys", context_settings=CONTEXT)
@cloup.argument("folder", metavar="DIR")
@cloup.option(*CONFIG_OPTION, metavar="FILE", help="the topology whose chain gets keys (default: the standard chain)")
@cloup.option("--force", is_flag=True, help="replace keys that are already in DIR")
def keys(folder: str, config_file: str | None, force: bool) -> int:
    """Make a CURVE key pair per stage for encrypted, authenticated tcp links.

    DIR/STAGE/ holds the stage's secret key (0600, folder 0700) and in peers/ the public keys of its
    neighbours, the only peers it admits. Copy DIR/STAGE to the host that runs STAGE (and nothing else there),
    then set curve_keys = "DIR" (the path on that host) in the config.
    """
    from gazeflow.shared.security import make_keys

    cfg = config_mod.load(config_file)
    d = make_keys(folder, cfg.chain_links, force=force)
    print(
        f"CURVE keys in {d}, one folder per stage ({', '.join(cfg.chain)}): copy {d}/STAGE to the host that runs "
        f'STAGE only, and set curve_keys = "{d}" (its path there) in the config'
    )
    for token in sorted(d.glob("*/*.token")):
        print(f"a secret token in {token} (give it to what must reach that stage, as a Prometheus the panel)")
    return 0


@cloup.command("report", context_settings=CONTEXT)
@cloup.argument("metrics", nargs=-1, required=True, metavar="FILE.json...")
@cloup.option("--out", metavar="PREFIX", help="where the plots go (default: next to the report)")
def report(metrics: tuple[str, ...], out: str | None) -> int:
    """Print a metrics report as a table and plot it (PNG); two reports: side by side.

    One report: a table, and PREFIX-latency.png (where each frame's time went, stage by stage), PREFIX-e2e.png
    (the end-to-end distribution), PREFIX-screen.png (where the pointer went, the gaze angles). Two reports:
    a side-by-side table. Example: gazeflow report m.json --out plots/m
    """
    from .report import report_command

    if len(metrics) > 2:
        raise GazeflowError("gazeflow report takes one report, or two to compare")
    report_command(list(metrics), out)
    return 0


@cloup.command("config", context_settings=CONTEXT)
@cloup.option(*CONFIG_OPTION, metavar="FILE", help="a config file to read after the user's own")
@cloup.option("--defaults", is_flag=True, help="every setting at its default (what deploy/local.toml holds)")
@cloup.option("--save", metavar="FILE", help="write it to FILE instead of printing it")
def config_command(config_file: str | None, defaults: bool, save: str | None) -> int:
    """Print the configuration as a commented TOML file: every setting, its value and what it does.

    Read as a run reads it (the defaults, ~/.config/gazeflow/config.toml, --config FILE); --defaults prints
    the defaults alone. A copy is a complete config file to edit.
    """
    from gazeflow.shared.config_file import to_toml

    cfg = config_mod.load(None, user_file=False) if defaults else config_mod.load(config_file)
    text = to_toml(cfg, defaults=defaults)
    if save:
        Path(save).write_text(text)
    else:
        print(text, end="")
    return 0


def _bench_command() -> click.Command:
    from .bench.command import bench_command

    return bench_command


class _Group(cloup.Group):
    """The top level: --log-level also after the command; the bench's options loaded only when it runs."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, _log_level_first(args))


def _log_level_first(argv: list[str]) -> list[str]:
    """--log-level is gazeflow's own option: accept it after the command too."""
    out, i = [], 0
    while i < len(argv):
        if argv[i] == "--log-level" and i + 1 < len(argv):
            out[:0] = argv[i : i + 2]
            i += 2
        elif argv[i].startswith("--log-level="):
            out.insert(0, argv[i])
            i += 1
        else:
            out.append(argv[i])
            i += 1
    return out


@cloup.group(name="gazeflow", cls=_Group, help=DESCRIPTION, context_settings=CONTEXT)
@cloup.option("--log-level", default="INFO", metavar="LEVEL", help="DEBUG, INFO, WARNING or ERROR (default INFO)")
def cli(log_level: str) -> None:
    setup_logging(log_level)


def _commands() -> None:
    """Every command in its section of --help (once: the pipeline's options are read from the settings)."""
    if cli.commands:
        return
    run = SECTIONS["run"]
    run.add_command(_pipeline_command("run-all", _run_all, "Run every stage as a separate process."))
    run.add_command(
        _pipeline_command("run-sync", _run_sync, "The synchronous one-process baseline (same options, same results).")
    )
    run.add_command(
        _pipeline_command("stage", _stage, "Run one stage process (for several hosts or by hand).", STAGE_ARGS)
    )
    SECTIONS["use"].add_command(_pipeline_command("calibrate", _calibrate, CALIBRATE_HELP, CALIBRATE_ARGS))
    SECTIONS["use"].add_command(ctl)
    SECTIONS["use"].add_command(panel)
    for command in (quantize, report, _bench_command()):
        SECTIONS["measure"].add_command(command)
    for command in (fetch, keys, config_command):
        SECTIONS["set"].add_command(command)
    for section in SECTIONS.values():
        cli.add_section(section)
    for command in [*cli.commands.values(), *getattr(cli.commands["bench"], "commands", {}).values()]:
        if command.callback is not None and not command.name.startswith(("run-", "stage", "calibrate")):
            command.callback = _guarded(command.callback)


def pipeline_config(argv: list[str], command: str = "run-all") -> Any:
    """The configuration a pipeline command would run with, from its arguments (for tests and tools)."""
    _commands()
    cmd = cli.commands[command]
    ctx = cmd.make_context(f"gazeflow {command}", list(argv))
    overrides, named = flags.overrides(ctx.params, [p for p in cmd.params if hasattr(p, "target")])
    return config_mod.load(ctx.params.get("config_file"), overrides, named)


def main(argv: list[str] | None = None) -> int:
    """The console entry point: the command's exit code (2 for a usage mistake, with the nearest flag)."""
    try:
        _commands()
    except GazeflowError as exc:  # a broken stage manifest, named in one line
        setup_logging()
        log.error("%s", exc)
        return 2
    try:
        code = cli.main(args=list(sys.argv[1:] if argv is None else argv), prog_name="gazeflow", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        return 130
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
