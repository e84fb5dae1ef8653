"""``gazeflow ctl``: talk to a running pipeline's pointer (pause, resume, toggle, recenter, status).

The pointer stage answers on a ZeroMQ request/reply socket, ``ctl``, in its run
directory (private to the user: 0700). ``gazeflow ctl`` finds the run: the one
run-all that is running (``--run-dir`` picks one of several), or the directory
of a pointer started with ``gazeflow stage``. Requests and replies are small
JSON objects; a request that is not one of the commands gets an error reply,
never a crash.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import zmq

from gazeflow.shared.config import default_run_dir, runtime_root
from gazeflow.shared.errors import GazeflowError

COMMANDS = ("pause", "resume", "toggle", "recenter", "status")
SOCKET = "ctl"
MAX_BYTES = 4096
REPLY_S = 3.0


def _rep(ctx: zmq.Context) -> zmq.Socket:
    sock = ctx.socket(zmq.REP)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.MAXMSGSIZE, MAX_BYTES)
    return sock


class ControlServer:
    """The pointer's end: polled from its loop, never blocking it. Always an ipc socket in the run directory;
    with ``pointer.control`` also a tcp one (CurveZMQ with the run's keys: only 'gazeflow ctl' holding the
    ctl key pair gets in)."""

    def __init__(self, run_dir: str, tcp: str = "", curve: Any = None) -> None:
        self.ctx = zmq.Context.instance()
        self.path = Path(run_dir) / SOCKET
        self.socks = [_rep(self.ctx)]
        self.socks[0].bind(f"ipc://{self.path}")
        if tcp:
            sock = _rep(self.ctx)
            if curve is not None:
                curve.apply(self.ctx, sock, tcp, True)
            sock.bind(tcp)
            self.socks.append(sock)
        self.sock = self.socks[0]  # the one a request came in on, for the reply

    def take(self) -> str | None:
        """The next request's command, or None when none waits. An unknown one is answered here."""
        raw = None
        for sock in self.socks:
            try:
                raw = sock.recv(zmq.NOBLOCK)
                self.sock = sock
                break
            except zmq.Again:
                continue
        if raw is None:
            return None
        try:
            command = json.loads(raw).get("command")
        except (ValueError, AttributeError):
            command = None
        if command not in COMMANDS:
            self.reply({"ok": False, "error": f"unknown command; one of {', '.join(COMMANDS)}"})
            return None
        return str(command)

    def reply(self, answer: dict[str, Any]) -> None:
        self.sock.send(json.dumps(answer).encode())

    def close(self) -> None:
        for sock in self.socks:
            sock.close(0)
        self.path.unlink(missing_ok=True)


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


def send(command: str, run_dir: str | None = None, connect: str = "", keys: str = "") -> dict[str, Any]:
    """Send one command to the running pipeline and return its reply; one line when there is none."""
    if command not in COMMANDS:
        raise GazeflowError(f"ctl {command!r}: one of {', '.join(COMMANDS)}")
    if connect:
        return _request(command, connect, keys)
    if run_dir:
        path = Path(run_dir) / SOCKET
        if not path.exists():
            raise GazeflowError(f"no running pipeline in {run_dir} (no {SOCKET} socket there)")
    else:
        found = runs()
        if not found:
            raise GazeflowError("no running pipeline found (start one with 'gazeflow run-all')")
        if len(found) > 1:
            listed = ", ".join(str(p.parent) for p in found)
            raise GazeflowError(f"{len(found)} pipelines are running ({listed}): choose one with --run-dir")
        path = found[0]
    return _request(command, f"ipc://{path}", "")


def _request(command: str, address: str, keys: str) -> dict[str, Any]:
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        if keys:
            from gazeflow.shared.security import CTL, Curve

            Curve(keys, CTL).apply(ctx, sock, address, False, "pointer")
        elif address.startswith("tcp://") and not address.startswith(("tcp://127.", "tcp://localhost")):
            raise GazeflowError(f"ctl --connect {address}: give the keys (--keys DIR, made by 'gazeflow keys')")
        sock.connect(address)
        sock.send(json.dumps({"command": command}).encode())
        if not sock.poll(int(REPLY_S * 1000)):
            raise GazeflowError(f"the pipeline at {address} did not answer in {REPLY_S:.0f} s")
        return json.loads(sock.recv())
    finally:
        sock.close(0)


def ctl_command(command: str, run_dir: str | None, connect: str = "", keys: str = "") -> int:
    answer = send(command, run_dir, connect, keys)
    if not answer.get("ok"):
        raise GazeflowError(f"ctl {command}: {answer.get('error', 'refused')}")
    if command == "status":
        for key, value in answer.items():
            if key != "ok":
                print(f"{key}: {value}")
    else:
        print(answer.get("state", "ok"))
    return 0


def private(run_dir: str) -> bool:
    """Whether the run directory is this user's own (the socket is served only there)."""
    try:
        st = os.stat(run_dir)
    except OSError:
        return False
    return st.st_uid == os.getuid() and not st.st_mode & 0o077
