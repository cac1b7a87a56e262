"""Bokeh-style background blur, mask-weighted and normalised, done at low resolution.

The frame is halved (2x box averages) until the blur's disk radius is at most ~3.5 px, blurred there with a disk
kernel (the shape of a lens' out-of-focus blur), then upscaled once. Each pixel's blur is a weighted mean over
the disk with weights ``1 - alpha`` (person grown by one low-resolution pixel), normalised by the blurred
weights, so the person's colours do not bleed into the background around them and no halo forms.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from .pyramid import Pyramid

MAX_RADIUS_FRACTION = 0.05  # blur disk radius at strength 100, as a fraction of the frame width
_MAX_LEVEL_RADIUS = 3.5  # largest disk radius (px) filtered at the chosen pyramid level
_EPS = 1e-3  # weight floor: deep inside the person the plain blur is used (hidden by the alpha anyway)


def blur_radius(strength: float, width: int) -> float:
    """Disk radius in frame pixels for a blur ``strength`` in 0..100."""
    return strength / 100.0 * MAX_RADIUS_FRACTION * width


def blur_level(radius: float, width: int, height: int) -> int:
    """Pyramid level at which a ``radius`` (frame px) disk is at most ~3.5 px, keeping >= 8 px per side."""
    level = max(1, math.ceil(math.log2(max(radius, 1.0) / _MAX_LEVEL_RADIUS)))
    while level > 1 and (width >> level < 8 or height >> level < 8):
        level -= 1
    return level


def disk_kernel(radius: float) -> np.ndarray:
    """Normalised anti-aliased disk (float32)."""
    r = max(radius, 0.5)
    n = math.ceil(r - 0.5)
    y, x = np.mgrid[-n:n + 1, -n:n + 1].astype(np.float32)
    k = np.clip(r + 0.5 - np.sqrt(x * x + y * y), 0.0, 1.0)
    return (k / k.sum()).astype(np.float32)


class BokehBlur:
    """``process(frame, alpha, strength, out)``: writes the blurred background (uint8 BGR, frame size) to ``out``."""

    def __init__(self) -> None:
        self._frame_pyr = Pyramid()
        self._alpha_pyr = Pyramid()
        self._key: tuple[int, int, int] | None = None
        self._kernel_radius: float | None = None
        self._grow = cv2.getStructuringElement(cv2.MORPH_RECT, (3, 3))

    def _alloc(self, shape: tuple[int, int], level: int) -> None:
        self._key = (shape[0], shape[1], level)
        self._f = np.empty(shape + (3,), np.float32)
        self._num = np.empty(shape + (3,), np.float32)
        self._w = np.empty(shape, np.float32)
        self._w3 = np.empty(shape + (3,), np.float32)
        self._den = np.empty(shape, np.float32)
        self._person = np.empty(shape, np.uint8)
        self._small = np.empty(shape + (3,), np.uint8)

    def process(self, frame: np.ndarray, alpha: np.ndarray, strength: float, out: np.ndarray,
                frame_levels: list[np.ndarray] | None = None, alpha_small: np.ndarray | None = None,
                alpha_level: int = 0) -> np.ndarray:
        """``frame_levels``: the frame already halved 1, 2, ... times, if the caller has it; ``alpha_small``: the
        alpha already ``alpha_level`` halvings smaller, if the caller has it."""
        h, w = frame.shape[:2]
        radius = blur_radius(strength, w)
        if radius < 0.5:
            np.copyto(out, frame)
            return out
        level = blur_level(radius, w, h)
        have = len(frame_levels) if frame_levels and frame_levels[0].shape[1] == w >> 1 else 0
        if have >= level:
            small_frame = frame_levels[level - 1]
        elif have:  # continue the caller's pyramid
            small_frame = self._frame_pyr.build(frame_levels[have - 1], level - have)[-1]
        else:
            small_frame = self._frame_pyr.build(frame, level)[-1]
        if alpha_small is not None and 1 <= alpha_level <= level and alpha_small.shape[1] == w >> alpha_level:
            small_alpha = (alpha_small if alpha_level == level
                           else self._alpha_pyr.build(alpha_small, level - alpha_level)[-1])
        else:
            small_alpha = self._alpha_pyr.build(alpha, level)[-1]
        shape = small_alpha.shape
        if self._key != (shape[0], shape[1], level):
            self._alloc(shape, level)
        r_level = radius / (1 << level)
        if self._kernel_radius != r_level:
            self._kernel_radius = r_level
            self._kernel = disk_kernel(r_level)
        # weights: 1 - alpha of the person grown by one pixel (edge pixels mix person colours), plus a floor
        cv2.dilate(small_alpha, self._grow, dst=self._person)
        np.multiply(self._person, np.float32(-1 / 255), out=self._w)
        np.add(self._w, np.float32(1 + _EPS), out=self._w)
        cv2.cvtColor(self._w, cv2.COLOR_GRAY2BGR, dst=self._w3)
        np.copyto(self._f, small_frame)
        cv2.multiply(self._f, self._w3, dst=self._f)
        cv2.filter2D(self._f, -1, self._kernel, dst=self._num, borderType=cv2.BORDER_REFLECT)
        cv2.filter2D(self._w, -1, self._kernel, dst=self._den, borderType=cv2.BORDER_REFLECT)
        cv2.cvtColor(self._den, cv2.COLOR_GRAY2BGR, dst=self._w3)
        cv2.divide(self._num, self._w3, dst=self._num)
        cv2.convertScaleAbs(self._num, self._small)
        cv2.resize(self._small, (w, h), dst=out, interpolation=cv2.INTER_LINEAR)
        return out
