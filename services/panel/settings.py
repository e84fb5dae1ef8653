"""The panel's settings (the [panel] table), its address, and its checks before anything starts."""

from __future__ import annotations

import ipaddress
import re
import socket
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import field_validator

from gazeflow.shared.errors import GazeflowError
from gazeflow.shared.settings import Section, setting

if TYPE_CHECKING:
    from gazeflow.shared.config import Config

LOOPBACK = "127.0.0.1"
TOKEN = re.compile(r"[A-Za-z0-9_-]{16,200}")


def parse_address(text: str) -> tuple[str, int]:
    """``[HOST:]PORT`` -> (host, port); the host is 127.0.0.1 unless given. ValueError naming the problem."""
    host, sep, port = text.strip().rpartition(":")
    if not sep:
        host, port = LOOPBACK, text.strip()
    host = host.strip("[]") or LOOPBACK
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{text!r}: expected [HOST:]PORT with a port from 0 to 65535 (0: any free one)")
    if not host or any(c.isspace() or c in "/?#@" for c in host):
        raise ValueError(f"{text!r}: not a host name or address")
    return host, int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class PanelConfig(Section):
    address: str = setting(
        "",
        "serve a web panel at [HOST:]PORT to watch and tune the run in a browser (HOST: 127.0.0.1 unless given; "
        "a token is needed, printed at the start)",
        flag="--panel",
        group="View",
        metavar="[HOST:]PORT",
    )
    bind_all: bool = setting(
        False,
        "let the panel listen on an address other than this machine's own (anyone who can reach it and has the "
        "token can pause and tune the pointer)",
    )
    view_fps: float = setting(
        2.0,
        "frames a second of the panel's live view while a browser shows it (0: no live view, and the frames' pixels "
        "need not travel to the panel: across machines, each link would carry them)",
        ge=0,
        le=15,
    )
    token_file: str = setting(
        "",
        "read the panel's token from this file (one line, 16 to 200 URL-safe characters, readable by its owner "
        "alone; 'gazeflow keys' makes one) instead of a new random one at each start: for a Prometheus that "
        "scrapes the panel with the same secret",
    )

    @property
    def wanted(self) -> bool:
        return bool(self.address)

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        if value:
            parse_address(value)
        return value


def read_token(path: str) -> str:
    """The token in a file of the user's own: one line of URL-safe characters. GazeflowError naming the problem."""
    where = Path(path)
    try:
        st = where.stat()
        mode = st.st_mode
        text = where.read_text(encoding="ascii").strip() if st.st_size <= 1024 else ""
    except (OSError, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not ASCII text"
        raise GazeflowError(f"panel.token_file {path}: cannot read it ({reason})") from None
    if mode & 0o007:
        raise GazeflowError(f"panel.token_file {path} can be read by other users (mode {mode & 0o777:o}): chmod 600 it")
    if not TOKEN.fullmatch(text):
        raise GazeflowError(f"panel.token_file {path}: expected one line of 16 to 200 characters A-Z a-z 0-9 - _")
    return text


def preflight(cfg: Config) -> None:
    """A host that does not resolve, an address off this machine without bind_all, a port in use, a token file
    that cannot serve: one line."""
    if cfg.panel.token_file:
        read_token(cfg.panel.token_file)
    host, port = parse_address(cfg.panel.address)
    try:
        family, kind, proto, _, where = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (OSError, UnicodeError) as exc:
        raise GazeflowError(f"--panel {cfg.panel.address}: host {host!r} not found ({exc})") from None
    if not is_loopback(where[0]) and not cfg.panel.bind_all:
        raise GazeflowError(
            f"--panel {cfg.panel.address}: {host} is not this machine's loopback; anyone who reaches it could "
            "watch you and move your pointer with the token: set panel.bind_all = true to allow it"
        )
    if port:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(where)
            except OSError as exc:
                raise GazeflowError(f"--panel {cfg.panel.address}: cannot listen there: {exc.strerror}") from None
