"""Lock-protected triple buffer: the hand-over between threads that never queues.

The writer fills its back buffer and publishes it; the newest published frame waits in the middle slot; the
reader swaps it out when it is ready for a new one. Frames the reader was too slow for are simply overwritten,
so a slow consumer adds at most one frame of latency and nothing piles up. The three arrays are allocated once
per frame shape, so the hot path allocates nothing.
"""

from __future__ import annotations

import threading

import numpy as np


class TripleBuffer:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._shape: tuple[int, ...] | None = None
        self._back: np.ndarray | None = None  # owned by the writer
        self._middle: np.ndarray | None = None  # newest published frame, owned by nobody
        self._front: np.ndarray | None = None  # owned by the reader
        self._fresh = False  # the middle slot holds a frame the reader has not taken yet
        self._published = 0

    @property
    def published(self) -> int:
        """How many frames the writer has published so far."""
        return self._published

    def back(self, shape: tuple[int, ...]) -> np.ndarray:
        """The writer's buffer, (re)allocated when the frame shape changes."""
        with self._cond:
            if self._shape != shape:
                self._shape = shape
                self._back = np.zeros(shape, np.uint8)
                self._middle = np.zeros(shape, np.uint8)
                self._front = np.zeros(shape, np.uint8)
                self._fresh = False
            assert self._back is not None
            return self._back

    def publish(self) -> None:
        """Make the writer's buffer the newest frame; the writer gets the old middle buffer to fill next."""
        with self._cond:
            self._back, self._middle = self._middle, self._back
            self._fresh = True
            self._published += 1
            self._cond.notify_all()

    def publish_copy(self, frame: np.ndarray) -> None:
        """Copy ``frame`` into the back buffer and publish it (for writers whose frame lives elsewhere)."""
        np.copyto(self.back(frame.shape), frame)
        self.publish()

    def take(self, timeout: float | None = None) -> np.ndarray | None:
        """Wait up to ``timeout`` s for a frame newer than the last one taken; return it or None.

        The returned array belongs to the reader until its next call to ``take``.
        """
        with self._cond:
            if not self._fresh and not self._cond.wait_for(lambda: self._fresh, timeout):
                return None
            self._front, self._middle = self._middle, self._front
            self._fresh = False
            return self._front

    def wake(self) -> None:
        """Wake a waiting reader (used at shutdown)."""
        with self._cond:
            self._cond.notify_all()
