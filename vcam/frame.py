"""What one frame carries through the pipeline: every stage reads and writes these fields by name.

A stage never reaches into another stage for a by-product of the same frame; whatever the next stage may reuse
is a field here. The rule that keeps it honest: ``levels`` (the frame halved 1, 2, ... times) always belong to
``frame``, so a stage that replaces the frame calls :meth:`FrameContext.replace_frame`, which drops them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .postprocess.faces import Face
from .postprocess.mask import RefineHints


@dataclass
class PreviousFrame:
    """What the last finished frame left for the next one (a framing stage steers by it). ``alpha`` is the
    refiner's buffer: read it before this frame's refine stage runs (the framing stage, first, does)."""

    alpha: np.ndarray | None = None  # uint8 [H, W] person alpha of the last frame (None: no mask)
    faces: list[Face] = field(default_factory=list)  # faces the beauty stage treated (empty while it is off)


@dataclass
class FrameContext:
    """One frame on its way from the camera to the sinks."""

    camera: np.ndarray  # the camera frame as it came (BGR uint8); never written
    frame: np.ndarray  # the working picture, replaced stage by stage (BGR uint8)
    out_size: tuple[int, int]  # (width, height) the finished frame must have
    previous: PreviousFrame = field(default_factory=PreviousFrame)
    levels: list[np.ndarray] = field(default_factory=list)  # ``frame`` halved 1, 2, ... times (2x2 box averages)
    mask: np.ndarray | None = None  # the segmenter's person probability, float32 [h, w] at the model's size
    mask_problem: str | None = None  # why there is no usable mask (None: there is one, or none was wanted)
    alpha: np.ndarray | None = None  # uint8 [H, W] alpha at the frame's size (0 background, 255 person)
    refine_hints: RefineHints | None = None  # the refiner's by-products for ``frame`` and ``alpha``
    faces: list[Face] = field(default_factory=list)  # faces found in this frame
    output: np.ndarray | None = None  # the finished picture (BGR uint8, ``out_size``)
    fail_closed: str | None = None  # why the output is the fail-closed picture (None: it is not)
    want_debug: bool = False  # someone watches the mask debug view
    debug: np.ndarray | None = None  # the mask debug view of this frame, when wanted
    timings_ms: dict[str, float] = field(default_factory=dict)  # CPU ms per stage
    errors: list[tuple[str, BaseException]] = field(default_factory=list)  # (stage, exception) caught this frame

    def replace_frame(self, frame: np.ndarray) -> None:
        """Swap in a new working picture; its halvings are unknown until a stage computes them."""
        self.frame = frame
        self.levels = []


def mask_problem(mask: object, expected_rank: int = 2) -> str | None:
    """Why ``mask`` cannot be trusted as a person mask, or None when it can: not an array, wrong rank, too small,
    a dtype other than float or uint8, non-finite values, float values outside 0..1 (logits, not
    probabilities)."""
    if mask is None:
        return "the segmenter returned no mask"
    if not isinstance(mask, np.ndarray):
        return f"the segmenter returned a {type(mask).__name__}, not an array"
    if mask.ndim != expected_rank:
        return f"the mask has rank {mask.ndim} (shape {mask.shape}), not {expected_rank}"
    if min(mask.shape) < 2:
        return f"the mask is too small ({mask.shape})"
    if mask.dtype == np.uint8:
        return None
    if mask.dtype.kind != "f":
        return f"the mask has dtype {mask.dtype}, not float or uint8"
    lo, hi = float(mask.min()), float(mask.max())  # NaN and inf show in the extremes
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "the mask holds NaN or infinite values"
    if lo < -0.01 or hi > 1.01:
        return f"the mask's values run {lo:.3g}..{hi:.3g}, outside 0..1"
    return None
