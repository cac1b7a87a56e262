"""Figures for the everyday surface: hot-reload latency, idle CPU with no reader, camera reopen latency when a
reader appears, control API round trip. Runs the real daemon (demo clip, real segmenter, y4m sink) in this
process with the on-demand camera watching a stand-in device node (inotify reports opens of any file alike).

    python -m tools.evaluation.daily_figures [--idle-seconds 30] [--json]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ..config import build_config, read_config_file
from ..control import ControlClient
from ..daemon import Daemon
from ..daily_settings import DaemonSettings
from ..live_config import LiveConfig
from ..session import DaemonSession


def _wait(predicate: Callable[[], bool], timeout: float) -> float:
    t0 = time.monotonic()
    while not predicate():
        if time.monotonic() - t0 > timeout:
            raise TimeoutError("condition not reached")
        time.sleep(0.002)
    return time.monotonic() - t0


def measure(idle_seconds: float = 30.0, reloads: int = 10, reopens: int = 5, pings: int = 200) -> dict:
    root = Path(tempfile.mkdtemp(prefix="vcf"))
    node = root / "video9"
    node.write_bytes(b"")
    path = root / "config.toml"
    path.write_text("[background]\nblur_strength = 50\n")
    cli = {"source": {"device": "demo"}, "output": {"sinks": [f"y4m:{root / 'out.y4m'}"]}}
    file_data = read_config_file(path)
    config = build_config(file_data, cli)
    daemon = Daemon(config)
    live = LiveConfig(config, daemon.apply_config, path=path, file_data=file_data, cli_overrides=cli)
    settings = DaemonSettings(on_demand=True, attach_after_s=0.25, release_after_s=1.0)
    session = DaemonSession(daemon, live, control_address=root / "run" / "control.sock",
                            reader_device=str(node), settings=settings)
    session.start()
    client = ControlClient(root / "run" / "control.sock")
    out: dict = {"cpu_count": os.cpu_count(), "load_avg_1m": os.getloadavg()[0]}
    try:
        # Idle: nobody reads the virtual camera, the physical camera is released.
        time.sleep(1.5)
        assert daemon.held == "idle" and daemon.stats.frames_captured == 0
        wall0, cpu0 = time.monotonic(), time.process_time()
        time.sleep(idle_seconds)
        out["idle_cpu_percent_of_one_core"] = round((time.process_time() - cpu0) / (time.monotonic() - wall0) * 100,
                                                    2)
        out["idle_seconds"] = idle_seconds

        # A reader appears: time to the camera open and to the first processed live frame.
        opened, first = [], []
        for _ in range(reopens):
            processed = daemon.stats.frames_processed
            t0 = time.monotonic()
            fd = os.open(node, os.O_RDWR)
            opened.append(_wait(lambda: daemon.source._cap is not None, 5.0))
            _wait(lambda p=processed: daemon.stats.frames_processed > p, 5.0)
            first.append(time.monotonic() - t0)
            time.sleep(0.5)
            os.close(fd)
            _wait(lambda: daemon.source._cap is None and daemon.stats.source_state == "idle", 5.0)
            time.sleep(0.5)  # let a frame still in processing at the release finish: count only fresh ones
        out["reopen_camera_open_ms"] = _stats(opened)
        out["reopen_first_frame_ms"] = _stats(first)

        # Hot reload while live: file write -> the processing thread runs the new config.
        fd = os.open(node, os.O_RDWR)
        _wait(lambda: daemon.stats.source_state == "live", 5.0)
        latencies = []
        for i in range(reloads):
            strength = 30 + i
            t0 = time.monotonic()
            path.write_text(f"[background]\nblur_strength = {strength}\n")
            latencies.append(_wait(lambda s=strength: daemon.config.background.blur_strength == s, 5.0))
            time.sleep(0.3)
        out["reload_ms"] = _stats(latencies)

        rtts = []
        for _ in range(pings):
            t0 = time.perf_counter()
            client.request("status")
            rtts.append(time.perf_counter() - t0)
        out["status_round_trip_ms"] = _stats(rtts)
        os.close(fd)
    finally:
        session.stop()
    return out


def _stats(seconds: list[float]) -> dict:
    ms = sorted(s * 1e3 for s in seconds)
    return {"n": len(ms), "median": round(statistics.median(ms), 2), "max": round(ms[-1], 2),
            "p90": round(ms[min(len(ms) - 1, int(0.9 * len(ms)))], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    result = measure(args.idle_seconds)
    print(json.dumps(result, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
