"""The pipeline's stages. Each reads and writes a :class:`~vcam.frame.FrameContext` by name and nothing else.

Every stage has a ``name`` (its timing key), ``run(ctx)``, ``configure(config)`` (swap settings between frames,
keeping temporal state), ``reset()`` (drop temporal state) and ``on_error``: what happens to the frame when
``run`` raises (see :mod:`vcam.pipeline`):

- ``"continue"``: the frame goes on as it is (an optional look such as beauty, or the debug view);
- ``"no-mask"``: the frame goes on without a mask, so the mask guard holds the last good one or fails closed;
- ``"safe"``: the remaining stages are skipped and the frame takes the safe path.
"""

from __future__ import annotations

import logging
from typing import Literal

import cv2
import numpy as np

from .config import Config
from .failsafe import MaskGuard, fail_closed_picture
from .frame import FrameContext
from .postprocess.beauty import BeautyStage
from .postprocess.beauty import default_model_path as yunet_model_path
from .postprocess.composite import Compositor, render_mask_debug
from .postprocess.framing_stage import FramingStage, centre_window, same_aspect
from .postprocess.mask import MaskRefiner
from .postprocess.upscale import Upscaler, plain_resize
from .postprocess.upscale import default_model_path as sr_model_path
from .segmenter import Segmenter
from .still_scene import StillSceneGate

log = logging.getLogger(__name__)

OnError = Literal["continue", "no-mask", "safe"]


class Stage:
    """Base of the stages: no settings and no temporal state unless a stage says otherwise."""

    name = "stage"
    on_error: OnError = "safe"

    def run(self, ctx: FrameContext) -> None:
        raise NotImplementedError

    def configure(self, config: Config) -> None:
        pass

    def reset(self) -> None:
        pass


def fit_window(width: int, height: int, out_width: int, out_height: int) -> tuple[int, int, int, int] | None:
    """The centred window (x0, y0, w, h), even-sized, of a ``width`` x ``height`` frame that has the output's
    aspect ratio (``output.fit = "crop"``); None when the frame already has it (within 1%)."""
    if same_aspect(width, height, out_width, out_height):
        return None
    return centre_window(width, height, out_width, out_height)


class AspectFit(Stage):
    """The framing stage (``output.fit``, ``[framing]``; see ``postprocess/framing_stage.py``): the window of the
    camera frame the later stages see: the frame itself, a view of a crop, or a padded output-size frame; never a
    stretched picture; shrunk to the output size when it is larger both ways. It steers by ``ctx.previous.alpha``
    (where the people were in the last framed frame)."""

    name = "fit"

    def __init__(self, config: Config) -> None:
        out_size = (config.output.width, config.output.height)
        self.framing = FramingStage(config.framing, config.output.fit, out_size, face_model=yunet_model_path)
        self.config = config
        self._logged: tuple[int, int, str] | None = None
        self._shrunk: np.ndarray | None = None  # the frame shrunk to the output size (a camera larger than it)

    def configure(self, config: Config) -> None:
        self.framing.configure(config.framing, config.output.fit)
        self.config = config

    def reset(self) -> None:
        self.framing.reset()

    def run(self, ctx: FrameContext) -> None:
        height, width = ctx.frame.shape[:2]
        plan = self.framing.plan(width, height)
        if self._logged != (width, height, plan):
            self._logged = (width, height, plan)
            if plan != "none":
                log.info("camera frames %dx%d, %dx%d output: framing %s (output.fit = %s, framing.mode = %s)",
                         width, height, *ctx.out_size, plan, self.config.output.fit, self.config.framing.mode)
        self.framing.observe(ctx.previous.alpha)
        framed = self.framing.process(ctx.frame, dt=1.0 / self.config.output.fps)
        out_w, out_h = ctx.out_size
        if framed.shape[1] > out_w and framed.shape[0] > out_h:
            # Larger than the output (a 1080p camera): shrink it here, so the segmenter halves the output-size
            # frame and the refiner reuses those halvings, instead of both halving the large frame on their own.
            if self._shrunk is None or self._shrunk.shape != (out_h, out_w, 3):
                self._shrunk = np.empty((out_h, out_w, 3), np.uint8)
            framed = plain_resize(framed, ctx.out_size, self._shrunk)
        if framed is not ctx.frame:
            ctx.replace_frame(framed)


class Segment(Stage):
    """The person mask of the frame (``ctx.mask``) and the frame's halvings it computed (``ctx.levels``); in a
    still scene the last mask again (``model.still_threshold``, :mod:`vcam.still_scene`)."""

    name = "segment"
    on_error: OnError = "no-mask"

    def __init__(self, segmenter: Segmenter | None, config: Config) -> None:
        self._segmenter = segmenter
        self.gate = StillSceneGate()
        self.configure(config)

    @property
    def segmenter(self) -> Segmenter | None:
        return self._segmenter

    @segmenter.setter
    def segmenter(self, segmenter: Segmenter | None) -> None:
        self._segmenter = segmenter
        self.gate.reset()  # a mask of the old model must not stand in for the new one

    def configure(self, config: Config) -> None:
        self.gate.configure(config.model.still_threshold, config.model.max_reused_frames)

    def reset(self) -> None:
        self.gate.reset()

    def run(self, ctx: FrameContext) -> None:
        if self._segmenter is None:
            ctx.mask_problem = "no segmenter could be loaded"
            return
        ctx.mask, ctx.levels = self._segmenter.segment(ctx.frame, gate=self.gate)


class GuardMask(Stage):
    """Checks ``ctx.mask``; bridges a short gap with the last good mask, then marks the frame fail-closed."""

    name = "guard"

    def __init__(self, guard: MaskGuard) -> None:
        self.guard = guard

    def run(self, ctx: FrameContext) -> None:
        self.guard.check(ctx)

    def reset(self) -> None:
        self.guard.reset()


class Resize(Stage):
    """The frame at the output size: plain resize or super-resolution (``[upscale]``); nothing when it already
    has that size."""

    name = "upscale"

    def __init__(self, config: Config) -> None:
        self.config = config
        self._upscaler: Upscaler | None = None  # loads a model: built on first use, so a plain blur never pays
        self._last_shape: tuple[int, ...] | None = None

    def configure(self, config: Config) -> None:
        self.config = config
        if self._upscaler is not None:
            self._upscaler.configure(config.upscale)

    def reset(self) -> None:
        if self._upscaler is not None:
            self._upscaler.reset()

    def run(self, ctx: FrameContext) -> None:
        if (ctx.frame.shape[1], ctx.frame.shape[0]) == ctx.out_size:
            return
        if self._upscaler is not None and ctx.frame.shape != self._last_shape:
            self._upscaler.reset()  # a new size (a framing zoom): the person box of the old one does not apply
        self._last_shape = ctx.frame.shape
        if self._upscaler is None:
            self._upscaler = Upscaler(self.config.upscale, model_path=sr_model_path())
            log.info("camera frames differ from the %dx%d output: upscale stage on (super-resolution mode %s)",
                     *ctx.out_size, self.config.upscale.mode)
        ctx.replace_frame(self._upscaler.process(ctx.frame, ctx.mask, out_size=ctx.out_size))


class Beauty(Stage):
    """Skin smoothing of the faces in the frame (``ctx.faces``: the faces it treated)."""

    name = "beauty"
    on_error: OnError = "continue"

    def __init__(self, config: Config) -> None:
        self.settings = config.beauty
        self._stage: BeautyStage | None = None  # loads the face detector: built on first use
        self._found_face = False  # logged once, so a user (and the end-to-end test) can see it working

    def configure(self, config: Config) -> None:
        if self._stage is not None and config.beauty != self.settings:
            self._stage.configure(config.beauty)
        self.settings = config.beauty

    def reset(self) -> None:
        if self._stage is not None:
            self._stage.reset()

    def run(self, ctx: FrameContext) -> None:
        if self._stage is None:
            self._stage = BeautyStage(self.settings, model_path=yunet_model_path())
        # In place: the frame is the pipeline's own buffer and nothing reads the unsmoothed pixels afterwards.
        ctx.replace_frame(self._stage.process(ctx.frame, inplace=True))
        ctx.faces = list(self._stage.faces)
        if ctx.faces and not self._found_face:
            self._found_face = True
            log.info("beauty stage: smoothing the skin of %d face(s) (preset %s, strength %.2f)",
                     len(ctx.faces), self.settings.preset, self.settings.strength)


class Refine(Stage):
    """Model mask + frame -> full-resolution alpha (``ctx.alpha``, ``ctx.refine_hints``)."""

    name = "refine"

    def __init__(self, config: Config) -> None:
        self.refiner = MaskRefiner(config.mask)

    def configure(self, config: Config) -> None:
        if config.mask != self.refiner.settings:
            self.refiner.configure(config.mask)

    def reset(self) -> None:
        self.refiner.reset()

    def run(self, ctx: FrameContext) -> None:
        if ctx.mask is None:  # the guard failed the frame closed
            return
        ctx.alpha, ctx.refine_hints = self.refiner.refine(ctx.mask, ctx.frame, ctx.levels)


class Composite(Stage):
    """The finished picture (``ctx.output``): the person over the new background; for a frame without a
    trustworthy mask in a background mode, the fail-closed picture."""

    name = "composite"

    def __init__(self, config: Config) -> None:
        self.compositor = Compositor()
        self.problem: str | None = None  # the background settings could not be applied: every frame fails closed
        self.configure(config)

    def configure(self, config: Config) -> None:
        if config.background == self.compositor.settings and self.problem is None:
            return
        try:
            self.compositor.configure(config.background)
            self.problem = None
        except (ValueError, OSError, cv2.error) as exc:
            self.problem = f"the background cannot be used: {exc}"
            raise

    def reset(self) -> None:
        self.compositor.reset()

    def run(self, ctx: FrameContext) -> None:
        if self.problem is not None:
            ctx.fail_closed = ctx.fail_closed or self.problem
        if ctx.fail_closed is not None:
            ctx.output = fail_closed_picture(ctx.frame, ctx.out_size)
            return
        ctx.output = self.compositor.process(ctx.frame, ctx.alpha, ctx.refine_hints)


class DebugView(Stage):
    """The mask debug view of the preview page (``ctx.debug``), only while someone watches it."""

    name = "debug"
    on_error: OnError = "continue"

    def run(self, ctx: FrameContext) -> None:
        if ctx.want_debug and ctx.alpha is not None:
            ctx.debug = render_mask_debug(ctx.frame, ctx.alpha)
