"""Where a frame's pixels are, for a stage and its processor.

On one host a frame travels as a slot of capture's shared-memory ring
(``frame_ref``, ``shared/framering.py``); across hosts, or without the ring, its
pixels travel in the message. ``Frames`` hides which: a processor asks for the
pixels around the face, passes them on, or places an array it sends on, and
never sees a slot, a ``frame_ref`` or a link. The slot's ownership is decided
here alone: the stage that has a message's slot gives it back to capture as
soon as nothing it does later reads it, unless the slot goes on with the message.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .framering import RingConsumer
from .messages import Message

Box = tuple[int, int, int, int]


class Frames:
    """A stage's view of frame pixels. ``ring``: the slots that arrive (None: pixels always travel in
    messages); ``share``: the output stays on this host, so a slot may go on by reference;
    ``keeps_pixels``: the processor's ``finish`` reads or passes on the message's arrays; ``forward``: a
    later stage reads the frame (the view), so the slot goes on with the message whatever this one does."""

    def __init__(
        self, ring: RingConsumer | None = None, share: bool = False, keeps_pixels: bool = True, forward: bool = False
    ) -> None:
        self.ring = ring
        self.share = share and ring is not None
        self.keeps_pixels = keeps_pixels
        self.forward = forward and self.share

    # -- for processors ------------------------------------------------------------------------
    def pass_on(self, msg: Message, frame: np.ndarray, region: Box) -> None:
        """Send the pixels of ``region`` of ``frame`` on with the message: the frame's slot itself
        when it can go on (no copy), else a copy of the region."""
        if self.share and "frame_ref" in msg.header:
            msg.arrays["frame"] = frame
        else:
            x0, y0, x1, y1 = region
            msg.arrays["region"] = frame[y0:y1, x0:x1].copy()  # a slot is reused once released
        msg.header["region"] = list(region)

    @staticmethod
    def pixels(msg: Message) -> tuple[np.ndarray, tuple[int, int]]:
        """The pixels ``pass_on`` sent and where their top-left is in the frame."""
        if "region" in msg.arrays:
            return msg.arrays["region"], tuple(msg.header["region"][:2])
        return msg.arrays["frame"], (0, 0)

    def place(self, msg: Message, name: str, shape: tuple[int, ...]) -> np.ndarray | None:
        """Where ``finish`` may write the uint8 array ``name`` it passes on: room in the frame's slot
        when the slot goes on with the message (no copy on the way). None: make a new array."""
        ref = msg.header.get("frame_ref")
        return self.ring.place(ref, name, shape) if self.share and ref is not None else None

    # -- for the runtime -----------------------------------------------------------------------
    def attach(self, msg: Message) -> None:
        """A received message's slot into its arrays; MalformedMessage for a bad reference."""
        if self.ring is not None:
            self.ring.attach(msg.header, msg.arrays)

    def drop(self, msg: Message) -> None:
        """A message dropped here gives its slot back."""
        if self.ring is not None:
            self.ring.release(msg.header)

    def submitted(self, msg: Message) -> None:
        """Its inputs are in the infer request: the slot goes back now unless ``finish`` needs it
        (now, not after the send, where it would slow the next hop)."""
        if not self.keeps_pixels and not self.forward:
            self.drop(msg)

    def finished(self, msg: Message) -> dict[str, Any] | None:
        """After ``finish``: the slot to give back once the message is sent, or None when it goes on
        by reference with the arrays the message carries in its scratch (the next stage releases it)."""
        ref = msg.header.get("frame_ref")
        if ref is None:
            return None
        if self.share and (msg.arrays or self.forward) and self.ring is not None and self.ring.stash(ref, msg.arrays):
            self.ring.send_on(ref)
            return None
        return msg.header.pop("frame_ref")

    def give_back(self, ref: dict[str, Any] | None) -> None:
        if self.ring is not None:
            self.ring.give_back(ref)

    def close(self) -> None:
        if self.ring is not None:
            self.ring.close()
