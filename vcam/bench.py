"""``vcam bench``: per-stage median milliseconds and process CPU time per frame, at one thread everywhere.

Per-stage figures are this thread's CPU time (``time.thread_time``), so other processes on a busy machine do not
inflate them; ``fps`` is wall-clock and does depend on the machine's load.

``cpu_ms_per_frame`` is the process's CPU time divided by the frames measured, so it includes decoding the
source and converting each output frame to I420 (what the virtual camera sink does), not just the effects.
"""

from __future__ import annotations

import logging
import statistics
import time
from typing import Any

import cv2
import numpy as np

from .config import build_config
from .pipeline import STAGES, Pipeline
from .segmenter import load_segmenter
from .sources import open_source

log = logging.getLogger(__name__)
WARMUP_FRAMES = 10


def run_bench(source: str = "demo", size: tuple[int, int] = (1280, 720), frames: int = 300, preset: str = "blur",
              segmenter: str = "auto", overrides: dict[str, Any] | None = None,
              camera_size: tuple[int, int] | None = None) -> dict[str, Any]:
    """``camera_size`` downscales each decoded frame first, standing in for a low-resolution camera (that resize
    is counted in ``decode_ms`` and ``cpu_ms_per_frame``)."""
    cv2.setNumThreads(1)
    data = {"preset": preset, "output": {"width": size[0], "height": size[1], "sinks": []},
            "model": {"segmenter": segmenter, "threads": 1}}
    from .config import deep_merge

    config = build_config(deep_merge(data, overrides or {}), origin="bench")
    seg = load_segmenter(config.model.segmenter, threads=1)
    pipeline = Pipeline(config, seg)
    src = open_source(source, *size, 30.0, realtime=False)
    src.open()
    i420 = np.zeros((size[1] * 3 // 2, size[0]), np.uint8)
    per_stage: dict[str, list[float]] = {name: [] for name in STAGES}
    totals, decode, output = [], [], []
    cpu0 = wall0 = 0.0
    try:
        for i in range(frames + WARMUP_FRAMES):
            if i == WARMUP_FRAMES:
                cpu0, wall0 = time.process_time(), time.perf_counter()
            t0 = time.thread_time()
            frame = src.read()
            if frame is None:
                raise RuntimeError(f"source {source} gave no frame")
            if camera_size is not None:
                frame = cv2.resize(frame, camera_size, interpolation=cv2.INTER_AREA)
            t1 = time.thread_time()
            out = pipeline.process(frame)
            t2 = time.thread_time()
            cv2.cvtColor(out, cv2.COLOR_BGR2YUV_I420, dst=i420)  # what the virtual camera sink does per frame
            t3 = time.thread_time()
            if i >= WARMUP_FRAMES:
                decode.append((t1 - t0) * 1e3)
                totals.append((t2 - t1) * 1e3)
                output.append((t3 - t2) * 1e3)
                for name in STAGES:
                    per_stage[name].append(pipeline.timings_ms[name])
        cpu = time.process_time() - cpu0
        wall = time.perf_counter() - wall0
    finally:
        src.close()
    result: dict[str, Any] = {
        "source": source, "camera_size": f"{camera_size[0]}x{camera_size[1]}" if camera_size else "native",
        "size": f"{size[0]}x{size[1]}", "preset": preset, "segmenter": seg.card.name,
        "frames": frames, "decode_ms": round(statistics.median(decode), 3),
    }
    for name in STAGES:
        result[f"{name}_ms"] = round(statistics.median(per_stage[name]), 3)
    result["pipeline_ms"] = round(statistics.median(totals), 3)
    result["i420_ms"] = round(statistics.median(output), 3)
    result["cpu_ms_per_frame"] = round(cpu * 1e3 / frames, 3)
    result["fps"] = round(frames / wall, 1)
    return result
