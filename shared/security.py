"""CURVE encryption and authentication for tcp links (ZeroMQ's CurveZMQ).

``gazeflow keys DIR`` writes a server and a client key pair and an
``authorized/`` folder holding the client public keys allowed to connect.
Copy DIR to every host and set ``curve_keys = "DIR"``: then every tcp socket
is encrypted, the binding side is the CURVE server and admits only authorized
clients; a peer with a wrong key is refused by the handshake, logged, and the
stage goes on. ipc links stay on the host and are not encrypted.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from .errors import GazeflowError

log = logging.getLogger("gazeflow.auth")
_authenticators: list[ThreadAuthenticator] = []


def make_keys(directory: str | Path, force: bool = False) -> Path:
    """A server and a client key pair and authorized/ in a folder only its owner can enter (0700), the
    secret keys readable by their owner alone (0600); existing keys are replaced only with ``force``."""
    d = Path(directory)
    if not force and any((d / f"{name}.key_secret").exists() for name in ("server", "client")):
        raise GazeflowError(f"{d} already holds keys: use another folder, or --force to replace them")
    d.mkdir(parents=True, exist_ok=True)
    d.chmod(0o700)
    old = os.umask(0o077)
    try:
        for name in ("server", "client"):
            zmq.auth.create_certificates(d, name)
            (d / f"{name}.key_secret").chmod(0o600)
        authorized = d / "authorized"
        authorized.mkdir(exist_ok=True)
        shutil.copyfile(d / "client.key", authorized / "client.key")
    finally:
        os.umask(old)
    return d


def _private(path: Path) -> Path:
    """A secret key file that no other user can read (group access is left to the deployment: a
    Kubernetes secret with fsGroup), else one line saying so."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return path  # load_certificate names a missing file
    if mode & 0o007:
        raise GazeflowError(f"secret key {path} can be read by other users (mode {mode & 0o777:o}): chmod 600 it")
    return path


class _RefusalsAsWarnings(logging.LoggerAdapter):
    """pyzmq logs CURVE refusals at debug level; a refused peer deserves a warning, with its address.

    The authenticator handles one request at a time and logs the request (with the
    peer's address) before its verdict, so the last address seen is the refused one's.
    """

    address = "?"

    def log(self, level: int, msg: Any, *args: Any, **kwargs: Any) -> None:
        if str(msg).startswith("version:") and len(args) >= 4:
            self.address = str(args[3])
        text = str(msg) % args if args else str(msg)
        if text.startswith("DENIED"):
            level = logging.WARNING
            msg, args = f"refused a peer at {self.address}: {text}", ()
        self.logger.log(level, msg, *args, **kwargs)


class Curve:
    """The keys of one process, applied to its tcp sockets."""

    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)
        try:
            self.server_public, self.server_secret = zmq.auth.load_certificate(_private(self.dir / "server.key_secret"))
            self.client_public, self.client_secret = zmq.auth.load_certificate(_private(self.dir / "client.key_secret"))
        except (OSError, ValueError) as exc:
            raise GazeflowError(
                f"CURVE keys in {self.dir}: {exc} (make them with 'gazeflow keys {self.dir}')"
            ) from None
        if not (self.dir / "authorized").is_dir():
            raise GazeflowError(f"CURVE keys in {self.dir}: no authorized/ folder of client public keys")

    def apply(self, ctx: zmq.Context, sock: zmq.Socket, address: str, bind: bool) -> None:
        if not address.startswith("tcp://"):
            return
        if bind and not any(auth.context is ctx for auth in _authenticators):  # one ZAP handler per context
            auth = ThreadAuthenticator(ctx, log=_RefusalsAsWarnings(log, {}))
            auth.start()
            auth.configure_curve(domain="*", location=str(self.dir / "authorized"))
            _authenticators.append(auth)
        if bind:
            sock.curve_secretkey = self.server_secret
            sock.curve_publickey = self.server_public
            sock.curve_server = True
        else:
            sock.curve_secretkey = self.client_secret
            sock.curve_publickey = self.client_public
            sock.curve_serverkey = self.server_public


def stop_authenticators() -> None:
    """Stop the authentication threads (before the ZeroMQ context is destroyed)."""
    while _authenticators:
        _authenticators.pop().stop()
