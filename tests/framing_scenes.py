"""Synthetic framing scenes: people drawn as a head ellipse on a neck and shoulders, whose face box is known.

The face box (the metric's unit) is the lower three quarters of the head ellipse's height and three quarters of
its width, so the "whole head" (face box plus a third of its height above it) is exactly the ellipse's height.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from vcam.postprocess.framing import Head


@dataclass(frozen=True)
class Person:
    cx: float  # head centre, source px
    cy: float
    head_w: float  # head ellipse width (with hair)

    @property
    def head_h(self) -> float:
        return 1.25 * self.head_w

    def face(self) -> Head:
        a, b = self.head_w / 2, self.head_h / 2
        fw, fh = 1.5 * a, 1.5 * b
        fy = self.cy - b + fh / 3
        return Head(self.cx - fw / 2, fy, fw, fh, eye_y=fy + 0.4 * fh)


@lru_cache(maxsize=8)
def room(width: int, height: int) -> np.ndarray:
    """A checkered wall with a vertical gradient: texture that a blurred fill must not copy."""
    y, x = np.mgrid[0:height, 0:width]
    return np.dstack([(60 + (x // 40 + y // 40) % 2 * 30 + 0 * y),
                      np.full_like(x, 90), 110 + (y * 60 // height)]).astype(np.uint8)


def person_mask(width: int, height: int, people: list[Person]) -> np.ndarray:
    """uint8 person mask 0/255: each person's head ellipse, neck, and shoulders down to the frame's bottom."""
    mask = np.zeros((height, width), np.uint8)
    for p in people:
        a, b = p.head_w / 2, p.head_h / 2
        centre = (round(p.cx), round(p.cy))
        neck_top, neck_w = p.cy + 0.7 * b, 0.55 * p.head_w
        shoulders_top = p.cy + 1.35 * b
        cv2.rectangle(mask, (round(p.cx - neck_w / 2), round(neck_top)),
                      (round(p.cx + neck_w / 2), round(shoulders_top + 5)), 255, -1)
        cv2.ellipse(mask, (round(p.cx), round(shoulders_top + 1.6 * p.head_w)),
                    (round(1.5 * p.head_w), round(1.6 * p.head_w)), 0, 180, 360, 255, -1)
        cv2.rectangle(mask, (round(p.cx - 1.5 * p.head_w), round(shoulders_top + 1.6 * p.head_w)),
                      (round(p.cx + 1.5 * p.head_w), height), 255, -1)
        cv2.ellipse(mask, centre, (round(a), round(b)), 0, 0, 360, 255, -1)
    return mask


def draw_people(width: int, height: int, people: list[Person]) -> tuple[np.ndarray, np.ndarray]:
    """(BGR frame, uint8 person mask 0/255) of a textured room with these people."""
    frame = room(width, height).copy()
    mask = person_mask(width, height, people)
    frame[mask > 0] = (120, 150, 200)
    for p in people:  # eyes and mouth, so the face reads as a face
        fc = p.face()
        for ex in (fc.x + 0.3 * fc.w, fc.x + 0.7 * fc.w):
            cv2.circle(frame, (round(ex), round(fc.eye_y)), max(1, round(0.06 * fc.w)), (40, 40, 40), -1)
        cv2.ellipse(frame, (round(p.cx), round(fc.y + 0.75 * fc.h)), (round(0.18 * fc.w), round(0.05 * fc.h)),
                    0, 0, 360, (60, 60, 150), -1)
    return frame, mask


def window_mask(mask: np.ndarray, rect: tuple[int, int, int, int], size: tuple[int, int] = (256, 144)) -> np.ndarray:
    """The segmenter's view: the window of a source mask (zeros where it reaches outside), float 0..1 at
    ``size``, as an ideal segmenter would return for the framed frame."""
    x0, y0, w, h = rect
    canvas = np.zeros((h, w), np.uint8)
    sh, sw = mask.shape
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x0 + w, sw), min(y0 + h, sh)
    canvas[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0] = mask[cy0:cy1, cx0:cx1]
    return cv2.resize(canvas, size, interpolation=cv2.INTER_AREA).astype(np.float32) / 255


def head_inside(face: Head, rect: tuple[int, int, int, int], src: tuple[int, int]) -> bool:
    """The whole head (face box plus a third of its height above it) inside the window and the camera frame."""
    x0, y0, w, h = rect
    left, right = max(x0, 0), min(x0 + w, src[0])
    top, bottom = max(y0, 0), min(y0 + h, src[1])
    return face.x >= left and face.x + face.w <= right and face.top >= top and face.y + face.h <= bottom
