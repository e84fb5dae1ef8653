"""The panel stage: a sink after the pointer, fed on demand. Its web server runs in a thread of this process
(server.py) and takes the run's figures from the pointer once a second through the ctl channel, as 'gazeflow
ctl' does; frames come only while a page shows the live view (it asks on the watch channel), and
``finish`` keeps the newest for it."""

from __future__ import annotations

import logging
import os
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import zmq

from gazeflow.services.pointer import control
from gazeflow.services.view.draw import annotate
from gazeflow.shared import channels, registry
from gazeflow.shared.errors import GazeflowError
from gazeflow.shared.messages import Message
from gazeflow.shared.stage import Outputs, Processor

from .server import PanelServer
from .settings import parse_address, read_token
from .state import WANT_S, PanelState

if TYPE_CHECKING:
    from gazeflow.shared.config import Config

log = logging.getLogger("gazeflow.panel")
TOKEN, URL = "panel.token", "panel.url"
STATUS_S = 0.5  # the pointer's status is asked at most this often, however many pages are open


class Pointer:
    """The pointer, through its ctl channel (the same requests and replies as 'gazeflow ctl')."""

    def __init__(self, run_dir: str) -> None:
        self.run_dir = run_dir
        self.cached: tuple[float, dict[str, Any]] = (0.0, {})

    def status(self) -> dict[str, Any]:
        at, status = self.cached
        if time.monotonic() - at < STATUS_S:
            return status
        answer = self.send("status", None)
        status = answer.get("status") or {"state": "unknown", "error": answer.get("error", "")}
        self.cached = (time.monotonic(), status)
        return status

    def figures(self, since: int) -> channels.Figures | None:
        """The run's figures as the pointer keeps them; None while it cannot say (starting, ended)."""
        try:
            return control.figures(self.run_dir, since)
        except GazeflowError:
            return None

    def send(self, command: str, setting: tuple[str, Any] | None) -> dict[str, Any]:
        try:
            reply = control.send(command, self.run_dir, setting=setting)
        except GazeflowError as exc:
            return {"ok": False, "error": str(exc)}
        self.cached = (0.0, {})  # a change shows at once
        return {"ok": reply.ok, "state": reply.state, "error": reply.error, "status": reply.status}


class Watch:
    """The watch channel's end: a page wants frames for its live view (said at most every WANT_S / 3)."""

    def __init__(self, run_dir: str) -> None:
        self.end = channels.End.local(zmq.Context.instance(), run_dir, "watch", serves=True)
        self.told = -WANT_S

    def ask(self) -> None:
        now = time.monotonic()
        if now - self.told >= WANT_S / 3:
            self.end.send(channels.Watch(WANT_S))
            self.told = now

    def close(self) -> None:
        self.end.close()


class Panel(Processor):
    def __init__(self, cfg: Config) -> None:
        super().__init__(cfg)
        chain = tuple(cfg.chain)
        overlays = set(cfg.view.overlays)
        self.state = PanelState(registry.through_first_sink(chain), cfg.panel.view_fps)
        host, port = parse_address(cfg.panel.address)
        self.token = read_token(cfg.panel.token_file) if cfg.panel.token_file else secrets.token_urlsafe(24)
        self.files = [Path(cfg.run_dir) / TOKEN, Path(cfg.run_dir) / URL]
        draw = lambda frame, header: annotate(frame, header, overlays, self.state.fps, chain).image  # noqa: E731
        self.watch = Watch(cfg.run_dir)  # used by the server's thread from here on
        pointer = Pointer(cfg.run_dir)
        self.server = PanelServer(host, port, self.token, self.state, pointer, draw, cfg.panel.bind_all, self.watch)
        self.server.start()
        _private(self.files[0], self.token + "\n")
        _private(self.files[1], self.server.url + "\n")
        log.info("panel: open %s?token=%s (the token is also in %s)", self.server.url, self.token, self.files[0])

    def finish(self, msg: Message, outputs: Outputs) -> Message:
        if msg.kind == "eos":
            self.state.ended = True
            self._close()
            return msg
        self.state.add(msg)
        return msg

    def stats(self) -> dict[str, Any]:
        return {"requests": self.server.requests}

    def _close(self) -> None:
        self.server.stop()
        self.watch.close()
        for path in self.files:
            path.unlink(missing_ok=True)


def _private(path: Path, text: str) -> None:
    """A file only this user can read, written whole."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
