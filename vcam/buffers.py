"""Lock-protected triple buffer: the hand-over between threads that never queues.

The writer fills its back slot and publishes it; the newest published slot waits in the middle; the reader swaps
it out when it is ready for a new one. Frames the reader was too slow for are simply overwritten, so a slow
consumer adds at most one frame of latency and nothing piles up. Each slot holds a picture, optionally a second
picture that travels with it (the mask debug view of a finished frame) and a tag (the camera session the frame
belongs to). The arrays are allocated once per shape, so the hot path allocates nothing.

Ownership is strict: only the writer touches the back slot, only the reader the front slot. Nobody else may
take from a buffer (that would swap a slot out from under its reader); :meth:`TripleBuffer.take` is the
reader's alone.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np


@dataclass
class Slot:
    image: np.ndarray | None = None
    tag: int = 0
    _extra: np.ndarray | None = None  # a second picture's buffer, kept across frames
    _has_extra: bool = False

    @property
    def extra(self) -> np.ndarray | None:
        """The second picture published with ``image`` (None: none this time)."""
        return self._extra if self._has_extra else None

    def fill(self, image: np.ndarray, extra: np.ndarray | None, tag: int) -> None:
        self.image = _copy_into(self.image, image)
        self._has_extra = extra is not None
        if extra is not None:
            self._extra = _copy_into(self._extra, extra)
        self.tag = tag


def _copy_into(buffer: np.ndarray | None, frame: np.ndarray) -> np.ndarray:
    if buffer is None or buffer.shape != frame.shape or buffer.dtype != frame.dtype:
        buffer = np.empty(frame.shape, frame.dtype)
    np.copyto(buffer, frame)
    return buffer


class TripleBuffer:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._back = Slot()  # owned by the writer
        self._middle = Slot()  # newest published slot, owned by nobody
        self._front = Slot()  # owned by the reader
        self._fresh = False  # the middle slot holds a frame the reader has not taken yet
        self._published = 0

    @property
    def published(self) -> int:
        """How many frames the writer has published so far."""
        return self._published

    def publish_copy(self, frame: np.ndarray, extra: np.ndarray | None = None, tag: int = 0) -> None:
        """Copy ``frame`` (and ``extra``) into the writer's slot and make it the newest; the copy happens outside
        the lock (the back slot is the writer's alone)."""
        self._back.fill(frame, extra, tag)
        with self._cond:
            self._back, self._middle = self._middle, self._back
            self._fresh = True
            self._published += 1
            self._cond.notify_all()

    def take_slot(self, timeout: float | None = None) -> Slot | None:
        """Wait up to ``timeout`` s for a slot newer than the last one taken; return it or None. The slot and its
        arrays belong to the reader until its next call."""
        with self._cond:
            if not self._fresh and not self._cond.wait_for(lambda: self._fresh, timeout):
                return None
            self._front, self._middle = self._middle, self._front
            self._fresh = False
            return self._front

    def take(self, timeout: float | None = None) -> np.ndarray | None:
        """The picture of :meth:`take_slot` (None when nothing newer came within ``timeout`` s)."""
        slot = self.take_slot(timeout)
        return None if slot is None else slot.image

    def wake(self) -> None:
        """Wake a waiting reader (used at shutdown)."""
        with self._cond:
            self._cond.notify_all()
