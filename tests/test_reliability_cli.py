"""The command line and reloads: deeply nested values are a clean error at start and at reload, a chmod-only
change is re-read, SIGHUP reloads, `--config` must name an existing file, and `vcam status | head` is quiet."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from vcam.control import ControlServer

from .reliability_support import daemon_status, live_session, vcam_run, wait_until

DEEP_TOML = "a = " + "[" * 3000 + "]" * 3000 + "\n"


def _vcam(*args: str, env: dict[str, str] | None = None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vcam", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})}, **kw)


def test_deeply_nested_values_are_a_clean_error_at_start(tmp_path: Path) -> None:
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(DEEP_TOML)
    out = _vcam("run", "--config", str(cfg), "--seconds", "1")
    assert out.returncode != 0 and "Traceback" not in out.stderr and "nested too deeply" in out.stderr, out.stderr
    cfg.write_text("")
    deep = "background.blur_strength=" + "[" * 3000 + "]" * 3000
    out = _vcam("run", "--config", str(cfg), "--set", deep, "--seconds", "1")
    assert out.returncode != 0 and "Traceback" not in out.stderr and "nested too deeply" in out.stderr, out.stderr
    deep_keys = "x." * 200 + "y=1"
    out = _vcam("run", "--config", str(cfg), "--set", deep_keys, "--seconds", "1")
    assert out.returncode != 0 and "Traceback" not in out.stderr and "nested more than" in out.stderr, out.stderr


def test_deeply_nested_config_at_reload_shows_its_own_error() -> None:
    with live_session(file_text='preset = "blur"\n') as run:
        run.config_path.write_text('[background]\nmode = "sparkles"\n')
        wait_until(lambda: "sparkles" in (run.status()["config_error"] or ""))
        run.config_path.write_text(DEEP_TOML)
        wait_until(lambda: "nested too deeply" in (run.status()["config_error"] or ""))
        assert "sparkles" not in run.status()["config_error"]
        assert run.status()["background_mode"] == "blur"


def _chmod_round_trip(path: Path) -> None:
    """Make the config unreadable, then readable again, changing nothing else: the watcher must re-read it."""
    from vcam.config import build_config
    from vcam.live_config import LiveConfig
    from vcam.watcher import ConfigWatcher

    live = LiveConfig(build_config(), lambda config: None, path=path)
    watcher = ConfigWatcher(path, live.reload, interval=0.05, failing=lambda: live.file_error is not None)
    watcher.start()
    try:
        os.chmod(path, 0)
        wait_until(lambda: "permission denied" in (live.file_error or ""))
        os.chmod(path, 0o644)
        wait_until(lambda: live.file_error is None and live.config.preset == "off")
    finally:
        watcher.stop()


def test_a_chmod_only_change_is_re_read() -> None:
    folder = Path(tempfile.mkdtemp(prefix="vc"))
    cfg = folder / "cfg.toml"
    cfg.write_text('preset = "off"\n')
    if os.getuid() != 0:
        _chmod_round_trip(cfg)
        return
    # root reads any file: run the watcher in a child that is another user, the owner of the config
    os.chmod(folder, 0o755)
    os.chown(cfg, 65534, 65534)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.setgid(65534)
            os.setuid(65534)
            _chmod_round_trip(cfg)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_sighup_reloads_the_config(tmp_path: Path) -> None:
    cfg = tmp_path / "cfg.toml"
    cfg.write_text('preset = "blur"\n[daemon]\nwatch_config = false\non_demand = false\n')
    with vcam_run("--config", str(cfg), "--source", "demo", "--size", "320x240", "--sink", f"y4m:{tmp_path / 'o.y4m'}",
                  "--seconds", "120") as (proc, client):
        cfg.write_text('preset = "green-screen"\n[daemon]\nwatch_config = false\non_demand = false\n')
        proc.send_signal(signal.SIGHUP)
        wait_until(lambda: (daemon_status(client) or {}).get("preset") == "green-screen", step=0.1)
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, proc.stderr.read()[-3000:]
    assert "SIGHUP: reloading" in proc.stderr.read()


def test_config_naming_a_missing_file_is_an_error(tmp_path: Path) -> None:
    out = _vcam("run", "--config", str(tmp_path / "typo.toml"), "--source", "demo", "--seconds", "1")
    assert out.returncode != 0 and "typo.toml does not exist" in out.stderr
    out = _vcam("doctor", "--config", str(tmp_path / "typo.toml"))
    assert out.returncode != 0 and "typo.toml does not exist" in out.stdout


@pytest.mark.skipif(not hasattr(os, "pipe"), reason="needs pipes")
def test_status_into_a_closed_pipe_is_quiet() -> None:
    root = Path(tempfile.mkdtemp(prefix="vc"))
    server = ControlServer(lambda request: {"ok": True, "status": {"preset": "blur", "sinks": []}},
                           address=root / "vcam" / "control.sock")
    server.start()
    try:
        read_end, write_end = os.pipe()
        os.close(read_end)  # like `| head -1` that has already exited
        out = subprocess.run([sys.executable, "-m", "vcam", "status"], stdout=write_end, stderr=subprocess.PIPE,
                             text=True, timeout=60, env={**os.environ, "XDG_RUNTIME_DIR": str(root)})
        os.close(write_end)
    finally:
        server.stop()
    assert "BrokenPipeError" not in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert out.returncode == 141


def test_a_camera_error_clears_from_status_once_the_camera_is_back(fake_backend) -> None:
    from vcam.config import build_config
    from vcam.daemon import Daemon
    from vcam.sinks import VirtualCameraSink

    from .conftest import read_demo_frames
    from .fakes import FakeCamera

    camera = FakeCamera(read_demo_frames(2, step=10), mode="unplugged")
    daemon = Daemon(build_config({"output": {"sinks": ["virtual"]}}), source=camera,
                    sinks=[VirtualCameraSink(backend="fake")])
    daemon.start()
    try:
        wait_until(lambda: "unplugged" in (daemon.status()["last_error"] or ""))
        camera.mode = "ok"
        wait_until(lambda: daemon.status()["source_state"] == "live" and daemon.status()["last_error"] is None)
    finally:
        daemon.stop()


def test_a_stop_that_hangs_ends_the_process_with_every_threads_stack(tmp_path: Path) -> None:
    """A daemon whose stop never returns must not hang: the watchdog dumps the threads and exits with status 1."""
    script = f"""
import threading, vcam.cli as cli, vcam.session as session
from vcam.config import build_config
session.DaemonSession.stop = lambda self: threading.Event().wait()  # a stop that never returns
cli.STOP_WATCHDOG_S = 1.0
config = build_config({{"source": {{"device": "demo"}},
                        "output": {{"width": 320, "height": 240, "sinks": ["y4m:{tmp_path / 'o.y4m'}"]}}}})
cli._run_daemon(config, seconds=1.0, on_demand=False)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "XDG_RUNTIME_DIR": str(tmp_path)})
    assert out.returncode == 1, out.stderr[-3000:]
    assert "Timeout (0:00:01)!" in out.stderr and "in _run_daemon" in out.stderr, out.stderr[-3000:]


def test_bench_with_a_missing_model_or_source_is_a_one_line_error(tmp_path: Path) -> None:
    for args, expected in ((["--model", str(tmp_path / "none.onnx")], "none.onnx does not exist"),
                           (["--source", str(tmp_path / "none.mp4")], "none.mp4 not found")):
        out = _vcam("bench", "--size", "320x240", "--frames", "5", *(["--source", "demo"] if "--source" not in args
                                                                        else []), *args)
        assert out.returncode == 1 and expected in out.stderr and "Traceback" not in out.stderr, out.stderr
