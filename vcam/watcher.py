"""Watch the config file and reload it when it changes.

Polling the file's stat every ``interval`` seconds is portable (Linux, macOS, Windows), survives editors that
replace the file by renaming a new one over it, and costs a few microseconds a poll. A change is reloaded once
the file has stopped changing for one poll, so a half-written file is not reported as an error.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)


def _fingerprint(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


class ConfigWatcher:
    """Calls ``on_change()`` (on the watcher's thread) after ``path``'s content changes and settles.

    ``on_change`` may raise (an invalid config): the error is logged and the watcher goes on.
    """

    def __init__(self, path: Path, on_change: Callable[[], object], interval: float = 0.2) -> None:
        self.path = Path(path)
        self.on_change = on_change
        self.interval = interval
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
        pending: tuple[int, int, int] | None = None
        while not self._stop.wait(self.interval):
            now = _fingerprint(self.path)
            if now is None:
                if self._seen is not None:
                    log.warning("config file %s disappeared; keeping the current settings", self.path)
                self._seen, pending = None, None
                continue
            if now != self._seen:  # changed since the last poll: wait for it to settle
                self._seen, pending = now, now
                continue
            if pending is None:
                continue
            pending = None
            content = _digest(self.path)
            if content == self._content:  # touched, not changed
                continue
            self._content = content
            self.changes += 1
            try:
                self.on_change()
            except Exception as exc:  # an invalid config is reported by on_change; keep watching
                log.debug("config change not applied: %s", exc)
