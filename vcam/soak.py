"""``vcam soak``: the full pipeline at 30 fps on the demo clip with every sink, for N minutes, reporting frames
delivered and dropped, frame-time percentiles and the memory (RSS) slope after warm-up.

Sinks: the virtual camera (a discarding pyvirtualcam backend when no loopback device exists), y4m to /dev/null,
the MJPEG preview with one client reading it, and an mp4 file in a temporary folder (deleted afterwards; left
out with ``--no-file``). ``--load N`` adds N busy processes to show behaviour with the other cores taken.
"""

from __future__ import annotations

import http.client
import logging
import multiprocessing
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyvirtualcam

from .config import build_config
from .daemon import Daemon
from .sinks import MjpegPreviewSink, make_sink
from .sinks.virtual import VirtualCameraSink

log = logging.getLogger(__name__)
MAX_RSS_GROWTH_MB = 5.0


class _DiscardingCamera:
    """A pyvirtualcam backend that accepts frames and drops them (soak on machines without a loopback device)."""

    def __init__(self, *, width: int, height: int, fps: float, fourcc: int, device: str | None, **kw: Any) -> None:
        self.frames = 0

    def send(self, frame: np.ndarray) -> None:
        self.frames += 1

    def close(self) -> None:
        pass

    def device(self) -> str:
        return "discard"

    def native_fourcc(self) -> None:
        return None


def rss_mb() -> float:
    """Resident set size of this process in MB (Linux /proc; 0 elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def _burn() -> None:
    while True:
        pass


def _read_preview(sink: MjpegPreviewSink, stop: threading.Event) -> None:
    """A well-behaved preview client: reads the MJPEG stream until told to stop."""
    while not stop.is_set():
        try:
            conn = http.client.HTTPConnection("127.0.0.1", sink.port, timeout=5)
            conn.request("GET", f"/stream.mjpg?token={sink.token}")
            response = conn.getresponse()
            while not stop.is_set():
                if not response.read(65536):
                    break
        except OSError:
            stop.wait(0.5)


def _percentile(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 2) if values else 0.0


def _soak_sinks(file_dir: str | None) -> tuple[list[Any], MjpegPreviewSink, str]:
    """The sinks a real session has: the virtual camera (or a discarding stand-in where there is no loopback
    device), y4m to /dev/null, a preview page with a client, and (``file_dir``) an mp4 file."""
    virtual = VirtualCameraSink()
    try:
        virtual.open(1280, 720, 30)
        virtual.close()
        virtual_kind = "loopback device"
    except Exception:
        pyvirtualcam.register_backend("discard", _DiscardingCamera)
        virtual = VirtualCameraSink(backend="discard")
        virtual_kind = "discarding backend (no loopback device)"
    preview = MjpegPreviewSink(port=0)
    sinks = [virtual, make_sink("y4m:/dev/null"), preview]
    if file_dir is not None:
        sinks.append(make_sink(f"file:{file_dir}/soak.mp4"))
    return sinks, preview, virtual_kind


def run_soak(minutes: float, load: int = 0, warmup_s: float = 30.0, sample_s: float = 2.0,
             file_sink: bool = True) -> dict[str, Any]:
    """``file_sink=False`` leaves out the mp4 file, whose muxer keeps an in-memory index that grows ~72 bytes per
    frame until the file is closed: what is left is the daemon's own memory behaviour."""
    duration = minutes * 60.0
    tmp = tempfile.TemporaryDirectory(prefix="vcam-soak-")
    sinks, preview, virtual_kind = _soak_sinks(tmp.name if file_sink else None)
    config = build_config({"source": {"device": "demo"}, "output": {"sinks": []}})
    daemon = Daemon(config, sinks=sinks)
    burners = [multiprocessing.Process(target=_burn, daemon=True) for _ in range(load)]
    for p in burners:
        p.start()
    stop_reader = threading.Event()
    samples: list[tuple[float, float, int]] = []  # (t, rss MB, frames sent)
    daemon.start()
    threading.Thread(target=_read_preview, args=(preview, stop_reader), daemon=True).start()
    t0 = time.monotonic()
    try:
        while (elapsed := time.monotonic() - t0) < duration:
            time.sleep(sample_s)
            samples.append((time.monotonic() - t0, rss_mb(), daemon.stats.frames_sent))
            if len(samples) % 15 == 0:
                log.info("soak %.0f s: %d frames sent, RSS %.1f MB", elapsed, samples[-1][2], samples[-1][1])
    finally:
        stop_reader.set()
        daemon.stop()
        for p in burners:
            p.terminate()
        tmp.cleanup()
    result = {"minutes": minutes, "load_processes": load, "virtual_camera": virtual_kind}
    result.update(_summary(daemon, samples, min(warmup_s, duration / 3), sample_s * config.output.fps))
    return result


def _summary(daemon: Daemon, samples: list[tuple[float, float, int]], warmup_s: float,
             frames_per_sample: float) -> dict[str, Any]:
    """Frame counts, timing percentiles, memory growth after the warm-up, and intervals that stalled."""
    stats = daemon.stats
    process_ms = list(stats.recent_process_ms)
    intervals = list(stats.recent_output_interval_ms)
    after = [(t, r, f) for t, r, f in samples if t >= warmup_s]
    ts = np.array([t for t, _, _ in after])
    rss = np.array([r for _, r, _ in after])
    slope = float(np.polyfit(ts / 60.0, rss, 1)[0]) if len(after) >= 3 else 0.0
    growth = float(rss[-3:].mean() - rss[:3].mean()) if len(after) >= 6 else 0.0
    # Frames never stop: every sampling interval delivered at least half the frames the clock asks for.
    per_interval = np.diff([f for _, _, f in samples])
    stalls = int((per_interval < 0.5 * frames_per_sample).sum())
    result = {
        "frames_delivered": stats.frames_sent, "frames_captured": stats.frames_captured,
        "frames_processed": stats.frames_processed,
        "camera_frames_dropped": stats.frames_captured - stats.frames_processed,
        "output_repeats": stats.frames_repeated, "processing_errors": daemon.pipeline.errors.total,
        "sinks": [{"sink": w.description, "written": w.written, "failed": w.failed} for w in daemon.sink_workers],
        "process_ms_p50": _percentile(process_ms, 50), "process_ms_p99": _percentile(process_ms, 99),
        "output_interval_ms_p50": _percentile(intervals, 50), "output_interval_ms_p99": _percentile(intervals, 99),
        "rss_mb_after_warmup": round(float(rss[0]), 1) if len(rss) else 0.0,
        "rss_mb_end": round(float(rss[-1]), 1) if len(rss) else 0.0,
        "rss_growth_mb": round(growth, 2), "rss_slope_mb_per_min": round(slope, 3),
        "stalled_intervals": stalls,
    }
    result["ok"] = bool(growth <= MAX_RSS_GROWTH_MB and stalls == 0 and stats.frames_sent > 0
                        and daemon.pipeline.errors.total == 0)
    return result
