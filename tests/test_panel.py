"""The web panel (--panel) on a real pipeline: its door (token, Host, Origin, POST), its figures and live view,
its controls through the ctl channel, /metrics scraped by a real Prometheus, the page in a real (headless)
Chromium; and bad input before anything starts."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

from gazeflow.services.panel.server import save_settings
from gazeflow.services.panel.settings import parse_address
from gazeflow.shared.errors import GazeflowError

from conftest import gazeflow, read_results, run_dir_of, start_run, start_xvfb, wait_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("8080", ("127.0.0.1", 8080)), ("0.0.0.0:80", ("0.0.0.0", 80)), ("[::1]:9000", ("::1", 9000)), ("h:0", ("h", 0))],
)
def test_an_address_is_a_port_with_an_optional_host(text, expected):
    assert parse_address(text) == expected


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("70000", "a port from 0 to 65535"),
        ("http://x:80", "not a host name"),
        ("no-such-host.invalid:8080", "not found"),
        ("192.0.2.10:8080", "panel.bind_all"),
    ],
)
def test_a_bad_panel_address_is_one_line_before_anything_starts(address, message):
    proc = gazeflow("run-all", "--input", "demo", "--pointer", "null", "--panel", address)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "capture" not in proc.stderr


def test_the_panel_does_not_change_where_the_other_stages_run():
    """Idle while no page is open, the panel does not count against the cores when stages are put together."""
    from gazeflow.services.cli import pipeline_config

    plain = pipeline_config(["--input", "demo", "--max-speed"]).placement_groups
    with_panel = pipeline_config(["--input", "demo", "--max-speed", "--panel", "9300"]).placement_groups
    assert with_panel == (*plain, ("panel",))


def test_run_sync_with_a_panel_is_one_line_before_anything_starts():
    proc = gazeflow("run-sync", "--input", "demo", "--pointer", "null", "--panel", "9300")
    assert proc.returncode == 2 and "run-sync has none to serve" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_a_port_in_use_is_one_line_before_anything_starts():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = gazeflow("run-all", "--input", "demo", "--pointer", "null", "--panel", str(port))
    assert proc.returncode == 2 and "cannot listen there" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("text", "mode", "message"),
    [
        (None, 0o600, "cannot read it"),
        ("x" * 40, 0o644, "can be read by other users"),
        ("short", 0o600, "expected one line of 16 to 200"),
        ("two words of a token", 0o600, "expected one line of 16 to 200"),
    ],
)
def test_a_token_file_that_cannot_serve_is_one_line_before_anything_starts(tmp_path, text, mode, message):
    token = tmp_path / "panel.token"
    if text is not None:
        token.write_text(text + "\n")
        token.chmod(mode)
    cfg = tmp_path / "gazeflow.toml"
    cfg.write_text(f'[panel]\ntoken_file = "{token}"\n')
    proc = gazeflow("run-all", "--config", str(cfg), "--input", "demo", "--pointer", "null", "--panel", "0")
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


class _NoPointer:
    """The panel's pointer before a run has one: it has no figures yet."""

    def figures(self, since: int) -> None:
        return None

    def status(self) -> dict:
        return {"state": "not started"}


def test_a_client_that_connects_and_never_sends_a_whole_request_is_let_go():
    """A connection that sends nothing, or headers a few bytes at a time, is closed once the idle time has
    passed since it opened: a page's requests are not kept waiting behind it, nor file descriptors used up."""
    from gazeflow.services.panel.server import PanelServer
    from gazeflow.services.panel.state import PanelState

    server = PanelServer("127.0.0.1", 0, "t" * 32, PanelState(("capture",), 0), _NoPointer(), None, False, None, 1.0)
    server.start()
    try:
        for dribble in (b"", b"GET / HTTP/1.1\r\n"):
            with socket.create_connection(("127.0.0.1", server.port)) as s:
                s.settimeout(0.25)
                t0, closed = time.monotonic(), False
                while not closed and time.monotonic() - t0 < 20:
                    if dribble:
                        s.sendall(b"X-Slow: 1\r\n" if time.monotonic() - t0 > 0.1 else dribble)
                    try:
                        closed = s.recv(100) == b""
                    except TimeoutError:
                        continue
                    except OSError:
                        closed = True
                assert closed, f"held open with {dribble!r}"
        # a change whose body comes a byte at a time is answered 408 once the idle time has passed
        with socket.create_connection(("127.0.0.1", server.port)) as s:
            host = f"127.0.0.1:{server.port}"
            head = (
                f"POST /api/control HTTP/1.1\r\nHost: {host}\r\nOrigin: http://{host}\r\n"
                f"Authorization: Bearer {'t' * 32}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
            )
            s.sendall(head.encode())
            s.settimeout(20)
            assert s.recv(100).startswith(b"HTTP/1.1 408"), "a slow body was waited for"
        # and a client that does send is served as ever
        request = urllib.request.Request(f"http://127.0.0.1:{server.port}/api/stats")
        request.add_header("Authorization", "Bearer " + "t" * 32)
        with urllib.request.urlopen(request, timeout=10) as r:
            assert r.status == 200 and json.loads(r.read())["frames"] == 0
    finally:
        server.stop()


@pytest.mark.integration
def test_a_token_from_a_file_and_no_live_view(tmp_path):
    """As deployed (deploy/cluster.toml): the token 'gazeflow keys' made, the same at every start, and no live
    view, so no stage before the panel passes the frames' pixels on."""
    token = tmp_path / "panel.token"
    token.write_text("A" * 20 + "-_0123456789\n")
    token.chmod(0o600)
    cfg = tmp_path / "gazeflow.toml"
    cfg.write_text(f'[panel]\ntoken_file = "{token}"\nview_fps = 0\n')
    port = free_port()
    proc = start_run(
        "--config", str(cfg), "--input", "demo", "--loop", "--pointer", "null", "--panel", str(port),
        "--log-interval", "0",
    )  # fmt: skip
    try:
        panel = Panel(proc, port)
        assert panel.token == token.read_text().strip()
        wait_for(lambda: panel.request("/api/stats")[1].get("frames", 0) > 5, "frames at the panel")
        status, stats = panel.request("/api/stats")
        assert status == 200 and stats["view_interval_ms"] == 0
        assert panel.request("/api/frame.jpg")[0] == 204  # asked for, but nothing to show
        assert panel.request("/api/stats", token="B" * 32)[0] == 401
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM and "Traceback" not in err, err[-1500:]


def test_save_keeps_the_config_files_other_keys_comments_mode_and_link(tmp_path):
    real = tmp_path / "dotfiles" / "gazeflow.toml"
    real.parent.mkdir()
    real.write_text('# mine\ninput = "cam:1"\n\n[pointer]\nclick = "dwell"  # I click by dwelling\n')
    real.chmod(0o600)
    path = tmp_path / "config.toml"
    path.symlink_to(real)
    save_settings({"pointer.dwell_ms": 800.0, "pointer.click": "blink", "detect_every": 5}, path)
    text = real.read_text()
    assert "# mine" in text and 'input = "cam:1"' in text and "# I click by dwelling" in text
    assert tomllib.loads(text)["detect_every"] == 5  # a top-level key stays top-level, before the tables
    assert 'click = "blink"' in text and "dwell_ms = 800.0" in text
    assert path.is_symlink() and real.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in real.parent.iterdir()) == ["gazeflow.toml"]  # no temporary file left
    broken = tmp_path / "broken.toml"
    for text in ("[pointer\n", "pointer = 1\n"):
        broken.write_text(text)
        with pytest.raises(GazeflowError, match=r"broken\.toml"):
            save_settings({"pointer.dwell_ms": 800.0}, broken)


class Panel:
    """A running pipeline's panel, as a browser or Prometheus reaches it."""

    def __init__(self, proc: subprocess.Popen[str], port: int) -> None:
        self.proc, self.port = proc, port
        self.base = f"http://127.0.0.1:{port}"
        self.run_dir = run_dir_of(proc)
        wait_for(lambda: _read(self.run_dir / "panel.token"), "the panel's token")
        self.token = _read(self.run_dir / "panel.token").strip()

    def request(self, path: str, body: dict | None = None, token: str | None = None, headers: dict | None = None):
        """(status, parsed JSON or bytes)."""
        h = {"Authorization": f"Bearer {self.token if token is None else token}"}
        if body is not None:
            h |= {"Content-Type": "application/json", "Origin": self.base}
        h |= headers or {}
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, headers=h, method="POST" if data else "GET")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                raw, status, kind = r.read(), r.status, r.headers.get("Content-Type", "")
        except urllib.error.HTTPError as e:
            raw, status, kind = e.read(), e.code, e.headers.get("Content-Type", "")
        return status, json.loads(raw) if "json" in kind else raw


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


@pytest.fixture
def panel(tmp_path):
    port = free_port()
    results = tmp_path / "r.jsonl"
    proc = start_run(
        "--input", "demo", "--loop", "--pointer", "null", "--panel", str(port), "--results", str(results),
        "--log-interval", "0",
    )  # fmt: skip
    p = Panel(proc, port)
    p.results = results
    yield p
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)


@pytest.mark.integration
def test_the_panel_shows_the_run_and_its_controls_act_through_the_ctl_channel(panel):
    # the door: no token, a wrong one, another Host, a change without the page's Origin, a GET that changes
    assert panel.request("/api/stats", token="")[0] == 401
    assert panel.request("/api/stats", token="wrong")[0] == 401
    assert panel.request("/api/stats", headers={"Host": f"evil.example:{panel.port}"})[0] == 421
    assert panel.request("/api/control", {"command": "pause"}, headers={"Origin": "http://evil.example"})[0] == 403
    assert panel.request("/api/control")[0] == 405
    assert panel.request("/api/control", {"command": "rm -rf"})[0] == 400
    # what a hostile local client tried: a token that is not ASCII, an unknown charset, a number JSON cannot
    # carry on, infinities, a true for a number, a body that is not an object: 4xx with a reason, never a 500
    assert panel.request("/api/stats", token="\u00ff\u00fe")[0] == 401
    assert panel.request("/api/stats", headers={"Authorization": panel.token})[0] == 401  # no "Bearer "
    odd = {"Content-Type": "application/json; charset=rot13"}
    assert panel.request("/api/control", {"command": "pause"}, headers=odd)[0] == 400
    for value in (2**70, 1e400, True, [1], {"a": 1}):
        status, answer = panel.request("/api/set", {"key": "pointer.dwell_ms", "value": value})
        assert status == 400 and not answer["ok"] and answer["error"], (value, answer)
    assert panel.request("/api/set", {"key": "pointer.dwell_ms", "value": "inf"})[0] == 400
    missing = panel.request("/nowhere")
    assert missing[0] == 404 and not missing[1]["ok"]
    # the figures
    wait_for(lambda: panel.request("/api/stats")[1]["frames"] > 30, "frames in the panel's figures")
    status, stats = panel.request("/api/stats")
    assert status == 200 and {"face_detection", "gaze", "pointer"} <= set(stats["stages"])
    assert stats["e2e_ms"]["p50"] > 0 and stats["pointer"]["state"] == "running"
    assert stats["pointer"]["settings"]["pointer.dwell_ms"] == 1000.0

    def processes() -> dict[str, dict]:
        return {p["name"]: p for p in panel.request("/api/stats")[1]["pointer"].get("processes", [])}

    def flowing() -> bool:
        found = processes()
        return len(found) >= 3 and all(p["frames_out"] > 0 for name, p in found.items() if name != "panel")

    wait_for(flowing, "run-all's health of each process")
    health = processes()
    assert "panel" in health and all(
        p["state"] == "up" and p["restarts"] == p["malformed"] == 0 for p in health.values()
    ), health
    assert set(panel.request("/api/stats")[1]["processes"]) <= set(health)  # CPU and memory for the same ones
    # no page has asked for the live view: not one frame went to the panel, its figures are the pointer's
    assert health["panel"]["frames_in"] == 0 and stats["frames"] > 30
    # the live view: asked for, then served; from then on frames reach the panel
    wait_for(lambda: panel.request("/api/frame.jpg")[0] == 200, "a live frame")
    wait_for(lambda: processes()["panel"]["frames_in"] > 0, "frames for the live view in the panel's health")
    image = cv2.imdecode(np.frombuffer(panel.request("/api/frame.jpg")[1], np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape[1] == 800
    # pause: the results say so; a setting: the pointer says so; a bad value: refused with the reason
    assert panel.request("/api/control", {"command": "pause"})[1]["ok"]
    wait_for(lambda: any(r["paused"] for r in read_results(panel.results)[-5:]), "results that say paused")
    answer = panel.request("/api/set", {"key": "pointer.dwell_ms", "value": 800})[1]
    assert answer["ok"] and answer["state"] == "pointer.dwell_ms = 800.0"
    wait_for(lambda: panel.request("/api/stats")[1]["pointer"]["settings"]["pointer.dwell_ms"] == 800.0, "the dwell")
    refused = panel.request("/api/set", {"key": "pointer.dwell_ms", "value": -1})[1]
    assert not refused["ok"] and "greater than 0" in refused["error"]
    assert panel.request("/api/set", {"key": "pointer.mode", "value": "head"})[1]["ok"]
    wait_for(lambda: panel.request("/api/stats")[1]["pointer"]["mode"] == "head", "the pointer in head mode")
    assert not panel.request("/api/set", {"key": "pointer.monitor", "value": 1})[1]["ok"]  # not while running
    assert panel.request("/api/control", {"command": "resume"})[1]["state"] == "running"
    # gazeflow panel finds the address; Ctrl-C's twin ends the run and leaves no token behind
    found = gazeflow("panel", "--run-dir", str(panel.run_dir))
    assert found.stdout.strip() == f"http://127.0.0.1:{panel.port}/?token={panel.token}"
    panel.proc.send_signal(signal.SIGTERM)
    assert panel.proc.wait(60) == 143 and not panel.run_dir.exists()  # stopped by the signal, cleaned up


@pytest.mark.integration
@pytest.mark.skipif(not shutil.which("prometheus"), reason="Debian's prometheus is not installed")
def test_a_real_prometheus_scrapes_the_panel_and_its_query_returns_the_fps(panel, tmp_path):
    token = tmp_path / "token"
    token.write_text(panel.token)
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s}\nscrape_configs:\n  - job_name: gazeflow\n"
        f"    authorization: {{credentials_file: {token}}}\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{panel.port}']}}]\n"
    )
    web = free_port()
    prom = subprocess.Popen(
        ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{web}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:

        def fps() -> float:
            url = f"http://127.0.0.1:{web}/api/v1/query?query=gazeflow_fps"
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    result = json.loads(r.read())["data"]["result"]
            except (OSError, ValueError, KeyError):
                return 0.0
            return float(result[0]["value"][1]) if result else 0.0

        wait_for(lambda: fps() > 5, "Prometheus's query of gazeflow_fps")
    finally:
        prom.terminate()
        prom.wait(30)


@pytest.mark.integration
@pytest.mark.skipif(not shutil.which("chromedriver"), reason="Debian's chromium-driver is not installed")
def test_the_page_in_a_real_browser_shows_live_figures_and_its_pause_button_pauses(panel, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1000"):
        options.add_argument(arg)
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    browser = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
    try:
        browser.get(f"{panel.base}/?token=wrong")
        assert "a token is needed" in browser.page_source
        browser.get(f"{panel.base}/?token={panel.token}")
        assert browser.current_url == f"{panel.base}/"  # the token left the address bar for a cookie

        def shown(selector: str) -> str:
            return browser.find_element(By.CSS_SELECTOR, selector).text

        wait_for(lambda: "fps" in shown("#summary") and shown("#stages tbody"), "live figures on the page")
        wait_for(
            lambda: browser.execute_script("return document.querySelector('#view').naturalWidth") == 800,
            "the live view on the page",
        )
        browser.find_element(By.CSS_SELECTOR, "button[data-command=pause]").click()
        wait_for(lambda: shown("#state").startswith("paused"), "the page saying paused")
        wait_for(lambda: any(r["paused"] for r in read_results(panel.results)[-5:]), "results that say paused")
        dwell = browser.find_element(By.NAME, "pointer.dwell_ms")
        dwell.clear()
        dwell.send_keys("750")
        browser.find_element(By.CSS_SELECTOR, "#settings button[type=submit]").click()
        wait_for(lambda: "pointer.dwell_ms = 750.0" in shown("#message"), "the dwell change confirmed")
        time.sleep(1.5)  # one more refresh of the charts before the picture (not a wait for an event)
        browser.save_screenshot(str(tmp_path / "panel.png"))
        shot = cv2.imread(str(tmp_path / "panel.png"))
        assert shot is not None and shot.std() > 10  # a page, not a blank
    finally:
        browser.quit()


@pytest.mark.integration
def test_calibrate_from_the_panel_shows_the_targets_saves_the_profile_and_uses_it(tmp_path, config_home):
    """Under Xvfb, with the pointer on that display: the panel's Calibrate shows each target on the pointer's
    monitor (a screenshot finds the red dot), pauses the pointer meanwhile, then saves the profile and the run
    uses it at once; with the null pointer it is refused, saying why."""
    server, display = start_xvfb("1280x720x24")
    config = tmp_path / "fast.toml"
    config.write_text("[calibration]\npoints = 5\nchecks = 1\ntarget_s = 1.0\nsettle_s = 0.3\n")
    port = free_port()
    proc = start_run(
        "--config", str(config), "--input", "demo", "--loop", "--pointer", "pyautogui", "--panel", str(port),
        "--log-interval", "0", env={"DISPLAY": display},
    )  # fmt: skip
    try:
        panel = Panel(proc, port)
        answer = panel.request("/api/control", {"command": "calibrate"})[1]
        assert answer["ok"] and answer["state"] == "calibrating: target 1 of 6", answer
        shot = tmp_path / "shot.png"

        def red_on_screen() -> int:
            subprocess.run(["import", "-display", display, "-window", "root", str(shot)], check=True, timeout=30)
            image = cv2.imread(str(shot))
            return int(((image[:, :, 2] > 200) & (image[:, :, 1] < 80) & (image[:, :, 0] < 80)).sum())

        wait_for(lambda: red_on_screen() > 10, "a target on the screen", 30)
        assert panel.request("/api/stats")[1]["pointer"]["state"].startswith("paused (calibrating")
        again = panel.request("/api/control", {"command": "calibrate"})[1]
        assert not again["ok"] and "already calibrating" in again["error"]

        def ended() -> str:
            return panel.request("/api/stats")[1]["pointer"].get("calibration", "")

        wait_for(lambda: ended().startswith(("done", "calibration failed")), "the calibration's end", 120)
        saved = config_home / "gazeflow" / "profiles" / "default.json"  # none yet: the run was uncalibrated
        if ended().startswith("done"):
            data = json.loads(saved.read_text())
            assert data["points"] == 5 and {"held_out_target", "same_target"} <= set(data["errors"])
            assert str(saved) in panel.request("/api/stats")[1]["pointer"]["profile"]
        else:  # the demo's person never looks at our targets: a fit may be refused, and says why
            assert "no profile written" in ended() and not saved.exists()
        assert panel.request("/api/stats")[1]["pointer"]["state"] == "running"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
        server.terminate()


@pytest.mark.integration
def test_calibrate_with_no_display_for_the_pointer_is_refused_saying_why(panel):
    answer = panel.request("/api/control", {"command": "calibrate"})[1]
    assert not answer["ok"] and "shows targets on the display the pointer moves" in answer["error"]
    refused = gazeflow("ctl", "calibrate", "--run-dir", str(panel.run_dir))
    assert refused.returncode == 2 and "shows targets on the display" in refused.stderr
