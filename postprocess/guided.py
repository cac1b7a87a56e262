"""Fast guided filter (He & Sun 2015) with a grey guide, split over two resolutions.

The linear coefficients ``a, b`` are fitted on a coarse grid (where box filters are cheap) and bilinearly
upsampled to a finer "detail" resolution, where ``q = a * I + b`` lets the edges of the finer guide image shape
the mask. A full-resolution colour guided filter costs ~69 ms at 720p; this costs well under 1 ms.
"""

from __future__ import annotations

import cv2
import numpy as np


class FastGuidedFilter:
    """Preallocated buffers for one coarse grid size and one detail size."""

    def __init__(self) -> None:
        self._coarse_shape: tuple[int, int] | None = None
        self._detail_shape: tuple[int, int] | None = None

    def _alloc(self, coarse: tuple[int, int], detail: tuple[int, int]) -> None:
        if coarse != self._coarse_shape:
            self._coarse_shape = coarse
            (self.mean_i, self.mean_ii, self.mean_p, self.mean_ip, self.tmp, self.var, self.a,
             self.b) = (np.empty(coarse, np.float32) for _ in range(8))
        if detail != self._detail_shape:
            self._detail_shape = detail
            self.a_up = np.empty(detail, np.float32)
            self.b_up = np.empty(detail, np.float32)
            self.out = np.empty(detail, np.float32)

    def apply(self, guide_coarse: np.ndarray, mask_coarse: np.ndarray, guide_detail: np.ndarray,
              radius: int, eps: float, out_u8: np.ndarray | None = None,
              out_affine: tuple[float, float] = (1.0, 0.0)) -> np.ndarray:
        """Filter ``mask_coarse`` (float32, coarse grid) guided by ``guide_coarse`` (float32 [0,1], same grid);
        return the result at the detail resolution of ``guide_detail``.

        ``guide_detail`` is float32 [0, 1] or uint8 [0, 255] (the grey image as it comes, no conversion pass).
        Without ``out_u8`` the result is float32 [0, 1] (may overshoot slightly) in a reused buffer; with it
        (uint8, detail size) the result is written there as 0..255, rounded and saturated, in the same pass as
        the final addition (no separate clip and conversion), and ``out_u8`` is returned.

        ``out_affine = (gain, offset)``: with ``out_u8``, write ``gain * q * 255 + offset`` instead (saturated): a
        linear contrast curve applied to the result folded into the coefficients on the coarse grid, so it costs
        no pass over the detail image."""
        self._alloc(guide_coarse.shape, guide_detail.shape)
        k = (2 * radius + 1, 2 * radius + 1)
        border = cv2.BORDER_REFLECT
        box = cv2.boxFilter
        box(guide_coarse, -1, k, dst=self.mean_i, borderType=border)
        cv2.multiply(guide_coarse, guide_coarse, dst=self.tmp)
        box(self.tmp, -1, k, dst=self.mean_ii, borderType=border)
        box(mask_coarse, -1, k, dst=self.mean_p, borderType=border)
        cv2.multiply(guide_coarse, mask_coarse, dst=self.tmp)
        box(self.tmp, -1, k, dst=self.mean_ip, borderType=border)
        # var = E[I^2] - E[I]^2 + eps ; cov = E[Ip] - E[I]E[p]
        cv2.multiply(self.mean_i, self.mean_i, dst=self.tmp)
        cv2.subtract(self.mean_ii, self.tmp, dst=self.var)
        np.add(self.var, np.float32(eps), out=self.var)
        cv2.multiply(self.mean_i, self.mean_p, dst=self.tmp)
        cv2.subtract(self.mean_ip, self.tmp, dst=self.tmp)
        cv2.divide(self.tmp, self.var, dst=self.a)
        cv2.multiply(self.a, self.mean_i, dst=self.tmp)
        cv2.subtract(self.mean_p, self.tmp, dst=self.b)
        # q = a * I + b with I in guide_detail's units and q in the output's: scale a and b on the coarse grid
        # (cheap) rather than the detail image
        gain, offset = out_affine if out_u8 is not None else (1.0, 0.0)
        out_scale = 255.0 * gain if out_u8 is not None else 1.0
        a_scale = out_scale / (255.0 if guide_detail.dtype == np.uint8 else 1.0)
        box(self.a, -1, k, dst=self.tmp, borderType=border)
        if a_scale != 1.0:
            np.multiply(self.tmp, np.float32(a_scale), out=self.tmp)
        dh, dw = guide_detail.shape
        cv2.resize(self.tmp, (dw, dh), dst=self.a_up, interpolation=cv2.INTER_LINEAR)
        box(self.b, -1, k, dst=self.tmp, borderType=border)
        if out_scale != 1.0 or offset != 0.0:
            cv2.addWeighted(self.tmp, out_scale, self.tmp, 0.0, offset, dst=self.tmp)
        cv2.resize(self.tmp, (dw, dh), dst=self.b_up, interpolation=cv2.INTER_LINEAR)
        cv2.multiply(self.a_up, guide_detail, dst=self.out, dtype=cv2.CV_32F)
        if out_u8 is not None:
            cv2.add(self.out, self.b_up, dst=out_u8, dtype=cv2.CV_8U)  # saturate_cast: rounds, clips to 0..255
            return out_u8
        cv2.add(self.out, self.b_up, dst=self.out)
        return self.out
