"""Hot reload: the watcher sees edits, the daemon applies a valid one within a second without reopening the
camera, and an invalid one keeps the last good config running with the error visible in `vcam status`."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from vcam.watcher import ConfigWatcher

from .support import BLUR_OFF_ABOVE, BLUR_ON_BELOW, NEW_FRAMES, background_detail, running_session, wait_for


def _watch(path: Path) -> tuple[ConfigWatcher, list[float]]:
    calls: list[float] = []
    watcher = ConfigWatcher(path, lambda: calls.append(time.monotonic()))
    watcher.start()
    return watcher, calls


def test_watcher_sees_writes_and_renames_but_not_touches(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('preset = "blur"\n')
    watcher, calls = _watch(path)
    try:
        time.sleep(0.5)  # two polls and more: nothing changed, nothing reloads
        assert calls == []
        path.write_text('preset = "off"\n')
        wait_for(lambda: len(calls) == 1, timeout=10)
        os.utime(path)  # touched, content unchanged
        time.sleep(0.5)  # the watcher settles a change in two polls (0.4 s)
        assert len(calls) == 1
        tmp = tmp_path / "config.toml.new"  # how editors save: write a new file, rename it over the old
        tmp.write_text('preset = "office"\n')
        os.replace(tmp, path)
        wait_for(lambda: len(calls) == 2, timeout=10)
        path.unlink()  # a deleted file keeps the current settings: no reload
        time.sleep(0.5)
        assert len(calls) == 2
    finally:
        watcher.stop()


def test_watcher_survives_a_failing_reload(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("a = 1\n")
    failures = threading.Event()

    def reload() -> None:
        failures.set()
        raise ValueError("invalid")

    watcher = ConfigWatcher(path, reload)
    watcher.start()
    try:
        path.write_text("a = 2\n")
        assert failures.wait(1.5)
        failures.clear()
        path.write_text("a = 3\n")
        assert failures.wait(1.5)  # still watching after the failure
    finally:
        watcher.stop()


def test_hot_reload_on_the_running_daemon() -> None:
    with running_session(file_text='preset = "blur"\n') as run:
        run.wait_written(10)
        capture = run.daemon.source._cap
        assert run.client.request("status")["status"]["config_error"] is None

        # A valid edit: applied (swapped into the processing thread) within one second, camera not reopened.
        t0 = time.monotonic()
        run.session.live.path.write_text('preset = "off"\n')
        latency = wait_for(lambda: run.daemon.config.preset == "off", timeout=1.0)
        start = run.written()
        print(f"hot reload: file write -> applied in {latency * 1e3:.0f} ms")
        assert background_detail(run.wait_distinct(start, NEW_FRAMES)[-1]) > BLUR_OFF_ABOVE
        assert run.daemon.source._cap is capture

        # Invalid TOML: the last good config keeps running; the error is in `vcam status`.
        run.session.live.path.write_text('preset = "blur"\n[background\n')
        wait_for(lambda: run.client.request("status")["status"]["config_error"] is not None, timeout=1.5)
        status = run.client.request("status")["status"]
        assert "not valid TOML" in status["config_error"] and status["preset"] == "off"
        assert run.daemon.config.preset == "off"
        written = run.written()
        wait_for(lambda: run.written() > written + 15, timeout=10)
        assert background_detail(run.wait_distinct(run.written() - 5, 1)[-1]) > BLUR_OFF_ABOVE

        # A wrong value: the error names the field; still the last good config.
        run.session.live.path.write_text('preset = "blur"\n[background]\nblur_strength = 500\n')
        wait_for(lambda: "blur_strength" in (run.client.request("status")["status"]["config_error"] or ""),
                 timeout=1.5)
        assert run.daemon.config.preset == "off"

        # Fixed: applied, error cleared, the runtime change made before is dropped (the file is the truth).
        run.client.request("set", field="beauty.strength", value=0.9)
        t0 = time.monotonic()
        run.session.live.path.write_text('preset = "blur"\n[background]\nblur_strength = 70\n')
        wait_for(lambda: run.daemon.config.background.blur_strength == 70, timeout=1.0)
        status = run.client.request("status")["status"]
        assert status["config_error"] is None and status["runtime_changes"] == {}
        assert status["preset"] == "blur" and run.daemon.config.beauty.strength == 0.5
        assert background_detail(run.wait_distinct(run.written(), NEW_FRAMES)[-1]) < BLUR_ON_BELOW
        assert run.daemon.source._cap is capture
        print(f"hot reload after an error: {(time.monotonic() - t0) * 1e3:.0f} ms to applied + the change in the output")


def test_user_presets_from_the_file_and_reload_request() -> None:
    text = 'preset = "meeting"\n[presets.meeting]\nbackground = { mode = "blur", blur_strength = 20 }\n'
    with running_session(file_text=text) as run:
        status = run.client.request("status")["status"]
        assert status["preset"] == "meeting" and "meeting" in status["presets"]
        assert status["blur_strength"] == 20
        run.client.request("preset", name="off")
        assert run.client.request("reload")["status"]["preset"] == "meeting"  # `vcam reload` re-reads now
