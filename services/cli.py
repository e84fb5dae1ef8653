"""The gazeflow command: run the pipeline, one stage, the sync baseline; fetch assets."""

from __future__ import annotations

import argparse
import difflib
import logging
import os
import re
import socket
import sys
from typing import Any, NoReturn

from gazeflow.shared import config as config_mod
from gazeflow.shared import registry
from gazeflow.shared.errors import GazeflowError
from gazeflow.shared.process import setup_logging

log = logging.getLogger("gazeflow")

DESCRIPTION = """\
gazeflow: an eye-gaze pointer controller built as a five-process streaming pipeline
(capture -> face_detection -> landmarks_headpose -> gaze -> pointer) over ZeroMQ.

examples:
  gazeflow fetch --mirror ../shared/assets        verify and cache the models and demo video
  gazeflow run-all --input demo                   the demo video, real-time, pointer moves
  gazeflow run-all --input demo --max-speed --pointer null --results r.jsonl
  gazeflow run-all --input cam:0                  live from the first webcam
  gazeflow run-sync --input demo --max-speed      the one-process synchronous baseline
  gazeflow run-all --input demo --workers face_detection=2   two face-detection processes
  gazeflow stage face_detection --config deploy/cluster.toml   one stage on this host
"""


def _key_values(items: list[str], flag: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise GazeflowError(f"{flag} {item!r}: expected STAGE=VALUE")
        out[key] = value
    return out


def _counts(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(n) for n in text.split(",") if n.strip())
    except ValueError:
        raise GazeflowError(f"--scale {text!r}: expected numbers like 1,2,4") from None


def _pipeline_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help="TOML config file (flags override it); see deploy/local.toml")
    p.add_argument("--input", "-i", help="video file, 'demo' (the fetched demo video) or cam:N (default: demo)")
    pace = p.add_mutually_exclusive_group()
    pace.add_argument(
        "--realtime",
        dest="pace",
        action="store_const",
        const="realtime",
        help="replay at the recorded rate (or --fps); drop frames the pipeline cannot take (default)",
    )
    pace.add_argument(
        "--max-speed",
        dest="pace",
        action="store_const",
        const="max-speed",
        help="replay as fast as possible, losing no frame (benchmark)",
    )
    p.add_argument("--fps", type=float, help="replay rate in frames per second (default: the recorded rate)")
    p.add_argument("--loop", action="store_true", default=None, help="replay the file forever")
    p.add_argument(
        "--lossless",
        action="store_true",
        default=None,
        help="real-time replay that queues frames instead of dropping them",
    )
    p.add_argument("--max-frames", type=int, help="stop after this many frames")
    p.add_argument("--detect-every", type=int, metavar="N",
                   help="run the face detector on every Nth frame and track the face between (default 3; 1 = every "
                        "frame); it also runs as soon as tracking is lost")  # fmt: skip
    p.add_argument(
        "--pointer",
        choices=["auto", "pyautogui", "null"],
        help="pointer backend: auto (pyautogui when a display exists, else null), pyautogui, null (log only)",
    )
    p.add_argument("--no-fail-safe", action="store_true", help="switch off pyautogui's screen-corner fail-safe")
    p.add_argument("--share-pointer", action="store_true",
                   help="run even though another gazeflow already moves this display's pointer")  # fmt: skip
    p.add_argument(
        "--profile",
        metavar="NAME|PATH",
        help="calibration profile (default: 'default' when it exists, else uncalibrated; '' = none)",
    )
    p.add_argument(
        "--filter",
        choices=config_mod.FILTERS,
        help="pointer filter: one-euro (steady when still, quick on a jump; default), ema, none",
    )
    p.add_argument(
        "--click",
        choices=config_mod.CLICKS,
        help="how to click: dwell (hold the pointer still 1 s), blink (close both eyes 0.5-1.5 s), none (default)",
    )
    p.add_argument(
        "--monitor",
        type=int,
        metavar="N",
        help="the monitor to point on (0, 1, ...: 'gazeflow calibrate --list-monitors'; default primary)",
    )
    p.add_argument(
        "--show",
        action="store_true",
        default=None,
        help="a window with the annotated frames (keys f l h g e p s toggle overlays, Space pauses, Esc stops)",
    )
    p.add_argument(
        "--output", metavar="FILE.mp4", help="write the annotated frames to a video (every frame in a replay)"
    )
    p.add_argument("--results", metavar="FILE.jsonl", help="write one JSON line per frame")
    p.add_argument("--metrics", metavar="FILE.json", help="write the final metrics report")
    p.add_argument(
        "--precision",
        action="append",
        default=[],
        metavar="[STAGE=]PREC",
        help=f"model precision ({', '.join(config_mod.PRECISIONS)}) for every stage or for one stage; "
        "repeatable (default FP16)",
    )
    p.add_argument(
        "--device",
        action="append",
        default=[],
        metavar="[STAGE=]DEV",
        help="OpenVINO device (CPU, GPU, NPU, AUTO, ...) for every stage or for one stage; repeatable",
    )
    p.add_argument(
        "--inference-precision",
        action="append",
        default=[],
        metavar="[STAGE=]f32|bf16|f16",
        help="the precision OpenVINO computes in (INFERENCE_PRECISION_HINT) for every stage or one; default: the "
        "device's own (bf16 on CPUs with AMX: faster, results differ slightly from other machines)",
    )
    p.add_argument(
        "--hint",
        choices=[h for h in config_mod.HINTS if h],
        help="performance hint (default: LATENCY real-time, THROUGHPUT max-speed)",
    )
    p.add_argument(
        "--requests",
        action="append",
        default=[],
        metavar="STAGE=N",
        help="infer requests in flight for a stage (default: the device's optimal number)",
    )
    p.add_argument(
        "--workers",
        action="append",
        default=[],
        metavar="STAGE=N",
        help="run N processes of an inference stage sharing its load, results kept in frame order (default 1)",
    )
    p.add_argument("--log-interval", type=float, help="seconds between live metric lines, 0 = off (default 1)")
    p.add_argument("--assets-dir", help="where fetched models and videos are (default: .assets in the checkout)")
    p.add_argument("--run-dir", help="folder for ipc sockets (stage command; run-all makes its own)")


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Flags as a partial config, in the shape of the config file."""
    o: dict[str, Any] = {}
    for flag, key in (
        ("input", "input"),
        ("pace", "pace"),
        ("fps", "fps"),
        ("loop", "loop"),
        ("lossless", "lossless"),
        ("max_frames", "max_frames"),
        ("detect_every", "detect_every"),
        ("results", "results"),
        ("metrics", "metrics"),
        ("log_interval", "log_interval"),
        ("assets_dir", "assets_dir"),
        ("run_dir", "run_dir"),
    ):
        value = getattr(args, flag, None)
        if value is not None:
            o[key] = value
    pointer: dict[str, Any] = {}
    if args.pointer:
        pointer["backend"] = args.pointer
    if args.no_fail_safe:
        pointer["fail_safe"] = False
    if getattr(args, "share_pointer", None):
        pointer["share"] = True
    view = {k: getattr(args, k) for k in ("show", "output") if getattr(args, k, None) is not None}
    if view:
        o["view"] = view
    for flag in ("profile", "filter", "monitor", "click"):
        if getattr(args, flag, None) is not None:
            pointer[flag] = getattr(args, flag)
    if pointer:
        o["pointer"] = pointer
    infer = registry.with_models()
    stages: dict[str, dict[str, Any]] = {name: {} for name in registry.stages()}
    for name in infer:
        if args.hint:
            stages[name]["hint"] = args.hint
    triples = (("--precision", "precision", args.precision), ("--device", "device", args.device),
               ("--inference-precision", "inference_precision", args.inference_precision))  # fmt: skip
    for flag, key, items in triples:
        for item in items:  # a bare value is for every inference stage, STAGE=VALUE for one
            if "=" in item:
                for stage, value in _key_values([item], flag).items():
                    if stage in stages and stage not in infer:
                        raise GazeflowError(f"{flag} {item}: {stage} runs no model "
                                            f"(inference stages: {', '.join(infer)})")  # fmt: skip
                    stages.setdefault(stage, {})[key] = value
            else:
                for name in infer:
                    stages[name][key] = item
    for flag, key, items in (("--requests", "requests", args.requests), ("--workers", "workers", args.workers)):
        for stage, n in _key_values(items, flag).items():
            try:
                stages.setdefault(stage, {})[key] = int(n)
            except ValueError:
                raise GazeflowError(f"{flag} {stage}={n}: expected a number") from None
    stages = {k: v for k, v in stages.items() if v}
    if stages:
        o["stages"] = stages
    return o


class Parser(argparse.ArgumentParser):
    """An argument parser whose error names the nearest valid flag of the command."""

    def error(self, message: str) -> NoReturn:
        hint = ""
        m = re.search(r"unrecognized arguments: (\S+)", message)
        if m:
            options = [o for action in self._actions for o in action.option_strings]
            close = difflib.get_close_matches(m[1].split("=")[0], options, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]}?)" if close else f" (see {self.prog} --help)"
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}{hint}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="gazeflow", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR (default INFO)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run-all", help="run all five stages as separate processes")
    _pipeline_args(p)
    p = sub.add_parser("run-sync", help="the synchronous one-process baseline (same options, same results)")
    _pipeline_args(p)
    p = sub.add_parser(
        "calibrate",
        help="calibrate the pointer: look at targets, get a profile with its accuracy in pixels and degrees",
        description="Runs the pipeline with a calibration sink in place of the pointer and shows targets full "
        "screen on the chosen monitor, one at a time: look at each red dot until it disappears. Then a few "
        "validation targets elsewhere. The fit corrects the geometric gaze-to-screen model; the validation "
        "error (median and p95, in pixels and degrees) is printed before and after, and the better of the two "
        "is saved in the profile. Esc cancels and saves nothing. The camera is cam:0 unless --input says "
        "otherwise (a video stands in for it, looped). Without a display, fit from a recording: "
        "--replay DIR (made by --record DIR), or --input VIDEO --targets FILE.json (README: the targets format).",
    )
    p.add_argument(
        "--points",
        type=int,
        choices=config_mod.POINT_COUNTS,
        help="targets to fit on (default 9; 1 recentres an existing profile: an offset only)",
    )
    p.add_argument("--record", metavar="DIR", help="also save the session: the camera's frames and targets.json")
    p.add_argument("--replay", metavar="DIR", help="fit from a recording made with --record (no display needed)")
    p.add_argument("--targets", metavar="FILE.json", help="fit from --input VIDEO and this targets file")
    p.add_argument("--list-monitors", action="store_true", help="print the monitors and their numbers, then exit")
    _pipeline_args(p)
    p = sub.add_parser(
        "ctl",
        help="pause, resume, toggle, recenter or ask the status of a running pipeline",
        description="Talks to the pointer of the pipeline running for you (run-all, or a pointer stage started "
        "by hand): pause and resume the pointer (frames keep flowing and are counted), recenter it on where "
        "you look now (the middle of the screen), or print its status (fps, paused, profile, clicks, each "
        "stage's health).",
    )
    p.add_argument("action", metavar="ACTION", help="pause, resume, toggle, recenter or status")
    p.add_argument("--run-dir", help="the run directory of the pipeline (when several are running)")
    p.add_argument("--connect", metavar="tcp://HOST:PORT",
                   help="a pointer on another host (its pointer.control endpoint)")  # fmt: skip
    p.add_argument("--keys", metavar="DIR", help="the keys made by 'gazeflow keys' (its ctl/ folder is used)")
    p = sub.add_parser(
        "quantize",
        help="quantize the models to INT8 with NNCF, calibrated on your own video (precision local-INT8)",
        description="Runs the pipeline on the first 70% of VIDEO to collect each model's real inputs, quantizes "
        "the chosen stages' models with NNCF, times each against its FP16 IR on this CPU and keeps INT8 only where "
        "it saves at least 5% of the models' time per frame (elsewhere it costs accuracy for nothing: the FP16 IR "
        "is used). They go to ~/.local/share/gazeflow/models as the precision local-INT8. Example: gazeflow "
        "quantize --input me.mp4, then gazeflow run-all --precision local-INT8.",
    )
    with_models = ", ".join(name for name, spec in registry.stages().items() if spec.models)
    p.add_argument("stages", nargs="*", metavar="STAGE",
                   help=f"the stages whose models to quantize: {with_models} (default: all)")  # fmt: skip
    p.add_argument("--input", "-i", default="demo", help="the video to calibrate on (default: the demo video)")
    p.add_argument("--assets-dir", help="where the fetched models are (default: .assets in the checkout)")
    p = sub.add_parser("stage", help="run one stage process (for several hosts or by hand)")
    p.add_argument(
        "name",
        metavar="STAGE[:WORKER]",
        help=f"one of {', '.join(registry.stages())}; ':WORKER' labels one worker of a scaled stage",
    )
    p.add_argument(
        "--worker",
        default=os.environ.get("GAZEFLOW_WORKER"),
        metavar="LABEL",
        help="the worker label of a scaled stage, shown in health reports "
        "(default: $GAZEFLOW_WORKER, else the host name for a scaled stage, else 0)",
    )
    _pipeline_args(p)
    p = sub.add_parser("fetch", help="fetch the models and demo video, verified by sha384")
    p.add_argument(
        "--mirror",
        metavar="DIR",
        default=os.environ.get("ASSETS_MIRROR") or None,
        help="copy from this local mirror instead of downloading (default: $ASSETS_MIRROR)",
    )
    p.add_argument("--assets-dir", help="where to put them (default: .assets in the checkout)")
    p.add_argument("--verify", action="store_true", help="only check what is in the cache")
    p = sub.add_parser(
        "keys",
        help="make a CURVE key pair per stage for encrypted, authenticated tcp links",
        description="Make a key pair for every stage of the config's chain: DIR/STAGE/ holds the stage's secret "
        "key (0600, folder 0700) and in peers/ the public keys of its neighbours, the only peers it admits. "
        'Copy DIR/STAGE to the host that runs STAGE (and nothing else there), then set curve_keys = "DIR" '
        "(the path on that host) in the config.",
    )
    p.add_argument("dir", help="folder for the keys: one subfolder per stage")
    p.add_argument("--config", metavar="FILE", help="the topology whose chain gets keys (default: the standard chain)")
    p.add_argument("--force", action="store_true", help="replace keys that are already in DIR")
    p = sub.add_parser(
        "report",
        help="print a metrics report as a table and plot it (PNG); two reports: side by side",
        description="One report: a table, and PREFIX-latency.png (where each frame's time went, stage by stage), "
        "PREFIX-e2e.png (the end-to-end distribution), PREFIX-screen.png (where the pointer went, the gaze "
        "angles). Two reports: a side-by-side table. Example: gazeflow report m.json --out plots/m",
    )
    p.add_argument("metrics", metavar="FILE.json", nargs="+", help="one or two reports written by --metrics")
    p.add_argument("--out", metavar="PREFIX", help="where the plots go (default: next to the report)")
    p = sub.add_parser(
        "bench",
        help="model figures; run-sync vs run-all fps and CPU per frame as ratios; what a lower precision "
        "changes in the results; real-time latency, transport per hop and the targets, with verdicts",
    )
    p.add_argument("--input", "-i", default="demo", help="video to replay (default: the demo video)")
    p.add_argument("--precision", action="append", choices=config_mod.PRECISIONS,
                   help="precisions to compare (repeatable; default FP16 and FP16-INT8); the most exact one is "
                        "the reference for the results")  # fmt: skip
    p.add_argument("--repeat", type=int, default=2, help="alternating runs per command (default 2)")
    p.add_argument(
        "--realtime-fps", type=float, default=15.0,
        help="rate of the real-time latency runs (at least 3 per precision) and of the paced model "
             "latencies, 0 = skip both (default 15)",
    )  # fmt: skip
    p.add_argument("--out", default="out", help="folder for bench.json and bench.md (default out/)")
    p.add_argument("--no-models", action="store_true", help="skip the per-model part")
    p.add_argument("--no-pointer", action="store_true",
                   help="skip the pointer part (edges, calibration, filter jitter and lag)")  # fmt: skip
    p.add_argument("--scale", default="1,2", metavar="N,N,...",
                   help="face-detection worker counts to compare (default 1,2; '' = skip)")  # fmt: skip
    p.add_argument("--assets-dir", help="where the models are (default: .assets in the checkout)")
    p.add_argument("--targets", metavar="FILE.toml",
                   help="judge the figures against these targets (make bench: docs/targets.toml)")  # fmt: skip
    return parser


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


def main(argv: list[str] | None = None) -> int:
    argv = _log_level_first(list(sys.argv[1:] if argv is None else argv))
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # the command's own usage and its nearest flag, not the top level's
        commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        commands.choices[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    setup_logging(args.log_level)
    try:
        if args.command == "fetch":
            from gazeflow.models import fetch

            dest = args.assets_dir or config_mod.default_assets_dir()
            if args.verify:
                fetch.verify_all(dest)
                log.info("assets in %s verified", dest)
            else:
                fetch.fetch_all(dest, args.mirror)
            return 0
        if args.command == "keys":
            from gazeflow.shared.security import make_keys

            cfg = config_mod.load(args.config)
            d = make_keys(args.dir, cfg.chain_links, force=args.force)
            print(f"CURVE keys in {d}, one folder per stage ({', '.join(cfg.chain)}): copy {d}/STAGE to the host "
                  f'that runs STAGE only, and set curve_keys = "{d}" (its path there) in the config')  # fmt: skip
            return 0
        if args.command == "quantize":
            from .quantize import quantize_command

            cfg = config_mod.load(None, {"assets_dir": args.assets_dir} if args.assets_dir else None)
            return quantize_command(cfg, args.stages, args.input)
        if args.command == "ctl":
            from .pointer.control import ctl_command

            return ctl_command(args.action, args.run_dir, args.connect or "", args.keys or "")
        if args.command == "report":
            from .report import report_command

            if len(args.metrics) > 2:
                raise GazeflowError("gazeflow report takes one report, or two to compare")
            report_command(args.metrics, args.out)
            return 0
        if args.command == "bench":
            from pathlib import Path

            from .bench import bench

            bench(
                args.input,
                args.precision or ["FP16", "FP16-INT8"],
                args.repeat,
                Path(args.out),
                args.realtime_fps,
                args.assets_dir or config_mod.default_assets_dir(),
                models=not args.no_models,
                pointer=not args.no_pointer,
                scale=_counts(args.scale),
                targets_file=Path(args.targets) if args.targets else None,
            )
            return 0
        cfg = config_mod.load(args.config, overrides(args))
        if args.command == "stage":
            from gazeflow.shared.process import run_stage

            from .pipeline import process_name, stage_body

            name, _, worker = args.name.partition(":")
            registry.get(name)  # an unknown stage: one line naming the known ones
            if name not in cfg.chain:
                raise GazeflowError(f"stage {name!r} is not in the chain {cfg.chain} of this config")
            if worker and cfg.workers(name) == 1:
                raise GazeflowError(f"{args.name}: {name} has one process in this config (workers = 1): "
                                    f"run it as '{name}', or set stages.{name}.workers")  # fmt: skip
            if worker.isdigit() and int(worker) >= cfg.workers(name):
                raise GazeflowError(f"{args.name}: {name} has workers 0-{cfg.workers(name) - 1} in this config")
            worker = args.worker or worker or (socket.gethostname() if cfg.workers(name) > 1 else "0")
            return run_stage(process_name(name, worker, cfg), stage_body(name, cfg, worker))
        if args.command == "calibrate":
            from .calibration.command import calibrate

            return calibrate(cfg, args)
        if args.command == "run-sync":
            from .run_sync import run_sync

            return run_sync(cfg)
        from .supervisor import run_all

        return run_all(cfg)
    except GazeflowError as exc:
        log.error("%s", exc)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `gazeflow report m.json | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
