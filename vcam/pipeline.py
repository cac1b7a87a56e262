"""The per-frame chain of stages: segment -> resize/upscale -> beauty -> refine mask -> composite.

One ``Pipeline.process`` call turns a camera frame into an output frame. Each stage is a small object from
``vcam.postprocess`` (or the segmenter runtime) with its own buffers and state; this module only orders them,
skips the ones the settings switch off, and times them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import cv2
import numpy as np

from .config import Config
from .postprocess.beauty import BeautyStage
from .postprocess.beauty import default_model_path as yunet_model_path
from .postprocess.composite import Compositor, render_mask_debug
from .postprocess.framing_stage import FramingStage, centre_window, same_aspect
from .postprocess.mask import MaskRefiner
from .postprocess.upscale import Upscaler
from .postprocess.upscale import default_model_path as sr_model_path
from .segmenter import Segmenter

log = logging.getLogger(__name__)
STAGES = ("framing", "segment", "upscale", "beauty", "refine", "composite")


def fit_window(width: int, height: int, out_width: int, out_height: int) -> tuple[int, int, int, int] | None:
    """The centred window (x0, y0, w, h), even-sized, of a ``width`` x ``height`` frame that has the output's
    aspect ratio (``output.fit = "crop"``); None when the frame already has it (within 1%)."""
    if same_aspect(width, height, out_width, out_height):
        return None
    return centre_window(width, height, out_width, out_height)


class Pipeline:
    def __init__(self, config: Config, segmenter: Segmenter | None) -> None:
        """``segmenter`` None is the safe full-frame mode: frames pass through without a background effect."""
        self.config = config
        self.segmenter = segmenter
        self.out_size = (config.output.width, config.output.height)
        self.refiner = MaskRefiner(config.mask)
        self.compositor = Compositor(config.background)
        # Beauty and upscaling load models of their own: built on first use, so a plain blur never pays.
        self._beauty: BeautyStage | None = None
        self._upscaler: Upscaler | None = None
        self.timings_ms: dict[str, float] = dict.fromkeys(STAGES, 0.0)
        self.last_alpha: np.ndarray | None = None
        self._last_frame: np.ndarray | None = None
        self._beauty_found_face = False  # logged once, so a user (and the end-to-end test) can see it working
        # framing (output.fit, [framing]): which window of the camera frame the later stages see
        self.framing = FramingStage(config.framing, config.output.fit, self.out_size, face_model=yunet_model_path)
        self._fit_logged: tuple[int, int, str] | None = None
        self._framed_shape: tuple[int, ...] | None = None

    def configure(self, config: Config) -> None:
        """Swap settings between frames; stages keep their temporal state."""
        if config.mask != self.config.mask:
            self.refiner.configure(config.mask)
        if config.background != self.config.background:
            self.compositor.configure(config.background)
        if self._beauty is not None and config.beauty != self.config.beauty:
            self._beauty.configure(config.beauty)
        if self._upscaler is not None and config.upscale != self.config.upscale:
            self._upscaler.configure(config.upscale)
        if (config.framing, config.output.fit) != (self.config.framing, self.config.output.fit):
            self.framing.configure(config.framing, config.output.fit)
        self.config = config

    @property
    def beauty(self) -> BeautyStage:
        if self._beauty is None:
            self._beauty = BeautyStage(self.config.beauty, model_path=yunet_model_path())
        return self._beauty

    @property
    def upscaler(self) -> Upscaler:
        if self._upscaler is None:
            self._upscaler = Upscaler(self.config.upscale, model_path=sr_model_path())
            log.info("camera frames differ from the %dx%d output: upscale stage on (super-resolution mode %s)",
                     *self.out_size, self.config.upscale.mode)
        return self._upscaler

    def reset(self) -> None:
        """Drop temporal state (camera reopened, resolution changed)."""
        for stage in (self.refiner, self.compositor, self._beauty, self._upscaler, self.framing):
            if stage is not None:
                stage.reset()

    def _timed(self, name: str, fn: Callable[[], np.ndarray]) -> np.ndarray:
        # CPU time of this thread: what the stage costs, unaffected by other processes on a busy machine.
        t0 = time.thread_time()
        result = fn()
        self.timings_ms[name] = (time.thread_time() - t0) * 1e3
        return result

    @property
    def needs_mask(self) -> bool:
        return self.segmenter is not None and self.config.background.mode != "passthrough"

    def process(self, frame: np.ndarray) -> np.ndarray:
        """Camera frame (BGR uint8, any even size) -> output frame (BGR uint8, output size)."""
        for name in STAGES:
            self.timings_ms[name] = 0.0
        frame = self._timed("framing", lambda: self._fit_aspect(frame))
        segmenter = self.segmenter
        mask = self._timed("segment", lambda: segmenter.process(frame)) if segmenter and self.needs_mask else None
        self.framing.observe(mask)  # framing: where the people are, for the next frame's window
        # The segmenter's halvings of the frame save the refiner its own, while the frame is still that frame.
        levels = segmenter.frame_levels if mask is not None else None
        if (frame.shape[1], frame.shape[0]) != self.out_size:
            frame = self._timed("upscale", lambda: self.upscaler.process(frame, mask, out_size=self.out_size))
            levels = None
        if self.config.beauty.enabled:
            levels = None
            # In place: the frame is this thread's own buffer and nothing reads the unsmoothed pixels afterwards.
            frame = self._timed("beauty", lambda: self.beauty.process(frame, inplace=True))
            if self.beauty.faces and not self._beauty_found_face:
                self._beauty_found_face = True
                log.info("beauty stage: smoothing the skin of %d face(s) (preset %s, strength %.2f)",
                         len(self.beauty.faces), self.config.beauty.preset, self.config.beauty.strength)
        self._last_frame = frame
        if mask is None:
            self.last_alpha = None
            if self.config.background.mode != "passthrough":  # safe mode: no mask, no effect
                return frame
            return self._timed("composite", lambda: self.compositor.process(frame, None))
        alpha = self._timed("refine", lambda: self.refiner.process(mask, frame, levels))
        self.last_alpha = alpha
        # The refiner's downscaled frame and work-resolution alpha save the compositor ~0.3 ms (same frame only).
        return self._timed("composite", lambda: self.compositor.process(frame, alpha, self.refiner.hints))

    # -- framing: the one place the camera frame's window is chosen (postprocess/framing_stage.py) ------------
    def _fit_aspect(self, frame: np.ndarray) -> np.ndarray:
        """The window of the camera frame the later stages see (``output.fit``, ``[framing]``): the frame
        itself, a view of a crop, or a padded output-size frame; never a stretched picture."""
        height, width = frame.shape[:2]
        plan = self.framing.plan(width, height)
        if self._fit_logged != (width, height, plan):
            self._fit_logged = (width, height, plan)
            if plan != "none":
                log.info("camera frames %dx%d, %dx%d output: framing %s (output.fit = %s, framing.mode = %s)",
                         width, height, *self.out_size, plan, self.config.output.fit, self.config.framing.mode)
        framed = self.framing.process(frame, dt=1.0 / self.config.output.fps)
        if framed.shape != self._framed_shape:  # a zoom: the upscaler's person box belongs to the old size
            self._framed_shape = framed.shape
            if self._upscaler is not None:
                self._upscaler.reset()
        return framed
    # -- end framing ---------------------------------------------------------------------------------------

    def debug_view(self) -> np.ndarray | None:
        """The mask debug view of the last processed frame (for the preview page)."""
        if self._last_frame is None or self.last_alpha is None:
            return None
        return render_mask_debug(self._last_frame, self.last_alpha)


def placeholder_frame(width: int, height: int, text: str) -> np.ndarray:
    """A calm dark frame with a one-line message, shown while the camera is away or paused."""
    frame = np.full((height, width, 3), (48, 40, 36), np.uint8)
    scale = max(0.5, width / 1280 * 1.2)
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 2)
    cv2.putText(frame, text, ((width - tw) // 2, (height + th) // 2), cv2.FONT_HERSHEY_SIMPLEX, scale,
                (220, 220, 220), 2, cv2.LINE_AA)
    return frame
