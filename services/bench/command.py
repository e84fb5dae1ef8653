"""``gazeflow bench``: its options."""

from __future__ import annotations

from pathlib import Path

import cloup

from gazeflow.shared import config as config_mod
from gazeflow.shared.config import PRECISIONS
from gazeflow.shared.errors import GazeflowError


def _counts(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(n) for n in text.split(",") if n.strip())
    except ValueError:
        raise GazeflowError(f"--scale {text!r}: expected numbers like 1,2,4") from None


@cloup.group("bench", invoke_without_command=True, context_settings={"max_content_width": 110})
@cloup.option("--input", "-i", "video", default="demo", help="video to replay (default: the demo video)")
@cloup.option(
    "--precision",
    "precisions",
    multiple=True,
    type=cloup.Choice(PRECISIONS, case_sensitive=False),
    help="precisions to compare (repeatable; default FP16 and FP16-INT8); the most exact one is the "
    "reference for the results",
)
@cloup.option("--repeat", type=int, default=2, help="alternating runs per command (default 2)")
@cloup.option(
    "--realtime-fps",
    type=float,
    default=15.0,
    help="rate of the real-time latency runs (at least 3 per precision) and of the paced model latencies, "
    "0 = skip both (default 15)",
)
@cloup.option("--out", default="out", help="folder for bench.json and bench.md (default out/)")
@cloup.option("--no-models", is_flag=True, help="skip the per-model part")
@cloup.option("--no-pointer", is_flag=True, help="skip the pointer part (edges, calibration, filter jitter and lag)")
@cloup.option(
    "--scale", default="1,2", metavar="N,N,...", help="face-detection worker counts to compare (default 1,2; '' = skip)"
)
@cloup.option("--assets-dir", help="where the models are (default: .assets in the checkout)")
@cloup.option(
    "--targets", metavar="FILE.toml", help="judge the figures against these targets (make bench: docs/targets.toml)"
)
@cloup.pass_context
def bench_command(
    ctx: cloup.Context,
    video: str,
    precisions: tuple[str, ...],
    repeat: int,
    realtime_fps: float,
    out: str,
    no_models: bool,
    no_pointer: bool,
    scale: str,
    assets_dir: str | None,
    targets: str | None,
) -> int:
    """Model figures; run-sync vs run-all fps and CPU per frame as ratios; what a lower precision changes in
    the results; real-time latency, transport per hop and the targets, with verdicts. 'gazeflow bench select':
    how well a person selects (closed loop under Xvfb)."""
    from .run import bench

    if ctx.invoked_subcommand is not None:
        return 0

    bench(
        video,
        [p.upper() for p in precisions] or ["FP16", "FP16-INT8"],
        repeat,
        Path(out),
        realtime_fps,
        assets_dir or config_mod.default_assets_dir(),
        models=not no_models,
        pointer=not no_pointer,
        scale=_counts(scale),
        targets_file=Path(targets) if targets else None,
    )
    return 0


@bench_command.command("select", context_settings={"max_content_width": 110})
@cloup.option(
    "--trials", type=cloup.IntRange(1, 1000), default=100, help="selections per mode, error and size (default 100)"
)
@cloup.option("--quick", is_flag=True, help="every mode at 4 degrees only")
@cloup.option("--out", default="out", help="folder for select.json (default out/)")
@cloup.option("--targets", metavar="FILE.toml", help="judge the figures against these targets (docs/targets.toml)")
def select_command(trials: int, quick: bool, out: str, targets: str | None) -> int:
    """How well a person selects what they see: targets of 16, 32 and 64 px on an ISO 9241-411 ring under
    Xvfb, selected by a simulated user (bias at the gaze error, the demo's jitter, blinks, head turns) through
    the real pointer stage, in every mode; success, time per selection, wrong clicks; the drift corrected by use."""
    from .report import load_targets, select_markdown, target_lines, verdicts
    from .select import bench_select

    wanted = load_targets(Path(targets)) if targets else None  # a bad file: before measuring
    result = bench_select(trials, Path(out), quick=quick)
    text = select_markdown(result)
    if wanted is not None:
        text += "\n".join(target_lines({"targets": verdicts({"select": result}, wanted)})) + "\n"
    (Path(out) / "select.md").write_text(text)
    print(text)
    print(f"(written to {Path(out) / 'select.json'} and {Path(out) / 'select.md'})")
    return 0


@bench_command.command("accuracy", context_settings={"max_content_width": 110})
@cloup.option("--repeat", type=int, default=2, help="alternating runs for the iris stage's cost (default 2)")
@cloup.option("--out", default="out", help="folder for accuracy.json and accuracy.md (default out/)")
@cloup.option("--assets-dir", help="where the models are (default: .assets in the checkout)")
@cloup.option("--targets", metavar="FILE.toml", help="judge the figures against these targets (docs/targets.toml)")
def accuracy_command(repeat: int, out: str, assets_dir: str | None, targets: str | None) -> int:
    """How close the pointer gets on the demo's documented targets: the calibration's error on targets it never
    saw and on those it was fitted on, with the gaze model's features alone and with the iris stage's; what the
    iris stage costs a frame; the EyeTrax peer measured by the same splits."""
    import json

    from .accuracy import calibration_accuracy
    from .common import machine
    from .report import accuracy_lines, load_targets, target_lines, verdicts

    wanted = load_targets(Path(targets)) if targets else None  # a bad file: before measuring
    result = {
        "machine": machine(),
        "input": "demo",
        "accuracy": calibration_accuracy("demo", assets_dir or config_mod.default_assets_dir(), repeat),
    }
    if wanted is not None:
        result["targets"] = verdicts(result, wanted)
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "accuracy.json").write_text(json.dumps(result, indent=1) + "\n")
    text = "\n".join([f"Machine: {result['machine']}", *accuracy_lines(result), *target_lines(result)]) + "\n"
    (Path(out) / "accuracy.md").write_text(text)
    print(text)
    return 0


@bench_command.command("panel", context_settings={"max_content_width": 110})
@cloup.option("--repeat", type=int, default=3, help="alternating rounds (default 3)")
@cloup.option("--out", default="out", help="folder for panel.json (default out/)")
@cloup.option("--targets", metavar="FILE.toml", help="judge the figures against these targets (docs/targets.toml)")
def panel_command(repeat: int, out: str, targets: str | None) -> int:
    """What the web panel costs at 30 fps: the cores of a run without it, with it and no browser, and with a
    browser's requests (figures each second, the live view at its default rate)."""
    import json

    from .common import machine
    from .panel import panel_cost
    from .report import load_targets, panel_lines, target_lines, verdicts

    wanted = load_targets(Path(targets)) if targets else None
    result = {"machine": machine(), "panel": panel_cost(repeat)}
    if wanted is not None:
        result["targets"] = verdicts(result, wanted)
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "panel.json").write_text(json.dumps(result, indent=1) + "\n")
    print("\n".join([f"Machine: {result['machine']}", *panel_lines(result), *target_lines(result)]))
    return 0
