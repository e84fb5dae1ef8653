"""What the panel costs (#33): the cores a real-time run of the demo uses without it, with it and no browser,
and with a browser's requests (the page's figures once a second, its live view at the default rate), in
alternating runs of the same length."""

from __future__ import annotations

import json
import logging
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from gazeflow.shared.config import runtime_root

log = logging.getLogger("gazeflow.bench")
LABELS = ("without", "panel, no browser", "panel, a browser")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _browser(port: int, proc: subprocess.Popen[str], view_fps: float) -> None:
    """The page's requests until the run ends: /api/stats each second, a live frame at view_fps."""
    token = ""
    while proc.poll() is None and not token:
        token = next((p.read_text().strip() for p in Path(runtime_root()).glob("gazeflow-*/panel.token")), "")
        time.sleep(0.1)
    headers = {"Authorization": f"Bearer {token}"}
    next_stats = 0.0
    while proc.poll() is None:
        now = time.monotonic()
        paths = ["/api/frame.jpg"] + (["/api/stats"] if now >= next_stats else [])
        next_stats = now + 1.0 if now >= next_stats else next_stats
        for path in paths:
            try:
                with urllib.request.urlopen(
                    urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers), timeout=5
                ) as r:
                    r.read()
            except OSError:
                pass
        time.sleep(1.0 / view_fps)


def _panel_cpu(proc: subprocess.Popen[str], out: dict[str, float]) -> None:
    """The panel process's CPU seconds and the wall seconds between the first and the last sample, from /proc,
    twice a second while the run lasts (its stats come after the pointer's report: not in the metrics)."""
    tick = os.sysconf("SC_CLK_TCK")
    first: tuple[float, float] | None = None
    while proc.poll() is None:
        try:
            children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
            for pid in children:
                if Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0] == b"gazeflow-stage panel":
                    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                    now, cpu = time.monotonic(), (int(fields[11]) + int(fields[12])) / tick
                    if first is None and any(Path(runtime_root()).glob("gazeflow-*/panel.token")):
                        first = (now, cpu)  # streaming: the models are loaded, the server is up
                    elif first is not None:
                        out["cpu_s"], out["wall_s"] = cpu - first[1], now - first[0]
        except (OSError, ValueError, IndexError):
            pass
        time.sleep(0.5)


def _run(label: str, frames: int, fps: float) -> dict[str, Any]:
    """One real-time run; its metrics report with the panel process's cores (0 without a panel)."""
    with tempfile.TemporaryDirectory() as tmp:
        metrics = Path(tmp) / "m.json"
        args = ["--input", "demo", "--loop", "--realtime", "--fps", str(fps), "--max-frames", str(frames)]
        args += ["--pointer", "null", "--log-interval", "0", "--metrics", str(metrics)]
        port = _free_port()
        if label != "without":
            args += ["--panel", str(port)]
        cmd = [sys.executable, "-m", "gazeflow.services.cli", "--log-level", "WARNING", "run-all", *args]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        threads = []
        used: dict[str, float] = {}
        if label != "without":
            threads.append(threading.Thread(target=_panel_cpu, args=(proc, used), daemon=True))
        if label == "panel, a browser":
            threads.append(threading.Thread(target=_browser, args=(port, proc, 2.0), daemon=True))
        for t in threads:
            t.start()
        _, err = proc.communicate(timeout=600)
        for t in threads:
            t.join(10)
        if proc.returncode != 0:
            raise RuntimeError(f"bench panel: run-all failed: {err.strip().splitlines()[-1:]}")
        report = json.loads(metrics.read_text())
        report["panel_cores"] = used["cpu_s"] / used["wall_s"] if used.get("wall_s") else 0.0
        return report


def panel_cost(repeat: int, frames: int = 900, fps: float = 30.0) -> dict[str, Any]:
    """The panel process's share of a core at 30 fps, with no browser and with a browser's requests, and the
    other processes' cores beside a run without it (medians of ``repeat`` alternating rounds)."""
    cores: dict[str, list[float]] = {label: [] for label in LABELS}
    panel: dict[str, list[float]] = {label: [] for label in LABELS[1:]}
    for i in range(max(repeat, 1)):
        for label in LABELS if i % 2 == 0 else tuple(reversed(LABELS)):
            report = _run(label, frames, fps)
            cores[label].append(report["cores"])
            if label in panel:
                panel[label].append(report["panel_cores"])
            log.info("panel cost: %s: stages %.3f cores, panel %.3f", label, report["cores"], report["panel_cores"])
    out: dict[str, Any] = {f"stages, {label}": round(statistics.median(v), 3) for label, v in cores.items()}
    out["idle_share_of_a_core"] = round(statistics.median(panel["panel, no browser"]), 4)
    out["browser_share_of_a_core"] = round(statistics.median(panel["panel, a browser"]), 4)
    out["runs"] = {"stages": cores, "panel": panel}
    out["fps"], out["frames"] = fps, frames
    return out
