"""Helpers for the daily-use tests: a real daemon session (demo source, y4m sink, control socket) and a y4m
reader that tells what the output showed, frame by frame."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vcam.config import build_config, read_config_file
from vcam.control import ControlClient
from vcam.daemon import Daemon
from vcam.daily_settings import DaemonSettings
from vcam.live_config import LiveConfig
from vcam.session import DaemonSession

from .conftest import BACKGROUND_BOX, crop, high_frequency_energy

W, H = 1280, 720
FRAME_BYTES = W * H * 3 // 2
# Background detail (conftest.high_frequency_energy on BACKGROUND_BOX) of the demo output after I420, measured
# on demo frames: passthrough 1.13-1.34, blur 60: 0.39-0.40, blur 20: 0.52-0.56.
# A change must show by the 5th new output frame after it is applied. Up to four finished frames are already on
# their way by then: the one being processed with the old settings, the finished-frame buffer, the sink's buffer
# and the one the sink is writing (not yet counted in ``written``). Under light load it shows by the 2nd.
NEW_FRAMES = 5
BLUR_ON_BELOW = 0.75
BLUR_OFF_ABOVE = 1.0


def short_dir() -> Path:
    """A short temp dir: Unix socket paths are limited to ~107 bytes, pytest's tmp_path can be longer."""
    return Path(tempfile.mkdtemp(prefix="vc"))


def y4m_frames(path: Path, start: int = 0) -> Iterator[np.ndarray]:
    """BGR frames of a y4m file written by ``Y4MSink`` at 1280x720 (from frame index ``start``)."""
    with open(path, "rb") as f:
        f.readline()  # header
        f.seek((6 + FRAME_BYTES) * start, 1)
        while True:
            marker = f.read(6)
            data = f.read(FRAME_BYTES)
            if marker != b"FRAME\n" or len(data) < FRAME_BYTES:
                return
            yield cv2.cvtColor(np.frombuffer(data, np.uint8).reshape(H * 3 // 2, W), cv2.COLOR_YUV2BGR_I420)


def distinct_frames(path: Path, start: int, count: int) -> list[np.ndarray]:
    """The first ``count`` frames from index ``start`` that differ from their predecessor (the output clock
    repeats the last processed frame until the next is ready; a repeat is not a new frame)."""
    out: list[np.ndarray] = []
    prev: np.ndarray | None = None
    for frame in y4m_frames(path, max(0, start - 1)):
        if prev is not None and not np.array_equal(frame, prev):
            out.append(frame)
            if len(out) == count:
                break
        prev = frame
    return out


def background_detail(frame: np.ndarray) -> float:
    return high_frequency_energy(crop(frame, BACKGROUND_BOX))


class Running:
    """A live session and what the tests need to look at it."""

    def __init__(self, session: DaemonSession, client: ControlClient, y4m: Path, root: Path) -> None:
        self.session, self.client, self.y4m, self.root = session, client, y4m, root

    @property
    def daemon(self) -> Daemon:
        return self.session.daemon

    def written(self) -> int:
        return self.daemon.sink_workers[0].written

    def wait_written(self, count: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.written() < count:
            assert time.monotonic() < deadline, f"only {self.written()} frames written"
            time.sleep(0.05)

    def request(self, cmd: str, **args: Any) -> tuple[dict[str, Any], int]:
        """Send a request; return the reply and the index of the first output frame written after it."""
        reply = self.client.request(cmd, **args)
        return reply, self.written()

    def wait_distinct(self, start: int, count: int, timeout: float = 30.0) -> list[np.ndarray]:
        deadline = time.monotonic() + timeout
        while True:
            frames = distinct_frames(self.y4m, start, count)
            if len(frames) == count or time.monotonic() > deadline:
                return frames
            time.sleep(0.2)


@contextmanager
def daemon_session(root: Path, cli: dict[str, Any], file_text: str | None, control_address: Path,
                   settings: Callable[[Path | None], DaemonSettings], source: Any = None,
                   sinks: list[Any] | None = None, reader_device: str | None = None
                   ) -> Iterator[tuple[DaemonSession, Path | None]]:
    """The real daemon built from ``cli`` (and ``file_text`` written as ``ROOT/config.toml``) with live config and
    its control socket at ``control_address``; yields the started session and the config path, stops it and
    removes ``root`` after. ``settings(config_path)`` gives the session's settings."""
    path = None
    file_data: dict[str, Any] = {}
    if file_text is not None:
        path = root / "config.toml"
        path.write_text(file_text)
        file_data = read_config_file(path)
    config = build_config(file_data, cli)
    daemon = Daemon(config, source=source, sinks=sinks)
    live = LiveConfig(config, daemon.apply_config, path=path, file_data=file_data, cli_overrides=cli)
    session = DaemonSession(daemon, live, control_address=control_address, reader_device=reader_device,
                            settings=settings(path))
    session.start()
    try:
        yield session, path
    finally:
        session.stop()
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def running_session(preset: str = "blur", file_text: str | None = None, settings: DaemonSettings | None = None,
                    reader_device: str | None = None, extra: dict[str, Any] | None = None,
                    source: Any = None, sinks: list[Any] | None = None,
                    more_sinks: tuple[str, ...] = ()) -> Iterator[Running]:
    """The real daemon (demo clip source, real segmenter, y4m sink) with live config, control socket and, when
    asked, the config watcher and on-demand camera. ``file_text`` is written as the config file."""
    root = short_dir()
    y4m = root / "out.y4m"
    cli = {"source": {"device": "demo"}, "output": {"sinks": [f"y4m:{y4m}", *more_sinks], "width": W, "height": H},
           **({"preset": preset} if file_text is None else {}), **(extra or {})}

    def session_settings(path: Path | None) -> DaemonSettings:
        return settings or DaemonSettings(on_demand=False, watch_config=path is not None)

    control = root / "run" / "control.sock"
    with daemon_session(root, cli, file_text, control, session_settings, source, sinks, reader_device) as (session, _):
        yield Running(session, ControlClient(control), y4m, root)


def wait_for(predicate: Callable[[], bool], timeout: float, step: float = 0.01) -> float:
    """Seconds until ``predicate()`` holds (AssertionError after ``timeout``)."""
    t0 = time.monotonic()
    while not predicate():
        assert time.monotonic() - t0 < timeout, "condition not reached in time"
        time.sleep(step)
    return time.monotonic() - t0
