"""The endpoint grammar of the topology file: ``pattern+mode:address``.

For example ``push+bind:ipc:///tmp/run/frames`` or ``pull+connect:tcp://10.0.0.2:5555``:
``push`` is the sending end of a link, ``pull`` the receiving end; ``bind`` or
``connect``; an ``ipc://``, ``tcp://`` or ``inproc://`` address. Which ZeroMQ
socket each end opens follows from the link (``links.py``), not from this text.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import GazeflowError

PATTERNS = ("push", "pull")
MODES = ("bind", "connect")
SCHEMES = ("ipc", "tcp", "inproc")


@dataclass(frozen=True)
class Endpoint:
    pattern: str
    mode: str
    address: str

    @classmethod
    def parse(cls, spec: str) -> Endpoint:
        try:
            head, address = spec.split(":", 1)
            pattern, mode = head.split("+", 1)
        except ValueError:
            raise GazeflowError(f"bad endpoint {spec!r}: expected pattern+mode:address") from None
        scheme = address.split("://", 1)[0]
        if pattern not in PATTERNS or mode not in MODES or scheme not in SCHEMES or "://" not in address:
            raise GazeflowError(
                f"bad endpoint {spec!r}: pattern push|pull, mode bind|connect, address {'|'.join(SCHEMES)}://..."
            )
        if scheme == "tcp" and mode == "bind" and address.split("://", 1)[1].startswith("*"):
            raise GazeflowError(f"bad endpoint {spec!r}: bind tcp to an explicit address, not '*'")
        return cls(pattern, mode, address)

    @property
    def ipc_path(self) -> Path | None:
        return Path(self.address[len("ipc://") :]) if self.address.startswith("ipc://") else None

    @property
    def local(self) -> bool:
        """On this host (ipc), or in this process (inproc): a frame's slot in the ring may be named."""
        return self.address.startswith(("ipc://", "inproc://"))

    def __str__(self) -> str:
        return f"{self.pattern}+{self.mode}:{self.address}"
