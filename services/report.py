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


def title(report: dict[str, Any]) -> str:
    """Which run a plot shows: its input, pace, precision and fps."""
    run = report.get("run") or {}
    inference = f" ({'/'.join(run['inference'])})" if run.get("inference") else ""
    every = f"detect every {run['detect_every']}" if "detect_every" in run else ""
    parts = [
        Path(str(run.get("input", "?"))).name,
        str(run.get("pace", "")),
        "/".join(run.get("precision", [])) + inference,
        f"{report['fps']:.1f} fps",
        every,
    ]
    return ", ".join(p for p in parts if p)


def _nan(values: list[Any]) -> list[float]:
    return [float("nan") if v is None else float(v) for v in values]


def plots(report: dict[str, Any], out_prefix: Path) -> list[Path]:
    """The report's plots as PNG files next to ``out_prefix``: where each frame's time went, the end-to-end
    distribution, where the pointer went and the gaze angles."""
    try:
        import matplotlib
    except ImportError:  # an extra: a stage's image does without it
        raise GazeflowError("the plots need matplotlib: pip install 'gazeflow[report]'") from None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for suffix, draw in (("-latency.png", _latency), ("-e2e.png", _e2e), ("-screen.png", _screen)):
        fig = draw(plt, report, title(report))
        if fig is None:
            continue
        fig.tight_layout()
        path = out_prefix.with_name(out_prefix.name + suffix)
        fig.savefig(path, dpi=110)
        written.append(path)
        plt.close(fig)
    return written


def _latency(plt: Any, report: dict[str, Any], run: str) -> Any:
    """Where each frame's time went: every stage's waiting (on the way, queued, held for order) and work."""
    timeline = report.get("timeline") or {}
    fig, ax = plt.subplots(figsize=(11, 4.8))
    t = timeline.get("t", [])
    layers, labels = [], []
    for name, service in (timeline.get("service_ms") or {}).items():
        wait = (timeline.get("wait_ms") or {}).get(name)
        if wait and any(wait):
            layers.append(wait[: len(t)])
            labels.append(f"{name}: waiting")
        layers.append(service[: len(t)])
        labels.append(f"{name}: work")
    if layers and t:
        n = min(len(t), *(len(layer) for layer in layers))
        ax.stackplot(t[:n], *[layer[:n] for layer in layers], labels=labels, alpha=0.85)
    ax.plot(t, timeline.get("e2e_ms", []), label="end to end", color="black", linewidth=1.0)
    ax.set(xlabel="seconds since the first frame", ylabel="ms", title=f"Where each frame's time went: {run}")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7)  # outside: never over a line
    return fig


def _e2e(plt: Any, report: dict[str, Any], run: str) -> Any:
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.hist((report.get("timeline") or {}).get("e2e_ms", []), bins=50, color="tab:blue", alpha=0.8)
    for key, style in (("p50", "-"), ("p95", "--"), ("p99", ":")):
        value = report["e2e_ms"][key]
        ax.axvline(value, color="black", linestyle=style, label=f"{key} {value:.1f} ms")
    ax.set(xlabel="end-to-end latency, ms (capture to pointer)", ylabel="frames", title=f"End to end: {run}")
    ax.title.set_fontsize(9)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # a count of frames
    ax.legend()
    return fig


def _screen(plt: Any, report: dict[str, Any], run: str) -> Any:
    """Where the pointer went (path, heat map) and the gaze angles over time; None without either."""
    import numpy as np

    timeline = report.get("timeline") or {}
    t, pointer, gaze = timeline.get("t", []), timeline.get("pointer") or {}, timeline.get("gaze") or {}
    if not (pointer.get("x") or gaze.get("h")):
        return None
    fig, (screen, angles) = plt.subplots(1, 2, figsize=(13, 4.6), gridspec_kw={"width_ratios": [1.5, 1]})
    width, height = (report.get("run") or {}).get("screen", [1920, 1080])
    x, y = np.array(_nan(pointer.get("x", []))), np.array(_nan(pointer.get("y", [])))
    ok = ~(np.isnan(x) | np.isnan(y))
    if ok.any():
        screen.hist2d(x[ok], y[ok], bins=[48, 27], range=[[0, width], [0, height]], cmap="inferno", cmin=1)
        screen.plot(x, y, color="white", linewidth=0.5, alpha=0.7)
    screen.set(
        xlim=(0, width),
        ylim=(height, 0),
        aspect="equal",
        title="Where the pointer went (path, heat map)",
        xlabel="screen x, px",
        ylabel="screen y, px",
    )
    screen.set_facecolor("#202020")
    angles.plot(t[: len(gaze.get("h", []))], _nan(gaze.get("h", [])), label="horizontal (+ to the image's right)")
    angles.plot(t[: len(gaze.get("v", []))], _nan(gaze.get("v", [])), label="vertical (+ up)")
    angles.set(xlabel="seconds since the first frame", ylabel="degrees", title="Gaze angles")
    angles.grid(True, alpha=0.3)
    angles.legend(fontsize=8)
    fig.suptitle(run, fontsize=9)
    return fig


def compare(a: dict[str, Any], b: dict[str, Any], names: tuple[str, str]) -> str:
    """Two runs side by side: fps, end to end, CPU, each stage's service time (p50)."""
    rows = [
        ("fps", a["fps"], b["fps"]),
        ("end to end p50, ms", a["e2e_ms"]["p50"], b["e2e_ms"]["p50"]),
        ("end to end p95, ms", a["e2e_ms"]["p95"], b["e2e_ms"]["p95"]),
        ("CPU ms per frame", a.get("cpu_ms_per_frame", 0), b.get("cpu_ms_per_frame", 0)),
        ("cores used", a.get("cores", 0), b.get("cores", 0)),
        ("dropped", a.get("dropped", 0), b.get("dropped", 0)),
    ]
    for stage in a.get("stages", {}):
        if stage in b.get("stages", {}):
            rows.append(
                (
                    f"{stage} service p50, ms",
                    a["stages"][stage]["service_ms"]["p50"],
                    b["stages"][stage]["service_ms"]["p50"],
                )
            )
    width = max(len(r[0]) for r in rows) + 2
    lines = [
        f"{'':<{width}}{names[0][:24]:>26}{names[1][:24]:>26}{'b / a':>10}",
        f"{'run':<{width}}{title(a)[:24]:>26}{title(b)[:24]:>26}",
    ]
    for label, va, vb in rows:
        ratio = f"{vb / va:.2f}x" if va else "-"
        lines.append(f"{label:<{width}}{va:>26.2f}{vb:>26.2f}{ratio:>10}")
    return "\n".join(lines)


def report_command(paths: list[str], out: str | None) -> None:
    reports = [load(p) for p in paths]
    if len(reports) == 2:
        print(compare(reports[0], reports[1], (Path(paths[0]).name, Path(paths[1]).name)))
        return
    report = reports[0]
    print(table(report))
    prefix = Path(out) if out else Path(paths[0]).with_suffix("")
    for written in plots(report, prefix):
        print(f"wrote {written}")
