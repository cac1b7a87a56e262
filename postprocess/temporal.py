"""Motion-adaptive temporal smoothing.

Per pixel, the new mask is ``prev + k * (mask - prev)``. The follow rate ``k`` is ``1 - strength`` where the
image is still (heavy smoothing: no flicker on a still person) and rises to 1 where the image itself changes
(the mask follows a moving hand at once: no trail). Image change is the absolute grey-level difference to the
previous frame, minus a noise floor, spread over a few pixels so the rim of a moving edge counts as moving.

:class:`MotionRate` computes ``k`` on a coarse grid; :class:`RateSmoother` applies a rate map to a mask of any
size (the rate map is bilinearly resized to it).
"""

from __future__ import annotations

import cv2
import numpy as np


class MotionRate:
    """Grey frame (float32 [0,1]) -> follow-rate map ``k`` in [1 - strength, moving_rate], same grid; keeps the last
    frame."""

    def __init__(self) -> None:
        self._prev: np.ndarray | None = None
        self._kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))

    def reset(self) -> None:
        self._prev = None

    def process(self, grey: np.ndarray, strength: float, noise: float, ramp: float,
                moving_rate: float = 1.0) -> np.ndarray | None:
        """``noise`` and ``ramp`` in grey levels (0..255): change below ``noise`` counts as still, ``noise + ramp``
        and above as full motion, where the rate is ``moving_rate`` (1: follow at once). Returns None on the first
        frame (no history: take the mask as it is)."""
        if self._prev is None or self._prev.shape != grey.shape:
            self._prev = grey.copy()
            self._diff = np.empty_like(grey)
            self._rate = np.empty_like(grey)
            return None
        cv2.absdiff(grey, self._prev, dst=self._diff)
        np.copyto(self._prev, grey)
        cv2.dilate(self._diff, self._kernel, dst=self._diff)
        cv2.blur(self._diff, (5, 5), dst=self._diff)
        # rate = k_min + (diff*255 - noise) / ramp * (1 - k_min), clipped to [k_min, 1]
        k_min = 1.0 - strength
        k_max = max(k_min, moving_rate)
        scale = 255.0 / ramp * (k_max - k_min)
        offset = k_min - noise / ramp * (k_max - k_min)
        np.multiply(self._diff, np.float32(scale), out=self._rate)
        np.add(self._rate, np.float32(offset), out=self._rate)
        np.clip(self._rate, np.float32(k_min), np.float32(k_max), out=self._rate)
        return self._rate


class RateSmoother:
    """Exponential smoothing of a float32 mask with a per-pixel rate map; keeps the previous output."""

    def __init__(self) -> None:
        self._prev: np.ndarray | None = None

    def reset(self) -> None:
        self._prev = None

    def process(self, mask: np.ndarray, rate: np.ndarray | None, jump: float = 1.0) -> np.ndarray:
        """Smooth ``mask`` in place towards the previous output; returns ``mask``.

        ``jump``: a pixel whose mask changed by this much or more (0..1) follows at once whatever the image did,
        ramping from half of it (large, sustained changes are real moves; flicker is small and back-and-forth).
        """
        if rate is None or self._prev is None or self._prev.shape != mask.shape:
            self._prev = mask.copy()
            self._delta = np.empty_like(mask)
            self._rate = np.empty_like(mask)
            self._follow = np.empty_like(mask)
            return mask
        if rate.shape != mask.shape:
            cv2.resize(rate, (mask.shape[1], mask.shape[0]), dst=self._rate, interpolation=cv2.INTER_LINEAR)
        else:
            np.copyto(self._rate, rate)
        cv2.subtract(mask, self._prev, dst=self._delta)
        if jump < 1.0:
            # follow = clip((|delta| - jump/2) / (jump/2), 0, 1); rate = max(rate, follow)
            cv2.absdiff(mask, self._prev, dst=self._follow)
            np.multiply(self._follow, np.float32(2.0 / jump), out=self._follow)
            np.subtract(self._follow, np.float32(1.0), out=self._follow)
            cv2.max(self._rate, self._follow, dst=self._rate)
            np.minimum(self._rate, np.float32(1.0), out=self._rate)
        cv2.multiply(self._delta, self._rate, dst=self._delta)
        cv2.add(self._prev, self._delta, dst=mask)
        np.copyto(self._prev, mask)
        return mask
