"""Small array operations of the skin filter (``skin.py``): temporal blending on shifted grids, the change
weight that gates it, the fast guided filter and the working scale."""

from __future__ import annotations

import cv2
import numpy as np


def change_weight(cur: np.ndarray, ref: np.ndarray, still: float = 1.0, moving: float = 4.0) -> np.ndarray:
    """0 where the locally averaged luma is within ``still`` levels of the reference, ramping to 1 at
    ``moving`` levels. The signed difference is averaged before its magnitude is taken, so sensor noise
    (zero-mean) does not count as change while motion and light changes do."""
    diff = cv2.blur(cur - ref, (3, 3))
    return clip01((np.abs(diff) - still) * (1.0 / (moving - still)))


def clip01(x: np.ndarray) -> np.ndarray:
    """``np.clip(x, 0, 1)`` in place (cheaper than np.clip on small arrays)."""
    np.maximum(x, 0.0, out=x)
    np.minimum(x, 1.0, out=x)
    return x


def overlap(
    cur: np.ndarray, prev: np.ndarray, dx: int, dy: int
) -> tuple[tuple[slice, slice], tuple[slice, slice]] | None:
    """Slices of the common area of two grids whose origins differ by (dx, dy) cells (prev minus cur)."""
    ph, pw = prev.shape[:2]
    h, w = cur.shape[:2]
    x0, y0 = max(0, dx), max(0, dy)
    x1, y1 = min(w, dx + pw), min(h, dy + ph)
    if x1 <= x0 or y1 <= y0:
        return None
    return (slice(y0, y1), slice(x0, x1)), (slice(y0 - dy, y1 - dy), slice(x0 - dx, x1 - dx))


def blend(cur: np.ndarray, prev: np.ndarray, alpha: np.ndarray | float) -> None:
    """cur = prev + alpha * (cur - prev), in place (``alpha`` per pixel or one number)."""
    cur -= prev
    if isinstance(alpha, np.ndarray) and cur.ndim == 3:
        alpha = alpha[..., None]
    cur *= alpha
    cur += prev


def guided_filter(image: np.ndarray, radius: float, eps: float, small: np.ndarray | None = None) -> np.ndarray:
    """Fast self-guided filter (He & Sun 2015): coefficients at half resolution; float32 in/out.

    ``radius`` is in pixels of ``image``; ``small`` is the image at half size if the caller has it already.
    """
    h, w = image.shape[:2]
    if small is None:
        small = cv2.resize(image, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA)
    r = max(1, round(radius / 2))
    ksize = (2 * r + 1, 2 * r + 1)
    mean = cv2.boxFilter(small, -1, ksize)
    var = cv2.boxFilter(small * small, -1, ksize) - mean * mean
    a = var / (var + eps * eps)
    b = mean - a * mean
    a = cv2.resize(cv2.boxFilter(a, -1, ksize), (w, h), interpolation=cv2.INTER_LINEAR)
    b = cv2.resize(cv2.boxFilter(b, -1, ksize), (w, h), interpolation=cv2.INTER_LINEAR)
    out = a * image
    out += b
    return out


def working_scale(face_width: float, face_px: int, previous: int = 0) -> int:
    """The integer shrink factor (1 or more) that brings the face nearest to ``face_px`` pixels wide. The
    track's ``previous`` factor is kept until the face is 15 % of a step past the halfway point: a face whose
    width sits there would otherwise switch back and forth (each switch moves the temporal state onto a new
    grid, ``skin.SkinFilter``).

    An integer, not a power of two: a power of two shrinks a 1080p face (about 350 px) 4x to 87 px, a working
    grid of 4 frame pixels, coarser than the finer half of the blemish band (1-2 % of the face width); the
    temporal gate, which works per working pixel, then also updates still pixels up to 6 frame pixels from
    moving ones. 3x gives 117 px. (INTER_AREA's shrink of a 360x528 region: 0.04 ms at 2x, 0.21 ms at 3x,
    0.16 ms at 4x.)
    """
    ideal = max(face_width, 1.0) / face_px
    if previous >= 1 and abs(ideal - previous) < 0.5 + _SCALE_HYSTERESIS:
        return previous
    return max(1, round(ideal))


_SCALE_HYSTERESIS = 0.15  # in steps of the factor


def regrid(arr: np.ndarray, src: tuple[int, int, int], dst: tuple[int, int, int], size: tuple[int, int],
           fill: float) -> np.ndarray:
    """``arr`` on a grid of ``src`` = (x0, y0, cell) frame pixels, resampled (bilinear) onto the grid ``dst``
    with ``size`` = (w, h) cells; cells beyond ``arr`` get ``fill``. For a face whose working scale changes:
    its temporal state carries over instead of restarting."""
    sx, sy, sc = src
    dx, dy, dc = dst
    k = dc / sc  # destination cell j has its centre at source coordinate k * j + offset (pixel centres)
    m = np.array([[k, 0.0, (dx - sx + 0.5 * dc) / sc - 0.5], [0.0, k, (dy - sy + 0.5 * dc) / sc - 0.5]])
    fills = (fill,) * (arr.shape[2] if arr.ndim == 3 else 1)
    return cv2.warpAffine(arr, m, size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=fills)
