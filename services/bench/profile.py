"""Where each stage's CPU goes: py-spy samples of its Python thread and /proc of its native threads."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger("gazeflow.bench")


KINDS = (("inference", ("openvino",)), ("OpenCV", ("cv2",)), ("ZeroMQ/msgpack", ("zmq", "msgpack")))


def profile_stages(input_spec: str, seconds: float = 10.0, fps: float = 30.0) -> dict[str, Any]:
    """A sampling profile (py-spy) of each stage process of a live run at ``fps``: where its CPU goes, split
    into inference, OpenCV, ZeroMQ/msgpack and our own Python, with its busiest functions."""
    import shutil
    import time

    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        return {"skipped": "py-spy is not installed (pip install py-spy)"}
    out: dict[str, Any] = {}
    args = ["run-all", "--input", input_spec, "--loop", "--realtime", "--fps", str(fps), "--pointer", "null"]
    cmd = [sys.executable, "-m", "gazeflow.services.cli", "--log-level", "WARNING", *args, "--log-interval", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(8)  # models compiled, frames flowing
        stages = _stage_pids(proc.pid)
        before = {name: _thread_cpu(pid) for name, pid in stages.items()}
        with tempfile.TemporaryDirectory() as tmp:
            record = [
                spy,
                "record",
                "--duration",
                str(int(seconds)),
                "--rate",
                "200",
                "--format",
                "raw",
                "--nonblocking",
            ]
            quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
            spies = [
                subprocess.Popen([*record, "--pid", pid, "--output", str(Path(tmp) / f"{name}.txt")], **quiet)
                for name, pid in stages.items()
            ]
            for p in spies:
                p.wait(seconds + 60)
            for name, pid in stages.items():
                (main0, all0), (main1, all1) = before[name], _thread_cpu(pid)
                out[name] = _classify(Path(tmp) / f"{name}.txt", main1 - main0, all1 - all0)
    finally:
        proc.send_signal(2)
        proc.wait(30)
    return out


def _stage_pids(parent: int) -> dict[str, str]:
    """The stage processes run-all ``parent`` started: stage name -> pid."""
    stages = {}
    for child in Path("/proc").glob("[0-9]*"):
        try:
            title = (child / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            ppid = (child / "stat").read_text().rsplit(")", 1)[1].split()[1]  # the name may hold spaces
            if ppid == str(parent) and "stage" in title:
                stages[title.split("stage ", 1)[1].split()[0]] = child.name
        except (OSError, IndexError):
            continue
    return stages


def _thread_cpu(pid: str) -> tuple[float, float]:
    """CPU seconds of a process's main (Python) thread and of all its threads, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")

    def cpu(stat: Path) -> float:
        fields = stat.read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / tick

    try:
        main = cpu(Path(f"/proc/{pid}/task/{pid}/stat"))
        total = sum(cpu(t / "stat") for t in Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return 0.0, 0.0
    return main, total


def _classify(path: Path, main_cpu: float = 0.0, all_cpu: float = 0.0) -> dict[str, Any]:
    """Collapsed stacks ('frame;frame;... count') of the Python thread -> share per kind and the top own
    functions. py-spy sees Python threads only: the CPU of the others (OpenVINO's inference threads, ZeroMQ's
    I/O thread) is counted as inference, from /proc."""
    counts: dict[str, int] = {"inference": 0, "OpenCV": 0, "ZeroMQ/msgpack": 0, "our Python": 0}
    functions: dict[str, int] = {}
    total = 0
    text = path.read_text() if path.exists() else ""
    for line in text.splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        k = int(n)
        total += k
        frames = stack.split(";")
        kind = "our Python"
        for name, needles in KINDS:
            if any(any(needle in f for needle in needles) for f in frames):
                kind = name
                break
        counts[kind] += k
        own = [f for f in frames if "gazeflow" in f or "/services/" in f or "/shared/" in f]
        if own and kind == "our Python":
            functions[own[-1].split(" (")[0]] = functions.get(own[-1].split(" (")[0], 0) + k
    top = sorted(functions.items(), key=lambda kv: -kv[1])[:5]
    main = main_cpu / all_cpu if all_cpu else 1.0  # the Python thread's part of the process's CPU
    share = {k: main * v / total if total else 0.0 for k, v in counts.items()}
    share["native threads"] = 1 - main  # OpenVINO's inference threads, FFmpeg's decoding, ZeroMQ's I/O
    return {
        "samples": total,
        "cpu_s": round(all_cpu, 2),
        "share": {k: round(v, 3) for k, v in share.items()},
        "top_own": [[name, round(main * c / total, 3)] for name, c in top] if total else [],
    }
