"""YUV4MPEG2 file sink: the format Chromium's fake capture device reads (``--use-file-for-fake-video-capture``).

A regular file, flushed after every frame, so a reader can follow it while it grows (Chromium keeps reading a
growing regular file but not a FIFO). 720p30 I420 is about 41 MB/s: use it for tests and short captures. So
that a forgotten ``vcam demo`` cannot fill the disk, the file stops growing at ``max_bytes`` (2 GiB, about 50 s of
720p30): later frames are dropped for this sink only, with one warning (Chromium loops what is there).
The file is opened as ``sinks.base.open_output_file`` describes: no symlinks, no files of other users, 0600.
"""

from __future__ import annotations

import logging
import os
import stat
from fractions import Fraction

import cv2
import numpy as np

from ..file_checks import resolve_path
from .base import SinkError, open_output_file

log = logging.getLogger(__name__)
DEFAULT_MAX_BYTES = 2 << 30


class Y4MSink:
    def __init__(self, path: str, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        """``max_bytes`` caps regular files only."""
        self.path = resolve_path(path)
        self.description = f"y4m:{self.path}"
        self.max_bytes = max_bytes
        self._file = None
        self._i420: np.ndarray | None = None
        self._written = 0
        self._cap: int | None = None
        self.full = False  # reached max_bytes: frames are no longer written

    def open(self, width: int, height: int, fps: float) -> None:
        if width % 2 or height % 2:
            raise SinkError(f"y4m needs even frame sizes for 4:2:0, got {width}x{height}")
        self._file = open(open_output_file(self.path), "wb")
        rate = Fraction(fps).limit_denominator(1001)
        # a device or pipe (/dev/null in the soak) takes no disk space: no cap
        regular = stat.S_ISREG(os.fstat(self._file.fileno()).st_mode)
        self._cap = self.max_bytes if regular else None
        header = f"YUV4MPEG2 W{width} H{height} F{rate.numerator}:{rate.denominator} Ip A1:1 C420jpeg\n"
        self._written = self._file.write(header.encode("ascii"))
        self.full = False
        self._i420 = np.zeros((height * 3 // 2, width), np.uint8)

    def write(self, frame_bgr: np.ndarray) -> None:
        assert self._file is not None and self._i420 is not None
        if self.full:
            return
        if self._cap is not None and self._written + 6 + self._i420.nbytes > self._cap:
            self.full = True
            log.warning("%s reached its size cap of %.1f GiB: no more frames are written to it (the other sinks go "
                        "on; Chromium's fake capture loops what is there)", self.path, self.max_bytes / (1 << 30))
            return
        cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2YUV_I420, dst=self._i420)
        self._written += self._file.write(b"FRAME\n")
        self._written += self._file.write(memoryview(self._i420))
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
