"""Alpha blending that only does arithmetic where the alpha is actually fractional.

A full-frame 3-channel blend costs 2-3 ms at 720p with OpenCV (blendLinear 3.0 ms, multiply/add 2.0 ms), most of
the compositing budget, yet nearly every pixel has alpha 0 or 255. :class:`TileBlender` copies the foreground
where alpha is nonzero (one masked copy), and blends only the 8x8 tiles that hold a fractional alpha. Tiles are
gathered and scattered with ``np.take``/``np.put`` on a 24-byte view of the frame (one element = one tile row of
8 BGR pixels), ten times cheaper than 2-D fancy indexing. Frames whose sides are not multiples of 8 use the full-frame blend; both
paths give identical results.

Blend: ``out = round(F * a / 255) + round(B * (255 - a) / 255)`` (saturating), so a = 255 gives F exactly
and a = 0 gives B exactly.
"""

from __future__ import annotations

import cv2
import numpy as np

TILE = 8


def blend_full(fg: np.ndarray, bg: np.ndarray, alpha: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Reference blend over the whole frame (uint8 BGR ``fg``/``bg``, uint8 ``alpha``); ``out`` may be ``bg``."""
    a3 = cv2.cvtColor(alpha, cv2.COLOR_GRAY2BGR)
    x = cv2.multiply(fg, a3, scale=1 / 255)
    cv2.bitwise_not(a3, dst=a3)  # 255 - a
    y = cv2.multiply(bg, a3, scale=1 / 255)
    cv2.add(x, y, dst=out)
    return out


def _blend_rows(fg: np.ndarray, bg: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Blend gathered pixels: fg/bg uint8 [N, 1, 3], alpha uint8 [N, 1]."""
    a3 = cv2.cvtColor(alpha, cv2.COLOR_GRAY2BGR)
    x = cv2.multiply(fg, a3, scale=1 / 255)
    cv2.bitwise_not(a3, dst=a3)  # 255 - a
    y = cv2.multiply(bg, a3, scale=1 / 255)
    return cv2.add(x, y)


class TileBlender:
    """``blend(fg, alpha, out, wrap=None)``: ``out`` holds the background on entry and the composite on exit."""

    def __init__(self) -> None:
        self._shape: tuple[int, int] | None = None

    def _alloc(self, h: int, w: int) -> None:
        self._shape = (h, w)
        self._mixed = np.empty((h, w), np.uint8)
        self._levels = [np.empty((h >> i, w >> i), np.uint8) for i in (1, 2, 3)]
        self._row_offsets = np.arange(TILE, dtype=np.intp)
        self._small_shape: tuple[int, ...] | None = None
        self._kernel3 = np.ones((3, 3), np.uint8)

    def tiles_from_small(self, alpha_small: np.ndarray, level: int) -> np.ndarray:
        """Tile map from an alpha ``level`` (1..3) halvings smaller whose bilinear upscale is the full alpha: a
        full-resolution pixel can only be fractional where its small pixel's 3x3 neighbourhood is not one
        constant 0 or 255 (bilinear 2^level upscaling reads only those)."""
        if self._small_shape != alpha_small.shape:
            self._small_shape = alpha_small.shape
            self._grad = np.empty_like(alpha_small)
            self._frac = np.empty_like(alpha_small)
        cv2.morphologyEx(alpha_small, cv2.MORPH_GRADIENT, self._kernel3, dst=self._grad)
        cv2.inRange(alpha_small, 1, 254, dst=self._frac)
        cv2.bitwise_or(self._grad, self._frac, dst=self._grad)
        src = self._grad
        for buf in self._levels[level:]:
            cv2.resize(src, (buf.shape[1], buf.shape[0]), dst=buf, interpolation=cv2.INTER_LINEAR)
            src = buf
        return src

    def tiles_of(self, alpha: np.ndarray) -> np.ndarray:
        """uint8 [H/8, W/8], nonzero where the tile holds a fractional alpha (reused buffer)."""
        cv2.inRange(alpha, 1, 254, dst=self._mixed)
        src = self._mixed
        for buf in self._levels:  # 2x INTER_LINEAR = 2x2 average; any nonzero pixel keeps its tile nonzero
            cv2.resize(src, (buf.shape[1], buf.shape[0]), dst=buf, interpolation=cv2.INTER_LINEAR)
            src = buf
        return self._levels[-1]

    def blend(self, fg: np.ndarray, alpha: np.ndarray, out: np.ndarray, tiles: np.ndarray | None = None,
              wrap: tuple[np.ndarray, np.ndarray] | None = None, alpha_small: np.ndarray | None = None,
              alpha_level: int = 0) -> np.ndarray:
        """Composite ``fg`` over the background already in ``out`` with ``alpha``.

        ``tiles``: optional extra tile map (uint8 [H/8, W/8], nonzero = also process); ``wrap``: optional
        ``(colour, weight)`` full-frame images for light wrap: inside those tiles the foreground is first mixed
        towards ``colour`` by ``weight`` (uint8), then composited. ``alpha_small``: optionally the alpha
        ``alpha_level`` halvings smaller whose bilinear upscale ``alpha`` is (saves finding the tiles at full size).
        """
        h, w = alpha.shape
        if h % TILE or w % TILE or not (fg.flags.c_contiguous and out.flags.c_contiguous):
            if wrap is not None:
                fg = blend_full(wrap[0], fg, wrap[1], np.empty_like(fg))
            return blend_full(fg, out, alpha, out)
        if self._shape != (h, w):
            self._alloc(h, w)
        if alpha_small is not None and 1 <= alpha_level <= 3 and alpha_small.shape == self._levels[
                alpha_level - 1].shape:
            tmap = self.tiles_from_small(alpha_small, alpha_level)
        else:
            tmap = self.tiles_of(alpha)
        if tiles is not None:
            tmap = cv2.bitwise_or(tmap, tiles)
        idx = np.flatnonzero(tmap)
        if idx.size == 0:
            cv2.copyTo(fg, alpha, dst=out)  # alpha is 0 or 255 everywhere
            return out
        tw = w // TILE
        ty, tx = np.divmod(idx, tw)
        # flat index of each tile row in a [H * W/8] array of 8-pixel row segments
        seg = ((ty[:, None] * TILE + self._row_offsets[None, :]) * tw + tx[:, None]).ravel()
        n = seg.size * TILE
        out_seg = out.reshape(-1).view("V24")  # one element = 8 BGR pixels
        f = np.take(fg.reshape(-1).view("V24"), seg).view(np.uint8).reshape(1, n, 3)
        b = np.take(out_seg, seg).view(np.uint8).reshape(1, n, 3)  # the background, before the person lands
        a = np.take(alpha.reshape(-1).view(np.uint64), seg).view(np.uint8).reshape(1, n)
        # the person wherever alpha > 0 (one masked copy, no threshold pass); the fractional tiles are
        # overwritten below with the blend computed from the background gathered above
        cv2.copyTo(fg, alpha, dst=out)
        if wrap is not None:
            c = np.take(wrap[0].reshape(-1).view("V24"), seg).view(np.uint8).reshape(1, n, 3)
            wt = np.take(wrap[1].reshape(-1).view(np.uint64), seg).view(np.uint8).reshape(1, n)
            f = _blend_rows(c, f, wt)
        res = _blend_rows(f, b, a)
        np.put(out_seg, seg, res.reshape(-1).view("V24"))
        return out
