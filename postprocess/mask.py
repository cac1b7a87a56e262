"""Mask refinement: low-resolution person mask + full-resolution frame -> full-resolution alpha.

Pipeline per frame (``work`` = the frame halved until its width <= ``work_width``, 640x360 for 720p;
``grid`` = ``work`` halved ``grid_levels`` more times, 320x180 for 720p):

1. the model mask is resized to the grid and smoothed in time there, motion-compensated: the previous mask is
   warped by optical flow onto this frame, and the new mask is followed at once where that warp fails;
2. edge-aware refinement: a fast guided filter fits its coefficients on the grid and applies them with the
   ``work`` grey image, so the alpha follows the image's edges at ``work`` resolution (hair, glasses, fingers);
3. soft alpha (snapped at both ends around ``snap_center``, folded into the filter's last step) or threshold,
   then dilation, erosion and feathering on the refined alpha at ``work`` resolution (grey-level morphology
   shifts the soft edge without hardening it, so they compose with refinement);
4. one bilinear upscale to the frame size.

Output: ``uint8 [H, W]`` alpha, 0 = background, 255 = person, in a buffer reused across frames.
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from .guided import FastGuidedFilter
from .pyramid import Pyramid, level_for_width, level_size
from .temporal import FlowSmoother


class MaskSettings(BaseModel):
    """Mask post-processing (refinement, morphology, temporal smoothing)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    soft: bool = Field(True, description="keep a soft alpha (true) or threshold it at `threshold` (false: binary "
                       "unless feathered)")
    threshold: float = Field(0.5, ge=0.05, le=0.95, description="person/background cut when soft is false")
    snap: float = Field(0.35, ge=0.0, le=0.45,
                        description="refined values more than 0.5 - snap below snap_center become 0, as far above "
                        "become 1, linear between (removes faint tails, crisper edge; 0 = keep as is)")
    snap_center: float = Field(0.55, ge=0.3, le=0.7,
                               description="refined value that becomes alpha 0.5 (above 0.5 pulls the edge in "
                               "slightly: the model's masks run a little wide of the person)")
    dilate_px: float = Field(0.0, ge=0.0, le=32.0, description="grow the person by this many frame pixels")
    erode_px: float = Field(0.0, ge=0.0, le=32.0, description="shrink the person by this many frame pixels "
                            "(applied after dilation; equal values close small holes)")
    feather_px: float = Field(0.0, ge=0.0, le=32.0, description="extra edge softness (Gaussian sigma, frame px)")
    refine: bool = Field(True, description="edge-aware refinement with the frame (fast guided filter)")
    refine_radius: int = Field(2, ge=1, le=16, description="guided-filter box radius in grid pixels (grid = "
                               "frame/4 at 720p)")
    refine_eps: float = Field(0.001, ge=1e-6, le=0.5, description="guided-filter regulariser: smaller follows "
                              "image edges more closely, larger keeps the model's mask")
    work_width: int = Field(640, ge=64, le=4096, description="refine at the frame halved until its width is at "
                            "most this")
    grid_levels: int = Field(1, ge=0, le=3, description="the coarse grid (temporal smoothing, guided-filter "
                             "coefficients) is the work resolution halved this many times")
    temporal_strength: float = Field(0.95, ge=0.0, le=0.98, description="temporal smoothing where the motion-"
                                     "compensated image is still (0 = off): the previous mask is warped by optical "
                                     "flow; what the flow does not explain follows at once")
    motion_jump: float = Field(0.9, ge=0.1, le=1.0, description="a mask change this large (0..1) is followed at "
                               "once even where the image looks still (1 = off)")
    flow_levels: int = Field(2, ge=1, le=4, description="the optical-flow field is computed at the grid halved "
                             "this many times (2: 80x45 for 720p; 3 is cheaper and coarser)")
    flow_noise: float = Field(12.0, ge=0.0, le=64.0, description="grey-level error of the motion-compensated "
                              "previous frame treated as noise (warp reliable: smooth)")
    flow_ramp: float = Field(32.0, ge=1.0, le=128.0, description="grey levels above flow_noise at which the warp "
                             "counts as unreliable (occlusion, motion the flow misses: follow the new mask at once)")


class RefineHints(NamedTuple):
    """By-products of one :meth:`MaskRefiner.refine` call, valid for that frame and alpha only."""

    frame_levels: list[np.ndarray]  # the frame halved 1, 2, ... times (BGR uint8)
    alpha_small: np.ndarray  # the alpha at the work resolution (uint8), before the final bilinear upscale
    alpha_level: int  # how many halvings of the frame the work resolution is


def _snap_affine(s: MaskSettings) -> tuple[float, float]:
    """(gain, offset) of the soft alpha curve on 0..255 values: ``gain * v + offset``, saturated to 0..255, snaps
    values more than ``0.5 - snap`` below ``snap_center`` to 0, as far above to 255, linear between."""
    half = (0.5 - s.snap) * 255.0
    lo, hi = s.snap_center * 255.0 - half, s.snap_center * 255.0 + half
    gain = 255.0 / max(hi - lo, 1.0)
    return gain, -lo * gain


def _alpha_lut(s: MaskSettings) -> np.ndarray:
    """uint8 -> uint8 curve applied to the refined alpha: threshold, or snap the ends and stretch the middle."""
    v = np.arange(256, dtype=np.float32)
    if not s.soft:
        return np.where(v >= s.threshold * 255.0, 255, 0).astype(np.uint8)
    gain, offset = _snap_affine(s)
    return np.clip(np.round(v * gain + offset), 0, 255).astype(np.uint8)


def _disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


class MaskRefiner:
    """``refine(mask, frame) -> (alpha, hints)``: see the module docstring."""

    def __init__(self, settings: MaskSettings | None = None) -> None:
        self.settings = settings or MaskSettings()
        self._pyramid = Pyramid()
        self._gf = FastGuidedFilter()
        self._flow = FlowSmoother()
        self._frame_size: tuple[int, int] | None = None
        self.configure(self.settings)

    def configure(self, settings: MaskSettings) -> None:
        """Swap settings between frames; temporal state is kept unless the working resolution changes."""
        old = self.settings
        self.settings = settings
        self._lut = _alpha_lut(settings)
        self._snap = _snap_affine(settings) if settings.soft else None
        if (old.work_width, old.grid_levels) != (settings.work_width, settings.grid_levels):
            self._frame_size = None  # reallocate (and reset) on the next frame

    def reset(self) -> None:
        """Drop temporal state (camera switched, resolution change)."""
        self._flow.reset()

    def _allocate(self, width: int, height: int) -> None:
        s = self.settings
        self._frame_size = (width, height)
        self._work_level = level_for_width(width, s.work_width)
        self._grid_level = self._work_level + s.grid_levels
        self._scale = float(2 ** self._work_level)  # frame px per work px
        ww, wh = level_size(width, height, self._work_level)
        gw, gh = level_size(width, height, self._grid_level)
        self._work_size, self._grid_size = (ww, wh), (gw, gh)
        self._grey_work_u8 = np.empty((wh, ww), np.uint8)
        self._grey_grid_u8 = np.empty((gh, gw), np.uint8)
        self._grey_grid = np.empty((gh, gw), np.float32)
        self._mask_grid = np.empty((gh, gw), np.float32)
        self._mask_work = np.empty((wh, ww), np.float32)
        self._alpha_work = np.empty((wh, ww), np.uint8)
        self._alpha_tmp = np.empty((wh, ww), np.uint8)
        self._alpha = np.empty((height, width), np.uint8)
        self._levels: list[np.ndarray] = []
        self.reset()

    def _frame_levels(self, frame: np.ndarray, given: list[np.ndarray] | None) -> list[np.ndarray]:
        """At least ``work_level`` halvings of ``frame``: the caller's when they are exact 2x2 box halvings of a
        frame whose sides divide evenly (the same pixels :class:`Pyramid` would compute), else our own."""
        n = self._work_level
        if given and len(given) >= n:
            height, width = frame.shape[:2]
            if width % (1 << len(given)) == 0 and height % (1 << len(given)) == 0 and all(
                    g.shape == (height >> i, width >> i, 3) and g.dtype == np.uint8
                    for i, g in enumerate(given, start=1)):
                return list(given)
        return self._pyramid.build(frame, n)

    def process(self, mask: np.ndarray, frame: np.ndarray,
                frame_levels: list[np.ndarray] | None = None) -> np.ndarray:
        """The alpha alone: see :meth:`refine`."""
        return self.refine(mask, frame, frame_levels)[0]

    def refine(self, mask: np.ndarray, frame: np.ndarray,
               frame_levels: list[np.ndarray] | None = None) -> tuple[np.ndarray, RefineHints]:
        """``mask``: float32 [h, w] person probability at the model's resolution; ``frame``: BGR uint8 [H, W, 3].
        ``frame_levels``: optionally ``frame`` already halved 1, 2, ... times with 2x2 box averages (the
        segmenter computes them on its way to the model's input size); used when they fit, saving the halving.
        Returns the alpha, uint8 [H, W] (0..255), and what compositing the same frame can reuse; both are
        buffers reused by the next call."""
        s = self.settings
        height, width = frame.shape[:2]
        if self._frame_size != (width, height):
            self._allocate(width, height)
        if mask.dtype != np.float32:
            mask = mask.astype(np.float32) / (255.0 if mask.dtype == np.uint8 else 1.0)

        self._levels = self._frame_levels(frame, frame_levels)
        work = self._levels[self._work_level - 1] if self._work_level else frame
        cv2.cvtColor(work, cv2.COLOR_BGR2GRAY, dst=self._grey_work_u8)
        cv2.resize(self._grey_work_u8, self._grid_size, dst=self._grey_grid_u8, interpolation=cv2.INTER_LINEAR)
        np.multiply(self._grey_grid_u8, np.float32(1 / 255), out=self._grey_grid)
        cv2.resize(mask, self._grid_size, dst=self._mask_grid, interpolation=cv2.INTER_LINEAR)
        if s.temporal_strength > 0:
            self._flow.process(self._mask_grid, self._grey_grid_u8, s.temporal_strength, s.flow_noise, s.flow_ramp,
                               s.motion_jump, s.flow_levels)
        else:
            self._flow.reset()
        self._alpha_at_work_size()
        self._shape_alpha(width, height)
        return self._alpha, RefineHints(self._levels, self._alpha_work, self._work_level)

    def _alpha_at_work_size(self) -> None:
        """The smoothed grid mask -> the uint8 alpha at the work resolution, edge-refined and snapped."""
        s = self.settings
        if s.refine:
            # the filter writes the uint8 alpha directly (rounded and saturated), with the soft snap curve folded
            # into its coefficients (no pass of its own)
            self._gf.apply(self._grey_grid, self._mask_grid, self._grey_work_u8, s.refine_radius, s.refine_eps,
                           out_u8=self._alpha_work, out_affine=self._snap or (1.0, 0.0))
            if self._snap is None:
                cv2.LUT(self._alpha_work, self._lut, dst=self._alpha_work)
            return
        cv2.resize(self._mask_grid, self._work_size, dst=self._mask_work, interpolation=cv2.INTER_LINEAR)
        # float [0,1] -> uint8, rounded and clipped at both ends by saturation
        cv2.multiply(self._mask_work, 255.0, dst=self._alpha_work, dtype=cv2.CV_8U)
        cv2.LUT(self._alpha_work, self._lut, dst=self._alpha_work)

    def _shape_alpha(self, width: int, height: int) -> None:
        """Dilate, erode and feather the work-resolution alpha, then scale it to the frame size."""
        s = self.settings
        a = self._alpha_work
        if s.dilate_px > 0:
            r = max(1, round(s.dilate_px / self._scale))
            cv2.dilate(a, _disk(r), dst=self._alpha_tmp)
            a, self._alpha_tmp = self._alpha_tmp, a
        if s.erode_px > 0:
            r = max(1, round(s.erode_px / self._scale))
            cv2.erode(a, _disk(r), dst=self._alpha_tmp)
            a, self._alpha_tmp = self._alpha_tmp, a
        if s.feather_px > 0:
            cv2.GaussianBlur(a, (0, 0), s.feather_px / self._scale, dst=self._alpha_tmp)
            a, self._alpha_tmp = self._alpha_tmp, a
        self._alpha_work = a  # the two work buffers may have swapped roles
        if a.shape == self._alpha.shape:
            np.copyto(self._alpha, a)
        else:
            cv2.resize(a, (width, height), dst=self._alpha, interpolation=cv2.INTER_LINEAR)
            if not s.soft and s.feather_px <= 0:  # hard mode stays binary through the upscale
                cv2.threshold(self._alpha, 127, 255, cv2.THRESH_BINARY, dst=self._alpha)
