"""gazeflow report: read a metrics report, print a table, draw the plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gazeflow.shared.errors import GazeflowError, read_document

COLUMNS = ("transport_ms", "queue_ms", "pre_ms", "infer_ms", "post_ms", "service_ms")


def load(path: str) -> dict[str, Any]:
    if Path(path).suffix != ".json":
        raise GazeflowError(f"{path} is not a metrics report (a .json file written by --metrics)")
    report = read_document(path, "metrics report")
    if not isinstance(report, dict) or "stages" not in report or "e2e_ms" not in report:
        raise GazeflowError(f"{path} is not a metrics report (no 'stages' or 'e2e_ms')")
    return report


def table(report: dict[str, Any]) -> str:
    e2e = report["e2e_ms"]
    lines = [
        f"{report['frames']} frames in {report['seconds']:.2f} s: {report['fps']:.1f} fps, "
        f"{report.get('dropped', 0)} dropped, {report.get('cpu_ms_per_frame', 0):.1f} ms CPU per frame",
        f"end to end: p50 {e2e['p50']:.1f}  p95 {e2e['p95']:.1f}  p99 {e2e['p99']:.1f}  max {e2e['max']:.1f} ms",
        "",
        f"{'stage':<20}"
        + "".join(f"{c[:-3] + ' p50/p95':>18}" for c in COLUMNS)
        + f"{'in':>7}{'out':>7}{'drop':>6}{'in flight':>11}",
    ]
    for name in report.get("stages", {}):
        s = report["stages"].get(name)
        if not s:
            continue
        cells = "".join(f"{s[c]['p50']:>9.2f}/{s[c]['p95']:<8.2f}" for c in COLUMNS if c in s)
        flight = f"{s['in_flight_mean']:.1f}/{s['in_flight_max']}" if "in_flight_mean" in s else "-"
        lines.append(f"{name:<20}{cells}{s['in']:>7}{s['out']:>7}{s['dropped']:>6}{flight:>11}")
    lines.append(
        "(milliseconds; service = pre + infer + post; queue includes waiting for a free infer request; "
        "in flight: requests in flight after each submit, mean/max)"
    )
    return "\n".join(lines)


def plots(report: dict[str, Any], out_prefix: Path) -> list[Path]:
    try:
        import matplotlib
    except ImportError:  # an extra: a stage's image does without it
        raise GazeflowError("the plots need matplotlib: pip install 'gazeflow[report]'") from None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    timeline = report.get("timeline") or {}
    written = []
    fig, ax = plt.subplots(figsize=(11, 4.5))
    t = timeline.get("t", [])
    for name, series in (timeline.get("service_ms") or {}).items():
        ax.plot(t[: len(series)], series, label=name, linewidth=0.9)
    ax.plot(t, timeline.get("e2e_ms", []), label="end to end", color="black", linewidth=1.2)
    ax.set(xlabel="seconds since the first frame", ylabel="ms", title="Per-stage service time and end-to-end latency")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))  # 0.1, 1, 10 ms, not powers of ten
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)  # outside: never over a line
    fig.tight_layout()
    path = out_prefix.with_name(out_prefix.name + "-latency.png")
    fig.savefig(path, dpi=110)
    written.append(path)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    e2e = timeline.get("e2e_ms", [])
    ax.hist(e2e, bins=50, color="tab:blue", alpha=0.8)
    for key, style in (("p50", "-"), ("p95", "--"), ("p99", ":")):
        value = report["e2e_ms"][key]
        ax.axvline(value, color="black", linestyle=style, label=f"{key} {value:.1f} ms")
    ax.set(xlabel="end-to-end latency, ms (capture to pointer)", ylabel="frames", title="End-to-end latency")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # a count of frames
    ax.legend()
    fig.tight_layout()
    path = out_prefix.with_name(out_prefix.name + "-e2e.png")
    fig.savefig(path, dpi=110)
    written.append(path)
    plt.close(fig)
    return written


def report_command(path: str, out: str | None) -> None:
    report = load(path)
    print(table(report))
    prefix = Path(out) if out else Path(path).with_suffix("")
    for written in plots(report, prefix):
        print(f"wrote {written}")
