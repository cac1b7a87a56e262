"""Cheap power-of-two downscaling and the working-resolution arithmetic shared by the mask and compositing stages.

Each level is an exact 2x reduction with INTER_AREA (the 2x2 box average, OpenCV's fastest 2x path); a direct
INTER_AREA resize by 4 or 8 costs several times more than this chain of halvings.
"""

from __future__ import annotations

import cv2
import numpy as np


def level_size(width: int, height: int, level: int) -> tuple[int, int]:
    """(w, h) of ``level`` halvings of a ``width`` x ``height`` image (never below 1 px)."""
    for _ in range(level):
        width, height = max(1, width // 2), max(1, height // 2)
    return width, height


def level_for_width(width: int, max_width: int) -> int:
    """The fewest halvings that bring ``width`` to at most ``max_width``."""
    level = 0
    while width > max_width and width > 1:
        width //= 2
        level += 1
    return level


class Pyramid:
    """Halves an image ``levels`` times into preallocated buffers; ``levels[i]`` is the image after i+1 halvings."""

    def __init__(self) -> None:
        self.levels: list[np.ndarray] = []

    def build(self, image: np.ndarray, levels: int) -> list[np.ndarray]:
        h, w = image.shape[:2]
        shapes = []
        for i in range(1, levels + 1):
            lw, lh = level_size(w, h, i)
            shapes.append((lh, lw) + image.shape[2:])
        if [b.shape for b in self.levels] != shapes or (self.levels and self.levels[0].dtype != image.dtype):
            self.levels = [np.empty(s, image.dtype) for s in shapes]
        src = image
        for buf in self.levels:
            cv2.resize(src, (buf.shape[1], buf.shape[0]), dst=buf, interpolation=cv2.INTER_AREA)
            src = buf
        return self.levels

    def get(self, image: np.ndarray, level: int) -> np.ndarray:
        """``image`` itself for level 0, else the ``level``-th halving (after :meth:`build`)."""
        return image if level == 0 else self.levels[level - 1]
