"""Video file sink (mp4 or avi through OpenCV's VideoWriter)."""

from __future__ import annotations

import os

import cv2
import numpy as np

from ..file_checks import resolve_path
from .base import SinkError, open_output_file

_FOURCC = {".mp4": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}


class FileSink:
    def __init__(self, path: str) -> None:
        self.path = resolve_path(path)
        self.description = f"file:{self.path}"
        self._writer: cv2.VideoWriter | None = None

    def open(self, width: int, height: int, fps: float) -> None:
        fourcc = _FOURCC.get(self.path.suffix.lower())
        if fourcc is None:
            raise SinkError(f"file sink {self.path}: use a .mp4, .avi or .mkv name")
        if not self.path.parent.is_dir():
            raise SinkError(f"file sink {self.path}: folder {self.path.parent} does not exist")
        # Create (or claim) the file safely first: 0600, ours, not a symlink; the writer then opens that file.
        os.close(open_output_file(self.path))
        writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
        if not writer.isOpened():
            raise SinkError(f"cannot write video {self.path} (codec {fourcc} unavailable or folder not writable)")
        self._writer = writer

    def write(self, frame_bgr: np.ndarray) -> None:
        assert self._writer is not None
        self._writer.write(frame_bgr)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
