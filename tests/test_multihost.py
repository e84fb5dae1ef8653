"""Stages on two "hosts": separate network namespaces joined by a veth pair, tcp links with CURVE.

Host A (10.77.0.1) runs capture, face detection and gaze; host B (10.77.0.2) runs
landmarks + head pose and the pointer, so the faces, eyes and gaze links all cross
between the namespaces over tcp, encrypted and authenticated. Each stage is started
on its own with ``gazeflow stage NAME --config FILE``, as on real machines. Needs
root (CAP_NET_ADMIN) for ``ip netns``; skips with the reason otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gazeflow.shared.config import Config
from gazeflow.shared.security import make_keys

from conftest import read_results

pytestmark = pytest.mark.integration
A, B = "10.77.0.1", "10.77.0.2"
FRAMES = 60
HOST_OF = {"capture": "a", "face_detection": "a", "gaze": "a", "landmarks_headpose": "b", "pointer": "b"}


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)


@pytest.fixture(scope="module")
def hosts():
    """Two network namespaces, a and b, joined by a veth pair; removed afterwards."""
    if os.geteuid() != 0 or not shutil.which("ip"):
        pytest.skip("network namespaces need root and iproute2 (ip netns); not available here")
    tag = f"gf{os.getpid()}"
    names = {"a": f"{tag}a", "b": f"{tag}b"}
    made = []
    try:
        for ns in names.values():
            r = _ip("netns", "add", ns)
            if r.returncode:
                pytest.skip(f"cannot make a network namespace: {r.stderr.strip()}")
            made.append(ns)
        steps = [
            ("link", "add", f"{tag}va", "type", "veth", "peer", "name", f"{tag}vb"),
            ("link", "set", f"{tag}va", "netns", names["a"]),
            ("link", "set", f"{tag}vb", "netns", names["b"]),
            ("-n", names["a"], "addr", "add", f"{A}/24", "dev", f"{tag}va"),
            ("-n", names["b"], "addr", "add", f"{B}/24", "dev", f"{tag}vb"),
            ("-n", names["a"], "link", "set", f"{tag}va", "up"),
            ("-n", names["b"], "link", "set", f"{tag}vb", "up"),
            ("-n", names["a"], "link", "set", "lo", "up"),
            ("-n", names["b"], "link", "set", "lo", "up"),
        ]
        for step in steps:
            r = _ip(*step)
            if r.returncode:
                pytest.skip(f"cannot set up the veth pair (ip {' '.join(step)}): {r.stderr.strip()}")
        ping = subprocess.run(["ip", "netns", "exec", names["a"], "ping", "-c1", "-W2", B], capture_output=True)
        if ping.returncode and shutil.which("ping"):
            pytest.fail(f"namespace a cannot reach {B}")
        yield names
    finally:
        for ns in made:
            _ip("netns", "del", ns)


def _keys(path: Path) -> Path:
    return make_keys(path, Config().chain_links)


def _topology(path: Path, keys: Path, results: Path, frames: int = FRAMES, extra: str = "") -> dict[str, Path]:
    """The topology as each host gets it: with only the keys of the stages it runs (no host holds
    another's secret key)."""
    files = {}
    for host in ("a", "b"):
        own = path.parent / f"{path.stem}-keys-{host}"
        own.mkdir(mode=0o700)
        for stage in (s for s, h in HOST_OF.items() if h == host):
            shutil.copytree(keys / stage, own / stage)
        files[host] = path.with_name(f"{path.stem}-{host}.toml")
        files[host].write_text(
            f'input = "demo"\npace = "max-speed"\nmax_frames = {frames}\ncurve_keys = "{own}"\n{extra}'
            f'results = "{results}"\nlog_interval = 0.0\n[pointer]\nbackend = "null"\n'
            f'[stages.face_detection]\noutput = "push+connect:tcp://{B}:5556"\n'
            f'[stages.landmarks_headpose]\ninput = "pull+bind:tcp://{B}:5556"\noutput = "push+bind:tcp://{B}:5557"\n'
            f'[stages.gaze]\ninput = "pull+connect:tcp://{B}:5557"\noutput = "push+bind:tcp://{A}:5558"\n'
            f'[stages.pointer]\ninput = "pull+connect:tcp://{A}:5558"\n'
        )
    return files


def _start(hosts: dict[str, str], stage: str, topology: dict[str, Path], run_dirs: dict[str, Path], log: Path):
    host = HOST_OF[stage]
    cmd = [
        "ip",
        "netns",
        "exec",
        hosts[host],
        sys.executable,
        "-m",
        "gazeflow.services.cli",
        "stage",
        stage,
        "--config",
        str(topology[host]),
        "--run-dir",
        str(run_dirs[host]),
    ]
    return subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def _wait_all_ok(procs, tmp_path: Path) -> dict[str, str]:
    """Wait until every stage has exited (3 minutes at most); each must have ended well. Their logs."""
    deadline = time.monotonic() + 180
    while any(p.poll() is None for p in procs.values()) and time.monotonic() < deadline:
        time.sleep(0.2)
    logs = {s: (tmp_path / f"{s}.log").read_text() for s in procs}
    assert all(p.returncode == 0 for p in procs.values()), {s: logs[s][-1500:] for s in procs}
    return logs


def _stop(procs) -> None:
    for p in procs.values():
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs.values():
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


@pytest.fixture
def run_dirs(tmp_path):
    dirs = {h: tmp_path / f"run-{h}" for h in ("a", "b")}  # each host its own ipc folder
    yield dirs
    for d in dirs.values():
        shutil.rmtree(d, ignore_errors=True)


def test_stages_in_two_namespaces_over_curve_match_the_local_run(hosts, demo_runs, tmp_path, run_dirs):
    keys = _keys(tmp_path / "keys")
    results = tmp_path / "r.jsonl"
    topology = _topology(tmp_path / "two-hosts.toml", keys, results)
    procs = {}
    try:
        for stage in ("pointer", "gaze", "landmarks_headpose", "face_detection", "capture"):  # downstream first
            procs[stage] = _start(hosts, stage, topology, run_dirs, tmp_path / f"{stage}.log")
        logs = _wait_all_ok(procs, tmp_path)
    finally:
        _stop(procs)
    assert "tcp://10.77.0.2:5556" in logs["landmarks_headpose"]
    local = demo_runs["run-all-every-frame"].read_text().splitlines()[:FRAMES]  # across hosts: no tracking
    assert results.read_text().splitlines() == local  # byte for byte: same frames, same results
    assert len(read_results(results)) == FRAMES


def test_a_wrong_key_is_refused_cleanly_across_hosts(hosts, tmp_path, run_dirs):
    good = _keys(tmp_path / "good")
    wrong = _keys(tmp_path / "wrong")  # keys of another installation: face detection knows the real
    peer = "landmarks_headpose/landmarks_headpose.key"  # landmarks' public key, but its own is not authorized
    shutil.copyfile(good / peer, wrong / "face_detection" / "peers" / "landmarks_headpose.key")
    results = tmp_path / "r.jsonl"
    good_topology = _topology(tmp_path / "good.toml", good, results)
    wrong_topology = _topology(tmp_path / "wrong.toml", wrong, results)
    procs = {}
    try:
        procs["landmarks_headpose"] = _start(hosts, "landmarks_headpose", good_topology, run_dirs, tmp_path / "lh.log")
        procs["face_detection"] = _start(hosts, "face_detection", wrong_topology, run_dirs, tmp_path / "fd.log")
        procs["capture"] = _start(hosts, "capture", wrong_topology, run_dirs, tmp_path / "cap.log")
        deadline = time.monotonic() + 90
        while "refused a peer" not in (tmp_path / "lh.log").read_text() and time.monotonic() < deadline:
            assert all(p.poll() is None for p in procs.values()), (tmp_path / "lh.log").read_text()[-1500:]
            time.sleep(0.2)
        lh = (tmp_path / "lh.log").read_text()
        assert "refused a peer" in lh and "10.77.0.1" in lh  # logged, with the peer's address
        time.sleep(1)
        assert all(p.poll() is None for p in procs.values())  # nobody crashed
        assert "Traceback" not in lh
    finally:
        t0 = time.monotonic()
        _stop(procs)
    assert time.monotonic() - t0 < 10
    assert procs["landmarks_headpose"].returncode == 0
    assert not results.exists() or results.read_text() == ""


def test_a_link_down_for_5_s_the_replay_recovers_by_itself_and_counts_every_loss(hosts, tmp_path, run_dirs):
    """The cable between the two hosts pulled for 5 s in the middle of a replay: tcp retransmits once the link is
    back (a replay's links have no ZeroMQ heartbeats, which would drop a connection held up by back-pressure
    with what is queued on it; TCP keepalive notices a host that has gone), the replay completes, and every
    frame is a result or counted lost; nothing crashes."""
    keys = _keys(tmp_path / "keys")
    results, metrics = tmp_path / "r.jsonl", tmp_path / "m.json"
    frames = 400
    topology = _topology(tmp_path / "fault.toml", keys, results, frames, f'metrics = "{metrics}"\n')
    veth = {host: f"{ns[:-1]}v{host}" for host, ns in hosts.items()}
    procs = {}
    try:
        for stage in ("pointer", "gaze", "landmarks_headpose", "face_detection", "capture"):
            procs[stage] = _start(hosts, stage, topology, run_dirs, tmp_path / f"{stage}.log")
        deadline = time.monotonic() + 120
        while not (results.exists() and results.stat().st_size > 0) and time.monotonic() < deadline:
            time.sleep(0.05)
        _ip("-n", hosts["a"], "link", "set", veth["a"], "down")  # the outage, injected
        time.sleep(5)
        _ip("-n", hosts["a"], "link", "set", veth["a"], "up")
        logs = _wait_all_ok(procs, tmp_path)
    finally:
        _stop(procs)
        _ip("-n", hosts["a"], "link", "set", veth["a"], "up")
    report = json.loads(metrics.read_text())
    assert report["frames"] + report["lost"] + report["dropped"] == frames
    assert all("Traceback" not in text for text in logs.values())


def test_100_ms_delay_and_10_percent_loss_slow_the_replay_but_change_no_result(hosts, demo_runs, tmp_path, run_dirs):
    """Host B drops 10% of the packets it receives (iptables' statistic match) and the eyes link goes through a
    proxy that delays every byte by 100 ms each way (the kernel here has no netem: CONFIG_NET_SCH_NETEM is
    not set): tcp retransmits, heartbeats do not give up on a slow peer, and a max-speed replay gives the
    same results, byte for byte, as the local run."""
    if not shutil.which("iptables"):
        pytest.skip("no iptables for the packet loss")
    keys = _keys(tmp_path / "keys")
    results = tmp_path / "r.jsonl"
    topology = _topology(tmp_path / "slow.toml", keys, results)
    # on host A the eyes link is served by the proxy there (as a port forward would be), which dials host B
    topology["a"].write_text(topology["a"].read_text().replace(f"tcp://{B}:5557", f"tcp://{A}:6557"))
    veth_b = f"{hosts['b'][:-1]}vb"
    drop = ["-i", veth_b, "-m", "statistic", "--mode", "random", "--probability", "0.1", "-j", "DROP"]
    iptables = ["ip", "netns", "exec", hosts["b"], "iptables"]
    assert subprocess.run([*iptables, "-A", "INPUT", *drop], capture_output=True).returncode == 0
    proxy = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            hosts["a"],
            sys.executable,
            str(Path(__file__).with_name("delay_proxy.py")),
            f"{A}:6557",
            f"{B}:5557",
            "100",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    procs = {}
    t0 = time.monotonic()
    try:
        assert proxy.stdout is not None and proxy.stdout.readline().strip() == "ready"
        for stage in ("pointer", "gaze", "landmarks_headpose", "face_detection", "capture"):
            procs[stage] = _start(hosts, stage, topology, run_dirs, tmp_path / f"{stage}.log")
        logs = _wait_all_ok(procs, tmp_path)
        counters = subprocess.run([*iptables, "-L", "INPUT", "-v", "-x", "-n"], capture_output=True, text=True)
    finally:
        _stop(procs)
        proxy.terminate()
        proxy.wait(10)
        subprocess.run([*iptables, "-D", "INPUT", *drop], capture_output=True)
    dropped, seen = (int(f) for f in next(ln for ln in counters.stdout.splitlines() if "DROP" in ln).split()[:2])
    assert dropped > 0, counters.stdout  # packets were really lost
    print(f"host B dropped {dropped} packets ({seen} bytes); the replay took {time.monotonic() - t0:.1f} s")
    assert all("Traceback" not in text for text in logs.values())
    local = demo_runs["run-all-every-frame"].read_text().splitlines()[:FRAMES]  # across hosts: no tracking
    assert results.read_text().splitlines() == local
