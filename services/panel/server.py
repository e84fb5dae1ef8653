"""The panel's web server (aiohttp, in a thread of the panel stage with its own event loop).

Secure by default: it listens on 127.0.0.1 unless told otherwise; every request needs the run's token (a
random one, in a 0600 file of the run directory): as ``Authorization: Bearer`` (Prometheus), or as the
cookie that opening ``/?token=...`` once sets (HttpOnly, SameSite=Strict). The Host header must name the
panel's own address (no DNS rebinding); a request that changes something is a POST whose Origin is the
panel's own, with a JSON body. Controls go through the same ctl channel as ``gazeflow ctl``.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import math
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

import cv2
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gazeflow.shared.errors import GazeflowError

from .page import PAGE, SCRIPT, STYLE
from .settings import is_loopback
from .state import PanelState

log = logging.getLogger("gazeflow.panel")
COOKIE = "gazeflow_panel"
VIEW_WIDTH = 800
FIGURES_S = 1.0  # the pointer's figures are taken this often (the charts' one point a second)
IDLE_S = 15.0  # a connection must send a whole request within this long of opening (or of the last answer)
HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob:; frame-ancestors 'none'",
}
COMMANDS = ("pause", "resume", "toggle", "recenter", "calibrate")


def save_settings(settings: dict[str, Any], path: Path | None = None) -> Path:
    """Write "section.key" -> value into the user's config file (made if missing), keeping the rest: its
    comments, its mode, a symlink to it (the file it points to is the one updated). GazeflowError naming the
    problem when the file cannot be read or updated."""
    import tomlkit

    from gazeflow.shared.config import user_config_file

    target = (path or user_config_file()).resolve()
    try:
        doc = tomlkit.parse(target.read_text()) if target.exists() else tomlkit.document()
        for dotted, value in settings.items():
            if "." not in dotted:  # a top-level key (detect_every): tomlkit puts it before the tables
                doc[dotted] = value
                continue
            section, key = dotted.split(".", 1)
            if section not in doc:
                doc[section] = tomlkit.table()
            table = doc[section]
            if not isinstance(table, dict):
                raise GazeflowError(f"{target}: {section} is not a table")
            table[key] = value
        text = tomlkit.dumps(doc)
        target.parent.mkdir(parents=True, exist_ok=True)
        mode = target.stat().st_mode & 0o777 if target.exists() else 0o600
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)  # unpredictable, O_EXCL
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
            os.chmod(tmp, mode)
            os.replace(tmp, target)
        finally:
            Path(tmp).unlink(missing_ok=True)
    except GazeflowError:
        raise
    except (OSError, UnicodeError, ValueError, TypeError) as exc:  # tomlkit's parse errors are ValueErrors
        raise GazeflowError(f"cannot update {target}: {exc}") from None
    log.info("panel: settings saved to %s", target)
    return target


class _OneLine(logging.Filter):
    """aiohttp's own complaints about what clients send (bad HTTP, dropped connections): debug lines without a
    traceback, so that no client can fill the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info, record.exc_text = None, None
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger("gazeflow.panel").isEnabledFor(logging.DEBUG)


class PanelServer:
    def __init__(
        self,
        host: str,
        port: int,
        token: str,
        state: PanelState,
        control: Any,
        draw: Any,
        bind_all: bool,
        watch: Any,
        idle_s: float = IDLE_S,
    ) -> None:
        self.host, self.port, self.token = host, port, token
        self.state, self.control, self.draw, self.watch = state, control, draw, watch
        self.idle_s = idle_s
        self.bind_all = bind_all
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="panel-http", daemon=True)
        self.started = threading.Event()
        self.error = ""
        self.runner: web.AppRunner | None = None
        self.requests = 0

    # -- lifecycle --------------------------------------------------------------------------------------
    def start(self) -> None:
        self.thread.start()
        if not self.started.wait(15) or self.error:
            raise GazeflowError(f"panel: cannot listen on {self.host}:{self.port}: {self.error or 'no answer'}")

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application(middlewares=[self._guard], client_max_size=16 * 1024)
        app.router.add_get("/", self._page)
        app.router.add_get("/panel.js", self._script)
        app.router.add_get("/panel.css", self._style)
        app.router.add_get("/api/stats", self._stats)
        app.router.add_get("/api/frame.jpg", self._frame)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/favicon.ico", self._no_icon)
        app.router.add_post("/api/control", self._control)
        app.router.add_post("/api/set", self._set)
        app.router.add_post("/api/save", self._save)
        app.on_response_prepare.append(self._headers)
        for name in ("aiohttp.server", "aiohttp.web", "aiohttp.access"):
            logging.getLogger(name).addFilter(_OneLine())
        # a connection that has not sent a whole request within idle_s of opening it (or of the last answer) is
        # closed: aiohttp's keep-alive timer runs until a request is complete, so headers sent a byte at a
        # time do not hold it open (tests/test_panel.py)
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False, keepalive_timeout=self.idle_s)
        try:
            self.loop.run_until_complete(self.runner.setup())
            site = web.TCPSite(self.runner, self.host, self.port)
            self.loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        except OSError as exc:
            self.error = exc.strerror or str(exc)
            self.started.set()
            return
        self.started.set()
        poll = self.loop.create_task(self._figures())
        self.loop.run_forever()
        poll.cancel()
        self.loop.run_until_complete(self.runner.cleanup())
        self.loop.close()

    async def _figures(self) -> None:
        """The run's figures from the pointer, once a second, whether a page is open or not (/metrics)."""
        while True:
            try:
                figures = await self.loop.run_in_executor(None, self.control.figures, self.state.since)
                await self.loop.run_in_executor(None, self.state.update, figures)
            except Exception as exc:  # a bug of ours: said, and the next second tried again
                log.error("panel: the figures failed: %s: %s", type(exc).__name__, exc)
            await asyncio.sleep(FIGURES_S)

    def stop(self) -> None:
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    # -- the door ---------------------------------------------------------------------------------------
    def _hosts(self) -> set[str]:
        names = {self.host, "localhost", "127.0.0.1", "[::1]"} if is_loopback(self.host) else {self.host}
        return {f"{n}:{self.port}" for n in names}

    def _authorised(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        given = header.removeprefix("Bearer ") if header.startswith("Bearer ") else ""
        given = given or request.cookies.get(COOKIE, "")
        if not given and request.path == "/" and request.method == "GET":
            given = request.query.get("token", "")
        if not given or not given.isascii():
            return False
        return hmac.compare_digest(given.encode("ascii"), self.token.encode("ascii"))

    @web.middleware
    async def _guard(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests += 1
        if not self.bind_all and request.host not in self._hosts():
            return self._refuse(421, f"this panel answers to {' or '.join(sorted(self._hosts()))} only")
        if not self._authorised(request):
            return self._refuse(401, "a token is needed: open the address gazeflow printed at the start")
        if request.method == "POST":
            if request.headers.get("Origin") != f"http://{request.host}":
                return self._refuse(403, "a change must come from the panel's own page")
            if request.content_type != "application/json":
                return self._refuse(415, "a change is a JSON body")
        elif request.method not in ("GET", "HEAD"):
            return self._refuse(405, "GET or POST")
        try:
            return await handler(request)
        except web.HTTPException as exc:  # the router's 404, 405, 413, a bad body: JSON as every other refusal
            if exc.status < 400:
                raise
            return self._refuse(exc.status, exc.reason)
        except GazeflowError as exc:
            return self._refuse(409, str(exc))
        except Exception as exc:  # a bug of ours: one line in the log, a 500 without details to the client
            log.error("panel: %s %s failed: %s: %s", request.method, request.path, type(exc).__name__, exc)
            return self._refuse(500, "the panel failed on this request (its log says why)")

    @staticmethod
    async def _headers(request: web.Request, response: web.StreamResponse) -> None:
        response.headers.update(HEADERS)

    @staticmethod
    def _refuse(status: int, why: str) -> web.Response:
        return web.json_response({"ok": False, "error": why}, status=status, headers=HEADERS)

    @staticmethod
    def _text(text: str, kind: str) -> web.Response:
        return web.Response(text=text, content_type=kind)

    # -- what it serves ---------------------------------------------------------------------------------
    async def _page(self, request: web.Request) -> web.StreamResponse:
        if "token" in request.query:  # the printed address: keep the token as a cookie, drop it from the URL
            response = web.HTTPSeeOther("/")
            response.set_cookie(COOKIE, self.token, httponly=True, samesite="Strict", path="/")
            return response
        return self._text(PAGE, "text/html")

    async def _no_icon(self, request: web.Request) -> web.Response:
        return web.Response(status=204)  # none: a browser's console stays quiet

    async def _script(self, request: web.Request) -> web.Response:
        return self._text(SCRIPT, "text/javascript")

    async def _style(self, request: web.Request) -> web.Response:
        return self._text(STYLE, "text/css")

    async def _stats(self, request: web.Request) -> web.Response:
        stats = self.state.stats()
        stats["pointer"] = await self.loop.run_in_executor(None, self.control.status)
        stats["view_interval_ms"] = round(self.state.view_interval * 1000)
        return web.json_response(stats)

    async def _frame(self, request: web.Request) -> web.Response:
        if self.state.view_interval:
            self.watch.ask()  # frames come from the pointer only while a page asks
        frame, header = self.state.take_frame()
        if frame is None:
            return web.Response(status=204)
        jpeg = await self.loop.run_in_executor(None, self._jpeg, frame, header)
        return web.Response(body=jpeg, content_type="image/jpeg")

    def _jpeg(self, frame: Any, header: dict[str, Any]) -> bytes:
        image = self.draw(frame.copy(), header)
        h, w = image.shape[:2]
        if w > VIEW_WIDTH:
            image = cv2.resize(image, (VIEW_WIDTH, round(h * VIEW_WIDTH / w)), interpolation=cv2.INTER_AREA)
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 75])
        return data.tobytes() if ok else b""

    async def _metrics(self, request: web.Request) -> web.Response:
        status = await self.loop.run_in_executor(None, self.control.status)
        for process in status.get("processes") or []:  # run-all's counts, through the pointer's status
            if not isinstance(process, dict):
                continue
            name = str(process.get("name"))[:200]
            for key in ("restarts", "dropped", "lost", "malformed"):
                if isinstance(process.get(key), int):
                    getattr(self.state.prometheus, key).labels(name).set(process[key])
        body = generate_latest(self.state.prometheus.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _body(self, request: web.Request) -> dict[str, Any]:
        try:  # a body sent a byte at a time is not waited for (the request line and headers: idle_s)
            body = await asyncio.wait_for(request.json(), self.idle_s)
        except TimeoutError:
            raise web.HTTPRequestTimeout(reason="the body did not come in time") from None
        except (ValueError, LookupError, UnicodeError):  # not JSON, an unknown charset, bad bytes
            body = None
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(reason="the body must be a JSON object")
        return body

    def _answer(self, answer: dict[str, Any]) -> web.Response:
        """The pointer's reply: 200 when it did it, 400 with its reason when it refused."""
        shown = {k: v for k, v in answer.items() if v or k == "ok"}
        return web.json_response(shown, status=200 if answer.get("ok") else 400)

    async def _control(self, request: web.Request) -> web.Response:
        command = (await self._body(request)).get("command")
        if command not in COMMANDS:
            return self._refuse(400, f"command: one of {', '.join(COMMANDS)}")
        return self._answer(await self.loop.run_in_executor(None, self.control.send, command, None))

    async def _save(self, request: web.Request) -> web.Response:
        """The pointer's live settings as they are now, into the user's config file (its other keys and
        comments kept): the next run starts with them."""
        status = await self.loop.run_in_executor(None, self.control.status)
        settings = status.get("settings")
        if not isinstance(settings, dict) or not settings:
            return self._refuse(503, "the pointer did not say its settings")
        path = await self.loop.run_in_executor(None, save_settings, settings)
        return web.json_response({"ok": True, "state": f"saved to {path}"})

    async def _set(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        key, value = body.get("key"), body.get("value")
        if not isinstance(key, str) or len(key) > 80:  # its shape is ctl's to check (control.send)
            return self._refuse(400, 'expected {"key": "section.name" or "name", "value": ...}')
        finite = isinstance(value, bool | str) or (isinstance(value, int | float) and math.isfinite(value))
        if (
            not finite
            or (isinstance(value, int) and abs(value) > 2**53)
            or (isinstance(value, str) and len(value) > 200)
        ):
            return self._refuse(400, f"{key}: a value is a finite number, a word or true/false")
        return self._answer(await self.loop.run_in_executor(None, self.control.send, "set", (key, value)))
