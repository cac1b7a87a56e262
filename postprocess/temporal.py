"""Motion-compensated temporal smoothing of the person mask.

Per pixel, the new mask is ``warped + k * (mask - warped)``, where ``warped`` is the previous output moved with
the image by dense optical flow. The follow rate ``k`` is ``1 - strength`` where that warp is reliable (heavy
smoothing: no flicker on a still or steadily moving person) and rises to 1 where it is not (occlusions, motion the
flow misses) or where the mask jumped: the mask follows a fast hand at once, without a trail.
"""

from __future__ import annotations

from typing import ClassVar

import cv2
import numpy as np


class FlowSmoother:
    """Motion-compensated exponential smoothing of a float32 grid mask; keeps the previous output and grey frame.

    Dense optical flow (DIS, ultrafast preset) from the current grey frame to the previous one, at the grid halved
    ``flow_levels`` times, warps the previous *output* onto the current frame; then per pixel
    ``mask = warped + k * (mask - warped)``. ``k`` is ``1 - strength`` where the warp is reliable (the previous
    grey frame warped the same way matches the current one within ``noise`` grey levels) and rises to 1 where it
    does not (occlusions, motion the coarse flow cannot follow: error ``noise + ramp`` and above), and where the
    mask jumped by ``jump`` or more against the warped one. So an edge that moves with the image (a talking head)
    is smoothed as hard as a still one, and what the flow cannot explain is followed at once (no trail).
    """

    #: DIS settings on top of the ultrafast preset (patch 8, stride 4, 12 descent iterations): a sparser patch grid
    #: and fewer iterations halve its cost for a point or two of flicker (docs/edges.md)
    DIS_PARAMS: ClassVar[dict] = {"PatchStride": 6, "GradientDescentIterations": 3}
    #: the warp-error map is dilated this much (flow px) so the rim of a fast-moving limb counts as unreliable
    #: too (3 -> 7 halves the ghost pixels on the DAVIS sequences for two points of flicker)
    ERR_DILATE = 7

    def __init__(self, dis_params: dict | None = None) -> None:
        self._prev: np.ndarray | None = None
        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
        for k, v in (self.DIS_PARAMS if dis_params is None else dis_params).items():
            getattr(self._dis, "set" + k)(v)
        self._kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (self.ERR_DILATE, self.ERR_DILATE))
        self._levels = -1

    def reset(self) -> None:
        self._prev = None

    def _allocate(self, shape: tuple[int, int], levels: int) -> None:
        gh, gw = shape
        # DIS computes its field at its input halved `finest scale` times (and returns it scaled up to the input's
        # size); its input is the grid halved once and its finest scale `levels - 1`, so the field is the grid
        # halved `levels` times (80x45 at 720p for 2); a larger input with a coarser finest scale costs more for
        # the same field
        image_levels = min(1, levels)
        self._dis.setFinestScale(levels - image_levels)
        fw, fh = max(8, gw >> image_levels), max(8, gh >> image_levels)
        self._levels = levels
        self._small_size = (fw, fh)
        self._small = np.empty((fh, fw), np.uint8)
        self._small_prev = np.empty((fh, fw), np.uint8)
        self._small_warp = np.empty((fh, fw), np.uint8)
        self._err = np.empty((fh, fw), np.uint8)
        self._err_f = np.empty((fh, fw), np.float32)
        self._flow = np.zeros((fh, fw, 2), np.float32)
        xs, ys = np.meshgrid(np.arange(fw, dtype=np.float32), np.arange(fh, dtype=np.float32))
        self._base_small = np.dstack([xs, ys])
        self._map_small = np.empty((fh, fw, 2), np.float32)
        # grid px per px of the flow (which is given at the size of DIS's input)
        self._flow_scale = np.array([gw / fw, gh / fh], np.float32)
        # the warp map is built at the flow's size in grid coordinates and bilinearly scaled up: the identity part
        # (the centre of flow pixel x is grid coordinate (x + 0.5) * s - 0.5) scales up to the grid's own
        # coordinates exactly, except half a pixel at the outermost rim, so this equals scaling up the flow and
        # adding the grid coordinates, without two full-grid passes
        self._base_grid_small = (self._base_small + 0.5) * self._flow_scale - 0.5
        self._map_grid_small = np.empty((fh, fw, 2), np.float32)
        self._map = np.empty((gh, gw, 2), np.float32)
        self._warped = np.empty((gh, gw), np.float32)
        self._rate = np.empty((gh, gw), np.float32)
        self._follow = np.empty((gh, gw), np.float32)
        self._prev = None

    def process(self, mask: np.ndarray, grey: np.ndarray, strength: float, noise: float, ramp: float,
                jump: float = 1.0, levels: int = 2) -> np.ndarray:
        """Smooth ``mask`` (float32 [h, w] 0..1) in place; ``grey``: uint8 [h, w], the same frame's grey image.
        ``noise`` and ``ramp`` in grey levels of the motion-compensated difference. Returns ``mask``."""
        if self._prev is None or self._prev.shape != mask.shape or self._levels != levels:
            self._allocate(mask.shape, levels)
        if self._small_size == (grey.shape[1], grey.shape[0]):
            np.copyto(self._small, grey)
        else:
            cv2.resize(grey, self._small_size, dst=self._small, interpolation=cv2.INTER_AREA)
        if self._prev is None:
            self._prev = mask.copy()
            self._small, self._small_prev = self._small_prev, self._small
            return mask
        # flow from the current frame to the previous one: where each current pixel was
        self._dis.calc(self._small, self._small_prev, self._flow)
        # reliability, at the flow resolution: the previous grey frame warped like the mask vs the current one
        cv2.add(self._base_small, self._flow, dst=self._map_small)
        cv2.remap(self._small_prev, self._map_small, None, cv2.INTER_LINEAR, dst=self._small_warp,
                  borderMode=cv2.BORDER_REPLICATE)
        cv2.absdiff(self._small, self._small_warp, dst=self._err)
        cv2.dilate(self._err, self._kernel, dst=self._err)
        cv2.blur(self._err, (3, 3), dst=self._err)
        # rate = k_min + (err - noise) / ramp * (1 - k_min), clipped to [k_min, 1]
        k_min = 1.0 - strength
        scale = (1.0 - k_min) / ramp
        np.multiply(self._err, np.float32(scale), out=self._err_f)
        np.add(self._err_f, np.float32(k_min - noise * scale), out=self._err_f)
        np.clip(self._err_f, np.float32(k_min), np.float32(1.0), out=self._err_f)
        cv2.resize(self._err_f, (mask.shape[1], mask.shape[0]), dst=self._rate, interpolation=cv2.INTER_LINEAR)
        # warp the previous output: map = grid coordinates + the flow scaled to grid pixels
        sx, sy = self._flow_scale
        if sx == sy:
            cv2.scaleAdd(self._flow, float(sx), self._base_grid_small, dst=self._map_grid_small)
        else:  # (numpy's broadcast over the last axis of 2 is ~5x slower than OpenCV's per-channel scalar)
            cv2.multiply(self._flow, (float(sx), float(sy), 0.0, 0.0), dst=self._map_grid_small)
            cv2.add(self._map_grid_small, self._base_grid_small, dst=self._map_grid_small)
        cv2.resize(self._map_grid_small, (mask.shape[1], mask.shape[0]), dst=self._map,
                   interpolation=cv2.INTER_LINEAR)
        cv2.remap(self._prev, self._map, None, cv2.INTER_LINEAR, dst=self._warped, borderMode=cv2.BORDER_REPLICATE)
        if jump < 1.0:
            # follow = clip((|mask - warped| - jump/2) / (jump/2), 0, 1); rate = max(rate, follow)
            cv2.absdiff(mask, self._warped, dst=self._follow)
            cv2.addWeighted(self._follow, 2.0 / jump, self._follow, 0.0, -1.0, dst=self._follow)
            cv2.max(self._rate, self._follow, dst=self._rate)
            np.minimum(self._rate, np.float32(1.0), out=self._rate)
        # mask = warped + rate * (mask - warped)
        cv2.subtract(mask, self._warped, dst=mask)
        np.multiply(mask, self._rate, out=mask)
        cv2.add(mask, self._warped, dst=mask)
        # flush what decays towards 0 before it turns denormal (denormal floats make every later op ~2x slower)
        cv2.threshold(mask, 1.0 / 4096, 0.0, cv2.THRESH_TOZERO, dst=mask)
        np.copyto(self._prev, mask)
        self._small, self._small_prev = self._small_prev, self._small
        return mask
