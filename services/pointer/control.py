"""``gazeflow ctl``: talk to a running pipeline's pointer (pause, resume, toggle, recenter, status).

The pointer stage answers on a ZeroMQ request/reply socket, ``ctl``, in its run
directory (private to the user: 0700). ``gazeflow ctl`` finds the run: the one
run-all that is running (``--run-dir`` picks one of several), or the directory
of a pointer started with ``gazeflow stage``. Requests and replies are the
``ctl`` channel's schemas (shared/channels.py); a request that is not one of
them gets an error reply, never a crash.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import zmq

from gazeflow.shared import channels
from gazeflow.shared.config import default_run_dir, runtime_root
from gazeflow.shared.errors import GazeflowError

COMMANDS = channels.COMMANDS
SOCKET = "ctl"
REPLY_S = 3.0


class ControlServer:
    """The pointer's ends of its channels, polled from its loop, never blocking it: ``ctl`` (an ipc socket in
    the run directory; with ``pointer.control`` also a tcp one, CurveZMQ with the run's keys: only 'gazeflow
    ctl' holding the ctl key pair gets in) and ``health`` (run-all's health lines)."""

    def __init__(self, cfg: Any) -> None:
        self.ctx = zmq.Context.instance()
        self.ends = [channels.End.local(self.ctx, cfg.run_dir, SOCKET, serves=True)]
        tcp = cfg.pointer.control
        if tcp:
            secure = None
            if cfg.curve_keys:
                from gazeflow.shared.security import CTL, Curve

                curve = Curve(cfg.curve_keys, "pointer").end(CTL)
                secure = lambda sock: curve.apply(self.ctx, sock, tcp, True)  # noqa: E731
            self.ends.append(channels.End(self.ctx, SOCKET, tcp, serves=True, secure=secure))
        self.end = self.ends[0]  # the one a request came in on, for the reply
        self.health_end = channels.End.local(self.ctx, cfg.run_dir, "health", serves=True)
        self.tune_end = channels.End.local(self.ctx, cfg.run_dir, "tune", serves=True)

    def take(self) -> channels.Request | None:
        """The next request, or None when none waits (one that is not a request is answered by its End)."""
        for end in self.ends:
            request = end.receive()
            if request is not None:
                self.end = end
                return request
        return None

    @property
    def malformed(self) -> int:
        """Requests and health messages that were not what their channel carries (answered or skipped)."""
        return sum(end.malformed for end in [*self.ends, self.health_end])

    def reply(self, answer: channels.Reply) -> None:
        self.end.send(answer)

    def health(self) -> channels.Health | None:
        """run-all's newest health message, or None when none came since."""
        newest = None
        while (message := self.health_end.receive()) is not None:
            newest = message
        return newest

    def tune(self, key: str, value: Any) -> None:
        """A setting of another stage, changed while running, to the stages that take it."""
        self.tune_end.send(channels.Tune(key, value))

    def close(self) -> None:
        for end in [*self.ends, self.health_end, self.tune_end]:
            end.close()


def runs() -> list[Path]:
    """The control sockets of the pipelines running for this user."""
    found = []
    for d in sorted(Path(runtime_root()).glob("gazeflow-*")):
        try:
            pid = int((d / "run-all.pid").read_text())
        except (OSError, ValueError):
            continue
        if (d / SOCKET).exists() and Path(f"/proc/{pid}").exists():
            found.append(d / SOCKET)
    standalone = Path(default_run_dir()) / SOCKET
    if standalone.exists():
        found.append(standalone)
    return found


def send(
    command: str, run_dir: str | None = None, connect: str = "", keys: str = "", setting: tuple[str, Any] | None = None
) -> channels.Reply:
    """Send one command to the running pipeline and return its reply; one line when there is none.
    ``setting``: for 'set', ("section.key", value)."""
    if command not in COMMANDS:
        raise GazeflowError(f"ctl {command!r}: one of {', '.join(COMMANDS)}")
    request = channels.Request(command)
    if command == "set":
        if setting is None or setting[0].count(".") > 1 or not all(setting[0].split(".")):
            raise GazeflowError(
                "ctl set: give a setting and its value, as in: gazeflow ctl set pointer.dwell_ms 800 "
                "(or detect_every 5)"
            )
        request = channels.Request(command, key=setting[0].split("."), value=setting[1])
    if connect:
        return _request(request, connect, keys)
    if run_dir:
        path = _socket_in(run_dir)
    else:
        found = runs()
        if not found:
            raise GazeflowError("no running pipeline found (start one with 'gazeflow run-all')")
        if len(found) > 1:
            listed = ", ".join(str(p.parent) for p in found)
            raise GazeflowError(f"{len(found)} pipelines are running ({listed}): choose one with --run-dir")
        path = found[0]
    return _request(request, f"ipc://{path}", "")


def figures(run_dir: str, since: int) -> channels.Figures | None:
    """The pipeline's figures as the pointer keeps them (the panel's, once a second); None when it has none."""
    return _request(channels.Request("figures", value=since), f"ipc://{_socket_in(run_dir)}", "").figures


def _socket_in(run_dir: str) -> Path:
    path = Path(run_dir) / SOCKET
    if not path.exists():
        raise GazeflowError(f"no running pipeline in {run_dir} (no {SOCKET} socket there)")
    return path


def _request(request: channels.Request, address: str, keys: str) -> channels.Reply:
    ctx = zmq.Context.instance()
    secure = None
    if keys:
        from gazeflow.shared.security import CTL, Curve

        secure = lambda sock: Curve(keys, CTL).apply(ctx, sock, address, False, "pointer")  # noqa: E731
    elif address.startswith("tcp://") and not address.startswith(("tcp://127.", "tcp://localhost")):
        raise GazeflowError(f"ctl --connect {address}: give the keys (--keys DIR, made by 'gazeflow keys')")
    end = channels.End(ctx, SOCKET, address, serves=False, secure=secure)
    try:
        end.send(request, block=True)
        if not end.poll(int(REPLY_S * 1000)) or (reply := end.receive()) is None:
            raise GazeflowError(f"the pipeline at {address} did not answer in {REPLY_S:.0f} s")
        return reply
    finally:
        end.sock.close(0)


def ctl_command(
    command: str, run_dir: str | None, connect: str = "", keys: str = "", setting: tuple[str, Any] | None = None
) -> int:
    answer = send(command, run_dir, connect, keys, setting)
    if not answer.ok:
        raise GazeflowError(f"ctl {command}: {answer.error or 'refused'}")
    if command == "status":
        for key, value in answer.status.items():
            if key == "processes":
                continue  # the health line says the same in one line
            if key == "settings":
                value = ", ".join(f"{k} = {v}" for k, v in value.items())
            elif isinstance(value, dict):
                value = ", ".join(f"{n} {k}" for k, n in value.items()) or "none"
            print(value if str(value).startswith(f"{key} ") else f"{key}: {value}")  # "health (...)": once
    else:
        print(answer.state or "ok")
    return 0


def private(run_dir: str) -> bool:
    """Whether the run directory is this user's own (the socket is served only there)."""
    try:
        st = os.stat(run_dir)
    except OSError:
        return False
    return st.st_uid == os.getuid() and not st.st_mode & 0o077
