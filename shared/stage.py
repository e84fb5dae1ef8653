"""The loop every stage after the source runs: receive, infer (async, several requests), send.

A stage's own code is a ``Processor``: ``prepare`` turns a message into model
inputs, ``finish`` turns model outputs back into the message. The runtime
around it is in parts, each doing one thing: the ``Inbox`` (receive, validate,
live drops, credits, frame order), the ``Engine`` (compile, stage inputs,
submit, collect), the ``Outbox`` (trace, slots, send) and ``Frames`` (where a
frame's pixels are). ``StageRuntime`` below only wires them. ``run_sync.py``
drives the same processors with one synchronous request at a time.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import zmq

from . import channels, registry, tracking
from .engine import Engine, Inputs, Item, Outputs
from .framering import RingConsumer
from .frames import Frames
from .inbox import Inbox
from .messages import Message
from .metrics import Counters
from .outbox import Outbox, Stopped, stats
from .process import Control, StopFlag, Throttled
from .sink import SinkEnd

if TYPE_CHECKING:
    from .config import Config

__all__ = ["Inputs", "Outputs", "Processor", "StageRuntime", "build"]
log = logging.getLogger("gazeflow.stage")
POLL_MS = 100  # how often an idle stage looks at its stop flag
WAITING_NOTE_S = 5.0  # a stage that has had no frame yet says so this often
AHEAD_MAX = 2  # frames started ahead of their turn at once


class Processor:
    """A stage's own work: ``prepare`` and ``finish``; its models are declared in the registry."""

    name: str = ""  # set from the registry by ``build``
    # False when ``finish`` neither reads the message's arrays nor passes them on: a frame's slot
    # then goes back to capture as soon as the inputs are in the infer request.
    keeps_pixels: bool = True

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.frames = Frames()  # replaced by the runtime: where pixels are, how they go on
        # set by the runtime: (model key, input) -> that input's memory in the next frame's request
        self.staging: Callable[[str, Any], np.ndarray | None] | None = None

    sink_end: Any = None  # a sink's end of the stream (shared/sink.py), set by the runtime: figures, health
    result_extras: tuple[str, ...] = ()  # a sink's: header fields added to each results line after the chain's

    def ready(self, msg: Message) -> bool:
        """Whether the next message may start now (False: it waits at the head of the inbox)."""
        return True

    def ahead(self, msg: Message) -> bool:
        """Whether this frame may start while earlier ones wait (``ready`` False): its ``prepare`` needs
        nothing from them. Its results still leave in frame order."""
        return False

    def infers(self, msg: Message) -> bool:
        """Whether ``prepare`` will give this message model inputs (False: it needs no free request)."""
        return True

    def stats(self) -> dict[str, Any]:
        """The stage's own counters, added to its end-of-stream stats."""
        return {}

    def check(self, msg: Message) -> None:
        """Raise MalformedMessage when a frame lacks what this stage needs, beyond the schema that every
        message was checked against (messages.check_header): its arrays, fields that go together."""

    def prepare(self, msg: Message) -> Inputs:
        """Model inputs for this message; an empty dict means nothing to infer."""
        return {}

    def finish(self, msg: Message, outputs: Outputs) -> Message:
        """Write results into the message (called in frame order) and return what to send on."""
        return msg

    def input(self, model: str, name: Any, shape: tuple[int, ...]) -> np.ndarray | None:
        """Where ``prepare`` may write the uint8 input ``name`` (index or name) of ``model``: that input
        of the infer request the message will run in, so that submitting it takes no copy. None: make
        a new array (no runtime, or the model takes another shape)."""
        view = self.staging(model, name) if self.staging is not None else None
        return view if view is not None and view.shape == shape and view.dtype == np.uint8 else None

    def output(self, msg: Message, name: str, shape: tuple[int, ...]) -> np.ndarray | None:
        """Where ``finish`` may write the uint8 array ``name`` it passes on (see Frames.place)."""
        return self.frames.place(msg, name, shape)

    def sent(self, msg: Message) -> None:
        """Called after a message left the stage, its trace row complete."""

    def tick(self) -> None:
        """Called on every turn of the loop (at least every POLL_MS), frames or not."""

    def wakers(self) -> list[Any]:
        """Sockets of its own (a control channel) that wake the loop when a message waits there; ``woken`` is
        then called, instead of trying them on every turn (a receive that finds nothing costs, on a cold CPU)."""
        return []

    def woken(self) -> int:
        """A message waits on one of ``wakers``: take it; how many malformed ones were skipped (the stage
        counts them with those of its input)."""
        return 0

    def tune(self, key: str, value: Any) -> None:
        """One of the settings its manifest names as ``tunable`` changed while running (the tune channel)."""

    def live(self) -> str:
        """A sink's part of the live line."""
        return ""

    def report(self) -> dict[str, Any]:
        """A sink's part of the metrics report (tables are merged into the report's)."""
        return {}


def build(name: str, cfg: Config) -> Processor:
    """The processor of a registered stage."""
    proc = registry.get(name).load()(cfg)
    proc.name = name
    return proc


class StageRuntime:
    """Runs one stage's Processor between its input and (except for the sink) its output."""

    def __init__(self, name: str, cfg: Config, ctx: zmq.Context, control: Control, stop: StopFlag, worker: str) -> None:
        self.name, self.cfg, self.control, self.stop, self.worker = name, cfg, control, stop, worker
        self.proc = build(name, cfg)
        self.counters = Counters()
        control.counters = self.counters
        self.engine = Engine(cfg, name, registry.get(name).models)
        self.proc.staging = self.engine.staging
        local = cfg.endpoint(name, "input").local  # only then may a message name a frame slot
        forward = registry.frames_after(cfg, name)  # the view, later, draws on the frame
        ring = RingConsumer(ctx, cfg.run_dir, local)
        self.frames = Frames(ring, cfg.shares_frames(name), self.proc.keeps_pixels, forward)
        self.proc.frames = self.frames
        self.inbox = Inbox(cfg, name, ctx, self.frames, self.counters, self.proc.check)
        self.log_failure = Throttled(log, logging.ERROR)
        self.outbox = Outbox(cfg, name, ctx, self.frames, self.counters, stop, control.beat)
        self.feedback = self._tracking(ctx)
        tunes = registry.get(name).tunable  # settings it takes while running, from the pointer (ctl set)
        self.tunes = channels.End.local(ctx, cfg.run_dir, "tune", serves=False) if tunes else None
        first_sink = registry.through_first_sink(cfg.chain)[-1] == name
        self.sink = SinkEnd(cfg, self.proc, under_supervisor=control.is_on) if first_sink else None
        self.proc.sink_end = self.sink
        self.pending: deque[Item] = deque()  # in frame order, waiting for their inferences
        self.early: dict[int, Item] = {}  # frames started ahead of their turn (still in the inbox), by id
        self.started = time.monotonic()
        self.next_note = self.started + WAITING_NOTE_S
        self.channels: dict[Any, Callable[[], None]] = {}  # set in run: sockets that wake the loop
        if registry.on_demand_sink(cfg) == name:
            self.next_note = math.inf  # fed on demand (the panel): no frame until a page asks is no news
        self.max_pending = 4 + 2 * max(self.engine.sizes.values(), default=1)
        label = f"{name}[{worker}]" if cfg.workers(name) > 1 else name
        log.info(
            "%s: %s, hint %s, requests %s, input %s",
            label,
            cfg.stages[name].device,
            cfg.hint_for(name),
            self.engine.sizes or "-",
            self.inbox.endpoint,
        )

    def _tracking(self, ctx: zmq.Context) -> tracking.Feedback | None:
        """This stage's end of tracking's feedback, when its manifest names one and tracking runs."""
        role = registry.get(self.name).tracking
        if role == "detector" and self.cfg.detect_every > 1 and not tracking.active(self.cfg):
            log.info(
                "%s: detecting every frame: tracking needs its detector and tracker as single processes on one host",
                self.name,
            )
        if not role or not tracking.active(self.cfg):
            return None
        feedback = tracking.SocketFeedback(ctx, self.cfg.run_dir, receiving=role == "detector")
        self.proc.feedback = feedback  # type: ignore[attr-defined]
        return feedback

    def _start(self) -> bool:
        """Start work on waiting messages while requests are free; True at the end of the stream."""
        while self.inbox and len(self.pending) < self.max_pending:
            head = self.inbox.waiting[0][0]
            early = self.early.pop(id(head), None)
            if early is None:
                if not self.proc.ready(head):
                    self._start_ahead()  # it waits for something else (the tracked box); the loop goes on
                    break
                if not self.engine.free() and (head.kind != "frame" or self.proc.infers(head)):
                    break
            msg, t_recv, t_mono = self.inbox.take()
            if early is not None:
                self.pending.append(early)
                continue
            item = Item(msg, t_recv, t_mono, t_start=time.perf_counter_ns())
            self.pending.append(item)
            if msg.kind == "eos":
                return True
            if msg.kind == "frame":
                try:
                    inputs = self.proc.prepare(msg)
                except Exception:
                    self._failed(item, "prepare")
                    continue
                self._submit(item, inputs)
        return False

    def _start_ahead(self) -> None:
        """While the head of the inbox waits, start a later frame that may go ahead (``Processor.ahead``),
        when a request is free; it joins the frames in order when its turn comes."""
        for msg, t_recv, t_mono in list(self.inbox.waiting)[1 : self.max_pending]:
            if msg.kind != "frame" or len(self.early) >= AHEAD_MAX or not self.engine.free():
                return
            if id(msg) in self.early or not self.proc.ahead(msg):
                continue
            item = Item(msg, t_recv, t_mono, t_start=time.perf_counter_ns())
            try:
                inputs = self.proc.prepare(msg)
            except Exception:  # prepared again in its turn, where a failure is counted
                continue
            self.early[id(msg)] = item
            self._submit(item, inputs)

    def _submit(self, item: Item, inputs: Inputs) -> None:
        self.engine.submit(item, inputs)
        self.frames.submitted(item.msg)
        if inputs:
            self.counters.submitted(self.engine.in_flight)

    def _failed(self, item: Item, where: str) -> None:
        """A frame the processor failed on is dropped and counted (with a notice in its place after scaled
        workers), never the stage's end; the error is logged with its traceback, at most once a second."""
        self.log_failure(
            "%s: %s failed on frame %s: dropped", self.name, where, item.msg.header.get("frame"), exc_info=True
        )
        self.counters.dropped += 1
        self.frames.drop(item.msg)
        if self.inbox.drop_notices and "seq" in item.msg.header:
            item.msg = Message.drop(item.msg.header["seq"], item.msg.header["frame"])
            item.keys = ()
        else:
            self.pending.remove(item)

    def _collect(self) -> None:
        """Finish and send what is done, from the head, in frame order."""
        self.engine.check()
        for item in self.pending:
            self.engine.collect(item)
        while self.pending and self.pending[0].msg.kind != "eos" and self.engine.collect(self.pending[0]):
            item = self.pending.popleft()
            if item.msg.kind == "drop":  # passes through in its place
                self.outbox.send(item.msg)
                continue
            t_post = time.perf_counter_ns()
            try:
                msg = self.proc.finish(item.msg, self.engine.outputs(item))
            except Exception:
                self.pending.appendleft(item)
                self._failed(item, "finish")
                continue
            self.outbox.emit(item, msg, t_post, self.worker, self.engine.in_flight)
            try:
                self.proc.sent(msg)
                if self.sink is not None:
                    self.sink.add(msg)
            except Exception:  # it has left: the stage goes on, the error is said
                self.log_failure(
                    "%s: after sending frame %s: failed", self.name, msg.header.get("frame"), exc_info=True
                )

    def run(self) -> None:
        """receive -> start (prepare, submit) -> collect (finish, emit), until the end of the stream."""
        poller = zmq.Poller()
        poller.register(self.engine.wake_fd, zmq.POLLIN)
        # the sockets besides the input that wake the loop, each with what takes in what came (never a receive
        # on every turn: one that finds nothing costs, and a socket left readable would spin the loop)
        if self.feedback is not None:
            self.channels.update(dict.fromkeys(self.feedback.sockets, self.feedback.receive))  # tracked boxes
        if self.tunes is not None:
            self.channels[self.tunes.sock] = self._tunes  # a setting changed while running
        if self.outbox.demand is not None:
            self.channels[self.outbox.demand.end.sock] = self.outbox.demand.heard  # the panel's page opening
        self.channels.update(dict.fromkeys(self.proc.wakers(), self._woken))  # the processor's own (ctl)
        for sock in self.channels:
            poller.register(sock, zmq.POLLIN)
        self.control.ready()
        cpu0 = time.process_time()  # CPU time of the stream only, not of model loading
        eos = False
        try:
            while not self.stop:
                want = not eos and self.inbox.wants()
                poller.register(self.inbox.sock, zmq.POLLIN if want else 0)
                self._events(dict(poller.poll(POLL_MS)), want)
                self._collect()
                eos = self._start() or eos
                self._collect()
                self._turn()
                if eos and len(self.pending) == 1:  # only the end-of-stream marker is left
                    # the process's CPU: a stage sharing it with others reports its share
                    self._end(self.pending.popleft().msg, (time.process_time() - cpu0) / self.control.sharing)
                    return
            log.info("%s: stopped by signal", self.name)
        except Stopped:
            log.info("%s: stopped by signal while sending", self.name)
        finally:
            self.engine.close()
            self.inbox.close()
            self.outbox.close()
            self.frames.close()
            if self.feedback is not None:
                self.feedback.close()
            if self.tunes is not None:
                self.tunes.close()

    def _events(self, events: dict[Any, int], want: bool) -> None:
        """Take in what woke the loop: completions, tracked boxes, messages, settings."""
        if self.engine.wake_fd in events:
            self.engine.woken()
        for sock, take in self.channels.items():
            if sock in events:
                take()
        if want and self.inbox.sock in events:
            self.inbox.receive()
        self.inbox.expire()

    def _tunes(self) -> None:
        while self.tunes is not None and (tune := self.tunes.receive()) is not None:
            self.proc.tune(tune.key, tune.value)

    def _woken(self) -> None:
        self.counters.malformed += self.proc.woken()

    def _turn(self) -> None:
        """Every turn of the loop: credits, the processor's and the sink's ticks, the heartbeat, and until the
        first frame comes, every WAITING_NOTE_S, what the stage waits for."""
        self.inbox.credit(0)
        self.proc.tick()
        if self.sink is not None:
            self.sink.tick()
        self.control.beat()
        now = time.monotonic()
        if not self.counters.received and now > self.next_note:
            self.next_note = now + WAITING_NOTE_S
            upstream = self.cfg.link(self.name, "input").up
            log.info(
                "%s: waiting for the first frame from %s on %s (%.0f s)",
                self.name,
                upstream,
                self.inbox.endpoint,
                now - self.started,
            )

    def _end(self, eos: Message, cpu_s: float) -> None:
        worker = self.worker if self.cfg.workers(self.name) > 1 else None
        eos.header.setdefault("stats", {})[self.name] = stats(self.counters, self.engine.sizes, cpu_s, worker)
        if self.engine.precision:
            eos.header["stats"][self.name]["inference_precision"] = self.engine.precision
        eos.header["stats"][self.name].update(self.proc.stats())
        if self.control.sharing > 1:
            eos.header["stats"][self.name]["process"] = "+".join(self.cfg.group_of(self.name))
        self.inbox.report()
        if registry.get(self.name).role == "sink":
            self.proc.finish(eos, {})  # a sink: its own end (the pointer's, before the view after it)
        if self.sink is not None:
            self.sink.end(eos.header["stats"])
        if self.outbox.sender is not None:
            self.outbox.end(eos)
        log.info("%s: end of stream, %s", self.name, self.counters.as_dict())
