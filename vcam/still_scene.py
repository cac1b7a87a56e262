"""Skip the segmenter while the picture it would see has not changed: reuse its last mask in a still scene.

On a video call the camera often sees the same picture for several frames (a person listening, a paused
speaker). :class:`StillSceneGate` compares the model's input picture (already made for the model, e.g. 336x192)
with the one the model last ran on: grey levels, mean absolute difference per 8x8 block. When every block moved
by less than ``threshold`` grey levels, the last mask is reused for this frame instead of running the model, at
most ``max_reused`` frames in a row (then the model runs whatever the picture did, so slow drift is caught within
that many frames). A one-pixel shift (at the model's size) of an edge of 48 or more grey levels changes its
block's mean by the default threshold of 6, and the model runs at once; sensor noise mostly averages out within a
block. ``python -m tools.evaluation.still_scene`` measures what the reuse skips and changes on real clips.

Comparing against the picture the model last ran on (not against the previous frame) keeps slow changes from
sneaking under the threshold frame by frame. A pure state machine: no clock, no I/O.
"""

from __future__ import annotations

import cv2
import numpy as np

BLOCK = 8


class StillSceneGate:
    """``reusable_mask(picture)`` -> the remembered mask or None (run the model, then ``remember``)."""

    def __init__(self, threshold: float = 6.0, max_reused: int = 2) -> None:
        self.threshold = threshold
        self.max_reused = max_reused
        self._grey: np.ndarray | None = None  # this frame's model input in grey
        self._ref_grey: np.ndarray | None = None  # the model input the remembered mask was made from
        self._ref_mask: np.ndarray | None = None
        self._reused = 0  # frames in a row that got the remembered mask
        self.frames = 0  # frames asked about since the last reset (for statistics)
        self.skipped = 0  # of those, how many reused the mask

    def configure(self, threshold: float, max_reused: int) -> None:
        self.threshold, self.max_reused = threshold, max_reused
        if not self.enabled:
            self.reset()

    @property
    def enabled(self) -> bool:
        return self.threshold > 0 and self.max_reused > 0

    def reset(self) -> None:
        """Forget the remembered mask (another camera, another model, another size)."""
        self._ref_grey = self._ref_mask = None
        self._reused = 0

    def _still(self, grey: np.ndarray) -> bool:
        diff = cv2.absdiff(grey, self._ref_grey)
        h, w = diff.shape
        blocks = cv2.resize(diff, (max(1, w // BLOCK), max(1, h // BLOCK)), interpolation=cv2.INTER_AREA)
        return float(blocks.max()) < self.threshold

    def reusable_mask(self, picture_bgr: np.ndarray) -> np.ndarray | None:
        """The remembered mask (read-only) when ``picture_bgr`` (the model's input picture, BGR uint8) is still
        against the one the mask was made from and the reuse limit is not reached; else None."""
        self.frames += 1
        if not self.enabled:
            return None
        if self._grey is None or self._grey.shape != picture_bgr.shape[:2]:
            self._grey = np.empty(picture_bgr.shape[:2], np.uint8)
        cv2.cvtColor(picture_bgr, cv2.COLOR_BGR2GRAY, dst=self._grey)
        if (self._ref_mask is None or self._ref_grey is None or self._ref_grey.shape != self._grey.shape
                or self._reused >= self.max_reused or not self._still(self._grey)):
            return None
        self._reused += 1
        self.skipped += 1
        return self._ref_mask

    def remember(self, mask: np.ndarray) -> None:
        """The model ran on the picture last passed to :meth:`reusable_mask` and made ``mask``."""
        if not self.enabled or self._grey is None:
            return
        self._ref_grey = self._grey.copy()
        self._ref_mask = np.array(mask, dtype=mask.dtype, copy=True)
        self._ref_mask.flags.writeable = False  # shared with later frames: nobody may write into it
        self._reused = 0
