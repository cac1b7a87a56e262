"""The daemon: three threads joined by triple buffers, so nothing ever queues.

capture thread  -> newest camera frame  -> processing thread -> newest output frame -> output thread -> sinks
(source's clock)                           (segment ... composite)                     (output fps clock)

The output thread runs on its own clock: every frame period it sends the newest finished frame, repeating the
last one when processing is late and showing a placeholder while the camera is away, so the virtual device
never stops receiving frames. Settings changes are validated elsewhere and swapped in between two frames.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from .buffers import TripleBuffer
from .config import Config
from .pipeline import Pipeline, placeholder_frame
from .segmenter import ModelError, Segmenter, load_segmenter
from .sinks import MjpegPreviewSink, SinkError, SinkWorker, make_sink
from .sources import FrameSource, SourceError, normalize_frame, open_source

log = logging.getLogger(__name__)

RETRY_DELAYS_S = (0.25, 0.5, 1.0, 2.0, 4.0)  # camera reconnect backoff, the last one repeats
FAILED_READS_BEFORE_RECONNECT = 5
CAMERA_STALL_S = 0.5  # no new camera frame for this long: show the placeholder (a read may be hanging)
IDLE_FPS = 2.0  # still frames per second sent while no app reads the virtual camera (camera released)


@dataclass
class DaemonStats:
    frames_captured: int = 0
    frames_processed: int = 0
    frames_sent: int = 0
    frames_repeated: int = 0
    placeholder_frames: int = 0
    source_state: str = "starting"  # starting | live | reconnecting | stopped
    last_error: str | None = None
    process_ms: float = 0.0
    stage_ms: dict[str, float] = field(default_factory=dict)
    # Recent history for soak tests and status: processing time per frame, and the output clock's intervals.
    recent_process_ms: deque = field(default_factory=lambda: deque(maxlen=4096))
    recent_output_interval_ms: deque = field(default_factory=lambda: deque(maxlen=4096))


def _load_segmenter_safely(config: Config) -> Segmenter | None:
    """The configured segmenter; if it is broken, the best working one; if none works, None (the pipeline then
    passes frames through unmodified rather than crash the call)."""
    try:
        return load_segmenter(config.model.segmenter, config.model.threads)
    except (ModelError, LookupError) as exc:
        log.error("segmenter %r unusable: %s", config.model.segmenter, exc)
    if config.model.segmenter != "auto":
        try:
            segmenter = load_segmenter("auto", config.model.threads)
            log.warning("falling back to segmenter %s", segmenter.card.name)
            return segmenter
        except ModelError as exc:
            log.error("%s", exc)
    log.error("no segmenter works: running in safe full-frame mode (no background effect)")
    return None


class Daemon:
    def __init__(self, config: Config, source: FrameSource | None = None, segmenter: Segmenter | None = None,
                 sinks: list[Any] | None = None) -> None:
        """``source``/``segmenter``/``sinks`` default to what ``config`` names; tests pass fakes here."""
        # Each of our threads runs its OpenCV calls on one core; OpenCV's own worker pool would fight them
        # (and the call app) for the same cores.
        cv2.setNumThreads(1)
        self.config = config
        self._pending_config: Config | None = None
        self.source = source or open_source(config.source.device, config.source.width, config.source.height,
                                            config.source.fps, config.source.fourcc)
        self.segmenter = segmenter or _load_segmenter_safely(config)
        self.pipeline = Pipeline(config, self.segmenter)
        self.sink_workers = [SinkWorker(s) for s in (sinks if sinks is not None else
                                                      [make_sink(spec) for spec in config.output.sinks])]
        for worker in self.sink_workers:  # the preview page's mask debug view (a cosmetic tear is harmless)
            if isinstance(worker.sink, MjpegPreviewSink) and worker.sink.debug_frame is None:
                worker.sink.debug_frame = self.pipeline.debug_view
        self.stats = DaemonStats()
        self._captured = TripleBuffer()
        self._finished = TripleBuffer()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._last_frame_at = 0.0  # monotonic time of the newest good camera frame
        # Reasons the physical camera is released ("paused" by the user, "no-reader" from on-demand); the
        # camera is open only while there are none.
        self._holds: set[str] = set()
        self._camera_wanted = threading.Event()
        self._camera_wanted.set()
        self.pause_frame: np.ndarray | None = None  # shown while paused (None: a dark "paused" frame)
        self.idle_fps = IDLE_FPS

    # ----- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> None:
        """Open the sinks (at least one must open), then start the three threads."""
        out = self.config.output
        opened = []
        for worker in self.sink_workers:
            try:
                worker.start(out.width, out.height, out.fps)
                opened.append(worker)
                log.info("sink %s ready", worker.description)
            except SinkError as exc:
                log.error("sink %s unavailable: %s", worker.description, exc)
                self.stats.last_error = str(exc)
        if not opened:
            raise SinkError("no output could be opened:\n" + (self.stats.last_error or "no sinks configured"))
        self.sink_workers = opened
        for name, target in (("capture", self._capture_loop), ("process", self._process_loop),
                             ("output", self._output_loop)):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        self._captured.wake()
        self._finished.wake()
        for thread in self._threads:
            thread.join(timeout=3.0)
        for worker in self.sink_workers:
            worker.stop()
        self.source.close()
        self.stats.source_state = "stopped"

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the daemon stops (or ``timeout``); True when it has stopped."""
        return self._stop.wait(timeout)

    @property
    def running(self) -> bool:
        return bool(self._threads) and not self._stop.is_set()

    def apply_config(self, config: Config) -> None:
        """Swap in an already-validated config; the processing thread picks it up before its next frame."""
        with self._lock:
            self._pending_config = config

    # ----- camera holds: pause and on-demand --------------------------------------------------------------
    def hold_camera(self, reason: str) -> None:
        """Release the physical camera for ``reason`` until every hold is lifted. "paused": the output shows the
        pause frame; any other reason (on-demand's "no-reader"): a still frame at ``idle_fps``."""
        with self._lock:
            self._holds.add(reason)
            self._camera_wanted.clear()

    def release_hold(self, reason: str) -> None:
        with self._lock:
            self._holds.discard(reason)
            if not self._holds:
                self._camera_wanted.set()

    @property
    def held(self) -> str | None:
        """"paused", "idle" (released for another reason) or None (the camera is wanted)."""
        holds = self._holds
        return "paused" if "paused" in holds else ("idle" if holds else None)

    def _wait_while_held(self) -> None:
        while not self._camera_wanted.is_set() and not self._stop.is_set():
            self.stats.source_state = self.held or "live"
            self._camera_wanted.wait(0.2)

    def _release_camera(self) -> None:
        """Close the physical camera (its light goes off) and wait until it is wanted again."""
        self.source.close()
        self._last_frame_at = 0.0
        log.info("camera %s released (%s)", self.source.description, self.held or "resuming")
        self._wait_while_held()
        self.pipeline.reset()
        # Frames captured or processed before the release are stale now: never show them after it.
        self._captured.take(timeout=0)
        self._finished.take(timeout=0)

    # ----- capture thread --------------------------------------------------------------------------------
    def _open_source_with_retry(self) -> bool:
        attempt = 0
        while not self._stop.is_set():
            try:
                self.source.open()
                if self.stats.last_error is not None and self.stats.last_error == getattr(self, "_source_error", None):
                    self.stats.last_error = None  # the camera is back: its error is no longer true
                self.stats.source_state = "live"
                log.info("source %s open", self.source.description)
                return True
            except SourceError as exc:
                self.stats.last_error = self._source_error = str(exc)
                if attempt == 0:
                    log.error("%s", exc)
                if self.config.source.on_missing == "exit" and self.stats.frames_captured == 0:
                    log.error("source missing and source.on_missing = 'exit': stopping")
                    self._stop.set()
                    return False
                delay = RETRY_DELAYS_S[min(attempt, len(RETRY_DELAYS_S) - 1)]
                attempt += 1
                self._stop.wait(delay)
        return False

    def _capture_loop(self) -> None:
        self._wait_while_held()
        if not self._open_source_with_retry():
            return
        failures = 0
        self._last_frame_at = time.monotonic()
        period = 1.0 / self.config.output.fps
        while not self._stop.is_set():
            if not self._camera_wanted.is_set():
                self._release_camera()
                if not self._open_source_with_retry():
                    return
                failures, self._last_frame_at = 0, time.monotonic()
                continue
            try:
                frame = self.source.read()
                if frame is not None:
                    frame = normalize_frame(frame)
            except (ValueError, OSError, RuntimeError) as exc:  # a driver error or a frame we cannot use
                log.warning("bad frame from %s: %s", self.source.description, exc)
                frame = None
            if frame is None:
                failures += 1
                if time.monotonic() - self._last_frame_at > period:
                    self.stats.source_state = "reconnecting"  # the output shows the placeholder from now on
                if failures >= FAILED_READS_BEFORE_RECONNECT:
                    self._reconnect()
                    failures = 0
                else:
                    self._stop.wait(0.01)
                continue
            failures = 0
            self._last_frame_at = time.monotonic()
            self.stats.source_state = "live"
            self._captured.publish_copy(frame)
            self.stats.frames_captured += 1

    def _reconnect(self) -> None:
        log.warning("source %s stopped delivering frames; reconnecting", self.source.description)
        self.stats.source_state = "reconnecting"
        self.source.close()
        if self._open_source_with_retry():
            self.stats.source_state = "reconnecting"  # until the first good frame arrives
            self.pipeline.reset()

    # ----- processing thread -----------------------------------------------------------------------------
    def _process_loop(self) -> None:
        while not self._stop.is_set():
            frame = self._captured.take(timeout=0.1)
            with self._lock:
                pending, self._pending_config = self._pending_config, None
            if pending is not None:
                self._swap_config(pending)
            if frame is None:
                continue
            t0 = time.perf_counter()
            try:
                out = self.pipeline.process(frame)
            except Exception:  # never let one bad frame kill the camera: log it and carry on
                log.exception("processing failed on a frame; passing it through")
                out = frame
            self.stats.process_ms = (time.perf_counter() - t0) * 1e3
            self.stats.recent_process_ms.append(self.stats.process_ms)
            self.stats.stage_ms = dict(self.pipeline.timings_ms)
            if (out.shape[1], out.shape[0]) != (self.config.output.width, self.config.output.height):
                out = cv2.resize(out, (self.config.output.width, self.config.output.height))
            self._finished.publish_copy(out)
            self.stats.frames_processed += 1

    def _swap_config(self, config: Config) -> None:
        old, self.config = self.config, config
        if config.model.segmenter != old.model.segmenter or config.model.threads != old.model.threads:
            self.segmenter = _load_segmenter_safely(config)
            self.pipeline.segmenter = self.segmenter
        self.pipeline.configure(config)
        # output.fit is read per frame; the rest of source/output is fixed while the devices are open
        if config.output.model_copy(update={"fit": old.output.fit}) != old.output or config.source != old.source:
            log.warning("source/output changes take effect after a restart of the daemon")
        log.info("settings applied (preset %s)", config.preset)

    # ----- output thread ---------------------------------------------------------------------------------
    def _output_loop(self) -> None:
        out = self.config.output
        period = 1.0 / out.fps
        waiting = placeholder_frame(out.width, out.height, "vcam: starting camera")
        reconnecting = placeholder_frame(out.width, out.height, "vcam: camera reconnecting...")
        paused = placeholder_frame(out.width, out.height, "vcam: camera paused")
        current: np.ndarray | None = None
        last_sent_at = 0.0
        next_due = time.monotonic()
        while not self._stop.is_set():
            fresh = self._finished.take(timeout=0)
            if fresh is not None:
                current = fresh
            elif current is not None:
                self.stats.frames_repeated += 1
            stalled = self._last_frame_at and time.monotonic() - self._last_frame_at > CAMERA_STALL_S
            held = self.held
            if held:  # camera released: a still frame; afterwards "starting camera", never a stale frame
                current = None
                frame = (self.pause_frame if self.pause_frame is not None else paused) if held == "paused" \
                    else waiting
                self.stats.placeholder_frames += 1
            elif self.stats.source_state == "reconnecting" or stalled:
                frame, self.stats.placeholder_frames = reconnecting, self.stats.placeholder_frames + 1
            elif current is None:
                frame, self.stats.placeholder_frames = waiting, self.stats.placeholder_frames + 1
            else:
                frame = current
            for worker in self.sink_workers:
                worker.submit(frame)
            self.stats.frames_sent += 1
            now = time.monotonic()
            if last_sent_at:
                self.stats.recent_output_interval_ms.append((now - last_sent_at) * 1e3)
            last_sent_at = now
            next_due += 1.0 / self.idle_fps if held == "idle" else period
            if held == "idle":  # wake at the frame clock, so a reader appearing is served at once
                while self.held == "idle" and next_due - time.monotonic() > period:
                    if self._stop.wait(period):
                        return
                if self.held != "idle":
                    next_due = time.monotonic()
            delay = next_due - time.monotonic()
            if delay < -period:  # badly late (suspend): restart the clock rather than burst
                next_due = time.monotonic()
            elif delay > 0:
                self._stop.wait(delay)

    def status(self) -> dict[str, Any]:
        s = self.stats
        return {
            "running": self.running, "preset": self.config.preset, "source": self.source.description,
            "source_state": s.source_state, "camera": self.held or "on", "holds": sorted(self._holds),
            "segmenter": self.segmenter.card.name if self.segmenter else "none (passthrough)",
            "frames_captured": s.frames_captured, "frames_processed": s.frames_processed,
            "frames_sent": s.frames_sent, "frames_repeated": s.frames_repeated,
            "placeholder_frames": s.placeholder_frames, "process_ms": round(s.process_ms, 2),
            "stage_ms": {k: round(v, 2) for k, v in s.stage_ms.items()},
            "sinks": [{"sink": w.description, "written": w.written, "failed": w.failed} for w in self.sink_workers],
            "last_error": s.last_error,
        }
