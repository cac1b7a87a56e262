"""The daemon: three parts on three threads, joined by triple buffers, so nothing ever queues.

    capture (vcam.capture)  -> newest camera frame -> processing (vcam.processing) -> newest finished frame
    (the camera's clock)                              (the pipeline, supervised)      + its mask debug view
                                                                                               |
    sinks (each on its own thread) <------------------ output (vcam.output, the output fps clock)

This module builds the parts, starts and stops them, forwards camera holds and settings, and reports status.
Settings changes are validated elsewhere and swapped in between two frames.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from .buffers import TripleBuffer
from .capture import Capture
from .config import Config
from .output import OutputClock
from .pipeline import Pipeline
from .processing import Processor, load_segmenter_safely
from .segmenter import Segmenter
from .sinks import MjpegPreviewSink, SinkError, SinkWorker, make_sink
from .sources import FrameSource, open_source
from .stats import DaemonStats

log = logging.getLogger(__name__)

__all__ = ["Daemon", "DaemonStats"]


class Daemon:
    def __init__(self, config: Config, source: FrameSource | None = None, segmenter: Segmenter | None = None,
                 sinks: list[Any] | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        """``source``/``segmenter``/``sinks`` default to what ``config`` names; tests pass fakes here."""
        # Each of our threads runs its OpenCV calls on one core; OpenCV's own worker pool would fight them
        # (and the call app) for the same cores.
        cv2.setNumThreads(1)
        self.stats = DaemonStats()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        source = source or open_source(config.source.device, config.source.width, config.source.height,
                                       config.source.fps, config.source.fourcc)
        self.capture = Capture(source, config.source, config.output.fps, self.stats, self._stop, clock)
        pipeline = Pipeline(config, segmenter or load_segmenter_safely(config), clock)
        self.sink_workers = [SinkWorker(s) for s in (sinks if sinks is not None else
                                                      [make_sink(spec) for spec in config.output.sinks])]
        previews = [w.sink for w in self.sink_workers if isinstance(w.sink, MjpegPreviewSink)]
        self.processor = Processor(pipeline, self.capture.frames, self.stats, self._stop,
                                   want_debug=lambda: any(p.streams["debug"].clients for p in previews))
        self.output = OutputClock(config.output, self.processor.finished, self.capture, self.sink_workers,
                                  self.stats, self._stop, clock, debug_sinks=self._debug_feeds(previews))

    @staticmethod
    def _debug_feeds(previews: list[MjpegPreviewSink]) -> list[TripleBuffer]:
        """One buffer per preview page for the mask debug view; the preview's own thread is its only reader."""
        feeds = []
        for preview in previews:
            if preview.debug_frame is None:
                feed = TripleBuffer()
                preview.debug_frame = lambda feed=feed: feed.take(timeout=0)
                feeds.append(feed)
        return feeds

    # ----- parts, for status and for tests ----------------------------------------------------------------
    @property
    def config(self) -> Config:
        return self.processor.config

    @property
    def pipeline(self) -> Pipeline:
        return self.processor.pipeline

    @property
    def segmenter(self) -> Segmenter | None:
        return self.pipeline.segmenter

    @property
    def source(self) -> FrameSource:
        return self.capture.source

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
        self.sink_workers[:] = opened  # the output clock holds the same list
        for name, target in (("capture", self.capture.run), ("process", self.processor.run),
                             ("output", self.output.run)):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def request_stop(self) -> None:
        """Ask the threads to stop (safe from a signal handler); :meth:`wait` returns, then call :meth:`stop`."""
        self._stop.set()

    def stop(self) -> None:
        """Stop the threads, close the sinks and the camera."""
        self._stop.set()
        self.capture.frames.wake()
        self.processor.finished.wake()
        for thread in self._threads:
            thread.join(timeout=3.0)
        for worker in self.sink_workers:
            worker.stop()
        self.source.close()
        self.stats.source_state = "stopped"

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the daemon is asked to stop (or ``timeout``); True when it has been."""
        return self._stop.wait(timeout)

    @property
    def running(self) -> bool:
        return bool(self._threads) and not self._stop.is_set()

    def apply_config(self, config: Config) -> None:
        """Swap in an already-validated config; the processing thread picks it up before its next frame."""
        self.processor.apply_config(config)

    # ----- camera holds: pause and on-demand --------------------------------------------------------------
    def hold_camera(self, reason: str) -> None:
        """Release the physical camera for ``reason`` until every hold is lifted. "paused": the output shows the
        pause frame; any other reason (on-demand's "no-reader"): a still frame at ``idle_fps``."""
        self.capture.hold(reason)

    def release_hold(self, reason: str) -> None:
        self.capture.release(reason)

    @property
    def held(self) -> str | None:
        return self.capture.held

    @property
    def pause_frame(self) -> np.ndarray | None:
        return self.output.pause_frame

    @pause_frame.setter
    def pause_frame(self, frame: np.ndarray | None) -> None:
        self.output.pause_frame = frame

    @property
    def idle_fps(self) -> float:
        return self.output.idle_fps

    @idle_fps.setter
    def idle_fps(self, fps: float) -> None:
        self.output.idle_fps = fps

    # ----- status ------------------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        s, errors = self.stats, self.pipeline.errors
        return {
            "running": self.running, "preset": self.config.preset, "source": self.source.description,
            "source_state": s.source_state, "camera": self.held or "on", "holds": self.capture.holds,
            "segmenter": self.segmenter.card.name if self.segmenter else "none (background modes fail closed)",
            "frames_captured": s.frames_captured, "frames_processed": s.frames_processed,
            "frames_sent": s.frames_sent, "frames_repeated": s.frames_repeated,
            "placeholder_frames": s.placeholder_frames, "process_ms": round(s.process_ms, 2),
            "stage_ms": {k: round(v, 2) for k, v in s.stage_ms.items()},
            "fail_closed": s.fail_closed, "mask_problem": s.mask_problem,
            "frames_fail_closed": s.frames_fail_closed,
            "processing_errors": errors.total, "processing_errors_by_stage": dict(errors.by_stage),
            "last_processing_error": errors.last,
            "processing_stalled_s": None if self.output.watchdog.stalled_s is None
            else round(self.output.watchdog.stalled_s, 1),
            "sinks": [{"sink": w.description, "written": w.written, "failed": w.failed} for w in self.sink_workers],
            "last_error": s.last_error,
        }
