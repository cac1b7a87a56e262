"""Fakes at the daemon's true boundaries: the physical camera and the pyvirtualcam backend."""

from __future__ import annotations

import time

import cv2
import numpy as np

from vcam.sources import SourceError


class FakeLoopback:
    """A pyvirtualcam backend standing in for v4l2loopback: records what reaches the device, and when."""

    instances: list["FakeLoopback"] = []

    def __init__(self, *, width: int, height: int, fps: float, fourcc: int, device: str | None, **kw) -> None:
        self.width, self.height, self.fps, self.fourcc = width, height, fps, fourcc
        self.frames: list[np.ndarray] = []
        self.times: list[float] = []
        FakeLoopback.instances.append(self)

    def send(self, frame: np.ndarray) -> None:
        self.frames.append(frame.copy())
        self.times.append(time.monotonic())

    def close(self) -> None:
        pass

    def device(self) -> str:
        return "/dev/video-fake"

    def native_fourcc(self) -> int | None:
        return None


class FakeCamera:
    """Serves real frames at ``fps`` like a camera. ``mode`` switches its behaviour at any time: 'ok',
    'none' (reads return nothing), 'raise' (driver error), 'unplugged' (reads fail and reopening fails until it
    is 'ok' again), 'resize' (the camera switches to 640x360)."""

    description = "fake camera"

    def __init__(self, frames: list[np.ndarray], fps: float = 30.0, mode: str = "ok") -> None:
        self.frames, self.fps, self.mode = frames, fps, mode
        self.opens = 0
        self._i = 0

    def open(self) -> None:
        if self.mode == "unplugged":
            raise SourceError("fake camera unplugged")
        self.opens += 1

    def read(self) -> np.ndarray | None:
        time.sleep(1.0 / self.fps)
        if self.mode in ("none", "unplugged"):
            return None
        if self.mode == "raise":
            raise OSError("VIDIOC_DQBUF: No such device")
        self._i += 1
        frame = self.frames[self._i % len(self.frames)]
        if self.mode == "resize":
            frame = cv2.resize(frame, (640, 360))
        return frame

    def close(self) -> None:
        pass
