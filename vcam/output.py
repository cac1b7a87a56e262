"""The output part of the daemon: a frame clock that feeds the sinks whatever happens upstream.

Every frame period it sends the newest finished frame, repeats the last one when processing is late, and shows
a placeholder while the camera is away or released, so the virtual device never stops receiving frames. The
mask debug view travels with its finished frame and goes to the preview sinks with it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import numpy as np

from .buffers import TripleBuffer
from .capture import Capture
from .config import OutputSettings
from .pipeline import placeholder_frame
from .processing import Watchdog
from .sinks import SinkWorker
from .stats import DaemonStats

log = logging.getLogger(__name__)

IDLE_FPS = 2.0  # still frames per second sent while no app reads the virtual camera (camera released)


class OutputClock:
    """Sends one frame per period to every sink worker; ``tick`` is one period's work, ``run`` the clock."""

    def __init__(self, settings: OutputSettings, finished: TripleBuffer, capture: Capture,
                 sinks: list[SinkWorker], stats: DaemonStats, stop: threading.Event,
                 clock: Callable[[], float] = time.monotonic,
                 debug_sinks: list[TripleBuffer] | None = None,
                 wait: Callable[[float], bool] | None = None) -> None:
        """``clock`` and ``wait`` (sleep up to n s, True when stopping) are injectable for fake-clock tests."""
        self.period = 1.0 / settings.fps
        self.finished = finished
        self.capture = capture
        self.sinks = sinks
        self.debug_sinks = debug_sinks or []  # where each finished frame's debug view goes (preview pages)
        self.stats = stats
        self.clock = clock
        self.watchdog = Watchdog()
        self.idle_fps = IDLE_FPS
        self.pause_frame: np.ndarray | None = None  # shown while paused (None: a dark "paused" frame)
        self._stop = stop
        self._wait = wait or stop.wait
        size = (settings.width, settings.height)
        self._waiting = placeholder_frame(*size, "vcam: starting camera")
        self._reconnecting = placeholder_frame(*size, "vcam: camera reconnecting...")
        self._paused = placeholder_frame(*size, "vcam: camera paused")
        self._current: np.ndarray | None = None  # the last finished frame of the current camera session
        self._current_session = 0
        self._last_sent_at = 0.0

    def choose(self, now: float) -> np.ndarray:
        """The frame to send now: the newest finished one, or a placeholder that says why there is none."""
        session = self.capture.session
        if self._current_session != session:  # the camera was released or reconnected: its frames are stale
            self._current, self._current_session = None, session
        slot = self.finished.take_slot(timeout=0)
        if slot is not None and slot.tag == session and slot.image is not None:
            self._current = slot.image
            for feed in self.debug_sinks:
                if slot.extra is not None:
                    feed.publish_copy(slot.extra)
        elif self._current is not None:
            self.stats.frames_repeated += 1
        held = self.capture.held
        if held:  # camera released: a still frame; afterwards "starting camera", never a stale frame
            self._current = None
            self.stats.placeholder_frames += 1
            if held == "paused":
                return self.pause_frame if self.pause_frame is not None else self._paused
            return self._waiting
        if self.stats.source_state == "reconnecting" or self.capture.stalled(now):
            self.stats.placeholder_frames += 1
            return self._reconnecting
        if self._current is None:
            self.stats.placeholder_frames += 1
            return self._waiting
        return self._current

    def tick(self) -> np.ndarray:
        """One period: choose a frame, hand it to every sink, check the processing watchdog."""
        now = self.clock()
        frame = self.choose(now)
        for worker in self.sinks:
            worker.submit(frame)
        self.stats.frames_sent += 1
        if self._last_sent_at:
            self.stats.recent_output_interval_ms.append((now - self._last_sent_at) * 1e3)
        self._last_sent_at = now
        self.watchdog.check(now, self.stats.frames_processed, self.capture.live)
        return frame

    def run(self) -> None:
        next_due = self.clock()
        while not self._stop.is_set():
            self.tick()
            next_due = self._next_due(next_due)
            delay = next_due - self.clock()
            if delay < -self.period:  # badly late (suspend): restart the clock rather than burst
                next_due = self.clock()
            elif delay > 0:
                self._wait(delay)

    def _next_due(self, next_due: float) -> float:
        """When the next frame is due; while idle (no reader) a still frame every ``1 / idle_fps`` s, waking at
        the frame clock so that a reader appearing is served at once."""
        if self.capture.held != "idle":
            return next_due + self.period
        next_due += 1.0 / self.idle_fps
        while self.capture.held == "idle" and next_due - self.clock() > self.period:
            if self._wait(self.period):
                return next_due
        return next_due if self.capture.held == "idle" else self.clock()
