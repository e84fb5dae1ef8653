"""CURVE on real tcp sockets: encrypted traffic flows; a peer with a wrong key is refused and logged."""

from __future__ import annotations

import logging
import shutil

import pytest
import zmq
import zmq.auth

from gazeflow.shared import transport
from gazeflow.shared.config import Config
from gazeflow.shared.endpoint import Endpoint
from gazeflow.shared.errors import GazeflowError
from gazeflow.shared.messages import Message
from gazeflow.shared.security import Curve, make_keys, neighbours, stop_authenticators


def _socket(ctx, kind, spec, curve):
    return transport.attach(transport.open_socket(ctx, kind, Endpoint.parse(spec), 16, curve), Endpoint.parse(spec))


CHAIN = Config().chain_links


def _exchange(server_curve, client_curve) -> bool:
    """Whether a message from a client with these keys reaches a CURVE server on real tcp sockets."""
    ctx = zmq.Context()
    try:
        server = _socket(ctx, zmq.PULL, "pull+bind:tcp://127.0.0.1:0", server_curve)
        address = server.getsockopt_string(zmq.LAST_ENDPOINT)
        client = _socket(ctx, zmq.PUSH, f"push+connect:{address}", client_curve)
        transport.send(client, Message.frame(1, 0.0, {}), block=False)
        arrived = bool(server.poll(1500))
        for sock in (server, client):
            sock.close(0)
        return arrived
    finally:
        stop_authenticators()
        ctx.destroy(0)


def test_only_a_neighbour_with_its_own_key_gets_in_and_refusals_are_logged(tmp_path, caplog):
    keys, other = make_keys(tmp_path / "keys", CHAIN), make_keys(tmp_path / "other", CHAIN)
    lh = Curve(keys, "landmarks_headpose")
    assert _exchange(lh.end("face_detection"), Curve(keys, "face_detection").end("landmarks_headpose"))
    with caplog.at_level(logging.WARNING, logger="gazeflow.auth"):
        # capture is a stage of the same run, told landmarks' public key, but not its neighbour: refused
        shutil.copyfile(
            keys / "landmarks_headpose" / "landmarks_headpose.key",
            keys / "capture" / "peers" / "landmarks_headpose.key",
        )
        assert not _exchange(lh.end("face_detection"), Curve(keys, "capture").end("landmarks_headpose"))
        # face detection of another installation, told the real server's public key: refused
        shutil.copyfile(
            keys / "landmarks_headpose" / "landmarks_headpose.key",
            other / "face_detection" / "peers" / "landmarks_headpose.key",
        )
        assert not _exchange(lh.end("face_detection"), Curve(other, "face_detection").end("landmarks_headpose"))
    assert sum("refused a peer at" in r.getMessage() for r in caplog.records) >= 2
    # a server that is not the neighbour the client expects (another installation's) is not talked to
    assert not _exchange(
        Curve(other, "landmarks_headpose").end("face_detection"),
        Curve(keys, "face_detection").end("landmarks_headpose"),
    )


def test_each_stage_gets_its_own_pair_and_only_its_neighbours_public_keys(tmp_path):
    keys = make_keys(tmp_path / "keys", CHAIN)
    stages = [link.up for link in CHAIN] + [CHAIN[-1].down]
    assert sorted(p.name for p in keys.iterdir()) == sorted([*stages, "ctl"])  # and 'gazeflow ctl' over tcp
    near = neighbours(CHAIN)
    for stage in stages:
        own = keys / stage
        assert own.stat().st_mode & 0o777 == 0o700
        assert [p.name for p in own.rglob("*.key_secret")] == [f"{stage}.key_secret"]  # no one else's secret
        assert (own / f"{stage}.key_secret").stat().st_mode & 0o777 == 0o600
        assert {p.stem for p in (own / "peers").iterdir()} == near[stage]
    assert near["landmarks_headpose"] == {"face_detection", "gaze"} and near["ctl"] == {"pointer"}
    publics = {zmq.auth.load_certificate(keys / s / f"{s}.key")[0] for s in stages}
    assert len(publics) == len(stages)  # a pair per stage, none shared


def test_missing_keys_are_one_line(tmp_path):
    with pytest.raises(GazeflowError, match="gazeflow keys"):
        Curve(tmp_path / "nothing", "gaze")
    keys = make_keys(tmp_path / "keys", CHAIN)
    with pytest.raises(GazeflowError, match="no public key of capture"):
        Curve(keys, "gaze").peer("capture")


def test_keys_are_private_and_never_replaced_without_force(tmp_path):
    from gazeflow.services.cli import main

    keys = tmp_path / "keys"
    assert main(["keys", str(keys)]) == 0
    assert keys.stat().st_mode & 0o777 == 0o700
    secret = keys / "gaze" / "gaze.key_secret"
    before = secret.read_bytes()
    assert main(["keys", str(keys)]) == 2 and secret.read_bytes() == before
    assert main(["keys", str(keys), "--force"]) == 0 and secret.read_bytes() != before
    secret.chmod(0o644)  # readable by everyone: refused
    with pytest.raises(GazeflowError, match="can be read by other users"):
        Curve(keys, "gaze")


def test_keys_follow_the_configs_chain(tmp_path):
    from gazeflow.services.cli import main

    cfg = tmp_path / "chain.toml"
    cfg.write_text('chain = ["capture", "face_detection", "landmarks_headpose", "pointer"]\n')
    assert main(["keys", str(tmp_path / "keys"), "--config", str(cfg)]) == 0
    assert not (tmp_path / "keys" / "gaze").exists()
    assert {p.stem for p in (tmp_path / "keys" / "pointer" / "peers").iterdir()} == {"landmarks_headpose", "ctl"}
