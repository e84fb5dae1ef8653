"""Soak: the demo looped at real time for a long while, every process sampled each interval.

    python tests/soak.py --minutes 30 --every 60 --out out/soak      (make soak)

Samples each stage process's resident memory and open files, and the live line's
end-to-end p50 / p95, writes OUT.json and a plot OUT.png, and checks that memory
and open files stay flat after warm-up (the first two samples): the largest
sample within 5% of the smallest. Exit 0 when they do, 1 when not. The test suite
runs a two-minute version (tests/test_soak.py).
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

LIVE = re.compile(r"e2e p50\s+([\d.]+) ms \| p95\s+([\d.]+) ms")
TOLERANCE = 0.05


def soak(seconds: float, every: float, out: Path, warm_up: int = 2) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="soak-"))
    cmd = [
        sys.executable,
        "-m",
        "gazeflow.services.cli",
        "run-all",
        "--input",
        "demo",
        "--loop",
        "--realtime",
        "--pointer",
        "null",
        "--metrics",
        str(tmp / "m.json"),
        "--log-interval",
        str(every),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    live: list[tuple[float, float]] = []

    def read_stderr() -> None:  # the live line, once per interval
        for line in proc.stderr:
            m = LIVE.search(line)
            if m:
                live.append((float(m.group(1)), float(m.group(2))))

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    samples: list[dict] = []
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < seconds:
            time.sleep(every)
            row: dict = {"t_s": round(time.monotonic() - t0, 1), "rss_mb": {}, "open_files": {}}
            for child in psutil.Process(proc.pid).children():
                try:
                    name = " ".join(a for a in child.cmdline() if a).removeprefix("gazeflow-stage ")
                    row["rss_mb"][name] = round(child.memory_info().rss / 2**20, 1)
                    row["open_files"][name] = child.num_fds()
                except psutil.Error:
                    continue
            row["e2e_p50_ms"], row["e2e_p95_ms"] = live[-1] if live else (None, None)
            samples.append(row)
            print(json.dumps(row), flush=True)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
    report = {
        "seconds": seconds,
        "every_s": every,
        "samples": samples,
        "metrics": json.loads((tmp / "m.json").read_text()),
    }
    report["flat"] = flat(samples[warm_up:])
    out.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{out}.json").write_text(json.dumps(report, indent=1) + "\n")
    plot(samples, Path(f"{out}.png"))
    return report


def flat(samples: list[dict]) -> dict[str, bool]:
    """Per process and measure: the largest sample within TOLERANCE of the smallest."""
    out = {}
    for measure in ("rss_mb", "open_files"):
        for name in samples[0][measure] if samples else ():
            values = [s[measure][name] for s in samples if name in s[measure]]
            out[f"{measure} {name}"] = max(values) <= min(values) * (1 + TOLERANCE)
    return out


def plot(samples: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (mem, lat) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    minutes = [s["t_s"] / 60 for s in samples]
    for name in samples[0]["rss_mb"] if samples else ():
        mem.plot(minutes, [s["rss_mb"].get(name) for s in samples], label=name)
    mem.set_ylabel("resident memory, MB")
    mem.legend(fontsize=8)
    mem.set_title("gazeflow soak: the demo looped at real time")
    lat.plot(minutes, [s["e2e_p50_ms"] for s in samples], label="end to end p50")
    lat.plot(minutes, [s["e2e_p95_ms"] for s in samples], label="end to end p95")
    lat.set_ylabel("ms")
    lat.set_xlabel("minutes")
    lat.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=30.0, help="how long (default 30)")
    p.add_argument("--every", type=float, default=60.0, help="seconds between samples (default 60)")
    p.add_argument("--out", default="out/soak", help="OUT.json and OUT.png (default out/soak)")
    args = p.parse_args()
    report = soak(args.minutes * 60, args.every, Path(args.out))
    bad = [k for k, ok in report["flat"].items() if not ok]
    print(f"soak: {len(report['samples'])} samples; " + (f"NOT flat: {', '.join(bad)}" if bad else "flat"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
