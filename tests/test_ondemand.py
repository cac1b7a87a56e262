"""On-demand camera: debounced reader counting (on a fake clock, and real inotify events on a stand-in device
node), the daemon releasing the camera with no reader and reopening it for one. (Idle pacing at ``idle_fps``:
the fake-clock test in test_daemon.py.)"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from vcam.daily_settings import DaemonSettings
from vcam.ondemand import DeviceReaderMonitor, ReaderTracker, count_open_handles, inotify_available

from .support import BLUR_ON_BELOW, NEW_FRAMES, background_detail, running_session, wait_for

linux_only = pytest.mark.skipif(not inotify_available(), reason="inotify is Linux-only")


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float, tracker: ReaderTracker) -> None:
        self.t += seconds
        tracker.poll()


def _tracker(clock: Clock) -> tuple[ReaderTracker, list[bool]]:
    changes: list[bool] = []
    return ReaderTracker(changes.append, attach_after_s=0.25, release_after_s=5.0, clock=clock), changes


def test_device_polling_apps_never_start_the_camera() -> None:
    """Discord-style polling: open, query, close within milliseconds, every half second."""
    clock = Clock()
    tracker, changes = _tracker(clock)
    for _ in range(40):
        tracker.opened()
        clock.advance(0.004, tracker)
        tracker.closed()
        clock.advance(0.5, tracker)
    assert changes == [] and tracker.readers == 0 and tracker.opens == 40


def test_a_reader_starts_the_camera_and_leaving_releases_it_after_the_delay() -> None:
    clock = Clock()
    tracker, changes = _tracker(clock)
    tracker.opened()
    clock.advance(0.2, tracker)
    assert changes == []
    clock.advance(0.06, tracker)
    assert changes == [True]
    tracker.opened()  # a second reader (a browser tab and the call app)
    tracker.closed()
    clock.advance(10, tracker)
    assert changes == [True]  # one reader left
    tracker.closed()
    clock.advance(4.9, tracker)
    assert changes == [True]
    clock.advance(0.2, tracker)
    assert changes == [True, False]


def test_close_and_reopen_within_the_release_delay_keeps_the_camera() -> None:
    clock = Clock()
    tracker, changes = _tracker(clock)
    tracker.opened()
    clock.advance(1, tracker)
    tracker.closed()  # an app renegotiating the format closes and reopens
    clock.advance(0.3, tracker)
    tracker.opened()
    clock.advance(10, tracker)
    assert changes == [True]


def test_closes_of_opens_before_we_watched_are_ignored() -> None:
    clock = Clock()
    tracker, changes = _tracker(clock)
    tracker.closed()
    tracker.closed()
    assert tracker.readers == 0
    tracker.opened()
    clock.advance(0.3, tracker)
    assert changes == [True] and tracker.readers == 1


@linux_only
def test_real_inotify_events_drive_the_tracker(tmp_path: Path) -> None:
    node = tmp_path / "video9"  # a stand-in for /dev/video9: inotify reports opens of any file the same way
    node.write_bytes(b"")
    changes: list[tuple[bool, float]] = []
    tracker = ReaderTracker(lambda on: changes.append((on, time.monotonic())), attach_after_s=0.25,
                            release_after_s=0.5)
    monitor = DeviceReaderMonitor(node, tracker)
    monitor.start()
    try:
        for _ in range(10):  # polling: open and close at once
            os.close(os.open(node, os.O_RDONLY))
        wait_for(lambda: tracker.opens == 10 and tracker.closes == 10, timeout=10)
        fd = os.open(node, os.O_RDWR)  # a reader that stays (Chrome opens O_RDWR)
        assert count_open_handles(node) == 1
        wait_for(lambda: bool(changes), timeout=10)
        assert [on for on, _ in changes] == [True]  # the polls never started the camera; the reader did
        os.close(fd)
        wait_for(lambda: len(changes) == 2, timeout=10)
        assert changes[1][0] is False
    finally:
        monitor.stop()


@linux_only
def test_daemon_releases_the_camera_without_a_reader_and_reopens_for_one(tmp_path: Path) -> None:
    node = tmp_path / "video9"
    node.write_bytes(b"")
    settings = DaemonSettings(on_demand=True, attach_after_s=0.25, release_after_s=0.5, watch_config=False)
    with running_session("blur", settings=settings, reader_device=str(node)) as run:
        daemon = run.daemon
        # No reader: the camera is never opened; the device gets still frames.
        written = run.written()
        wait_for(lambda: run.written() > written + 2, timeout=20)
        assert daemon.source._cap is None and daemon.stats.frames_captured == 0
        status = run.client.request("status")["status"]
        assert status["camera"] == "idle" and status["readers"] == 0 and status["on_demand"] is True

        # A reader appears: the camera opens and live, blurred frames flow.
        fd = os.open(node, os.O_RDWR)
        try:
            wait_for(lambda: daemon.source._cap is not None and daemon.stats.frames_processed > 0, timeout=20)
            start = run.written()
            assert background_detail(run.wait_distinct(start, NEW_FRAMES)[-1]) < BLUR_ON_BELOW
            assert run.client.request("status")["status"]["camera"] == "on"
        finally:
            os.close(fd)
        # The reader leaves: released after release_after_s.
        wait_for(lambda: daemon.source._cap is None, timeout=20)
        assert run.client.request("status")["status"]["camera"] == "idle"

        # Pause wins over a reader: the camera stays released while paused.
        run.client.request("pause")
        fd = os.open(node, os.O_RDWR)
        try:
            wait_for(lambda: run.session.tracker.active, timeout=20)  # the reader counts: only the pause holds
            assert daemon.source._cap is None
            run.client.request("resume")
            wait_for(lambda: daemon.source._cap is not None, timeout=20)
        finally:
            os.close(fd)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_count_open_handles_excludes_ourselves(tmp_path: Path) -> None:
    node = tmp_path / "video9"
    node.write_bytes(b"")
    with open(node, "rb"):
        assert count_open_handles(node) == 1
        assert count_open_handles(node, exclude_pids=(os.getpid(),)) == 0


def test_daemon_section_of_the_config_reaches_the_session() -> None:
    from vcam.config import Config, build_config
    from vcam.daily_settings import daemon_settings

    if "daemon" not in Config.model_fields:
        pytest.skip("vcam.config.Config has no [daemon] section yet (add `daemon: DaemonSettings`)")
    config = build_config({"daemon": {"on_demand": False, "release_after_s": 9}})
    assert daemon_settings(config) == DaemonSettings(on_demand=False, release_after_s=9)
