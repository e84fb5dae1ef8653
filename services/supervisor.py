"""run-all: start the stage processes (and the workers of scaled stages), watch them, stop them cleanly.

Every stage starts at once; capture opens its input and sends its first frame
once all the others report ready (models compiled, sockets up), so no frame
waits on a model load. A stage that
exits with an error stops the pipeline with a one-line reason, unless it can be
restarted (below). Stages run in their own session, so a Ctrl-C at the terminal
reaches run-all alone, which decides: live input stops every stage at once;
replay drains (capture stops reading, the frames in flight finish, the results
and metrics are written) and a second Ctrl-C stops at once. The run directory
(ipc sockets, frame ring, resolved config) is removed at the end, whatever happened.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import zmq

from gazeflow.models.catalog import model_files, require_ir
from gazeflow.models.fetch import verify_files
from gazeflow.shared import channels, registry
from gazeflow.shared.config import check_cache, runtime_root
from gazeflow.shared.errors import GazeflowError
from gazeflow.shared.process import CONTROL_ENV, GO_ENV

from .pipeline import process_name

if TYPE_CHECKING:
    from gazeflow.shared.config import Config

log = logging.getLogger("gazeflow.run_all")
READY_TIMEOUT_S = 120.0
STOP_GRACE_S = 4.0
MAX_RESTARTS = 5  # in a row: a stage that stayed up UP_RESETS_S since its last start has its count reset
UP_RESETS_S = 20.0
QUIET_S = 3.0  # a stage with no heartbeat for this long is named in the log
DRAIN_S = 15.0  # replay: how long a drain may take before the stages are stopped
LIVE_DRAIN_S = 3.0  # live input: the same, shorter
END_GRACE_S = 5.0  # after the sink has finished, how long the others have to exit on their own


class _Signalled(Exception):
    def __init__(self, signum: int) -> None:
        self.signum = signum


def preflight(cfg: Config) -> None:
    """Fail fast, before any process starts, on a bad input, a missing model, a device or a display that is
    not there, a cache folder that cannot be written: the runtime's checks, then each stage's own (its
    manifest's ``preflight``)."""
    check_cache(cfg.model_cache)  # a cache folder that cannot be written
    for name in cfg.chain:
        if registry.get(name).models and cfg.stages[name].device != "CPU":  # OpenVINO always has its CPU
            from gazeflow.shared.inference import check_device  # (OpenVINO takes a while to import)

            try:
                check_device(cfg.stages[name].device)
            except GazeflowError as exc:
                raise GazeflowError(f"--device {cfg.stages[name].device} ({name}): {exc}") from None
    for name in cfg.chain:
        spec = registry.get(name)
        if spec.preflight:
            registry.load_ref(spec.preflight)(cfg)
        for model in spec.models.values():
            require_ir(cfg.assets_dir, model, cfg.stages[name].precision)
            verify_files(model_files(cfg.assets_dir, model, cfg.stages[name].precision), cfg.assets_dir)


def processes(cfg: Config) -> dict[str, tuple[tuple[str, ...], str]]:
    """Every process run-all starts, in pipeline order: name -> (its stages, worker). Stages placed in one
    process are named together (landmarks_headpose+gaze+pointer); a scaled stage's workers one by one."""
    out: dict[str, tuple[tuple[str, ...], str]] = {}
    for group in cfg.placement_groups:
        if len(group) > 1:
            out["+".join(group)] = (group, "0")
            continue
        for i in range(cfg.workers(group[0])):
            out[process_name(group[0], str(i), cfg)] = (group, str(i))
    return out


def placed(cfg: Config) -> Config:
    """The configuration the stage processes get: the placement rule's choice written into each stage's
    ``process`` setting, so that every process (and a stage started by hand) sees the same one."""
    stages = dict(cfg.stages)
    for group in cfg.placement_groups:
        for name in group if len(group) > 1 else ():
            stages[name] = stages[name].model_copy(update={"process": "+".join(group)})
    return cfg.model_copy(update={"stages": stages, "placement": "separate"})


class Supervisor:
    def __init__(self, cfg: Config, run_dir: Path) -> None:
        cfg = placed(cfg)
        self.units = processes(cfg)
        self.cfg = cfg
        self.run_dir = run_dir
        self.ctx = zmq.Context()
        self.control = channels.End.local(self.ctx, run_dir, "control", serves=True)
        self.go = channels.End.local(self.ctx, run_dir, "go", serves=True)
        served = [name for name in cfg.chain if any(c.name == "health" for c in registry.get(name).channels)]
        self.health = channels.End.local(self.ctx, run_dir, "health", serves=False) if served else None
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.errors: dict[str, str] = {}
        self.ready_pids: set[int] = set()
        self.restarts: dict[str, int] = {}
        self.started_at: dict[str, float] = {}
        self.restart_at: dict[str, float] = {}
        self.beats: dict[int, float] = {}  # pid -> when its last heartbeat came
        self.passed: dict[int, tuple[int, int, float]] = {}  # pid -> frames in, out, when out last moved
        self.refused: dict[tuple[int, str], tuple[int, int, int]] = {}  # (pid, stage) -> dropped, malformed, lost
        self.next_health = time.monotonic() + cfg.log_interval
        self.quiet: set[int] = set()  # pids already reported as quiet
        self.config_file = run_dir / "config.json"
        self.config_file.write_text(cfg.to_json())

    def start(self, name: str) -> None:
        stages, worker = self.units[name]
        env = dict(os.environ, **{CONTROL_ENV: self.control.where})
        if self.cfg.source in stages:
            env[GO_ENV] = self.go.where
        level = logging.getLevelName(logging.getLogger().level)
        cmd = [
            sys.executable,
            "-m",
            "gazeflow.services.cli",
            "--log-level",
            level,
            "stage",
            "+".join(stages),
            "--worker",
            worker,
            "--config",
            str(self.config_file),
        ]
        # its own session: a Ctrl-C at the terminal reaches run-all only, which drains or stops the stages
        self.procs[name] = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, start_new_session=True)
        self.started_at[name] = time.monotonic()

    def unit_of(self, stage: str) -> str:
        """The process that runs ``stage`` (its first worker's, for a scaled one)."""
        return next(name for name, (stages, _) in self.units.items() if stage in stages)

    @property
    def ready_names(self) -> list[str]:
        """What each stage process and thread after the source calls itself in its ready event."""
        out = []
        for name, (stages, _worker) in self.units.items():
            out.extend(s for s in (stages if len(stages) > 1 else (name,)) if s != self.cfg.source)
        return out

    def events(self, timeout_s: float) -> list[Any]:
        out = []
        if self.control.poll(int(timeout_s * 1000)):
            while (event := self.control.receive()) is not None:
                out.append(event)
        for event in out:
            if isinstance(event, channels.Failed):
                self.errors[event.stage] = event.message
            elif isinstance(event, channels.Ready):
                self.ready_pids.add(event.pid)
                self.beats[event.pid] = time.monotonic()
            else:
                self._alive(event)
        return out

    def _alive(self, event: channels.Alive) -> None:
        now = time.monotonic()
        self.beats[event.pid] = now
        if event.frames_out is not None:
            last = self.passed.get(event.pid)
            moved = last is None or last[1] != event.frames_out
            self.passed[event.pid] = (event.frames_in or 0, event.frames_out, now if moved else last[2])
        if event.dropped is not None:
            self.refused[(event.pid, event.stage)] = (event.dropped, event.malformed or 0, event.lost or 0)

    def _reason(self, name: str, code: int) -> str:
        self.events(0)  # pick up its last words
        for stage in (name, *self.units[name][0]):  # a stage's own words; in a shared process, its stage's
            if stage in self.errors:
                return f"stage {stage} failed: {self.errors.pop(stage)}"
        if code < 0:
            return f"stage {name} died: killed by {signal.Signals(-code).name}"
        return f"stage {name} exited with code {code}"

    def _watch_heartbeats(self) -> None:
        """Name a stage whose heartbeats have stopped (stopped, or hung); after hang_s, kill it: a
        restartable stage is then restarted like one that died, another stops the run with that reason."""
        now = time.monotonic()
        for name, proc in self.procs.items():
            last = self.beats.get(proc.pid)
            if last is None or proc.poll() is not None:
                continue
            quiet = now - last
            if quiet > QUIET_S and proc.pid not in self.quiet:
                self.quiet.add(proc.pid)
                log.warning("stage %s: no heartbeat for %.0f s (stopped or hung)", name, quiet)
            elif quiet <= QUIET_S and proc.pid in self.quiet:
                self.quiet.discard(proc.pid)
                log.info("stage %s: heartbeats again", name)
            if self.cfg.hang_s and quiet > self.cfg.hang_s:
                log.warning("stage %s: no heartbeat for %.0f s: hung; killing it", name, quiet)
                self.errors[name] = f"hung (no heartbeat for {quiet:.0f} s)"
                self.beats.pop(proc.pid)
                proc.kill()
                proc.wait()

    def processes_health(self) -> list[channels.ProcessHealth]:
        """Each stage process from its own heartbeats: up, STALLED (it has frames but passes none on) or
        SILENT (no heartbeat), with the frames it has taken in and passed on and its restarts."""
        now = time.monotonic()
        out = []
        for name, proc in self.procs.items():
            beat, passed = self.beats.get(proc.pid), self.passed.get(proc.pid)
            if beat is None or passed is None:
                continue
            frames_in, frames_out, moved = passed
            state = "up"
            if now - beat > QUIET_S:
                state = f"SILENT {now - beat:.0f}s"
            elif frames_in > frames_out and now - moved > QUIET_S:
                state = f"STALLED {now - moved:.0f}s"
            counts = [v for (pid, _), v in self.refused.items() if pid == proc.pid]
            dropped, malformed, lost = (sum(c[i] for c in counts) for i in range(3))
            restarts = self.restarts.get(name, 0)
            out.append(channels.ProcessHealth(name, state, frames_in, frames_out, restarts, dropped, malformed, lost))
        return out

    def health_line(self, processes: list[channels.ProcessHealth] | None = None) -> str:
        """The processes' health as one line (the log, 'gazeflow ctl status')."""
        parts = [
            f"{p.name} {p.state} {p.frames_in}/{p.frames_out}"
            for p in (self.processes_health() if processes is None else processes)
        ]
        if not parts:
            return ""
        cores = self.cores()
        return (
            "health (frames in/out) " + ", ".join(parts) + (f" | cores used {cores:.2f}" if cores is not None else "")
        )

    def cores(self) -> float | None:
        """The cores all stage processes used since the last call (CPU seconds / wall seconds), from /proc."""
        total = 0.0
        try:
            tick = os.sysconf("SC_CLK_TCK")
            for proc in self.procs.values():
                fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / tick  # utime + stime
        except (OSError, ValueError, IndexError):
            return None
        now = time.monotonic()
        last = getattr(self, "_cpu_mark", None)
        self._cpu_mark = (now, total)
        if last is None or now <= last[0]:
            return None
        return max(0.0, (total - last[1]) / (now - last[0]))

    def failed(self) -> str | None:
        """A one-line reason if some stage has exited with an error it cannot be restarted from."""
        self._watch_heartbeats()
        if time.monotonic() >= self.next_health:
            self.next_health = time.monotonic() + (self.cfg.log_interval or 1.0)
            processes = self.processes_health()
            line = self.health_line(processes)
            if line:
                source = self.procs.get(self.cfg.source)
                if self.cfg.log_interval > 0 and (source is None or source.poll() is None):  # not once it ends:
                    log.info("%s", line)  # the stages' own end-of-stream lines have the final counts
                if self.health is not None:  # for 'gazeflow ctl status' and the panel
                    self.health.send(channels.Health(line, processes))
        for name, proc in self.procs.items():
            code = proc.poll()
            if code in (None, 0) or name in self.restart_at:
                continue
            reason = self._reason(name, code)
            if time.monotonic() - self.started_at.get(name, 0.0) > UP_RESETS_S:
                self.restarts[name] = 0  # it had been up a good while: a new fault, a new budget
            n = self.restarts.get(name, 0)
            # a stage that keeps no state between frames is restarted when it dies after it was ready;
            # the source (its position in the input) and the sink (the results file) are not
            restartable = all(registry.get(stage).restartable for stage in self.units[name][0])
            if not restartable or proc.pid not in self.ready_pids or n >= MAX_RESTARTS:
                return reason if n < MAX_RESTARTS else f"{reason} (after {n} restarts)"
            self.restarts[name] = n + 1
            self._tell_source_a_stage_died()
            delay = min(0.5 * 2**n, 8.0)
            log.warning("%s; restarting it in %.1f s (restart %d of %d)", reason, delay, n + 1, MAX_RESTARTS)
            self.restart_at[name] = time.monotonic() + delay
        now = time.monotonic()
        for name, when in list(self.restart_at.items()):
            if now >= when:
                del self.restart_at[name]
                self.start(name)
        return None

    def _tell_source_a_stage_died(self) -> None:
        """The frame slots on their way to the dead stage are lost with it: capture takes them back (it never
        takes back a slot from a stage that is only slow)."""
        if not self.cfg.shares_frames(self.cfg.source):
            return
        release = channels.End.local(self.ctx, self.run_dir, "release", serves=False, linger_ms=1000)
        release.send(channels.Died())
        release.close()

    def wait_ready(self, names: list[str]) -> None:
        waiting = set(names)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while waiting:
            for event in self.events(0.2):
                if isinstance(event, channels.Ready):
                    waiting.discard(event.stage)
            reason = self.failed()
            if reason:
                raise GazeflowError(reason)
            if time.monotonic() > deadline:
                raise GazeflowError(f"stages not ready after {READY_TIMEOUT_S:.0f} s: {', '.join(sorted(waiting))}")

    def wait_done(self, deadline: float = float("inf"), grace_s: float = END_GRACE_S) -> None:
        ended: float | None = None
        while self.restart_at or any(p.poll() is None for p in self.procs.values()):
            self.events(0.2)
            reason = self.failed()
            if reason:
                raise GazeflowError(reason)
            if time.monotonic() > deadline:
                log.warning("run-all: the end of the stream took too long: stopping every stage")
                return
            if ended is None and self.procs[self.unit_of(self.cfg.sink)].poll() == 0:
                ended = time.monotonic()  # the stream is over; a worker restarted after its end never hears of it
            if ended is not None and time.monotonic() - ended > grace_s:
                idle = [n for n, p in self.procs.items() if p.poll() is None]
                log.info("run-all: the stream has ended; stopping %s", ", ".join(idle))
                return
        reason = self.failed()
        if reason:
            raise GazeflowError(reason)

    def drain(self) -> None:
        """The source stops reading and ends the stream; the frames in flight finish (live: within
        LIVE_DRAIN_S, the frames are fresh ones) and the sink writes the results and the metrics."""
        source = self.procs.get(self.cfg.source)
        if source is None or source.poll() is not None:
            return
        source.send_signal(signal.SIGTERM)
        self.wait_done(time.monotonic() + (LIVE_DRAIN_S if self.cfg.live else DRAIN_S), grace_s=1.0)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for name, proc in self.procs.items():
            try:
                proc.wait(max(0.05, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("stage %s did not stop in %.0f s: killed", name, STOP_GRACE_S)
                proc.kill()
                proc.wait()

    def start_source(self) -> None:
        """Every downstream stage is ready: the source sends its first frame (it connects as it starts)."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not self.go.send(channels.Go()):
            self.events(0.01)
            reason = self.failed()
            if reason:
                raise GazeflowError(reason)
            if time.monotonic() > deadline:
                raise GazeflowError(f"the source did not start in {READY_TIMEOUT_S:.0f} s")

    def close(self) -> None:
        for end in (self.control, self.go, self.health):
            if end is not None:
                end.close()
        self.ctx.term()


def remove_stale_run_dirs(root: Path) -> None:
    """Remove run directories left by a run-all that was killed outright (SIGKILL gives no chance to clean up)."""
    for d in root.glob("gazeflow-*"):
        try:
            pid = int((d / "run-all.pid").read_text())
        except (OSError, ValueError):
            continue
        if not Path(f"/proc/{pid}").exists():
            shutil.rmtree(d, ignore_errors=True)
            log.debug("removed %s, left by run-all %d", d, pid)


@contextlib.contextmanager
def _signals_raise() -> Iterator[None]:
    """SIGINT and SIGTERM raise _Signalled in the main thread while inside; handlers restored after."""

    def on_signal(signum: int, _frame: Any) -> None:
        raise _Signalled(signum)

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


@contextlib.contextmanager
def supervised(cfg: Config) -> Iterator[Supervisor]:
    """The pipeline of ``cfg`` running (checked first, downstream stages ready before the source starts),
    in a fresh run directory; every stage stopped and the directory removed on the way out, whatever happened.
    Call it inside _signals_raise (a signal while starting then stops everything)."""
    preflight(cfg)
    root = Path(runtime_root())
    remove_stale_run_dirs(root)
    run_dir = Path(tempfile.mkdtemp(prefix="gazeflow-", dir=root))
    (run_dir / "run-all.pid").write_text(str(os.getpid()))
    cfg = cfg.model_copy(update={"run_dir": str(run_dir)})
    sup: Supervisor | None = None
    try:
        sup = Supervisor(cfg, run_dir)
        source = sup.unit_of(cfg.source)
        downstream = [name for name in sup.units if name != source]
        for name in [*reversed(downstream), source]:
            sup.start(name)  # the source opens its input meanwhile, and waits
        sup.wait_ready(sup.ready_names)
        sup.start_source()
        yield sup
    finally:
        handlers = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            if sup is not None:
                sup.stop_all()
                sup.close()
            shutil.rmtree(run_dir, ignore_errors=True)
        finally:
            for s, handler in handlers.items():
                signal.signal(s, handler)


def run_all(cfg: Config) -> int:
    with _signals_raise():
        try:
            with supervised(cfg) as sup:
                try:
                    sup.wait_done()
                    return 0
                except _Signalled as sig:
                    name = signal.Signals(sig.signum).name
                    log.info(
                        "run-all: %s, ending the stream: no new frames, those in flight finish, results and "
                        "metrics are written (again to stop at once)",
                        name,
                    )
                    try:
                        sup.drain()
                    except _Signalled:
                        log.info("run-all: stopping all stages at once")
                    except GazeflowError as exc:
                        log.error("%s", exc)
                    return 128 + sig.signum
        except _Signalled as sig:
            log.info("run-all: %s, stopping all stages", signal.Signals(sig.signum).name)
            return 128 + sig.signum
