"""The virtual camera sink, through pyvirtualcam (v4l2loopback on Linux, OBS Virtual Camera elsewhere)."""

from __future__ import annotations

import logging
import sys

import cv2
import numpy as np
import pyvirtualcam

from .base import SinkError

log = logging.getLogger(__name__)

FIX_HINTS = {
    "linux": ("load the loopback module: `sudo modprobe v4l2loopback exclusive_caps=1 card_label=vcam` "
              "(package v4l2loopback-dkms; Chrome needs exclusive_caps=1); then run `vcam devices`"),
    "win32": "install OBS Studio (26+) and start its Virtual Camera once, or install Unity Capture",
    "darwin": "install OBS Studio (30+) and start its Virtual Camera once to register the camera extension",
}


def fix_hint() -> str:
    return FIX_HINTS.get(sys.platform, FIX_HINTS["linux"] if sys.platform.startswith("linux") else "")


class VirtualCameraSink:
    """Sends I420 frames (converted here, once) to the virtual camera device."""

    def __init__(self, device: str | None = None, backend: str | None = None) -> None:
        self.device, self.backend = device, backend
        self.description = f"virtual:{device or 'auto'}"
        self._cam: pyvirtualcam.Camera | None = None
        self._i420: np.ndarray | None = None

    def open(self, width: int, height: int, fps: float) -> None:
        try:
            self._cam = pyvirtualcam.Camera(width, height, fps, fmt=pyvirtualcam.PixelFormat.I420,
                                            device=self.device, backend=self.backend)
        except (RuntimeError, KeyError) as exc:
            busy = "busy" in str(exc).lower()
            what = "is busy (another program is writing to it)" if busy else "is not available"
            name = f"virtual camera {self.device}" if self.device else "virtual camera"
            raise SinkError(f"{name} {what}: {exc}\nfix: {fix_hint()}") from exc
        self.description = f"virtual:{self._cam.device}"
        self._i420 = np.zeros((height * 3 // 2, width), np.uint8)
        log.info("virtual camera %s (%s backend) open at %dx%d %.0f fps",
                 self._cam.device, self._cam.backend, width, height, fps)

    def write(self, frame_bgr: np.ndarray) -> None:
        assert self._cam is not None and self._i420 is not None
        cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2YUV_I420, dst=self._i420)
        self._cam.send(self._i420)

    def close(self) -> None:
        if self._cam is not None:
            self._cam.close()
            self._cam = None
