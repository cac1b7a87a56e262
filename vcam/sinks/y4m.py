"""YUV4MPEG2 file sink: the format Chromium's fake capture device reads (``--use-file-for-fake-video-capture``).

A regular file, flushed after every frame, so a reader can follow it while it grows (Chromium keeps reading a
growing regular file but not a FIFO). 720p30 I420 is about 41 MB/s: use it for tests and short captures.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from .base import SinkError


class Y4MSink:
    def __init__(self, path: str) -> None:
        self.path = Path(path).expanduser()
        self.description = f"y4m:{self.path}"
        self._file = None
        self._i420: np.ndarray | None = None

    def open(self, width: int, height: int, fps: float) -> None:
        if width % 2 or height % 2:
            raise SinkError(f"y4m needs even frame sizes for 4:2:0, got {width}x{height}")
        try:
            self._file = open(self.path, "wb")
        except OSError as exc:
            raise SinkError(f"cannot write {self.path}: {exc.strerror}") from exc
        rate = Fraction(fps).limit_denominator(1001)
        self._file.write(f"YUV4MPEG2 W{width} H{height} F{rate.numerator}:{rate.denominator} Ip A1:1 C420jpeg\n"
                         .encode("ascii"))
        self._i420 = np.zeros((height * 3 // 2, width), np.uint8)

    def write(self, frame_bgr: np.ndarray) -> None:
        assert self._file is not None and self._i420 is not None
        cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2YUV_I420, dst=self._i420)
        self._file.write(b"FRAME\n")
        self._file.write(memoryview(self._i420))
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
