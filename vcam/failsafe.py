"""Failing closed: what a background mode shows when it has no mask it can trust, and how errors are counted.

A background mode exists to hide the room, so a missing or invalid mask (see :func:`vcam.frame.mask_problem`; a
model that raised; no segmenter loaded) must never turn into the raw camera frame. :class:`MaskGuard` bridges short gaps with the
last good mask (``HOLD_S``); after that the frame is :func:`fail_closed_picture`: the whole frame blurred so
heavily that the room is unrecognisable (in every background mode: with no mask there is no person region to
keep, and a blurred person in front of the replacement image would still need one). Status says why.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import cv2
import numpy as np

from .frame import FrameContext, mask_problem

log = logging.getLogger(__name__)

HOLD_S = 0.5  # a missing mask is bridged by the last good one for this long
FAIL_CLOSED_WIDTH = 32  # the fail-closed picture is the frame shrunk to this width (1280 -> 32: 40x), then blurred


def fail_closed_picture(frame: np.ndarray, out_size: tuple[int, int]) -> np.ndarray:
    """``frame`` (BGR uint8) blurred beyond recognition at ``out_size``: shrunk by area averaging to
    ``FAIL_CLOSED_WIDTH`` pixels across, smoothed, and scaled back up. Colours and light stay; shapes do not."""
    h, w = frame.shape[:2]
    small_w = min(FAIL_CLOSED_WIDTH, w)
    small_h = max(1, round(small_w * h / w))
    small = cv2.resize(frame, (small_w, small_h), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), 1.5)
    return cv2.resize(small, out_size, interpolation=cv2.INTER_LINEAR)


class MaskGuard:
    """Checks each frame's mask; bridges a gap with the last good mask for ``hold_s``, then fails closed."""

    def __init__(self, hold_s: float = HOLD_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.hold_s = hold_s
        self.clock = clock
        self._good: np.ndarray | None = None
        self._good_at = float("-inf")

    def reset(self) -> None:
        """Forget the last good mask (camera reopened: it belongs to another scene)."""
        self._good = None
        self._good_at = float("-inf")

    def check(self, ctx: FrameContext) -> None:
        """Leave a good ``ctx.mask`` in place (and remember it); replace a bad or missing one by the held mask,
        or mark the frame ``fail_closed`` when the hold has run out. ``ctx.mask_problem`` says why."""
        problem = ctx.mask_problem or mask_problem(ctx.mask)
        now = self.clock()
        if problem is None:
            assert ctx.mask is not None
            if self._good is None or self._good.shape != ctx.mask.shape or self._good.dtype != ctx.mask.dtype:
                self._good = np.empty_like(ctx.mask)
            np.copyto(self._good, ctx.mask)
            self._good_at = now
            return
        ctx.mask_problem = problem
        if self._good is not None and now - self._good_at <= self.hold_s:
            ctx.mask = self._good
            return
        ctx.mask = None
        ctx.fail_closed = problem


class ErrorLog:
    """Counts errors by (stage, exception type) and logs them rate-limited: the first of a kind with its
    traceback, later ones at most once per ``interval_s`` with how many were not logged."""

    def __init__(self, interval_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self.clock = clock
        self.total = 0
        self.by_stage: dict[str, int] = {}
        self.last: str | None = None  # "stage: ExceptionType: message" of the newest error
        self._logged_at: dict[tuple[str, str], float] = {}
        self._unlogged: dict[tuple[str, str], int] = {}

    def report(self, stage: str, exc: BaseException) -> None:
        kind = (stage, type(exc).__name__)
        self.total += 1
        self.by_stage[stage] = self.by_stage.get(stage, 0) + 1
        self.last = f"{stage}: {type(exc).__name__}: {exc}"[:300]
        now = self.clock()
        first = kind not in self._logged_at
        if not first and now - self._logged_at[kind] < self.interval_s:
            self._unlogged[kind] = self._unlogged.get(kind, 0) + 1
            return
        skipped = self._unlogged.pop(kind, 0)
        self._logged_at[kind] = now
        if first:
            log.error("stage %s failed; the frame took the safe path: %s", stage, exc, exc_info=exc)
        else:
            log.error("stage %s failed again (%d more not logged in the last %.0f s): %s", stage, skipped,
                      self.interval_s, exc)
