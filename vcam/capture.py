"""The capture part of the daemon: the physical camera, its holds, reconnects, and the newest frame.

One thread reads the camera and publishes each good frame into ``frames`` (a triple buffer), tagged with the
camera *session*: a number that grows whenever the camera is released or reconnected. Later parts drop frames
of an older session, so nothing captured before a release is ever shown after it, and no part takes from a
buffer it does not read.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from .buffers import TripleBuffer
from .config import SourceSettings
from .sources import FrameSource, SourceError, normalize_frame
from .stats import DaemonStats

log = logging.getLogger(__name__)

RETRY_DELAYS_S = (0.25, 0.5, 1.0, 2.0, 4.0)  # camera reconnect backoff, the last one repeats
FAILED_READS_BEFORE_RECONNECT = 5
CAMERA_STALL_S = 0.5  # no new camera frame for this long: the camera counts as away (a read may be hanging)


class Capture:
    """Reads ``source`` on its own thread while the camera is wanted (no holds), into ``frames``."""

    def __init__(self, source: FrameSource, settings: SourceSettings, fps: float, stats: DaemonStats,
                 stop: threading.Event, clock: Callable[[], float] = time.monotonic,
                 wait: Callable[[float], bool] | None = None) -> None:
        """``clock`` and ``wait`` (sleep up to n s, True when stopping) are injectable for fake-clock tests."""
        self.source = source
        self.settings = settings
        self.period = 1.0 / fps
        self.stats = stats
        self.clock = clock
        self.frames = TripleBuffer()
        self.session = 0  # tag of the frames published now; grows on every release and reconnect
        self._source_error: str | None = None  # the error this part put in status, cleared when the camera opens
        self.last_frame_at = 0.0  # clock time of the newest good camera frame (0: none since (re)opening)
        self._stop = stop
        self._wait = wait or stop.wait
        self._lock = threading.Lock()
        # Reasons the physical camera is released ("paused" by the user, "no-reader" from on-demand); the
        # camera is open only while there are none.
        self._holds: set[str] = set()
        self._wanted = threading.Event()
        self._wanted.set()

    # ----- holds: pause and on-demand ---------------------------------------------------------------------
    def hold(self, reason: str) -> None:
        """Release the physical camera for ``reason`` until every hold is lifted."""
        with self._lock:
            self._holds.add(reason)
            self._wanted.clear()

    def release(self, reason: str) -> None:
        with self._lock:
            self._holds.discard(reason)
            if not self._holds:
                self._wanted.set()

    @property
    def holds(self) -> list[str]:
        with self._lock:
            return sorted(self._holds)

    @property
    def held(self) -> str | None:
        """"paused", "idle" (released for another reason) or None (the camera is wanted)."""
        holds = self.holds
        return "paused" if "paused" in holds else ("idle" if holds else None)

    def stalled(self, now: float) -> bool:
        """No new frame for ``CAMERA_STALL_S`` since the camera delivered one."""
        return bool(self.last_frame_at) and now - self.last_frame_at > CAMERA_STALL_S

    @property
    def live(self) -> bool:
        return self.stats.source_state == "live" and self.held is None and not self.stalled(self.clock())

    # ----- the thread -------------------------------------------------------------------------------------
    def run(self) -> None:
        self._wait_while_held()
        if not self._open_with_retry():
            return
        failures = 0
        self.last_frame_at = self.clock()
        while not self._stop.is_set():
            if not self._wanted.is_set():
                self._release_camera()
                if not self._open_with_retry():
                    return
                failures, self.last_frame_at = 0, self.clock()
                continue
            if self.read_once():
                failures = 0
                continue
            failures += 1
            if failures >= FAILED_READS_BEFORE_RECONNECT:
                self._reconnect()
                failures = 0
            else:
                self._wait(0.01)

    def read_once(self) -> bool:
        """Read one frame; publish it if good. False when the read gave nothing usable."""
        try:
            frame = self.source.read()
            if frame is not None:
                frame = normalize_frame(frame)
        except (ValueError, OSError, RuntimeError) as exc:  # a driver error or a frame we cannot use
            log.warning("bad frame from %s: %s", self.source.description, exc)
            frame = None
        if frame is None:
            if self.clock() - self.last_frame_at > self.period:
                self.stats.source_state = "reconnecting"  # the output shows the placeholder from now on
            return False
        self.last_frame_at = self.clock()
        self.stats.source_state = "live"
        self.frames.publish_copy(frame, tag=self.session)
        self.stats.frames_captured += 1
        return True

    def _wait_while_held(self) -> None:
        while not self._wanted.is_set() and not self._stop.is_set():
            self.stats.source_state = self.held or "live"
            self._wanted.wait(0.2)

    def _release_camera(self) -> None:
        """Close the physical camera (its light goes off) and wait until it is wanted again."""
        self.source.close()
        self.session += 1  # frames captured before the release are stale from now on
        self.last_frame_at = 0.0
        log.info("camera %s released (%s)", self.source.description, self.held or "resuming")
        self._wait_while_held()

    def _open_with_retry(self) -> bool:
        attempt = 0
        while not self._stop.is_set():
            try:
                self.source.open()
                if self.stats.last_error is not None and self.stats.last_error == self._source_error:
                    self.stats.last_error = None  # the camera is back: its error is no longer true
                self.stats.source_state = "live"
                log.info("source %s open", self.source.description)
                return True
            except SourceError as exc:
                self.stats.last_error = self._source_error = str(exc)
                if attempt == 0:
                    log.error("%s", exc)
                if self.settings.on_missing == "exit" and self.stats.frames_captured == 0:
                    log.error("source missing and source.on_missing = 'exit': stopping")
                    self.stats.source_gave_up = True
                    self._stop.set()
                    return False
                delay = RETRY_DELAYS_S[min(attempt, len(RETRY_DELAYS_S) - 1)]
                attempt += 1
                self._wait(delay)
        return False

    def _reconnect(self) -> None:
        log.warning("source %s stopped delivering frames; reconnecting", self.source.description)
        self.stats.source_state = "reconnecting"
        self.source.close()
        self.session += 1  # the processing part drops its temporal state for the new session
        if self._open_with_retry():
            self.stats.source_state = "reconnecting"  # until the first good frame arrives
