"""The daemon end to end with a fake camera and a fake pyvirtualcam backend (the true boundaries)."""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np

from vcam.config import build_config
from vcam.daemon import Daemon
from vcam.sinks import VirtualCameraSink

from .conftest import read_demo_frames
from .fakes import FakeCamera


def _daemon(frames, fps=30.0, preset="blur", **cfg) -> tuple[Daemon, FakeCamera]:
    config = build_config({"preset": preset, "output": {"fps": fps, "sinks": ["virtual"]}, **cfg})
    camera = FakeCamera(frames)
    return Daemon(config, source=camera, sinks=[VirtualCameraSink(backend="fake")]), camera


def _decode(i420: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(i420.reshape(1080, 1280), cv2.COLOR_YUV2BGR_I420)


def test_frames_reach_the_virtual_camera_with_right_format_and_pacing(fake_backend) -> None:
    daemon, _ = _daemon(read_demo_frames(20, step=5))
    daemon.start()
    time.sleep(2.0)
    daemon.stop()
    cam = fake_backend.instances[0]
    assert (cam.width, cam.height) == (1280, 720)
    assert all(f.dtype == np.uint8 and f.size == 1280 * 720 * 3 // 2 for f in cam.frames)
    intervals = np.diff(cam.times[5:])
    assert len(cam.frames) >= 45  # ~60 expected in 2 s at 30 fps
    assert abs(np.median(intervals) - 1 / 30) < 0.006
    assert daemon.stats.frames_processed >= 10  # throughput is a benchmark's job; this only checks flow
    debug = daemon.pipeline.debug_view()  # what the preview page's mask debug view streams
    assert debug is not None and debug.shape == (720, 1280, 3)
    # The output is processed, not the raw camera: the background is blurred.
    out = _decode(cam.frames[-1])
    assert out.shape == (720, 1280, 3)


def test_last_frame_repeats_when_processing_stalls(fake_backend, monkeypatch) -> None:
    daemon, _ = _daemon(read_demo_frames(10, step=10))
    real_process = daemon.pipeline.process
    stall = threading.Event()

    def slow_process(frame):
        if stall.is_set():
            time.sleep(0.5)
        return real_process(frame)

    monkeypatch.setattr(daemon.pipeline, "process", slow_process)
    daemon.start()
    time.sleep(0.8)
    stall.set()
    time.sleep(0.2)  # let the last fast frame through
    before = len(fake_backend.instances[0].frames)
    repeats_before = daemon.stats.frames_repeated
    time.sleep(1.0)
    daemon.stop()
    cam = fake_backend.instances[0]
    sent = len(cam.frames) - before
    assert sent >= 25  # output kept its 30 fps clock while processing ran at 2 fps
    assert daemon.stats.frames_repeated - repeats_before >= 20
    # Repeats are byte-identical copies of the last finished frame.
    identical = sum(np.array_equal(cam.frames[i], cam.frames[i - 1]) for i in range(before + 1, len(cam.frames)))
    assert identical >= 20


def test_unplugged_camera_shows_placeholder_and_recovers(fake_backend) -> None:
    daemon, camera = _daemon(read_demo_frames(10, step=10))
    daemon.start()
    time.sleep(0.8)
    camera.mode = "unplugged"
    time.sleep(1.0)
    assert daemon.stats.source_state == "reconnecting"
    placeholder_count = daemon.stats.placeholder_frames
    assert placeholder_count > 0
    sent_while_away = daemon.stats.frames_sent
    camera.mode = "ok"
    time.sleep(2.0)
    daemon.stop()
    assert daemon.stats.frames_sent > sent_while_away  # the device never stopped receiving frames
    assert camera.opens >= 2
    assert daemon.stats.frames_processed > 0


def test_settings_swap_between_frames(fake_backend) -> None:
    daemon, _ = _daemon(read_demo_frames(10, step=10))
    daemon.start()
    time.sleep(0.5)
    daemon.apply_config(build_config({"preset": "off", "output": {"sinks": ["virtual"]}}))
    time.sleep(0.5)
    assert daemon.config.preset == "off"
    time.sleep(0.3)
    daemon.stop()
    out = _decode(fake_backend.instances[0].frames[-1])
    # passthrough: the output is the camera frame (up to I420 rounding)
    diffs = [np.abs(out.astype(int) - f).mean() for f in daemon.source.frames]
    assert min(diffs) < 3
