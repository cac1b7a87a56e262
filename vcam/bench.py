"""``vcam bench``: per-stage median milliseconds and CPU time per frame, at one thread everywhere.

All CPU figures are this thread's CPU time (``time.thread_time``; at one thread the decoder, OpenCV and ONNX
Runtime all work on it), so other processes on a busy machine do not inflate them; ``fps`` is wall-clock and
does depend on the machine's load.

``cpu_ms_per_frame`` is the mean CPU time per frame of decoding the source, the pipeline and converting the
output frame to I420 (what the virtual camera sink does), not just the effects. ``process_cpu_ms_per_frame`` is
the process's CPU time over the same frames (with ``reference``, ours and the reference's together): a check
that no work hides in other threads.

``reference=True`` also runs, on each decoded frame right after ours, the per-frame work of the blur mode of
Linux-Fake-Background-Webcam re-implemented with the same segmenter (full-resolution mask, threshold, 5x5 dilate,
10x10 box blur, 21x21 Gaussian background, linear blend, the same decode and I420) and reports our cost as a
ratio of it. The two are paired frame by frame, so a change in the machine's load hits both alike: this
machine's speed drifts by 1.5x between runs, the ratio much less. The reference works at the output size too: a source
frame of another size is centre-cropped to the output's aspect ratio and resized (bilinear) first, as LFBW
would get it from a camera opened at the output size.

``latency_p50_ms`` / ``latency_p99_ms``: wall time from a decoded frame (its capture timestamp) to its I420 frame
written, i.e. the latency vcam's processing adds in this one thread. In the daemon the output clock adds the
wait for its next tick (up to one output period) on top.
"""

from __future__ import annotations

import ctypes
import logging
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from .config import build_config
from .pipeline import STAGES, Pipeline, fit_window
from .segmenter import Segmenter, load_segmenter
from .sources import open_source

log = logging.getLogger(__name__)
WARMUP_FRAMES = 10
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters
_KEEP_BELOW = 32 << 20  # allocations up to 32 MB (a 4K BGR frame) come from the heap


def keep_freed_memory() -> bool:
    """Keep freed frame-sized memory in the process (glibc), so no allocation page-faults in fresh pages.

    The reference allocates ~7 MB of full-resolution temporaries per 720p frame; by default glibc maps them
    fresh and hands them back, ~1,800 page faults per frame, and, through the heap trimming they cause, ~320 more
    in our decoder, which has none when it runs alone. That churn depends on the process's history (the same
    reference cost 18 ms per frame in one process and 24 ms in the next), so the bench turns it off: the
    reference is timed at its best, and ours as it runs in the daemon. True when it took effect (glibc only)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, _KEEP_BELOW) and libc.mallopt(_M_TRIM_THRESHOLD, 2 * _KEEP_BELOW))
    except (OSError, AttributeError):  # not glibc: nothing to tune
        return False


def lfbw_blur_frame(frame: np.ndarray, seg: Segmenter, out: np.ndarray) -> None:
    """One frame of Linux-Fake-Background-Webcam's default blur mode (threshold 0.75, ``blur=21``), written
    after its ``compose_frame``: the baseline ``vcam bench --reference`` compares against."""
    h, w = frame.shape[:2]
    mask = cv2.resize(seg.process(frame), (w, h), interpolation=cv2.INTER_LINEAR)
    cv2.threshold(mask, 0.75, 1, cv2.THRESH_BINARY, dst=mask)
    cv2.dilate(mask, np.ones((5, 5), np.uint8), iterations=1, dst=mask)
    cv2.blur(mask, (10, 10), dst=mask)
    background = cv2.GaussianBlur(frame, (21, 21), 7, borderType=cv2.BORDER_DEFAULT)
    cv2.blendLinear(frame, background, mask, 1 - mask, dst=out)


def fit_to_output(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``frame`` centre-cropped to the aspect ratio of ``size`` and resized (bilinear) to it: the reference's
    input for a source of another size than the output."""
    h, w = frame.shape[:2]
    if (w, h) == size:
        return frame
    window = fit_window(w, h, *size)
    if window is not None:
        x0, y0, cw, ch = window
        frame = frame[y0:y0 + ch, x0:x0 + cw]
    return cv2.resize(frame, size, interpolation=cv2.INTER_LINEAR)


def reference_frame(seg: Segmenter, size: tuple[int, int]) -> Callable[[np.ndarray], np.ndarray]:
    """The reference's per-frame work on a decoded frame: fit it to the output size, LFBW blur; its output."""
    out = np.empty((size[1], size[0], 3), np.uint8)

    def per_frame(frame: np.ndarray) -> np.ndarray:
        lfbw_blur_frame(fit_to_output(frame, size), seg, out)
        return out

    return per_frame


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def _p99(values: list[float]) -> float:
    return round(float(np.percentile(values, 99)), 3)


class _Samples:
    """Per-frame figures of one bench run (milliseconds)."""

    def __init__(self) -> None:
        self.stages: dict[str, list[float]] = {name: [] for name in STAGES}
        self.decode: list[float] = []
        self.pipeline: list[float] = []
        self.i420: list[float] = []
        self.latency: list[float] = []
        self.reference: list[float] = []  # thread CPU ms of the reference's work on the same frame (paired)


def _measure(src: Any, pipeline: Pipeline, frames: int, camera_size: tuple[int, int] | None,
             size: tuple[int, int], reference: Callable[[np.ndarray], np.ndarray] | None = None
             ) -> tuple[_Samples, float, float]:
    """Run ``frames`` frames (after a warm-up) through decode, the pipeline and I420, and, with ``reference``,
    the reference's work on the same decoded frame right after (paired, so a change in the machine's load hits
    both alike); the samples, the process CPU seconds and our wall seconds (the reference's left out) of the
    measured frames."""
    i420 = np.zeros((size[1] * 3 // 2, size[0]), np.uint8)
    samples = _Samples()
    cpu0 = wall0 = reference_wall = 0.0
    for i in range(frames + WARMUP_FRAMES):
        if i == WARMUP_FRAMES:
            cpu0, wall0, reference_wall = time.process_time(), time.perf_counter(), 0.0
        t0 = time.thread_time()
        frame = src.read()
        if frame is None:
            raise RuntimeError(f"source {src.description} gave no frame")
        if camera_size is not None:
            frame = cv2.resize(frame, camera_size, interpolation=cv2.INTER_AREA)
        captured = time.perf_counter()  # the frame's capture timestamp: a camera frame has just arrived
        t1 = time.thread_time()
        out = pipeline.process(frame)
        t2 = time.thread_time()
        cv2.cvtColor(out, cv2.COLOR_BGR2YUV_I420, dst=i420)  # what the virtual camera sink does per frame
        t3 = time.thread_time()
        done = time.perf_counter()
        if reference is not None:
            cv2.cvtColor(reference(frame), cv2.COLOR_BGR2YUV_I420, dst=i420)
        t4 = time.thread_time()
        reference_wall += time.perf_counter() - done
        latency = (done - captured) * 1e3
        if i >= WARMUP_FRAMES:
            samples.latency.append(latency)
            samples.decode.append((t1 - t0) * 1e3)
            samples.pipeline.append((t2 - t1) * 1e3)
            samples.i420.append((t3 - t2) * 1e3)
            samples.reference.append((t4 - t3) * 1e3)
            for name in STAGES:
                samples.stages[name].append(pipeline.timings_ms[name])
    return samples, time.process_time() - cpu0, time.perf_counter() - wall0 - reference_wall


def run_bench(source: str = "demo", size: tuple[int, int] = (1280, 720), frames: int = 300, preset: str = "blur",
              segmenter: str = "auto", overrides: dict[str, Any] | None = None,
              camera_size: tuple[int, int] | None = None, reference: bool = False,
              loaded: Segmenter | None = None) -> dict[str, Any]:
    """``camera_size`` downscales each decoded frame first, standing in for a low-resolution camera (that resize
    is counted in ``decode_ms`` and ``cpu_ms_per_frame``). ``loaded``: an already loaded segmenter to use instead
    of loading ``segmenter`` (a loop over many sources)."""
    cv2.setNumThreads(1)
    keep_freed_memory()
    data = {"preset": preset, "output": {"width": size[0], "height": size[1], "sinks": []},
            "model": {"segmenter": segmenter, "threads": 1}}
    from .config import deep_merge

    config = build_config(deep_merge(data, overrides or {}), origin="bench")
    seg = loaded or load_segmenter(config.model.segmenter, threads=1)
    pipeline = Pipeline(config, seg)
    src = open_source(source, *size, 30.0, realtime=False)
    src.open()
    try:
        samples, cpu, wall = _measure(src, pipeline, frames, camera_size, size,
                                      reference_frame(seg, size) if reference else None)
    finally:
        src.close()
    result: dict[str, Any] = {
        "source": source, "camera_size": f"{camera_size[0]}x{camera_size[1]}" if camera_size else "native",
        "size": f"{size[0]}x{size[1]}", "preset": preset, "segmenter": seg.card.name,
        "frames": frames, "decode_ms": _median(samples.decode),
    }
    for name in STAGES:
        result[f"{name}_ms"] = _median(samples.stages[name])
    # the mean too where it differs from the median: the segment stage skips the model on still frames
    result["segment_mean_ms"] = round(statistics.fmean(samples.stages["segment"]), 3) if samples.stages[
        "segment"] else 0.0
    result["pipeline_ms"] = _median(samples.pipeline)
    result["i420_ms"] = _median(samples.i420)
    ours = [d + p + o for d, p, o in zip(samples.decode, samples.pipeline, samples.i420)]
    result["cpu_ms_per_frame"] = round(statistics.fmean(ours), 3)
    result["process_cpu_ms_per_frame"] = round(cpu * 1e3 / frames, 3)
    result["fps"] = round(frames / wall, 1)
    result["latency_p50_ms"] = _median(samples.latency)
    result["latency_p99_ms"] = _p99(samples.latency)
    if reference:
        ref = statistics.fmean(d + r for d, r in zip(samples.decode, samples.reference))
        result["reference_cpu_ms_per_frame"] = round(ref, 3)
        result["ratio_to_reference"] = round(result["cpu_ms_per_frame"] / ref, 3)
    return result
