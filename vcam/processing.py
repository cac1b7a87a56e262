"""The processing part of the daemon: newest camera frame -> pipeline -> newest finished frame, supervised.

Nothing that goes wrong in here stops frames: a stage that raises is handled by the pipeline (see
:mod:`vcam.pipeline`), and anything else that raises while a frame is processed sends that frame down the safe
path too. Errors are counted and logged rate-limited (:class:`~vcam.failsafe.ErrorLog`); status shows them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import numpy as np

from .buffers import TripleBuffer
from .config import Config
from .frame import FrameContext
from .pipeline import Pipeline
from .segmenter import ModelError, Segmenter, load_segmenter
from .stats import DaemonStats

log = logging.getLogger(__name__)

STALL_S = 1.0  # the watchdog reports processing as stalled after this long without a frame while the camera is live


def load_segmenter_safely(config: Config) -> Segmenter | None:
    """The configured segmenter; if it is broken, the best working one; if none works, None (background modes
    then fail closed: the whole frame blurred beyond recognition)."""
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
    log.error("no segmenter works: background modes show the whole frame blurred (fail closed)")
    return None


class Processor:
    """Runs the pipeline on the newest captured frame; ``finished`` holds the newest output and its debug view."""

    def __init__(self, pipeline: Pipeline, captured: TripleBuffer, stats: DaemonStats, stop: threading.Event,
                 want_debug: Callable[[], bool] = lambda: False,
                 load_segmenter: Callable[[Config], Segmenter | None] = load_segmenter_safely) -> None:
        self.pipeline = pipeline
        self.config = pipeline.config
        self.captured = captured
        self.finished = TripleBuffer()
        self.stats = stats
        self.want_debug = want_debug
        self.load_segmenter = load_segmenter
        self._stop = stop
        self._lock = threading.Lock()
        self._pending: Config | None = None
        self._session = 0

    def apply_config(self, config: Config) -> None:
        """Swap in an already-validated config before the next frame (callable from any thread)."""
        with self._lock:
            self._pending = config

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                self.step(timeout=0.1)
            except Exception as exc:  # noqa: BLE001 - the loop itself must outlive anything a frame does
                self.pipeline.errors.report("processing loop", exc)
                self._stop.wait(0.01)

    def step(self, timeout: float | None = 0.0) -> bool:
        """Apply pending settings, then process the newest captured frame if one comes within ``timeout`` s;
        True when a frame was finished."""
        with self._lock:
            pending, self._pending = self._pending, None
        if pending is not None:
            self._swap_config(pending)
        slot = self.captured.take_slot(timeout)
        if slot is None or slot.image is None:
            return False
        if slot.tag != self._session:  # the camera was released or reconnected: another scene
            self._session = slot.tag
            self.pipeline.reset()
        t0 = time.perf_counter()
        ctx = self._process(slot.image)
        self._record(ctx, (time.perf_counter() - t0) * 1e3)
        assert ctx.output is not None
        self.finished.publish_copy(ctx.output, extra=ctx.debug, tag=slot.tag)
        self.stats.frames_processed += 1
        return True

    def _process(self, frame: np.ndarray) -> FrameContext:
        try:
            return self.pipeline.run(frame, want_debug=self.want_debug())
        except Exception as exc:  # noqa: BLE001 - outside any stage, still never stop frames
            self.pipeline.errors.report("pipeline", exc)
            ctx = FrameContext(camera=frame, frame=frame, out_size=self.pipeline.out_size)
            self.pipeline.take_safe_path(ctx, f"processing failed: {type(exc).__name__}: {exc}")
            return ctx

    def _record(self, ctx: FrameContext, wall_ms: float) -> None:
        s = self.stats
        s.process_ms = wall_ms
        s.recent_process_ms.append(wall_ms)
        s.stage_ms = dict(ctx.timings_ms)
        s.mask_problem = ctx.mask_problem
        if ctx.fail_closed != s.fail_closed:
            if ctx.fail_closed:
                log.error("failing closed (whole frame blurred): %s", ctx.fail_closed)
            else:
                log.info("mask back: the background effect is on again")
        s.fail_closed = ctx.fail_closed
        s.frames_fail_closed += ctx.fail_closed is not None

    def _swap_config(self, config: Config) -> None:
        old, self.config = self.config, config
        try:
            if config.model.segmenter != old.model.segmenter or config.model.threads != old.model.threads:
                self.pipeline.segmenter = self.load_segmenter(config)
            self.pipeline.configure(config)
        except Exception as exc:  # noqa: BLE001 - a settings swap must not stop frames either
            self.pipeline.errors.report("settings", exc)
        # output.fit is read per frame; the rest of source/output is fixed while the devices are open
        if config.output.model_copy(update={"fit": old.output.fit}) != old.output or config.source != old.source:
            log.warning("source/output changes take effect after a restart of the daemon")
        log.info("settings applied (preset %s)", config.preset)


class Watchdog:
    """Reports when processed frames stop advancing for over ``limit_s`` while the camera is live."""

    def __init__(self, limit_s: float = STALL_S) -> None:
        self.limit_s = limit_s
        self.stalled_s: float | None = None  # how long processing has been stalled (None: it is not)
        self._count = -1
        self._since = 0.0

    def check(self, now: float, processed: int, camera_live: bool) -> None:
        if processed != self._count or not camera_live:
            if self.stalled_s is not None:
                log.warning("processing resumed after %.1f s", now - self._since)
            self._count, self._since, self.stalled_s = processed, now, None
            return
        if now - self._since > self.limit_s:
            if self.stalled_s is None:
                log.error("processing stalled: no frame finished for %.1f s while the camera is live",
                          now - self._since)
            self.stalled_s = now - self._since
