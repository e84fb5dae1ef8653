"""One stage's end of a link, resolved once from the config, opening its own socket.

The topology names only where each end binds or connects (``endpoint.py``); the
socket follows from the link: into the workers of a scaled stage the sending
end distributes by credit (``Distributor``) and each worker's receiving end
sends credits; otherwise a ``PushSender`` and a ``Receiver``. Full frames leave
the source: those links keep a short queue (6 MB a frame over tcp).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import zmq

from .endpoint import Endpoint
from .registry import Link
from .senders import Distributor, PushSender, Sender
from .transport import Receiver

if TYPE_CHECKING:
    from .config import Config

FRAMES_HWM = 4  # messages queued on a link that carries full frames
HWM = 16  # on the others


@dataclass(frozen=True)
class LinkEnd:
    link: Link
    stage: str
    endpoint: Endpoint
    hwm: int
    curve: Any
    live: bool  # a live run: heartbeats notice a vanished peer (a replay waits instead: transport.py)
    workers: int  # the receiving stage's workers

    @classmethod
    def of(cls, cfg: Config, stage: str, direction: str) -> LinkEnd:
        link = cfg.link(stage, direction)
        hwm = FRAMES_HWM if link.up == cfg.source else HWM
        peer = link.down if direction == "output" else link.up
        curve = cfg.curve(stage, peer)
        return cls(link, stage, cfg.endpoint(stage, direction), hwm, curve, cfg.live, cfg.workers(link.down))

    @property
    def into_workers(self) -> bool:
        """The receiving stage is scaled."""
        return self.workers > 1

    @property
    def local(self) -> bool:
        """Whether it stays on this host (ipc)."""
        return self.endpoint.local

    def sender(self, ctx: zmq.Context) -> Sender:
        if self.into_workers:
            return Distributor(ctx, self.endpoint, self.hwm, self.curve, self.live, self.workers)
        return PushSender(ctx, self.endpoint, self.hwm, self.curve, self.live)

    def receiver(self, ctx: zmq.Context) -> Receiver:
        return Receiver(ctx, self.endpoint, self.hwm, self.curve, worker=self.into_workers, live=self.live)
