"""On-demand camera: release the physical camera while no application reads the virtual camera.

Linux: inotify reports every open and close of the loopback device node (``IN_OPEN``, ``IN_CLOSE_*``), which
counts its readers without polling. Apps that poll devices (Discord, browsers listing cameras, udev) open and
close the node within milliseconds; a reader only counts once it has held the device for ``attach_after_s``,
and the camera is released only ``release_after_s`` after the last reader left, so neither polling nor an app
that closes and reopens while renegotiating makes the camera flicker on and off.

``ReaderTracker`` is the debounce state machine (pure, driven by events and a clock: tests feed it simulated
events); ``DeviceReaderMonitor`` feeds it from inotify on a thread; the daemon is told through ``on_change``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import os
import select
import struct
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

IN_OPEN = 0x00000020
IN_CLOSE_WRITE = 0x00000008
IN_CLOSE_NOWRITE = 0x00000010
IN_IGNORED = 0x00008000
IN_Q_OVERFLOW = 0x00004000
IN_CLOEXEC = 0o2000000
IN_NONBLOCK = 0o4000
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len (then len bytes of name)


class ReaderTracker:
    """Debounced "is anyone reading?" from open/close events.

    ``on_change(True)`` once a reader has held the device for ``attach_after_s``; ``on_change(False)`` once no
    reader has held it for ``release_after_s``. ``poll()`` must be called at least every ``next_deadline()``.
    """

    def __init__(self, on_change: Callable[[bool], None], attach_after_s: float = 0.25,
                 release_after_s: float = 5.0, initial_readers: int = 0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.on_change = on_change
        self.attach_after_s, self.release_after_s = attach_after_s, release_after_s
        self.clock = clock
        self.readers = max(0, initial_readers)
        self.active = self.readers > 0  # the state last reported
        self.opens = self.closes = 0
        self._since = clock()  # when ``readers`` last went 0 -> >0 or >0 -> 0
        self._lock = threading.Lock()

    def opened(self) -> None:
        with self._lock:
            self.opens += 1
            if self.readers == 0:
                self._since = self.clock()
            self.readers += 1
        self.poll()

    def closed(self) -> None:
        with self._lock:
            self.closes += 1
            if self.readers == 0:  # a close of an open we never saw (it predates us): nothing to count
                return
            self.readers -= 1
            if self.readers == 0:
                self._since = self.clock()
        self.poll()

    def resync(self, readers: int) -> None:
        """Replace the count with a fresh one (after an inotify overflow, or a /proc scan)."""
        with self._lock:
            if (readers > 0) != (self.readers > 0):
                self._since = self.clock()
            self.readers = max(0, readers)

    def next_deadline(self) -> float | None:
        """Seconds until ``poll`` may change the state (None: nothing pending)."""
        with self._lock:
            want = self.readers > 0
            if want == self.active:
                return None
            delay = self.attach_after_s if want else self.release_after_s
            return max(0.0, self._since + delay - self.clock())

    def poll(self) -> None:
        with self._lock:
            want = self.readers > 0
            if want == self.active:
                return
            delay = self.attach_after_s if want else self.release_after_s
            if self.clock() - self._since < delay:
                return
            self.active = want
        log.info("virtual camera %s", "has a reader: opening the camera" if want else
                 "has no reader: releasing the camera")
        self.on_change(want)


# ----- inotify -------------------------------------------------------------------------------------------
def inotify_available() -> bool:
    return sys.platform.startswith("linux") and _libc() is not None


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        libc.inotify_init1, libc.inotify_add_watch  # noqa: B018 - probe that the symbols exist
        return libc
    except (OSError, AttributeError):
        return None


class Inotify:
    """A minimal inotify reader (ctypes; no third-party package)."""

    def __init__(self) -> None:
        libc = _libc()
        if libc is None:
            raise OSError(errno.ENOSYS, "inotify is not available on this system")
        self._libc = libc
        self.fd = libc.inotify_init1(IN_CLOEXEC | IN_NONBLOCK)
        if self.fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"inotify_init1: {os.strerror(err)}")

    def add_watch(self, path: str | Path, mask: int) -> int:
        wd = self._libc.inotify_add_watch(self.fd, os.fsencode(str(path)), ctypes.c_uint32(mask))
        if wd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"inotify_add_watch {path}: {os.strerror(err)}")
        return wd

    def read_events(self, timeout: float | None) -> list[int]:
        """Masks of the events that arrive within ``timeout`` seconds (empty list on timeout)."""
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return []
        try:
            data = os.read(self.fd, 64 * 1024)
        except BlockingIOError:
            return []
        masks, offset = [], 0
        while offset + _EVENT.size <= len(data):
            _wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
            masks.append(mask)
            offset += _EVENT.size + length
        return masks

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def count_open_handles(path: str | Path, exclude_pids: tuple[int, ...] = ()) -> int:
    """How many file descriptors of other processes point at ``path`` (only processes we may inspect)."""
    target = os.path.realpath(path)
    count = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) in exclude_pids:
            continue
        try:
            for fd in os.scandir(f"/proc/{entry.name}/fd"):
                try:
                    if os.readlink(fd.path) == target:
                        count += 1
                except OSError:
                    continue
        except OSError:
            continue
    return count


class DeviceReaderMonitor:
    """Feeds a ``ReaderTracker`` from inotify open/close events on ``device`` (the loopback node)."""

    def __init__(self, device: str | Path, tracker: ReaderTracker) -> None:
        self.device = Path(device)
        self.tracker = tracker
        self._inotify = Inotify()
        self._inotify.add_watch(self.device, IN_OPEN | IN_CLOSE_WRITE | IN_CLOSE_NOWRITE)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="on-demand", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        self._inotify.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            deadline = self.tracker.next_deadline()
            timeout = 0.5 if deadline is None else min(0.5, deadline + 0.001)
            for mask in self._inotify.read_events(timeout):
                if mask & IN_Q_OVERFLOW:  # lost events: count afresh
                    self.tracker.resync(count_open_handles(self.device, (os.getpid(),)))
                elif mask & IN_OPEN:
                    self.tracker.opened()
                elif mask & (IN_CLOSE_WRITE | IN_CLOSE_NOWRITE):
                    self.tracker.closed()
            self.tracker.poll()
