"""CURVE encryption and authentication for tcp links (ZeroMQ's CurveZMQ).

``gazeflow keys DIR`` gives every stage of the chain its own key pair: ``DIR/STAGE/``
holds ``STAGE.key_secret`` (0600, in a 0700 folder) and ``peers/``, the public keys of
the stages it talks to (its neighbours in the chain). Copy ``DIR/STAGE`` to the host
that runs STAGE, and only there: no host holds another's secret key. With
``curve_keys = "DIR"`` every tcp socket is encrypted; a binding stage is the CURVE
server and admits only its neighbours' keys, a connecting stage checks that the
server is the neighbour it expects. A peer with any other key is refused by the
handshake, logged with its address, and the stage goes on. ipc links stay on the
host and are not encrypted.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from . import registry
from .errors import GazeflowError
from .registry import Link

log = logging.getLogger("gazeflow.auth")
_authenticators: list[ThreadAuthenticator] = []


CTL = "ctl"  # the identity of 'gazeflow ctl' when it reaches the pointer over tcp


def neighbours(links: Iterable[Link]) -> dict[str, set[str]]:
    """Each stage's neighbours: the stages at the other end of its links, and the peers of the side channels
    its manifest serves to someone outside the chain ('gazeflow ctl' for the pointer's ctl)."""
    out: dict[str, set[str]] = {}
    for link in links:
        out.setdefault(link.up, set()).add(link.down)
        out.setdefault(link.down, set()).add(link.up)
    for stage in list(out):
        for channel in registry.get(stage).channels:
            if channel.peer:
                out[stage].add(channel.peer)
                out.setdefault(channel.peer, set()).add(stage)
    return out


def make_keys(directory: str | Path, links: Iterable[Link], force: bool = False) -> Path:
    """A key pair per stage of the chain, each in its own folder only its owner can enter (0700) with the
    secret key readable by its owner alone (0600), and each stage's neighbours' public keys in its
    ``peers/``, and the secret tokens its manifest names (the panel's); existing keys are replaced only with
    ``force``."""
    d = Path(directory)
    near = neighbours(links)
    if not force and d.exists() and any(d.glob("*/*.key_secret")):
        raise GazeflowError(f"{d} already holds keys: use another folder, or --force to replace them")
    old = os.umask(0o077)
    try:
        d.mkdir(parents=True, exist_ok=True)
        d.chmod(0o700)
        for stage in near:
            own = d / stage
            if own.exists():
                shutil.rmtree(own)
            own.mkdir(mode=0o700)
            zmq.auth.create_certificates(own, stage)
            (own / f"{stage}.key_secret").chmod(0o600)
            (own / "peers").mkdir(mode=0o700)
        for stage, others in near.items():
            for other in others:
                shutil.copyfile(d / other / f"{other}.key", d / stage / "peers" / f"{other}.key")
        for stage in near:
            for token in registry.stages()[stage].tokens if stage in registry.stages() else ():
                (d / stage / token).write_text(secrets.token_urlsafe(32) + "\n")  # 0600: the umask above
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
    """One stage's keys: its own pair and its neighbours' public keys."""

    def __init__(self, directory: str | Path, stage: str) -> None:
        self.stage = stage
        self.dir = Path(directory) / stage
        hint = f"make them with 'gazeflow keys {directory}' and copy {self.dir} to this host"
        try:
            self.public, self.secret = zmq.auth.load_certificate(_private(self.dir / f"{stage}.key_secret"))
        except (OSError, ValueError) as exc:
            raise GazeflowError(f"CURVE keys of {stage}: {exc} ({hint})") from None
        if self.secret is None:
            raise GazeflowError(f"CURVE keys of {stage}: {self.dir / f'{stage}.key_secret'} holds no secret key")
        if not (self.dir / "peers").is_dir():
            raise GazeflowError(f"CURVE keys of {stage}: no peers/ folder of its neighbours' public keys ({hint})")

    def peer(self, name: str) -> bytes:
        """The public key of the neighbour at the other end of a link."""
        try:
            public, _ = zmq.auth.load_certificate(self.dir / "peers" / f"{name}.key")
        except (OSError, ValueError) as exc:
            raise GazeflowError(f"CURVE keys of {self.stage}: no public key of {name}: {exc}") from None
        return public

    def end(self, peer: str) -> CurveEnd:
        """These keys on the socket of one link, whose other end is the neighbour ``peer``."""
        return CurveEnd(self, peer)

    def apply(self, ctx: zmq.Context, sock: zmq.Socket, address: str, bind: bool, peer: str) -> None:
        """A binding socket admits the neighbours' keys (one ZAP handler per context); a connecting one
        accepts only the neighbour ``peer`` as its server."""
        if not address.startswith("tcp://"):
            return
        sock.curve_secretkey = self.secret
        sock.curve_publickey = self.public
        if bind:
            if not any(auth.context is ctx for auth in _authenticators):
                auth = ThreadAuthenticator(ctx, log=_RefusalsAsWarnings(log, {}))
                auth.start()
                auth.configure_curve(domain="*", location=str(self.dir / "peers"))
                _authenticators.append(auth)
            sock.curve_server = True
        else:
            sock.curve_serverkey = self.peer(peer)


@dataclass(frozen=True)
class CurveEnd:
    curve: Curve
    peer: str

    def apply(self, ctx: zmq.Context, sock: zmq.Socket, address: str, bind: bool) -> None:
        self.curve.apply(ctx, sock, address, bind, self.peer)


def stop_authenticators() -> None:
    """Stop the authentication threads (before the ZeroMQ context is destroyed)."""
    while _authenticators:
        _authenticators.pop().stop()
