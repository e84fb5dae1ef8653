"""Pointer: the sink. Act on the gaze: move the pointer, click, pause; answer 'gazeflow ctl'. The results
file, the metrics and the summary line are the runtime's sink end (shared/sink.py)."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import msgspec
from pydantic import ValidationError

from gazeflow.shared import channels, registry
from gazeflow.shared.errors import GazeflowError
from gazeflow.shared.messages import Message
from gazeflow.shared.sink import frame_time
from gazeflow.shared.stage import Outputs, Processor

from . import actions, profile, screen
from .adapt import Drift
from .backends import make_backend
from .calibrating import Cancelled, LiveCalibration
from .control import ControlServer, private
from .controller import PointerController
from .filters import make_filter
from .selection import DEFAULT_ERROR_PX, Rect, Safety, Scroll, Selector, check_palette, on_monitor

if TYPE_CHECKING:
    from gazeflow.shared.config import Config

log = logging.getLogger("gazeflow.pointer")


def preflight(cfg: Config) -> None:
    """Before anything starts: pyautogui without a display, another run driving this display's pointer, a
    missing, damaged or foreign profile, a monitor that is not there, a palette off it."""
    if cfg.pointer.backend == "pyautogui" and not screen.has_display():
        raise GazeflowError("--pointer pyautogui needs a display (DISPLAY is not set): use --pointer null")
    if cfg.pointer.backend != "null" and not cfg.pointer.share and screen.has_display():
        screen.PointerClaim("(checking)").release()  # another run that drives this display's pointer: refused
    found = screen.monitors() if cfg.pointer.backend != "null" else []
    monitor = screen.choose(cfg.pointer, found)
    correction, _ = profile.for_run(cfg.pointer.profile, monitor)
    if (
        correction is not None
        and correction.needs_iris
        and not any("iris" in registry.get(n).writes for n in cfg.chain)
    ):
        raise GazeflowError(
            f"profile {cfg.pointer.profile!r} was fitted with the iris features: run with --iris "
            "(or calibrate again without it)"
        )
    check_palette(cfg.pointer, monitor)


FILTER_KEYS = ("filter", "min_cutoff", "beta", "d_cutoff", "smoothing")
# the [pointer] settings that may change while running: read on every frame by the parts that hold them
SELECT_KEYS = ("select", "zoom", "select_dwell_ms")
LIVE = (
    "click",
    "dwell_ms",
    "dwell_radius_px",
    "blink_min_ms",
    "blink_max_ms",
    "dead_zone_px",
    "mode",
    *SELECT_KEYS,
    *FILTER_KEYS,
)


class Pointer(Processor):
    def __init__(self, cfg: Config) -> None:
        super().__init__(cfg)
        p = cfg.pointer
        self.backend = make_backend(p)
        self.claim = screen.PointerClaim(cfg.run_dir) if self.backend.name != "null" and not p.share else None
        monitor = screen.choose(p, screen.monitors() if self.backend.name != "null" else [])
        correction, self.profile = profile.for_run(p.profile, monitor)
        self.camera = cfg.input.startswith("cam:")
        self.started_cfg = cfg  # what the other stages set up from (a setting they take live is checked on it)
        self.controller = PointerController(cfg, monitor, correction)
        self.max_age_s = p.max_age_ms / 1e3
        self.stale = 0  # live frames whose gaze was too old to move the pointer
        self.eyes, self.dwell, self.pause = actions.Eyes(p), actions.Dwell(p), actions.Pause(p)
        self.clicks = {"left": 0, "right": 0}
        self.monitor = monitor
        data = profile.load(p.profile) if p.profile and profile.path_of(p.profile).exists() else None
        error = p.magnifier_error_px or profile.error_px(data) or DEFAULT_ERROR_PX
        self.selector = Selector(p, monitor, error)
        self.controller.placement.saccade_px = p.saccade_px or 2 * error
        self.safety = Safety(p)
        adapted = (data or {}).get("adapted") or {}
        self.drift = Drift(p.adapt_window, tuple(adapted.get("offset_px", (0.0, 0.0))))
        self.controller.drift = self.drift.offset
        self.fps = 30.0
        self.windows = None
        if self.backend.name != "null" and (p.select != "none" or p.palette):
            from .windows import Windows  # Tk: only where there is a display and something to show

            self.windows = Windows(p, self.selector)
        self.hotkey = actions.Hotkey(p.hotkey if self.backend.name != "null" else "")
        self.control = ControlServer(cfg) if private(cfg.run_dir) else None
        self.health = ""  # run-all's latest health line (its health channel)
        self.processes: list[channels.ProcessHealth] = []  # and its processes, one by one (the panel)
        self.calibration: LiveCalibration | None = None  # one inside the run (the panel, 'gazeflow ctl calibrate')
        self.calibrated = ""  # how the last one ended
        log.info(
            "pointer backend %s on %s, %s filter, clicks %s; %s",
            self.backend.name,
            monitor.describe(),
            p.filter,
            p.click,
            self.profile,
        )

    def finish(self, msg: Message, outputs: Outputs) -> Message:
        if msg.kind == "eos":
            self._close()
            return msg
        h = msg.header
        self._hotkey()  # a pause asked for before this frame applies to it (ctl's: as soon as it wakes the loop)
        t = frame_time(h, self.camera)
        self.fps = float((h.get("source") or {}).get("fps") or 30.0)
        if self.calibration is not None:
            self._calibrating(h, t)
        gaze = h["gaze"]
        stale = gaze is not None and self.cfg.live and time.time() - h["t_capture"] > self.max_age_s
        if stale:
            self.stale += 1  # after a stall upstream: where the user looked then is not where they look now
            gaze = None
        blinking, click = self._eyes_and_pause(h, t)
        self.safety.see(h, t, stale, self.cfg.detect_every)
        paused = self.pause.paused
        # the pointer stays put while the magnifier is open, but for the head steering it (head, hybrid)
        holding = self.selector.zoom is not None and self.cfg.pointer.mode == "gaze"
        usable = gaze is not None and not blinking
        decision = self.controller.update(h, t, act=not paused and click is None and not holding) if usable else None
        point = (decision["x"], decision["y"]) if decision is not None and not paused else None
        event = self._select(decision, point, click, t)
        h["pointer"] = self._act(decision, event, t)
        h["paused"] = paused
        if self.windows is not None and self.selector.zoom is not None and decision is not None:
            self.windows.progress(decision.get("dwell", 0.0))
        return msg

    def _select(
        self, decision: dict[str, Any] | None, point: tuple[int, int] | None, click: str | None, t: float
    ) -> dict[str, Any] | None:
        """What this frame's dwell, blink click or gaze does to the selection: an event, or None."""
        sel = self.selector
        fire = False
        if self.cfg.pointer.click == "dwell":
            raw = decision.get("raw") if decision is not None else None
            ms = self.cfg.pointer.select_dwell_ms if sel.zoom is not None else 0.0  # inside the magnifier
            progress, fire = self.dwell.update(point, t, raw, ms)
            if decision is not None:
                decision["dwell"] = round(progress, 2)
        if sel.scroll is not None:
            return self._scroll(point, t)
        closed = sel.watch(point, t) if point is not None or sel.zoom is not None else None
        if closed is not None or self._escaped():
            self.dwell.reset()
            return closed or sel.close("Esc")
        here = self.controller.last_move or point  # where the pointer is: a click never moves it
        if here is None or not (fire or click) or self.pause.paused:
            return None
        looked = self._looked(fire, point or here)
        self.dwell.reset()
        if sel.zoom is not None:
            return sel.choose(looked)
        if click == "right" and self.cfg.pointer.select != "zoom":  # a wink: a right click where the pointer is
            return {"event": "act", "at": list(here), "action": "right", "do": "right"}
        return sel.trigger(looked if self.cfg.pointer.select == "zoom" else here, t)

    def _looked(self, fire: bool, pointer: tuple[int, int]) -> tuple[float, float]:
        """Where the user chose: in gaze mode where they looked during the dwell (its raw points averaged),
        on the monitor; in head and hybrid modes where they steered the pointer."""
        where = self.dwell.where if fire and self.cfg.pointer.mode == "gaze" else None
        return pointer if where is None else on_monitor(self.monitor, where)

    def _scroll(self, point: tuple[int, int] | None, t: float) -> dict[str, Any] | None:
        sel = self.selector
        assert sel.scroll is not None
        lines = sel.scroll.step(point or (-1, -1), t, 1 / max(self.fps, 1.0), self.cfg.pointer.scroll_px / 40)
        if lines is None:
            sel.scroll = None
            return {"event": "scrolled"}
        if lines:
            self.backend.scroll(lines)
        return None

    def _act(self, decision: dict[str, Any] | None, event: dict[str, Any] | None, t: float) -> dict[str, Any] | None:
        """Move the pointer, or carry out the selection's event (show or hide the magnifier, click, press,
        release, start scrolling), a click only when it is safe."""
        if event is None:
            if decision is not None and decision["moved"]:
                self.backend.move(decision["x"], decision["y"])
                self.pause.moved_to((decision["x"], decision["y"]))
            return self._annotated(decision)
        decision = dict(decision or {}, moved=False, select=event)
        if self.windows is not None:
            self.windows.show(self.selector.zoom)
        if event["event"] == "act":
            self._do(event, decision, t)
        elif event.get("do") == "release":  # a drag abandoned for another action
            self.backend.do("release")
        elif (last := self.controller.last_move) is not None:
            decision["x"], decision["y"] = last
        return self._annotated(decision)

    def _do(self, event: dict[str, Any], decision: dict[str, Any], t: float) -> None:
        if not self.safety.allows(t):
            event["blocked"] = True  # too soon after trouble or after the last click
            return
        x, y = event["at"]
        decision["x"], decision["y"] = x, y
        if (x, y) != self.controller.last_move:
            self.backend.move(x, y)
            self.controller.last_move = (x, y)
            self.pause.moved_to((x, y))
        if event["do"] == "scroll":
            m = self.monitor
            self.selector.scroll = Scroll(Rect(*(self.backend.window_at(x, y) or (m.x, m.y, m.width, m.height))))
        else:
            self.backend.do(event["do"])
        decision["click"] = event["action"]
        self.clicks[event["action"]] = self.clicks.get(event["action"], 0) + 1
        if "from" in event and self.cfg.pointer.adapt and self.drift.add(tuple(event["from"]), (x, y)):
            self.controller.drift = self.drift.offset
            if self.camera and self.cfg.pointer.profile and profile.path_of(self.cfg.pointer.profile).exists():
                profile.adapt(self.cfg.pointer.profile, self.drift.offset, len(self.drift.samples), self.drift.error_px)

    def _annotated(self, decision: dict[str, Any] | None) -> dict[str, Any] | None:
        """The selection's state on the decision: the chosen action, the live error estimate."""
        if decision is None:
            return None
        if self.cfg.pointer.palette or self.cfg.pointer.select != "none":
            decision["action"] = self.selector.action
        error = self.drift.error_px
        if error is not None:
            decision["error_px"] = error
            decision["error_deg"] = round(self.controller.degrees(error), 2)
        return decision

    def _escaped(self) -> bool:
        return self.windows is not None and self.windows.escaped()

    def _eyes_and_pause(self, h: dict[str, Any], t: float) -> tuple[bool, str | None]:
        """The eyes' gestures and the pauses: whether the eyes are in a blink (the pointer holds still), and
        the click a blink or a wink made."""
        state, event = self.eyes.update(h.get("eyes"), t)
        if event == "toggle":
            self.pause.set_user(not self.pause.user, f"eyes closed {self.cfg.pointer.pause_closed_s:g} s")
        self.pause.face_seen(h["face"] is not None, t)
        if self.cfg.pointer.auto_pause_mouse:  # an X round trip per frame: only when it is used
            self.pause.mouse_check(self.backend.position(), self.controller.last_move)
        self.pause.frames += self.pause.paused
        # while both eyes are closed the pointer holds still (a blink); eyes "closed" for longer than a
        # deliberate blink while a gaze is still found are lids lowered to look down: the gaze counts again
        since = self.eyes.closed_since
        blinking = state == "closed" and since is not None and (t - since) * 1000 <= self.cfg.pointer.blink_max_ms
        click = event if event in ("left", "right") and not self.pause.paused else None
        return blinking, click

    def wakers(self) -> list[Any]:
        """ctl's sockets and run-all's health channel wake the stage's loop when something comes."""
        if self.control is None:
            return []
        return [*(end.sock for end in self.control.ends), self.control.health_end.sock]

    def woken(self) -> int:
        before = self.control.malformed if self.control is not None else 0
        self._requests()
        return self.control.malformed - before if self.control is not None else 0

    def _hotkey(self) -> None:
        if self.hotkey.take():
            self.pause.set_user(not self.pause.user, "hotkey")

    def _requests(self) -> None:
        """ctl requests and run-all's health line, as they come."""
        if self.control is None:
            return
        newest = self.control.health()
        if newest is not None:
            self.health, self.processes = newest.line, newest.processes
        while (request := self.control.take()) is not None:
            self.control.reply(self._answer(request))

    def _answer(self, request: channels.Request) -> channels.Reply:
        command = request.command
        if command in ("pause", "resume", "toggle"):
            want = {"pause": True, "resume": False}.get(command, not self.pause.user)
            self.pause.set_user(want, "gazeflow ctl")
            return channels.Reply(ok=True, state="paused" if self.pause.paused else "running")
        if command == "recenter":
            shift = self.controller.recenter()
            if shift is None:
                return channels.Reply(ok=False, error="no gaze seen yet to recentre on")
            return channels.Reply(ok=True, state=f"recentred by {shift}")
        if command == "set":
            return self._set(request.key, request.value)
        if command == "calibrate":
            return self._calibrate()
        if command == "figures":  # the panel's, once a second: the metrics this stage keeps anyway
            return self._figures(request.value)
        return channels.Reply(ok=True, status=self.status())

    def _figures(self, since: Any) -> channels.Reply:
        if self.sink_end is None:
            return channels.Reply(ok=False, error="no metrics here")
        since = since if isinstance(since, int) and not isinstance(since, bool) and since >= 0 else 0
        kept = {**self.sink_end.metrics.figures(since), "paused": self.pause.paused}
        return channels.Reply(ok=True, figures=msgspec.convert(kept, channels.Figures))

    def _calibrate(self) -> channels.Reply:
        """Start a calibration inside the run: its targets on this pointer's monitor, this stage's frames."""
        if self.calibration is not None:
            return channels.Reply(ok=False, error=f"already {self.calibration.state}")
        if self.backend.name == "null" or not screen.has_display():
            return channels.Reply(
                ok=False, error="calibrating shows targets on the display the pointer moves: this one has none"
            )
        try:
            self.calibration = LiveCalibration(self.cfg, self.monitor, self.cfg.pointer.profile)
        except Exception as exc:  # Tk cannot open its window: say why, keep running
            return channels.Reply(ok=False, error=f"cannot show the targets: {exc}")
        self.pause.calibrating = True
        log.info("pointer: %s", self.calibration.state)
        return channels.Reply(ok=True, state=self.calibration.state)

    def _calibrating(self, h: dict[str, Any], t: float) -> None:
        """This frame for the calibration in progress; at its end, its fit is used at once."""
        assert self.calibration is not None
        try:
            if not self.calibration.step(h, t):
                return
            correction, self.profile = self.calibration.finish()
            self.controller.mapper.correction = correction
            self.calibrated = f"done: {self.profile}"
        except Cancelled:
            self.calibration.close()
            self.calibrated = "cancelled: nothing saved"
        except GazeflowError as exc:
            self.calibrated = str(exc)
        log.info("pointer: calibration %s", self.calibrated)
        self.calibration = None
        self.pause.calibrating = False

    def _set(self, key: list[str], value: Any) -> channels.Reply:
        """One of LIVE's settings changed at once (the panel, 'gazeflow ctl set'): validated as the config
        file's value would be, then handed to the parts that read it; another stage's (its manifest's
        ``tunable``) goes to it on the tune channel."""
        name = ".".join(key)
        others = registry.tunable(self.cfg.chain)
        if name in others:
            return self._tune(name, others[name], value)
        if len(key) != 2 or key[0] != "pointer" or key[1] not in LIVE:
            known = ", ".join([*(f"pointer.{k}" for k in LIVE), *others])
            return channels.Reply(ok=False, error=f"{name}: not one that can change while running ({known})")
        if refusal := _not_a_flag(name, value, getattr(self.cfg.pointer, key[1])):
            return refusal
        try:
            p = type(self.cfg.pointer).model_validate({**self.cfg.pointer.model_dump(), key[1]: value})
        except ValidationError as exc:
            return channels.Reply(ok=False, error=f"{name}: {exc.errors()[0]['msg']}")
        if key[1] in SELECT_KEYS and self.selector.zoom is not None:
            self.selector.close("its settings changed")  # a new magnifier opens with the new ones
        self.cfg = self.cfg.model_copy(update={"pointer": p})
        self.eyes.cfg = self.dwell.cfg = self.controller.cfg = self.selector.cfg = p
        self.controller.motion.cfg = self.controller.placement.cfg = p
        if key[1] in FILTER_KEYS:
            self.controller.filter = make_filter(p, fps=max(self.fps, 1.0))
        if key[1] == "mode":
            self.controller.placement.at = None  # head and hybrid start from where the gaze is
        if key[1] == "select" and p.select != "none" and self.windows is None and self.backend.name != "null":
            from .windows import Windows

            self.windows = Windows(p, self.selector)
        log.info("pointer: %s set to %r", name, getattr(p, key[1]))
        return channels.Reply(ok=True, state=f"{name} = {getattr(p, key[1])}")

    def _tune(self, name: str, stage: str, value: Any) -> channels.Reply:
        """A setting the stage ``stage`` takes while running: validated as the config file's would be, asked of
        the stage's own check (against the config the run started with), then sent to it."""
        if refusal := _not_a_flag(name, value, getattr(self.cfg, name)):
            return refusal
        try:
            cfg = type(self.cfg).__pydantic_validator__.validate_assignment(self.cfg.model_copy(), name, value)
        except ValidationError as exc:
            return channels.Reply(ok=False, error=f"{name}: {exc.errors()[0]['msg']}")
        value = getattr(cfg, name)
        check = registry.get(stage).tune_check
        why = registry.load_ref(check)(self.started_cfg, name, value) if check else ""
        if why:
            return channels.Reply(ok=False, error=f"{name}: {why}")
        if self.control is not None:
            self.control.tune(name, value)
        self.cfg = cfg  # what the pointer's own rules read of it (a detection off the schedule: trouble)
        log.info("pointer: %s set to %r (sent to %s)", name, value, stage)
        return channels.Reply(ok=True, state=f"{name} = {value}")

    def status(self) -> dict[str, Any]:
        end = self.sink_end
        figures = end.figures() if end is not None else "no frame yet"
        health = self.health or (end.health() if end is not None else "")
        return {
            "state": f"paused ({self.pause.reason()})" if self.pause.paused else "running",
            "figures": figures,
            "profile": self.profile,
            "clicks": self.clicks,
            "click mode": self.cfg.pointer.click,
            "moves": self.controller.moves,
            "mode": self.cfg.pointer.mode,
            "select": self.cfg.pointer.select
            + (", magnifier open" if self.selector.zoom is not None else "")
            + (f", palette on the {self.cfg.pointer.palette_side}" if self.cfg.pointer.palette else ""),
            "action": self.selector.action,
            "live error": self._error_text(),
            "health": health,
            "calibration": self.calibration.state if self.calibration is not None else self.calibrated or "none yet",
            "settings": {f"pointer.{key}": getattr(self.cfg.pointer, key) for key in LIVE}
            | {key: getattr(self.cfg, key) for key in registry.tunable(self.cfg.chain)},
            "processes": [msgspec.structs.asdict(p) for p in self.processes],
        }

    def _error_text(self) -> str:
        error = self.drift.error_px
        if error is None:
            return f"no selection yet (the profile's: {self.selector.error_px:.0f} px)"
        deg = self.controller.degrees(error)
        dx, dy = self.drift.offset
        n = len(self.drift.samples)
        return f"{error:.0f} px = {deg:.1f} deg over {n} selections (drift corrected by {dx:+.0f}, {dy:+.0f} px)"

    def tick(self) -> None:
        self._hotkey()  # also between frames, when none comes
        if self.windows is not None:
            self.windows.pump()
        if self.calibration is not None:
            self.calibration.window.pump()

    def live(self) -> str:
        """The pointer's part of the live line."""
        last = self.controller.last_move
        where = f"pointer {self.backend.name} ({last[0]}, {last[1]})" if last else "pointer still"
        if self.pause.paused:
            where += f", PAUSED ({self.pause.reason()})"
        if any(self.clicks.values()):
            where += ", clicks " + " ".join(f"{n} {kind}" for kind, n in self.clicks.items() if n)
        if self.cfg.pointer.select != "none" or self.cfg.pointer.palette:
            where += f", action {self.selector.action}"
        return f"{where}, {self.controller.moves} moves"

    def report(self) -> dict[str, Any]:
        """The pointer's part of the metrics report."""
        monitor = self.controller.monitor
        return {
            "run": {"profile": self.profile, "screen": [monitor.width, monitor.height]},
            "pointer_moves": self.controller.moves,
            "pointer_stale": self.stale,
            "pointer_backend": self.backend.name,
            "pointer_clicks": dict(self.clicks),
            "pointer_paused_frames": self.pause.frames,
            "eye_closures": self.eyes.closures,
            "selection": {
                **self.selector.counts,
                "blocked_clicks": self.safety.blocked,
                "error_px": self.drift.error_px,
                "correction_px": list(self.drift.offset),
            },
        }

    def _close(self) -> None:
        self.hotkey.stop()
        if self.calibration is not None:  # the stream ended mid-calibration: nothing is saved
            self.calibration.close()
            self.calibration = None
        if self.windows is not None:
            self.windows.close()
            self.windows = None
        if self.claim is not None:
            self.claim.release()
        if self.control is not None:
            self.control.close()
            self.control = None


def _not_a_flag(name: str, value: Any, current: Any) -> channels.Reply | None:
    """true/false for a setting that is not one (pydantic would take it as 1 or 0): refused, else None."""
    if isinstance(value, bool) and not isinstance(current, bool):
        return channels.Reply(ok=False, error=f"{name}: {value} is not a {type(current).__name__}")
    return None
