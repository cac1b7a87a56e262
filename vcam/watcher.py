"""Watch the config file and reload it when it changes.

Polling the file's stat every ``interval`` seconds is portable (Linux, macOS, Windows), survives editors that
replace the file by renaming a new one over it, and costs a few microseconds a poll. A change is reloaded once
the file has stopped changing for one poll, so a half-written file is not reported as an error. A change of
permissions alone counts (a file made readable again is re-read), and while the last reload failed the file is
re-read every ``retry_polls`` polls, so the error clears once its cause is gone (a missing background put back).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)


Fingerprint = tuple[int, ...]


def _fingerprint(path: Path) -> Fingerprint | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino, st.st_mode, st.st_uid, st.st_gid)


def _digest(path: Path) -> str | None:
    """The content's hash; None when it cannot be read (never blocks on a FIFO)."""
    from .config import MAX_CONFIG_BYTES
    from .file_checks import FileCheckError, read_regular_file

    try:
        return hashlib.sha256(read_regular_file(path, MAX_CONFIG_BYTES, allow_empty=True)).hexdigest()
    except FileCheckError:
        return None


class ConfigWatcher:
    """Calls ``on_change()`` (on the watcher's thread) after ``path``'s content changes and settles.

    ``on_change`` may raise (an invalid config): the error is logged and the watcher goes on. While
    ``failing()`` is true, ``on_change`` is also called every ``retry_polls`` polls.
    """

    def __init__(self, path: Path, on_change: Callable[[], object], interval: float = 0.2,
                 failing: Callable[[], bool] | None = None, retry_polls: int = 5) -> None:
        self.path = Path(path)
        self.on_change = on_change
        self.interval = interval
        self.failing = failing or (lambda: False)
        self.retry_polls = retry_polls
        self.changes = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seen = _fingerprint(self.path)
        self._content = _digest(self.path)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="config-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)

    def _run(self) -> None:
        pending: Fingerprint | None = None
        polls = 0
        while not self._stop.wait(self.interval):
            polls += 1
            now = _fingerprint(self.path)
            if now is None:
                if self._seen is not None:
                    log.warning("config file %s disappeared; keeping the current settings", self.path)
                self._seen, pending = None, None
                continue
            if now != self._seen:  # changed since the last poll: wait for it to settle
                self._seen, pending = now, now
                continue
            retry = polls % self.retry_polls == 0 and self._failing()
            if pending is None and not retry:
                continue
            pending = None
            content = _digest(self.path)
            if content == self._content and not retry:  # touched, not changed
                continue
            self._content = content
            self.changes += 1
            self._call()

    def _failing(self) -> bool:
        try:
            return bool(self.failing())
        except Exception:
            return False

    def _call(self) -> None:
        try:
            self.on_change()
        except Exception as exc:  # an invalid config is reported by on_change; keep watching
            log.debug("config change not applied: %s", exc)
