"""Pointer: the sink. Act on the gaze, write the results file, account the metrics."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import IO, Any

from gazeflow.shared import metrics, registry
from gazeflow.shared.config import Config
from gazeflow.shared.messages import RESULT_KEYS, Message
from gazeflow.shared.process import CONTROL_ENV
from gazeflow.shared.stage import Outputs, Processor

from . import actions, profile, screen
from .backends import make_backend
from .control import ControlServer, private
from .controller import PointerController

log = logging.getLogger("gazeflow.pointer")


def read_health(run_dir: str) -> str:
    """run-all's latest health line (it writes one each interval), or "" without run-all."""
    try:
        return (Path(run_dir) / "health").read_text().strip()
    except OSError:
        return ""


def frame_time(header: dict[str, Any], camera: bool = False) -> float:
    """The frame's position in the video in seconds (the same in every run of a file), or for a camera
    its wall-clock capture time."""
    fps = float(header.get("source", {}).get("fps") or 0.0)
    return header["t_capture"] if camera or fps <= 0 else round(header["frame"] / fps, 6)


def result_line(msg: Message, camera: bool = False) -> str:
    """One results line: the frame, its time, and what each stage found."""
    h = msg.header
    record: dict[str, Any] = {"frame": h["frame"], "t": frame_time(h, camera)}
    record.update({key: h[key] for key in RESULT_KEYS})
    record["paused"] = bool(h.get("paused", False))
    return json.dumps(record, separators=(",", ":"))


class Pointer(Processor):
    def __init__(self, cfg: Config) -> None:
        super().__init__(cfg)
        self.backend = make_backend(cfg.pointer)
        self.claim = screen.PointerClaim(cfg.run_dir) if self.backend.name != "null" and not cfg.pointer.share else None
        monitor = screen.choose(cfg.pointer, screen.monitors() if self.backend.name != "null" else [])
        correction, which = profile.for_run(cfg.pointer.profile, monitor)
        self.camera = cfg.input.startswith("cam:")
        self.controller = PointerController(cfg, monitor, correction)
        self.metrics = metrics.PipelineMetrics(registry.through_first_sink(cfg.chain))  # not the view after it
        # line-buffered: each result can be read (tail -f, another program) as soon as its frame is done
        self.results: IO[str] | None = open(cfg.results, "w", buffering=1) if cfg.results else None  # noqa: SIM115
        self._next_live = time.monotonic() + cfg.log_interval
        self.max_age_s = cfg.pointer.max_age_ms / 1e3
        self.stale = 0  # live frames whose gaze was too old to move the pointer
        self.source_fps: float = 0.0
        self.profile = which
        p = cfg.pointer
        self.eyes, self.dwell, self.pause = actions.Eyes(p), actions.Dwell(p), actions.Pause(p)
        self.clicks = {"left": 0, "right": 0}
        self.last_click = ""
        self.hotkey = actions.Hotkey(p.hotkey if self.backend.name != "null" else "")
        tcp_curve = None
        if p.control and cfg.curve_keys:
            from gazeflow.shared.security import CTL, Curve

            tcp_curve = Curve(cfg.curve_keys, "pointer").end(CTL)
        self.control = ControlServer(cfg.run_dir, p.control, tcp_curve) if private(cfg.run_dir) else None
        log.info("pointer backend %s on %s, %s filter, clicks %s; %s", self.backend.name, monitor.describe(),
                 p.filter, p.click, which)  # fmt: skip

    def finish(self, msg: Message, outputs: Outputs) -> Message:
        if msg.kind == "eos":
            self._end(msg.header.get("stats", {}))
            return msg
        h = msg.header
        self.source_fps = (h.get("source") or {}).get("fps", 0)
        self._requests()  # a pause asked for before this frame applies to it
        t = frame_time(h, self.camera)
        gaze = h["gaze"]
        if gaze is not None and self.cfg.live and time.time() - h["t_capture"] > self.max_age_s:
            self.stale += 1  # after a stall upstream: where the user looked then is not where they look now
            gaze = None
        state, event = self.eyes.update(h.get("eyes"), t)
        if event == "toggle":
            self.pause.set_user(not self.pause.user, f"eyes closed {self.cfg.pointer.pause_closed_s:g} s")
        self.pause.face_seen(h["face"] is not None, t)
        if self.cfg.pointer.auto_pause_mouse:  # an X round trip per frame: only when it is used
            self.pause.mouse_check(self.backend.position(), self.controller.last_move)
        paused = self.pause.paused
        self.pause.frames += paused
        # while both eyes are closed the pointer holds still (a blink); eyes "closed" for longer than a
        # deliberate blink while a gaze is still found are lids lowered to look down: the gaze counts again
        since = self.eyes.closed_since
        blinking = state == "closed" and since is not None and (t - since) * 1000 <= self.cfg.pointer.blink_max_ms
        usable = gaze is not None and not blinking
        click = event if event in ("left", "right") and not paused else None
        decision = self.controller.update(h, t, act=not paused and click is None) if usable else None
        if self.cfg.pointer.click == "dwell":
            point = (decision["x"], decision["y"]) if decision is not None and not paused else None
            progress, fire = self.dwell.update(point, t)
            click = "left" if fire else click
            if decision is not None:
                decision["dwell"] = round(progress, 2)
        if click is not None:  # where the pointer is: a click never moves it
            self.backend.click(click)
            self.clicks[click] += 1
            self.last_click = click
            last = self.controller.last_move  # where the pointer is, so where the click goes
            decision = dict(decision or {}, moved=False, click=click)
            if last is not None:
                decision["x"], decision["y"] = last
        elif decision is not None and decision["moved"]:
            self.backend.move(decision["x"], decision["y"])
            self.pause.moved_to((decision["x"], decision["y"]))
        h["pointer"] = decision
        h["paused"] = paused
        return msg

    def _requests(self) -> None:
        """ctl requests and the hotkey, between frames."""
        if self.hotkey.take():
            self.pause.set_user(not self.pause.user, "hotkey")
        while self.control is not None and (command := self.control.take()) is not None:
            if command in ("pause", "resume", "toggle"):
                want = {"pause": True, "resume": False}.get(command, not self.pause.user)
                self.pause.set_user(want, "gazeflow ctl")
                self.control.reply({"ok": True, "state": "paused" if self.pause.paused else "running"})
            elif command == "recenter":
                shift = self.controller.recenter()
                answer = {"ok": shift is not None, "state": f"recentred by {shift}" if shift else ""}
                self.control.reply(answer if shift else {"ok": False, "error": "no gaze seen yet to recentre on"})
            else:
                self.control.reply({"ok": True, **self.status()})

    def status(self) -> dict[str, Any]:
        live = self.metrics.live_line() or "no frame yet"
        health = read_health(self.cfg.run_dir) or self.metrics.health_line(
            {name: stage.workers for name, stage in self.cfg.stages.items()})  # fmt: skip
        return {"state": f"paused ({self.pause.reason()})" if self.pause.paused else "running",
                "figures": live, "profile": self.profile, "clicks": self.clicks, "click mode": self.cfg.pointer.click,
                "moves": self.controller.moves, "health": health}  # fmt: skip

    def sent(self, msg: Message) -> None:
        """After the trace row is complete: results line and metrics."""
        if msg.kind != "frame":
            return
        if self.results is not None:
            self.results.write(result_line(msg, self.camera) + "\n")
        self.metrics.add(msg)
        if self.metrics.frames == 1:  # intervals count from the first frame, not from model loading
            self._next_live = time.monotonic() + self.cfg.log_interval

    def tick(self) -> None:
        """The live line, on time even when no frame comes (then its health part says which stage is silent)."""
        if self.cfg.log_interval <= 0 or not self.metrics.frames or time.monotonic() < self._next_live:
            return
        self._next_live = max(self._next_live + self.cfg.log_interval, time.monotonic())
        line = self.metrics.live_line()
        self._requests()  # also between frames, when none comes
        if line:
            last = self.controller.last_move
            where = f"pointer {self.backend.name} ({last[0]}, {last[1]})" if last else "pointer still"
            if self.pause.paused:
                where += f", PAUSED ({self.pause.reason()})"
            if any(self.clicks.values()):
                where += f", clicks {self.clicks['left']} left {self.clicks['right']} right"
            workers = {name: stage.workers for name, stage in self.cfg.stages.items()}
            # under run-all the health line comes from each stage's own heartbeats (run-all prints it)
            health = "" if os.environ.get(CONTROL_ENV) else " | " + self.metrics.health_line(workers)
            log.info("%s | %s, %d moves%s", line, where, self.controller.moves, health)

    def _end(self, stats: dict[str, dict[str, int]]) -> None:
        stats = dict(stats)
        stats[self.name] = stats.get(self.name, {})
        report = self.metrics.report(stats)
        used = {
            k: v["inference_precision"] for k, v in stats.items() if isinstance(v, dict) and "inference_precision" in v
        }
        report["inference_precision"] = used
        cfg = self.cfg
        report["run"] = {
            "input": cfg.input, "pace": cfg.pace, "fps": cfg.fps or float(self.source_fps or 0),
            "precision": sorted({cfg.stages[n].precision for n in cfg.chain if registry.get(n).models}),
            "inference": sorted(set(used.values())), "detect_every": cfg.detect_every, "profile": self.profile,
            "screen": [self.controller.monitor.width, self.controller.monitor.height],
        }  # fmt: skip
        report["pointer_moves"] = self.controller.moves
        report["pointer_stale"] = self.stale
        report["pointer_backend"] = self.backend.name
        report["pointer_clicks"] = dict(self.clicks)
        report["pointer_paused_frames"] = self.pause.frames
        report["eye_closures"] = self.eyes.closures
        self.hotkey.stop()
        if self.claim is not None:
            self.claim.release()
        if self.control is not None:
            self.control.close()
            self.control = None
        if self.results is not None:
            self.results.close()
            self.results = None
        if self.cfg.metrics:
            metrics.write_report(self.cfg.metrics, report)
        summary = self.metrics.summary_line(report["dropped"], report["lost"])
        if used:
            summary += ", inference " + "/".join(sorted(set(used.values())))
        print(summary, flush=True)  # the run's one summary line
