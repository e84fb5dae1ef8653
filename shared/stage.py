"""The loop every inference stage runs: receive, infer (async, several requests), send.

A stage's own code is a ``Processor``: ``prepare`` turns a message into model
inputs, ``finish`` turns model outputs back into the message. This module owns
everything around it: sockets, the inbox, async requests, in-order emission,
drops, timing, end of stream. ``run_sync.py`` drives the same processors with
one synchronous request at a time.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zmq

from gazeflow.models.catalog import require_ir

from . import transport
from .config import Config, link_of
from .framering import RingConsumer
from .inference import AsyncModel, Fusion, compile_model, read_model, warm_up
from .messages import MalformedMessage, Message
from .metrics import T_SEND, trace_row
from .process import Control, StopFlag
from .reorder import REPLAY_WAIT_S, Reorder

log = logging.getLogger("gazeflow.stage")
Inputs = dict[str, dict[str, np.ndarray]]  # model key -> input name -> array
Outputs = dict[str, dict[str, np.ndarray]]  # model key -> output name -> array
POLL_MS = 100  # how often an idle stage looks at its stop flag
LIVE_INBOX = 4  # live input: at most this many frames wait for a free request
LOSSLESS_INBOX = 8  # replay: at most this many messages wait; then the socket's queue holds the rest


class Processor:
    """A stage's own work. Subclasses set ``name`` and ``models`` (key -> model name)."""

    name: str = ""
    models: dict[str, str] = {}
    # True for the stage fed by capture: on live input it drops stale frames, and its input
    # queue is short (full frames over tcp are 6 MB each).
    entry: bool = False
    # Set by the runtime: True when this stage's frames arrive in shared memory and its output link
    # stays on this host. ``finish`` may then leave ``msg.arrays["frame"]`` in place: the next stage
    # gets the frame's slot by reference (and releases it) instead of a copy of its pixels.
    share_frame: bool = False
    # Set by the runtime with share_frame: the frame slots this stage passes on (see ``output``).
    slots: RingConsumer | None = None
    # Set by the runtime: (model key, input) -> that input's memory in the infer request the next
    # frame will run in (see ``input``).
    staging: Callable[[str, Any], np.ndarray | None] | None = None
    # False when ``finish`` neither reads the message's arrays nor passes them on: a shared frame
    # slot then goes back to capture as soon as the inputs are in the infer request.
    keeps_pixels: bool = True

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg

    def prepare(self, msg: Message) -> Inputs:
        """Model inputs for this message; an empty dict means nothing to infer."""
        return {}

    def finish(self, msg: Message, outputs: Outputs) -> Message:
        """Write results into the message (called in frame order) and return what to send on."""
        return msg

    def input(self, model: str, name: Any, shape: tuple[int, ...]) -> np.ndarray | None:
        """Where ``prepare`` may write the uint8 input ``name`` (index or name) of ``model``: that
        input of the infer request the message will run in, so that submitting it takes no copy
        (copying face detection's 672x384 input took 0.16-0.27 ms on a CPU that had been idle,
        measured). None: make a new array (no runtime, or the model takes another shape)."""
        view = self.staging(model, name) if self.staging is not None else None
        return view if view is not None and view.shape == shape and view.dtype == np.uint8 else None

    def output(self, msg: Message, name: str, shape: tuple[int, ...]) -> np.ndarray | None:
        """Where ``finish`` may write the uint8 array ``name`` it passes on: a place in the frame's
        shared slot when the slot goes on with the message (the array then takes no copy on the
        way). None: make a new array."""
        ref = msg.header.get("frame_ref")
        return None if self.slots is None or ref is None else self.slots.place(ref, name, shape)

    def sent(self, msg: Message) -> None:
        """Called after a message left the stage, its trace row complete."""

    def tick(self) -> None:
        """Called on every turn of the loop (at least every POLL_MS), frames or not."""


@dataclass
class Counters:
    received: int = 0
    sent: int = 0
    dropped: int = 0
    malformed: int = 0
    submits: int = 0
    in_flight_sum: int = 0  # requests in flight just after each submit, summed
    in_flight_max: int = 0

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "in": self.received,
            "out": self.sent,
            "dropped": self.dropped,
            "malformed": self.malformed,
        }
        if self.submits:
            out["in_flight_mean"] = round(self.in_flight_sum / self.submits, 2)
            out["in_flight_max"] = self.in_flight_max
        return out


@dataclass
class _Item:
    msg: Message
    t_recv: int  # wall ns
    t_recv_mono: int
    t_start: int = 0
    t_submit: int = 0
    keys: tuple[str, ...] = ()
    tag: int = 0  # what its infer requests are tagged with
    outputs: Outputs = field(default_factory=dict)
    t_done: int = 0


class StageRuntime:
    """Runs one Processor between an input and an (optional) output socket."""

    def __init__(
        self, proc: Processor, cfg: Config, ctx: zmq.Context, control: Control, stop: StopFlag, worker: str = "0"
    ) -> None:
        self.proc = proc
        self.cfg = cfg
        self.stop = stop
        self.control = control
        self.name = proc.name
        self.worker = worker
        stage_cfg = cfg.stages[self.name]
        self.live = cfg.live and proc.entry  # only the entry stage drops
        self.counters = Counters()
        self.inbox: deque[tuple[Message, int, int]] = deque()
        # Messages are taken off the socket as soon as they arrive, so that time in the inbox shows
        # as queue wait, not transport. Live: frames wait while fresh (see _drop_stale); replay: a
        # bounded lossless queue (with the frame ring, its free slots bound it first).
        self.inbox_size = LIVE_INBOX if self.live else LOSSLESS_INBOX
        self.stale_ns = int(cfg.stale_ms * 1e6)
        self.pending: deque[_Item] = deque()
        self.submitted = 0  # items submitted so far: each one's tag
        self._owed = 0  # credits not yet told to the distributor (its queue was full)
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self.models: dict[str, AsyncModel] = {}
        hint = cfg.hint_for(self.name)
        irs = {key: require_ir(cfg.assets_dir, model, stage_cfg.precision) for key, model in proc.models.items()}
        # a stage's models that all run on every frame are compiled as one: one request per frame
        self.fusion = Fusion.of({key: read_model(xml) for key, xml in irs.items()}) if len(irs) > 1 else None
        compile_args = (stage_cfg.device, hint, stage_cfg.requests, stage_cfg.threads)
        if self.fusion is not None:
            to_compile = {self.fusion.key: compile_model(self.fusion.model, *compile_args)}
        else:
            to_compile = {key: compile_model(xml, *compile_args) for key, xml in irs.items()}
        for key, compiled in to_compile.items():
            warm_up(compiled)  # the first inference is slow: take it before the stream starts
            self.models[key] = AsyncModel(compiled, stage_cfg.requests, self._wake_w)
        self.max_pending = 4 + 2 * max((m.size for m in self.models.values()), default=1)
        self.in_ep = transport.Endpoint.parse(cfg.endpoint(self.name, "input"))
        self.out_ep = transport.Endpoint.parse(cfg.endpoint(self.name, "output")) if self.name != "pointer" else None
        # full frames into face detection: a short queue (6 MB each); small messages elsewhere
        hwm = 4 if proc.entry else 16
        curve = cfg.curve()
        self.in_sock = transport.open_socket(ctx, self.in_ep, hwm, curve)
        # one of several workers: the distributor sends only as many messages as this worker has credit for
        self.credits = self.in_ep.pattern == "dealer"
        if self.credits:
            transport.give_credit(self.in_sock, self.inbox_size)
        # after several upstream workers: restore capture's order (live: within the stale limit)
        upstream = link_of(self.name, "input")[1]
        self.reorder: Reorder | None = None
        if cfg.workers(upstream) > 1:
            self.reorder = Reorder(upstream, cfg.stale_ms / 1e3 if cfg.live else REPLAY_WAIT_S)
        self.drop_notices = cfg.scaled  # a frame dropped here is announced, so that no reorder waits for it
        self.shared_frames = RingConsumer(ctx)  # frames that arrive as shared-memory slots
        proc.share_frame = cfg.shared_frames and self.out_ep is not None and self.out_ep.ipc_path is not None
        proc.slots = self.shared_frames if proc.share_frame else None
        proc.staging = self._staging
        self.sender: transport.PushSender | None = None
        if self.out_ep is not None:
            self.sender = transport.open_sender(ctx, self.out_ep, 16, curve)
        log.info(
            "%s%s: %s, hint %s, requests %s, input %s",
            self.name,
            f"[{worker}]" if cfg.workers(self.name) > 1 else "",
            stage_cfg.device,
            hint,
            {k: m.size for k, m in self.models.items()} or "-",
            self.in_ep,
        )

    # -- receive ---------------------------------------------------------------------------------
    def _receive(self) -> None:
        """Take one message off the input socket into the inbox (newest wins when live).

        One per turn of the loop: the poll says when there is another. Trying for a second one
        would raise zmq.Again, which costs 0.05 ms of the hop on a cold CPU (measured).
        """
        try:
            msg = transport.recv(self.in_sock, block=False)
            if msg is not None:
                self.shared_frames.attach(msg.header, msg.arrays)
        except MalformedMessage as exc:
            self.counters.malformed += 1
            log.warning("%s: dropped a malformed message: %s", self.name, exc)
            return
        if msg is None:
            return
        now = time.time_ns()
        if msg.kind == "frame":
            self.counters.received += 1
            if self.live:
                self._drop_stale(now)
        entry = (msg, now, time.perf_counter_ns())
        if self.reorder is None:
            self.inbox.append(entry)
            return
        ready, late = self.reorder.push(entry)
        if late:  # its place was given up: dropped, and already announced downstream
            self.counters.dropped += 1
            self.shared_frames.release(msg.header)
            (log.debug if self.cfg.live else log.warning)(
                "%s: frame %s came after its place was given up: dropped", self.name, msg.header["frame"]
            )
        self.inbox.extend(ready)

    def _drop_stale(self, now_ns: int) -> None:
        """A newer frame has arrived: drop waiting frames that are stale, or the oldest if the inbox is full."""
        keep: deque[tuple[Message, int, int]] = deque()
        waiting = sum(1 for m in self.inbox if m[0].kind == "frame")
        for entry in self.inbox:
            msg = entry[0]
            if msg.kind == "frame" and (
                now_ns - int(msg.header["t_capture"] * 1e9) > self.stale_ns or waiting >= self.inbox_size
            ):
                self.shared_frames.release(msg.header)
                self.counters.dropped += 1
                waiting -= 1
                if self.drop_notices and "seq" in msg.header:  # takes the frame's place (and its credit)
                    keep.append((Message.drop(msg.header["seq"], msg.header["frame"]), entry[1], entry[2]))
                else:
                    self._credit(1)
            else:
                keep.append(entry)
        self.inbox = keep

    def _credit(self, n: int) -> None:
        """Room for n more messages: tell the distributor (a worker's input only)."""
        if self.credits:
            self._owed += n
            if transport.give_credit(self.in_sock, self._owed):
                self._owed = 0

    def _staging(self, key: str, name: Any) -> np.ndarray | None:
        if self.fusion is not None:
            return self.models[self.fusion.key].staging(self.fusion.index(key, name))
        return self.models[key].staging(name)

    def _models_free(self) -> bool:
        return all(m.free() for m in self.models.values())

    # -- infer -----------------------------------------------------------------------------------
    def _start(self) -> bool:
        """Start work on inbox messages while requests are free; True at end of stream."""
        while self.inbox and self._models_free() and len(self.pending) < self.max_pending:
            msg, t_recv, t_mono = self.inbox.popleft()
            item = _Item(msg, t_recv, t_mono, t_start=time.perf_counter_ns())
            if msg.kind == "eos":
                self.pending.append(item)
                return True
            self._credit(1)  # it has left the inbox
            if msg.kind == "drop":  # passes through in its place
                self.pending.append(item)
                continue
            inputs = self.proc.prepare(msg)
            if self.fusion is not None and inputs:
                inputs = {self.fusion.key: self.fusion.merge(inputs)}
            item.keys = tuple(inputs)
            self.submitted += 1
            item.tag = self.submitted
            started = [self.models[key].submit(model_inputs, item.tag) for key, model_inputs in inputs.items()]
            # inference starts once its inputs are in the request (benchmark_app counts it so); nothing to infer: now
            item.t_submit = min(started) if started else time.perf_counter_ns()
            if not self.proc.keeps_pixels:  # now, not after the send, where it would slow the next hop
                self.shared_frames.release(msg.header)
            if inputs:
                in_flight = self.in_flight()
                self.counters.submits += 1
                self.counters.in_flight_sum += in_flight
                self.counters.in_flight_max = max(self.counters.in_flight_max, in_flight)
            self.pending.append(item)
        return False

    def _collect(self) -> None:
        """Gather finished outputs; finish and send items from the head, in frame order."""
        for model in self.models.values():
            model.check()
        for item in self.pending:
            for key in item.keys:
                if key not in item.outputs:
                    got = self.models[key].take(item.tag)
                    if got is not None:
                        item.outputs[key], done = got
                        item.t_done = max(item.t_done, done)
        while self.pending:
            item = self.pending[0]
            if item.msg.kind == "eos" or len(item.outputs) < len(item.keys):
                return
            self.pending.popleft()
            self._emit(item)

    # -- send ------------------------------------------------------------------------------------
    def _emit(self, item: _Item) -> None:
        t_post = time.perf_counter_ns()
        msg = item.msg
        if msg.kind == "drop":
            self._send(msg)
            return
        outputs = item.outputs
        if self.fusion is not None and outputs:
            outputs = self.fusion.split(outputs[self.fusion.key])
        msg = self.proc.finish(msg, outputs)
        done_with = None  # the frame's shared slot, given back after the send: the release is not urgent
        ref = msg.header.get("frame_ref")
        if ref is not None and not (self.proc.share_frame and msg.arrays and self.shared_frames.stash(ref, msg.arrays)):
            done_with = msg.header.pop("frame_ref")
        # else the slot goes on by reference, with the frame and the small arrays in its scratch: the next
        # stage releases it
        t_end = time.perf_counter_ns()
        infer = (item.t_done - item.t_submit) if item.keys else 0
        hold = (t_post - item.t_done) if item.keys else (t_post - item.t_submit)
        row = trace_row(
            self.name,
            item.t_recv,
            queue=item.t_start - item.t_recv_mono,  # inbox + waiting for free requests
            pre=item.t_submit - item.t_start,
            infer=infer,
            hold=hold,  # waiting for earlier frames to finish (in-order emission)
            post=t_end - t_post,
            worker=self.worker,
            in_flight=self.in_flight(),  # requests still in flight as it leaves: for the health report
        )
        msg.header["trace"].append(row)
        row[T_SEND] = time.time_ns()  # just before sending
        self._send(msg)
        self.shared_frames.give_back(done_with)
        self.counters.sent += 1
        self.proc.sent(msg)

    def _send(self, msg: Message) -> None:
        if self.sender is None:
            return
        while not self.sender.send(msg):
            if self.stop:
                raise _Stopped
            self.sender.wait(POLL_MS / 1000)

    def in_flight(self) -> int:
        return sum(m.in_flight for m in self.models.values())

    # -- the loop --------------------------------------------------------------------------------
    def run(self) -> None:
        poller = zmq.Poller()
        poller.register(self._wake_r, zmq.POLLIN)
        self.control.send("ready")
        self.cpu0 = time.process_time()  # CPU time of the stream only, not of model loading
        eos = False
        try:
            while not self.stop:
                want_input = not eos and (len(self.inbox) < self.inbox_size or self.live)
                poller.register(self.in_sock, zmq.POLLIN if want_input else 0)
                events = dict(poller.poll(POLL_MS))
                if self._wake_r in events:
                    # one read takes every wake-up byte (a byte per completion, a few in flight); reading on
                    # until BlockingIOError would cost an exception per completion (0.05 ms on a cold CPU)
                    os.read(self._wake_r, 4096)
                if want_input and self.in_sock in events:
                    self._receive()
                if self.reorder is not None:
                    self.inbox.extend(self.reorder.expire(time.perf_counter_ns()))
                self._collect()
                eos = self._start() or eos
                self._collect()
                if self._owed:
                    self._credit(0)
                self.proc.tick()
                if eos and len(self.pending) == 1:  # only the end-of-stream marker is left
                    self._finish_stream(self.pending.popleft().msg)
                    return
            log.info("%s: stopped by signal", self.name)
        except _Stopped:
            log.info("%s: stopped by signal while sending", self.name)
        finally:
            for model in self.models.values():
                model.wait_all()
            transport.close_socket(self.in_sock, self.in_ep)
            if self.sender is not None:
                self.sender.close()
            os.close(self._wake_r)
            os.close(self._wake_w)
            self.shared_frames.close()

    def _finish_stream(self, eos: Message) -> None:
        requests = {key: m.size for key, m in self.models.items()}
        stats = eos.header.setdefault("stats", {})
        stats[self.name] = {
            "requests": requests,
            **self.counters.as_dict(),
            "cpu_s": round(time.process_time() - self.cpu0, 3),
        }
        if self.reorder is not None and (self.reorder.given_up or self.reorder.late):
            log.warning(
                "%s: %d frames never came from %s (lost with a worker), %d came too late",
                self.name, self.reorder.given_up, self.reorder.upstream, self.reorder.late,
            )  # fmt: skip
        if self.cfg.workers(self.name) > 1:
            stats[self.name]["worker"] = self.worker
        if self.sender is not None:
            if self.sender.send_end(eos, lambda: bool(self.stop)):
                self.sender.wait_end(self.name, self.stop)  # until the next stage has it all
        else:
            self.proc.finish(eos, {})
        log.info("%s: end of stream, %s", self.name, self.counters.as_dict())


class _Stopped(Exception):
    pass
