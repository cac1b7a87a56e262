"""Motion-adaptive temporal smoothing of a low-resolution mask.

Per pixel, the new mask is ``prev + k * (mask - prev)``. The follow rate ``k`` is ``1 - strength`` where the
image is still (heavy smoothing: no flicker on a still person) and rises to 1 where the image itself changes
(the mask follows a moving hand at once: no trail). Image change is the absolute grey-level difference to the
previous frame, minus a noise floor, spread over a few pixels so the rim of a moving edge counts as moving.
"""

from __future__ import annotations

import cv2
import numpy as np


class MotionAdaptiveSmoother:
    """Keeps the previous smoothed mask and grey frame (both float32 on the same grid)."""

    def __init__(self) -> None:
        self._prev_mask: np.ndarray | None = None
        self._prev_grey: np.ndarray | None = None
        self._shape: tuple[int, int] | None = None
        self._kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))

    def reset(self) -> None:
        self._prev_mask = None
        self._prev_grey = None

    def _alloc(self, shape: tuple[int, int]) -> None:
        self._shape = shape
        self._prev_mask = np.empty(shape, np.float32)
        self._prev_grey = np.empty(shape, np.float32)
        self._diff = np.empty(shape, np.float32)
        self._rate = np.empty(shape, np.float32)
        self._delta = np.empty(shape, np.float32)
        self._fresh = True

    def process(self, mask: np.ndarray, grey: np.ndarray, strength: float, noise: float, ramp: float) -> np.ndarray:
        """Smooth ``mask`` (float32 [0,1]) given the current ``grey`` frame (float32 [0,1], same shape).

        ``strength`` in [0, 1): smoothing where still; ``noise`` and ``ramp`` in grey levels (0..255): image
        change below ``noise`` counts as still, ``noise + ramp`` and above as full motion. Returns a reused buffer
        holding the smoothed mask (also kept as the state for the next frame).
        """
        if self._shape != mask.shape or self._prev_mask is None:
            self._alloc(mask.shape)
        assert self._prev_mask is not None and self._prev_grey is not None
        if self._fresh or strength <= 0.0:
            np.copyto(self._prev_mask, mask)
            np.copyto(self._prev_grey, grey)
            self._fresh = False
            return self._prev_mask
        cv2.absdiff(grey, self._prev_grey, dst=self._diff)
        np.copyto(self._prev_grey, grey)
        cv2.dilate(self._diff, self._kernel, dst=self._diff)
        cv2.blur(self._diff, (5, 5), dst=self._diff)
        # rate = k_min + (diff*255 - noise) / ramp * (1 - k_min), clipped to [k_min, 1]
        k_min = 1.0 - strength
        scale = 255.0 / ramp * (1.0 - k_min)
        offset = k_min - noise / ramp * (1.0 - k_min)
        np.multiply(self._diff, np.float32(scale), out=self._rate)
        np.add(self._rate, np.float32(offset), out=self._rate)
        np.clip(self._rate, np.float32(k_min), np.float32(1.0), out=self._rate)
        cv2.subtract(mask, self._prev_mask, dst=self._delta)
        cv2.multiply(self._delta, self._rate, dst=self._delta)
        cv2.add(self._prev_mask, self._delta, dst=self._prev_mask)
        return self._prev_mask
