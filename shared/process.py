"""What every stage process does around its loop: title, signals, control events, errors.

A stage started by run-all gets ``GAZEFLOW_CONTROL`` (an endpoint of the
supervisor's control socket) in its environment; it reports ``ready``
and ``error`` events there. A stage started on its own just logs.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import stat
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq

from . import channels
from .errors import GazeflowError
from .security import stop_authenticators
from .transport import IO_THREADS

log = logging.getLogger("gazeflow")
CONTROL_ENV = "GAZEFLOW_CONTROL"
GO_ENV = "GAZEFLOW_GO"  # run-all's go channel, which tells the source that every stage is ready
BEAT_S = 1.0  # a stage's heartbeat to run-all
_PR_SET_PDEATHSIG = 1


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname).1s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )


class StopFlag:
    """Set by SIGINT or SIGTERM; the stage loop checks it between polls. ``count``: signals so far."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.count = 0
        signal.signal(signal.SIGINT, self._set)
        signal.signal(signal.SIGTERM, self._set)

    def _set(self, signum: int, _frame: Any) -> None:
        self.count += 1
        self.event.set()

    def __bool__(self) -> bool:
        return self.event.is_set()

    def stop_all(self) -> None:
        """As if signalled twice: every loop of the process stops at once."""
        self.count = max(self.count, 2)
        self.event.set()


class Control:
    """Events to the supervisor (its ``control`` channel), if there is one."""

    def __init__(self, ctx: zmq.Context, stage: str) -> None:
        self.stage = stage
        self.ctx = ctx
        self.end: channels.End | None = None
        self._next_beat = 0.0
        self.counters: Any = None  # the stage's Counters, once it has them
        self.sharing = 1  # the stages in this process: each reports its share of the process's CPU
        where = os.environ.get(CONTROL_ENV)
        if where:
            self.end = channels.End(ctx, "control", where, serves=False, linger_ms=2000)

    def beat(self) -> None:
        """The stage's loop is alive (at most one heartbeat a second goes out): run-all restarts a stage
        whose heartbeats stop (hung, or stopped) as if it had died. Called from the loop itself, never from
        a thread of its own, so that a loop that hangs stops beating."""
        now = time.monotonic()
        if self.end is not None and now >= self._next_beat:
            self._next_beat = now + BEAT_S
            beat = channels.Alive(self.stage, os.getpid())
            if self.counters is not None:  # what it has taken in and passed on: the health line's figures
                beat.frames_in, beat.frames_out = self.counters.received, self.counters.sent
                beat.dropped, beat.malformed = self.counters.dropped, self.counters.malformed
                beat.lost = self.counters.lost
            self.end.send(beat)

    def ready(self) -> None:
        """Models compiled, sockets up: run-all is told, and ps stops saying the stage is starting (a source
        says next that it waits for the others, until run-all says go)."""
        if self.end is not None:
            self.end.send(channels.Ready(self.stage, os.getpid()), block=True)
        _STARTING.discard(self.stage)
        if not _STARTING:
            _title_suffix("")

    def failed(self, message: str) -> None:
        if self.end is not None:
            self.end.send(channels.Failed(self.stage, os.getpid(), message[:2000]), block=True)

    def wait_for_go(self, stop: StopFlag) -> bool:
        """Under run-all, the source starts with the other stages (opening its input while they compile) and
        sends its first frame when run-all says go (every other stage is ready); True then (at once without
        run-all), False when stopped first."""
        where = os.environ.get(GO_ENV)
        if not where:
            return not stop
        go = channels.End(self.ctx, "go", where, serves=False)
        _title_suffix(" (waiting for the other stages)")  # in ps until run-all says go
        try:
            while not stop:
                self.beat()
                if go.poll(50) and go.receive() is not None:
                    return True
            return False
        finally:
            _title_suffix("")
            go.close()

    @property
    def is_on(self) -> bool:
        return self.end is not None

    def close(self) -> None:
        if self.end is not None:
            self.end.close()


def _title_suffix(suffix: str) -> None:
    """Say in the process's title (ps) what it is doing, after its name."""
    try:
        import setproctitle
    except ImportError:
        return
    name = setproctitle.getproctitle().split(" (", 1)[0]
    setproctitle.setproctitle(name + suffix)


class Throttled:
    """Log a recurring problem at most once per ``every_s`` seconds, with how often it happened since."""

    def __init__(self, logger: logging.Logger, level: int, every_s: float = 1.0) -> None:
        self.logger, self.level, self.every_s = logger, level, every_s
        self.next_at = 0.0
        self.count = 0

    def __call__(self, msg: str, *args: Any, exc_info: bool = False) -> None:
        self.count += 1
        now = time.monotonic()
        if now < self.next_at:
            return
        more = f" ({self.count - 1} more like it in the last {self.every_s:g} s)" if self.count > 1 else ""
        self.logger.log(self.level, msg + more, *args, exc_info=exc_info)
        self.next_at, self.count = now + self.every_s, 0


def private_dir(path: str | Path) -> Path:
    """The run directory (ipc sockets, the frame ring), usable by this user alone: made 0700 when missing;
    one line and nothing started when it is a link, another user's, or open to others (someone could
    otherwise put a link where the ring is written, or a socket where a stage connects)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        p.mkdir(mode=0o700)
    st = os.lstat(p)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise GazeflowError(f"run directory {p} is not a directory of its own (a link?): remove it or set run_dir")
    if st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise GazeflowError(
            f"run directory {p} is not private (owner uid {st.st_uid}, mode {st.st_mode & 0o777:o}): "
            "remove it or set run_dir"
        )
    return p


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM this process when run-all goes away, so no stage is orphaned."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


Body = Callable[[zmq.Context, "Control", StopFlag], None]


def run_stage(name: str, body: Body) -> int:
    """Run one stage's body as a process: title, signals, one-line errors, exit code."""
    return run_stages({name: body})


def run_stages(bodies: dict[str, Body]) -> int:
    """Run the bodies of one or more neighbouring stages as one process: one title, one signal handler and
    one ZeroMQ context (their links are inproc sockets in it), a thread per stage but the last. A stage
    that fails stops the others, so the process ends and run-all hears of it; the exit code is the worst."""
    label = "+".join(bodies)
    try:
        import setproctitle

        setproctitle.setproctitle(f"gazeflow-stage {label} (starting)")  # until every stage is ready: ps tells
    except ImportError:  # a process compiling its models from one that runs
        pass
    _STARTING.update(bodies)
    if os.environ.get(CONTROL_ENV):
        _die_with_parent()
    stop = StopFlag()
    ctx = zmq.Context(io_threads=IO_THREADS)  # inputs and outputs on I/O threads of their own (transport.py)
    codes: dict[str, int] = {}
    *upstream, (last, body) = bodies.items()
    threads = [
        threading.Thread(target=_run_body, args=(name, b, ctx, stop, codes, len(bodies)), name=name, daemon=True)
        for name, b in upstream
    ]
    try:
        for thread in threads:
            thread.start()
        _run_body(last, body, ctx, stop, codes, len(bodies))  # the main thread: a sink's windows need it
        for thread in threads:
            while thread.is_alive():  # a timed join: the main thread still takes signals
                thread.join(0.2)
    finally:
        stop_authenticators()
        ctx.destroy(linger=0)
    return max(codes.values(), default=0)


_STARTING: set[str] = set()  # the stages of this process not ready yet


def _run_body(name: str, body: Body, ctx: zmq.Context, stop: StopFlag, codes: dict[str, int], sharing: int) -> None:
    control = Control(ctx, name)
    control.sharing = sharing
    code = 0
    message = ""
    try:
        body(ctx, control, stop)
    except GazeflowError as exc:
        message, code = str(exc), 2
    except Exception as exc:  # a crash still reports one line; the traceback only at debug level
        log.debug("traceback", exc_info=True)
        message, code = f"{type(exc).__name__}: {exc}", 1
    finally:
        if code:
            if control.is_on:
                control.failed(message)  # run-all prints it, once
            else:
                log.error("stage %s: %s", name, message)
            if sharing > 1:  # the stages beside it would wait for it forever: the process ends
                stop.stop_all()
        control.close()
        codes[name] = code
