"""What every sink is, and the worker thread that keeps a slow sink from stalling the others."""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from pathlib import Path
from typing import Protocol

import numpy as np

from ..buffers import TripleBuffer

log = logging.getLogger(__name__)


class SinkError(RuntimeError):
    """A sink cannot be opened or written; the message says how to fix it."""


def open_output_file(path: Path) -> int:
    """A write fd for an output file, safe in a shared directory: the last path component is never followed
    if it is a symlink, a regular file must be ours (it is then truncated and made 0600; a new one is created
    0600), and a FIFO is opened without waiting for a reader (SinkError when there is none). Devices
    (``/dev/null``) are written as they are."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        if os.path.islink(path):
            raise SinkError(f"{path} is a symbolic link; vcam does not write through links: pick another "
                            "path") from None
        if exc.errno == getattr(os, "ENXIO", 6):
            raise SinkError(f"{path} is a FIFO with no reader: start the reader first") from None
        raise SinkError(f"cannot write {path}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise SinkError(f"{path} is a directory")
        if stat.S_ISREG(info.st_mode):
            if hasattr(os, "getuid") and info.st_uid != os.getuid():
                raise SinkError(f"{path} belongs to uid {info.st_uid}, not you: vcam does not write into others' "
                                "files; pick another path")
            os.ftruncate(fd, 0)
            os.fchmod(fd, 0o600)
        os.set_blocking(fd, True)  # a FIFO with a reader: writes wait for it, on the sink's own thread
    except SinkError:
        os.close(fd)
        raise
    except OSError as exc:
        os.close(fd)
        raise SinkError(f"cannot write {path}: {exc.strerror}") from None
    return fd


class Sink(Protocol):
    """A consumer of finished frames (BGR uint8 [H, W, 3], the same size for every frame after ``open``)."""

    description: str

    def open(self, width: int, height: int, fps: float) -> None: ...

    def write(self, frame_bgr: np.ndarray) -> None: ...

    def close(self) -> None: ...


class SinkWorker:
    """Runs one sink on its own thread, fed through a triple buffer.

    ``submit`` only copies the frame (a fraction of a millisecond at 720p), so a sink that blocks (full disk, a
    consumer that stops reading) loses frames of its own but never delays the output clock or other sinks.
    """

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self._frames = TripleBuffer()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.written = 0
        self.failed: str | None = None
        self.write_ms = 0.0  # exponential moving average of the sink's write time

    @property
    def description(self) -> str:
        return self.sink.description

    def start(self, width: int, height: int, fps: float) -> None:
        self.sink.open(width, height, fps)  # raises SinkError: the caller decides whether that is fatal
        self._thread = threading.Thread(target=self._run, name=f"sink:{self.description}", daemon=True)
        self._thread.start()

    def submit(self, frame_bgr: np.ndarray) -> None:
        if self.failed is None:
            self._frames.publish_copy(frame_bgr)

    def _run(self) -> None:
        while not self._stop.is_set():
            frame = self._frames.take(timeout=0.2)
            if frame is None:
                continue
            t0 = time.perf_counter()
            try:
                self.sink.write(frame)
            except Exception as exc:  # a failing sink is disabled, the others go on
                self.failed = str(exc)
                log.error("sink %s failed and is disabled: %s", self.description, exc)
                return
            self.write_ms = 0.9 * self.write_ms + 0.1 * (time.perf_counter() - t0) * 1e3
            self.written += 1

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        self._frames.wake()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("sink %s did not stop within %.1f s (blocked write); abandoning it",
                            self.description, timeout)
                return
        try:
            self.sink.close()
        except Exception as exc:
            log.warning("closing sink %s: %s", self.description, exc)
