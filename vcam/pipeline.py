"""The per-frame flow: an ordered list of stages, built from the settings, run over one :class:`FrameContext`.

    fit -> segment -> guard -> upscale -> beauty -> refine -> composite -> debug

``fit`` (aspect/framing), ``upscale`` (resize to the output size), ``composite`` and ``debug`` always run;
``segment``, ``guard`` and ``refine`` only in a background mode, ``beauty`` only when it is on. Each stage reads
and writes the context by name (see :mod:`vcam.stages`); the pipeline orders them, times them and supervises
them: a stage that raises never stops frames. What then happens to the frame is the stage's ``on_error``; on
the safe path the frame is the camera frame at the output size, blurred beyond recognition in a background mode
(:func:`~vcam.failsafe.fail_closed_picture`), so a failure never shows the room that mode is meant to hide.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import cv2
import numpy as np

from .config import Config
from .failsafe import ErrorLog, MaskGuard, fail_closed_picture
from .frame import FrameContext, PreviousFrame
from .segmenter import Segmenter
from .stages import (
    AspectFit,
    Beauty,
    Composite,
    DebugView,
    GuardMask,
    Refine,
    Resize,
    Segment,
    Stage,
    fit_window,
)

log = logging.getLogger(__name__)
STAGES = ("fit", "segment", "guard", "upscale", "beauty", "refine", "composite", "debug")

__all__ = ["Pipeline", "STAGES", "fit_window", "placeholder_frame"]


class Pipeline:
    def __init__(self, config: Config, segmenter: Segmenter | None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """``segmenter`` None: no mask can be made, so a background mode fails closed (see the module doc)."""
        self.config = config
        self.out_size = (config.output.width, config.output.height)
        self.errors = ErrorLog(clock=clock)
        self.previous = PreviousFrame()
        self._fit = AspectFit(config)
        self._segment = Segment(segmenter, config)
        self._guard = GuardMask(MaskGuard(clock=clock))
        self._resize = Resize(config)
        self._beauty = Beauty(config)
        self._refine = Refine(config)
        self._composite = Composite(config)
        self._debug = DebugView()
        self.stages = self._ordered_stages()
        self.timings_ms: dict[str, float] = dict.fromkeys(STAGES, 0.0)

    @property
    def segmenter(self) -> Segmenter | None:
        return self._segment.segmenter

    @segmenter.setter
    def segmenter(self, segmenter: Segmenter | None) -> None:
        self._segment.segmenter = segmenter
        self._guard.reset()

    @property
    def framing_window(self) -> tuple[int, int, int, int] | None:
        """The window of the camera frame the last frame showed (x0, y0, w, h in camera pixels, may reach outside
        it where padded); None: the whole frame as it came."""
        return self._fit.framing.window

    @property
    def background_mode(self) -> bool:
        """A mode that hides the room (anything but ``passthrough``)."""
        return self.config.background.mode != "passthrough"

    def _ordered_stages(self) -> list[Stage]:
        """The stages the settings ask for, in the order they run."""
        masked = self.background_mode
        stages: list[Stage | None] = [
            self._fit,
            self._segment if masked else None,
            self._guard if masked else None,
            self._resize,
            self._beauty if self.config.beauty.enabled else None,
            self._refine if masked else None,
            self._composite,
            self._debug,
        ]
        return [stage for stage in stages if stage is not None]

    def configure(self, config: Config) -> None:
        """Swap settings between frames; stages keep their temporal state. A stage that cannot take the new
        settings is counted as an error and fails its frames closed until settings it can use arrive."""
        was_masked = self.background_mode
        self.config = config
        if self.background_mode and not was_masked:
            # back from passthrough: the mask stages' memory (last mask, smoothing) is of a scene long gone
            for stage in (self._segment, self._guard, self._refine):
                stage.reset()
        for stage in (self._fit, self._segment, self._resize, self._beauty, self._refine, self._composite):
            try:
                stage.configure(config)
            except Exception as exc:  # noqa: BLE001 - any failure of a stage is supervised alike
                self.errors.report(f"{stage.name} settings", exc)
        self.stages = self._ordered_stages()

    def reset(self) -> None:
        """Drop temporal state (camera reopened, resolution changed)."""
        for stage in (self._fit, self._segment, self._guard, self._resize, self._beauty, self._refine,
                      self._composite, self._debug):
            stage.reset()
        self.previous = PreviousFrame()

    def run(self, frame: np.ndarray, want_debug: bool = False) -> FrameContext:
        """Camera frame (BGR uint8, any even size) -> context whose ``output`` is the finished frame (BGR uint8,
        output size), with ``debug`` when ``want_debug``."""
        ctx = FrameContext(camera=frame, frame=frame, out_size=self.out_size, previous=self.previous,
                           want_debug=want_debug)
        for stage in self.stages:
            t0 = time.thread_time()  # CPU time of this thread: unaffected by other processes on a busy machine
            try:
                stage.run(ctx)
                if stage is self._composite:
                    _check_output(ctx)
            except Exception as exc:  # noqa: BLE001 - a stage failure must never stop frames
                ctx.errors.append((stage.name, exc))
                self.errors.report(stage.name, exc)
                if not self._recover(stage, ctx, exc):
                    break
            finally:
                ctx.timings_ms[stage.name] = (time.thread_time() - t0) * 1e3
        self.timings_ms = {name: ctx.timings_ms.get(name, 0.0) for name in STAGES}
        self.previous = PreviousFrame(alpha=ctx.alpha, faces=ctx.faces)
        return ctx

    def _recover(self, stage: Stage, ctx: FrameContext, exc: Exception) -> bool:
        """Apply ``stage.on_error`` after it raised; True when the remaining stages may run."""
        if stage.on_error == "continue":
            return True
        if stage.on_error == "no-mask":
            ctx.mask, ctx.levels = None, []
            ctx.mask_problem = f"the {stage.name} stage failed: {type(exc).__name__}: {exc}"
            return True
        self.take_safe_path(ctx, f"the {stage.name} stage failed: {type(exc).__name__}: {exc}")
        return False

    def take_safe_path(self, ctx: FrameContext, reason: str) -> None:
        """The camera frame at the output size; blurred beyond recognition in a background mode."""
        ctx.alpha, ctx.debug = None, None
        if self.background_mode:
            ctx.fail_closed = reason
            ctx.output = fail_closed_picture(ctx.camera, ctx.out_size)
        else:
            ctx.output = cv2.resize(ctx.camera, ctx.out_size, interpolation=cv2.INTER_AREA)

    def process(self, frame: np.ndarray) -> np.ndarray:
        """The finished frame alone (see :meth:`run`)."""
        output = self.run(frame).output
        assert output is not None
        return output


def _check_output(ctx: FrameContext) -> None:
    out = ctx.output
    if out is None or out.shape != (ctx.out_size[1], ctx.out_size[0], 3) or out.dtype != np.uint8:
        shape = None if out is None else out.shape
        raise ValueError(f"composite produced {shape}, not a {ctx.out_size[0]}x{ctx.out_size[1]} BGR frame")


def placeholder_frame(width: int, height: int, text: str) -> np.ndarray:
    """A calm dark frame with a one-line message, shown while the camera is away or paused."""
    frame = np.full((height, width, 3), (48, 40, 36), np.uint8)
    scale = max(0.5, width / 1280 * 1.2)
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 2)
    cv2.putText(frame, text, ((width - tw) // 2, (height + th) // 2), cv2.FONT_HERSHEY_SIMPLEX, scale,
                (220, 220, 220), 2, cv2.LINE_AA)
    return frame
