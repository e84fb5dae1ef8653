"""CURVE on real tcp sockets: encrypted traffic flows; a peer with a wrong key is refused and logged."""

from __future__ import annotations

import logging
import shutil

import pytest
import zmq

from gazeflow.shared import transport
from gazeflow.shared.endpoint import Endpoint
from gazeflow.shared.errors import GazeflowError
from gazeflow.shared.messages import Message
from gazeflow.shared.security import Curve, make_keys, stop_authenticators


def _socket(ctx, kind, spec, curve):
    return transport.attach(transport.open_socket(ctx, kind, Endpoint.parse(spec), 16, curve), Endpoint.parse(spec))


def test_wrong_key_is_refused_and_logged_and_the_server_goes_on(tmp_path, caplog):
    good, other = make_keys(tmp_path / "good"), make_keys(tmp_path / "other")
    shutil.copyfile(good / "server.key", other / "server.key")  # it knows the server, but is not authorized
    shutil.copyfile(good / "server.key_secret", other / "server.key_secret")
    (other / "server.key_secret").chmod(0o600)
    ctx = zmq.Context()
    try:
        server = _socket(ctx, zmq.PULL, "pull+bind:tcp://127.0.0.1:0", Curve(good))
        address = server.getsockopt_string(zmq.LAST_ENDPOINT)
        intruder = _socket(ctx, zmq.PUSH, f"push+connect:{address}", Curve(other))
        friend = _socket(ctx, zmq.PUSH, f"push+connect:{address}", Curve(good))
        with caplog.at_level(logging.WARNING, logger="gazeflow.auth"):
            transport.send(intruder, Message.frame(1, 0.0, {}), block=False)
            transport.send(friend, Message.frame(2, 0.0, {}))
            assert server.poll(5000)
            got = transport.recv(server)
            assert got.index == 2  # only the authorized peer's message arrives
            assert not server.poll(500)
        assert any("refused a peer" in r.getMessage() for r in caplog.records)
        for sock in (server, intruder, friend):
            sock.close(0)
    finally:
        stop_authenticators()
        ctx.destroy(0)


def test_missing_keys_are_one_line(tmp_path):
    with pytest.raises(GazeflowError, match="gazeflow keys"):
        Curve(tmp_path / "nothing")


def test_keys_are_private_and_never_replaced_without_force(tmp_path):
    from gazeflow.services.cli import main

    keys = make_keys(tmp_path / "keys")
    assert keys.stat().st_mode & 0o777 == 0o700
    for name in ("server", "client"):
        assert (keys / f"{name}.key_secret").stat().st_mode & 0o777 == 0o600
    before = (keys / "server.key_secret").read_bytes()
    assert main(["keys", str(keys)]) == 2 and (keys / "server.key_secret").read_bytes() == before
    assert main(["keys", str(keys), "--force"]) == 0 and (keys / "server.key_secret").read_bytes() != before
    (keys / "client.key_secret").chmod(0o644)  # readable by everyone: refused
    with pytest.raises(GazeflowError, match="can be read by other users"):
        Curve(keys)
