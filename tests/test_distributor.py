"""Credit-based distribution to scaled workers, on real ZeroMQ sockets."""

from __future__ import annotations

import time

import numpy as np
import pytest
import zmq

from gazeflow.shared import senders, transport
from gazeflow.shared.endpoint import Endpoint
from gazeflow.shared.messages import Message


@pytest.fixture
def router():
    """A distributor bound on loopback, its context and address; closed afterwards."""
    ctx = zmq.Context()
    dist = senders.Distributor(ctx, Endpoint.parse("push+bind:tcp://127.0.0.1:0"), 4)
    yield ctx, dist, dist.sock.getsockopt_string(zmq.LAST_ENDPOINT)
    dist.close()
    ctx.destroy(0)


def _worker(ctx: zmq.Context, address: str, credits: int) -> transport.Receiver:
    worker = transport.Receiver(ctx, Endpoint.parse(f"pull+connect:{address}"), 16, None, worker=True)
    worker.give_credit(credits)
    return worker


def _drain(worker: transport.Receiver) -> list[Message]:
    out = []
    while worker.sock.poll(200):
        out.append(worker.recv())
    return out


def _send(dist: senders.Distributor, msg: Message, timeout_s: float = 5) -> bool:
    deadline = time.monotonic() + timeout_s
    while not dist.send(msg):
        if time.monotonic() > deadline:
            return False
        dist.wait(0.05)
    return True


def test_frames_follow_credit_and_the_end_reaches_every_worker_even_a_late_one(router):
    ctx, dist, address = router
    fast, slow = _worker(ctx, address, 6), _worker(ctx, address, 2)
    for i in range(8):
        assert _send(dist, Message.frame(i, 0.0, {}))
    assert not dist.send(Message.frame(8, 0.0, {}))  # no credit left anywhere: live input would drop it
    got_fast, got_slow = _drain(fast), _drain(slow)
    assert len(got_fast) == 6 and len(got_slow) == 2  # each got what it asked for
    assert sorted(m.index for m in got_fast + got_slow) == list(range(8))
    assert dist.send_end(Message.eos({}), lambda: False)
    assert [m.kind for m in _drain(fast)] == ["eos"] and [m.kind for m in _drain(slow)] == ["eos"]
    late = _worker(ctx, address, 1)  # e.g. a worker restarted after the end
    deadline = time.monotonic() + 5
    while not late.sock.poll(0) and time.monotonic() < deadline:
        dist._take_credits(50)
        dist._end_to_new_workers()
    end = late.recv()
    assert end.kind == "eos" and end.header["copies"] == 2
    assert dist.wait_end("test", lambda: False)  # every worker acknowledged its copy of the end
    for worker in (fast, slow, late):
        worker.close()


def test_a_worker_that_has_gone_is_skipped(router):
    ctx, dist, address = router
    gone, alive = _worker(ctx, address, 4), _worker(ctx, address, 4)

    def peers(n: int) -> None:  # wait until the router has seen n workers connected (events, not time)
        deadline = time.monotonic() + 10
        while dist.watch.peers != n and time.monotonic() < deadline:
            dist.watch._update(50)
        assert dist.watch.peers == n

    peers(2)
    while len(dist.credits) < 2:
        dist._take_credits(50)
    gone.close()
    peers(1)  # the router's I/O thread has seen the disconnect; the socket forgets the peer once it
    for _ in range(200):  # processes its commands, which reading ZMQ_EVENTS makes it do
        dist.sock.getsockopt(zmq.EVENTS)
        time.sleep(0.001)
    for i in range(4):
        assert _send(dist, Message.frame(i, 0.0, {}))
    got = _drain(alive)
    assert len(got) == 4 and len(dist.credits) == 1
    alive.close()


def test_a_replay_link_keeps_every_message_through_a_stall_longer_than_the_heartbeat_timeout():
    """Back-pressure in a replay: the receiver stops reading (its own queue full) for longer than ZeroMQ's
    heartbeat timeout. With heartbeats its peer's pings go unanswered and the connection is dropped with what
    was queued on it (libzmq #2709); a replay's links use TCP keepalive instead and lose nothing."""
    ctx = zmq.Context()
    sender = senders.PushSender(ctx, Endpoint.parse("push+bind:tcp://127.0.0.1:0"), 4, live=False)
    address = sender.sock.getsockopt_string(zmq.LAST_ENDPOINT)
    receiver = transport.Receiver(ctx, Endpoint.parse(f"pull+connect:{address}"), 4, None, worker=False, live=False)
    assert receiver.sock.getsockopt(zmq.HEARTBEAT_IVL) == 0 and receiver.sock.getsockopt(zmq.TCP_KEEPALIVE) == 1
    sent = 0
    try:
        stalled_until = time.monotonic() + 2 * transport.HEARTBEAT_MS * 3 / 1e3  # twice the heartbeat timeout
        while time.monotonic() < stalled_until:  # the receiver reads nothing meanwhile
            msg = Message.frame(sent, 0.0, {})
            msg.arrays["frame"] = np.zeros(1 << 20, dtype=np.uint8)  # 1 MB: the socket buffers fill, then the queue
            if sender.send(msg):
                sent += 1
            else:
                time.sleep(0.05)
        got = []
        deadline = time.monotonic() + 30
        while len(got) < sent and time.monotonic() < deadline:
            msg = receiver.recv(block=False) if receiver.sock.poll(500) else None
            if msg is not None:
                got.append(msg.header["frame"])
        assert got == list(range(sent)) and sent > 8  # the stall really was back-pressure, and nothing was lost
    finally:
        sender.close()
        receiver.close()
        ctx.destroy(0)


def test_a_replays_first_frame_waits_for_every_worker_so_a_late_one_shares_the_work():
    """Without run-all's go (the compose topology), a worker still compiling its models when the source starts
    would get no frame and no end of the stream: a replay's first frame waits until every worker is there."""
    ctx = zmq.Context()
    dist = senders.Distributor(ctx, Endpoint.parse("push+bind:tcp://127.0.0.1:0"), 4, live=False, workers=2)
    address = dist.sock.getsockopt_string(zmq.LAST_ENDPOINT)
    try:
        early = _worker(ctx, address, 8)
        assert not _send(dist, Message.frame(0, 0.0, {}), timeout_s=1)  # one of two: it waits
        late = _worker(ctx, address, 8)
        for i in range(6):
            assert _send(dist, Message.frame(i, 0.0, {}))
        assert dist.send_end(Message.eos({}), lambda: False)
        got = [_drain(w) for w in (early, late)]
        assert all(any(m.kind == "frame" for m in g) and g[-1].kind == "eos" for g in got), got
        assert got[0][-1].header["copies"] == 2
    finally:
        dist.close()
        ctx.destroy(0)
