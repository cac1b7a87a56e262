"""Frame sources: a physical camera, a looping video file, or the bundled demo clip.

Every source yields BGR uint8 frames with even width and height (``normalize_frame`` is the one place where odd
camera output is made safe). Sources raise ``SourceError`` with a message a user can act on.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

log = logging.getLogger(__name__)


class SourceError(RuntimeError):
    """The source cannot be opened or has stopped delivering frames."""


def demo_clip_path() -> Path:
    """The bundled 1280x720 30 fps demo clip (MIT, LivePortrait examples)."""
    return Path(str(resources.files("vcam") / "assets" / "demo.mp4"))


def normalize_frame(frame: np.ndarray) -> np.ndarray:
    """Return a BGR uint8 frame with even width and height (Chrome rejects odd widths for YUV 4:2:0).

    Accepts grey (H,W) / (H,W,1), BGR and BGRA frames; anything else raises ``ValueError``.
    """
    if frame.dtype != np.uint8:
        raise ValueError(f"frame dtype must be uint8, got {frame.dtype}")
    if frame.ndim not in (2, 3) or frame.shape[0] < 2 or frame.shape[1] < 2:
        raise ValueError(f"unusable frame shape {frame.shape}")
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[:, :, 0]
    if frame.ndim == 2:
        frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    elif frame.ndim == 3 and frame.shape[2] == 4:
        frame = cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    elif not (frame.ndim == 3 and frame.shape[2] == 3):
        raise ValueError(f"unsupported frame shape {frame.shape}: expected grey, BGR or BGRA")
    h, w = frame.shape[:2]
    if h % 2 or w % 2:
        frame = frame[: h - h % 2, : w - w % 2]
    if not frame.flags.c_contiguous:
        frame = np.ascontiguousarray(frame)
    return frame


class FrameSource(Protocol):
    """What the capture thread needs from a source."""

    description: str
    fps: float

    def open(self) -> None: ...

    def read(self) -> np.ndarray | None:
        """Block until the next frame (at the source's own pace); None when the read failed."""
        ...

    def close(self) -> None: ...


class CameraSource:
    """A V4L2/DirectShow/AVFoundation camera by index (``0``) or device path (``/dev/video0``)."""

    def __init__(self, device: str | int, width: int, height: int, fps: float, fourcc: str = "MJPG") -> None:
        self.device = device
        self.width, self.height, self.fps, self.fourcc = width, height, fps, fourcc
        self.description = f"camera {device}"
        self._cap: cv2.VideoCapture | None = None

    def open(self) -> None:
        if isinstance(self.device, str) and self.device.startswith("/dev/") and not Path(self.device).exists():
            raise SourceError(f"camera {self.device} does not exist: plug it in, or list cameras with `vcam devices`")
        backend = cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY
        cap = cv2.VideoCapture(self.device, backend)
        if not cap.isOpened():
            cap.release()
            raise SourceError(
                f"cannot open camera {self.device}: it is missing, busy in another app, or you lack permission "
                "(on Linux: add yourself to the 'video' group). List cameras with `vcam devices`."
            )
        if self.fourcc:
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*self.fourcc))
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        cap.set(cv2.CAP_PROP_FPS, self.fps)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # never let the driver queue stale frames
        got = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        if got != (self.width, self.height):
            log.warning("camera %s gives %dx%d instead of %dx%d", self.device, *got, self.width, self.height)
        self.fps = cap.get(cv2.CAP_PROP_FPS) or self.fps
        self._cap = cap

    def read(self) -> np.ndarray | None:
        if self._cap is None:
            return None
        ok, frame = self._cap.read()
        return frame if ok else None

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class VideoFileSource:
    """A video file played in a loop, paced to its own frame rate like a camera (``realtime=False``: as fast
    as it decodes, for benchmarks)."""

    def __init__(self, path: str | Path, realtime: bool = True, loop: bool = True) -> None:
        self.path = Path(path)
        self.realtime, self.loop = realtime, loop
        self.description = f"video {self.path}"
        self.fps = 30.0
        self._cap: cv2.VideoCapture | None = None
        self._next_due = 0.0

    def open(self) -> None:
        if not self.path.is_file():
            raise SourceError(f"video file {self.path} not found")
        # One decoder thread: FFmpeg's frame threading costs ~35% more CPU per 720p frame here, and a webcam
        # stand-in needs no more than real time.
        cap = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])
        if not cap.isOpened():
            cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            raise SourceError(f"cannot decode {self.path}: not a video file OpenCV can read")
        self.fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
        self._cap = cap
        self._next_due = time.monotonic()

    def read(self) -> np.ndarray | None:
        if self._cap is None:
            return None
        ok, frame = self._cap.read()
        if not ok and self.loop:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = self._cap.read()
        if not ok:
            return None
        if self.realtime:
            self._next_due += 1.0 / self.fps
            delay = self._next_due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -1.0:  # fell far behind (machine suspended, debugger): do not try to catch up
                self._next_due = time.monotonic()
        return frame

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


def parse_camera_device(spec: str) -> str | int | None:
    """``"0"`` -> 0, ``"/dev/video2"`` -> the path; None when ``spec`` is not a camera."""
    if re.fullmatch(r"\d+", spec):
        return int(spec)
    if spec.startswith("/dev/"):
        return spec
    return None


def open_source(spec: str, width: int, height: int, fps: float, fourcc: str = "MJPG",
                realtime: bool = True) -> FrameSource:
    """Build (not open) the source named by ``spec``: ``demo``, a camera index/path, or a video file path."""
    if spec == "demo":
        return VideoFileSource(demo_clip_path(), realtime=realtime)
    device = parse_camera_device(spec)
    if device is not None:
        return CameraSource(device, width, height, fps, fourcc)
    return VideoFileSource(spec, realtime=realtime)


def list_cameras(max_index: int = 10) -> list[str]:
    """Video capture devices present on this machine (Linux: /dev/video*, with their V4L2 names)."""
    found = []
    for dev in sorted(Path("/dev").glob("video*"), key=lambda p: int(p.name[5:]) if p.name[5:].isdigit() else 0):
        name_file = Path("/sys/class/video4linux") / dev.name / "name"
        name = name_file.read_text().strip() if name_file.exists() else "?"
        found.append(f"{dev} ({name})")
    return found
