"""Helpers for the reliability tests: a live daemon session whose control socket the ``vcam`` CLI finds (its
``XDG_RUNTIME_DIR`` is given to the CLI), bad files of every kind, and the CLI run as a subprocess."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from vcam.control import ControlClient, DaemonNotRunning
from vcam.daemon import Daemon
from vcam.daily_settings import DaemonSettings
from vcam.session import DaemonSession

from .support import daemon_session, wait_for

W, H = 320, 240


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` in its header (a valid IHDR chunk, no pixel data)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))


def wait_until(predicate: Callable[[], bool], timeout: float = 30.0, step: float = 0.02) -> None:
    """Generous event wait: AssertionError only if ``predicate`` never holds within ``timeout``."""
    wait_for(predicate, timeout, step)


class Live:
    def __init__(self, session: DaemonSession, root: Path, config_path: Path | None) -> None:
        self.session, self.root, self.config_path = session, root, config_path
        self.client = ControlClient(root / "vcam" / "control.sock")

    @property
    def daemon(self) -> Daemon:
        return self.session.daemon

    def status(self) -> dict[str, Any]:
        return self.client.request("status")["status"]

    def cli(self, *args: str, stdout: Any = subprocess.PIPE) -> subprocess.CompletedProcess:
        """``vcam ARGS`` against this daemon."""
        env = {**os.environ, "XDG_RUNTIME_DIR": str(self.root)}
        return subprocess.run([sys.executable, "-m", "vcam", *args], env=env, stdout=stdout,
                              stderr=subprocess.PIPE, text=True, timeout=60)


@contextmanager
def live_session(file_text: str | None = None, extra: dict[str, Any] | None = None,
                 sinks: list[Any] | None = None, source: Any = None, watch: bool = True) -> Iterator[Live]:
    """A running daemon (demo clip unless ``source``; real segmenter) with live config, the control API in
    ``ROOT/vcam/control.sock`` and, with a ``file_text``, its config file watched."""
    root = Path(tempfile.mkdtemp(prefix="vr"))
    os.chmod(root, 0o700)
    cli = {"source": {"device": "demo"}, "output": {"sinks": [f"y4m:{root / 'out.y4m'}"], "width": W, "height": H},
           **(extra or {})}

    def session_settings(path: Path | None) -> DaemonSettings:
        return DaemonSettings(on_demand=False, watch_config=watch and path is not None)

    with daemon_session(root, cli, file_text, root / "vcam" / "control.sock", session_settings, source,
                        sinks) as (session, path):
        yield Live(session, root, path)


def daemon_status(client: ControlClient) -> dict[str, Any] | None:
    """The daemon's status, or None while its control socket does not answer."""
    try:
        return client.request("status")["status"]
    except DaemonNotRunning:
        return None


@contextmanager
def vcam_run(*args: str) -> Iterator[tuple[subprocess.Popen, ControlClient]]:
    """``vcam run ARGS`` as a subprocess with its own ``XDG_RUNTIME_DIR`` (stderr piped, text); yields the process
    and a client of its control API once that answers; kills the process if it is still running after."""
    run_dir = Path(tempfile.mkdtemp(prefix="vc"))
    proc = subprocess.Popen([sys.executable, "-m", "vcam", "run", *args],
                            env={**os.environ, "XDG_RUNTIME_DIR": str(run_dir)}, stderr=subprocess.PIPE, text=True)
    client = ControlClient(run_dir / "vcam" / "control.sock")
    try:
        wait_until(lambda: daemon_status(client) is not None, timeout=60, step=0.1)
        yield proc, client
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(run_dir, ignore_errors=True)
