"""The panel stage: receive each frame after the pointer, keep what the page and /metrics show, pass it on.
The web server runs in a thread of this process (server.py); it only reads what ``finish`` kept, and
talks to the pointer through the ctl channel as 'gazeflow ctl' does."""

from __future__ import annotations

import logging
import os
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gazeflow.services.pointer import control
from gazeflow.services.view.draw import annotate
from gazeflow.shared import registry
from gazeflow.shared.errors import GazeflowError
from gazeflow.shared.messages import Message
from gazeflow.shared.stage import Outputs, Processor

from .server import PanelServer
from .settings import parse_address, read_token
from .state import PanelState

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

    def send(self, command: str, setting: tuple[str, Any] | None) -> dict[str, Any]:
        try:
            reply = control.send(command, self.run_dir, setting=setting)
        except GazeflowError as exc:
            return {"ok": False, "error": str(exc)}
        self.cached = (0.0, {})  # a change shows at once
        return {"ok": reply.ok, "state": reply.state, "error": reply.error, "status": reply.status}


class Panel(Processor):
    def __init__(self, cfg: Config) -> None:
        super().__init__(cfg)
        chain = tuple(cfg.chain)
        overlays = set(cfg.view.overlays)
        self.state = PanelState(registry.through_first_sink(chain), cfg.panel.view_fps)
        self.fps = 0.0
        host, port = parse_address(cfg.panel.address)
        self.token = read_token(cfg.panel.token_file) if cfg.panel.token_file else secrets.token_urlsafe(24)
        self.files = [Path(cfg.run_dir) / TOKEN, Path(cfg.run_dir) / URL]
        draw = lambda frame, header: annotate(frame, header, overlays, self.fps, chain).image  # noqa: E731
        self.server = PanelServer(host, port, self.token, self.state, Pointer(cfg.run_dir), draw, cfg.panel.bind_all)
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

    def tick(self) -> None:
        self.state.tick()

    def stats(self) -> dict[str, Any]:
        return {"requests": self.server.requests}

    def _close(self) -> None:
        self.server.stop()
        for path in self.files:
            path.unlink(missing_ok=True)


def _private(path: Path, text: str) -> None:
    """A file only this user can read, written whole."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
