"""Compositing: the person (frame + alpha) over a new background.

Modes: ``blur`` (bokeh-style, mask-weighted normalised blur, see :mod:`.blur`), ``image`` (cover-fit: scaled to
fill the frame, centred, cropped), ``video`` (cover-fit, looping; its frames are decoded inside this stage with
``cv2.VideoCapture``, one frame per processed frame: the one I/O this stage does), ``color`` (solid colour) and
``passthrough`` (the frame unchanged). ``mirror`` flips the result horizontally. ``light_wrap`` lets the blurred
new background spill onto the person's edges in ``image`` and ``video`` modes (not ``color``, which is usually
keyed out downstream).

Alpha may be ``uint8`` [H, W] 0..255 (what :class:`~.mask.MaskRefiner` produces) or ``float32`` [H, W] 0..1.
Files named in the settings are read when the settings are applied (``__init__``/``configure``), never per frame
(except video frames); a missing or unreadable file raises ``ValueError`` there.
"""

from __future__ import annotations

import os
import stat
from typing import Literal

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .blend import TileBlender, blend_full
from .blur import BokehBlur
from .mask import RefineHints
from .pyramid import Pyramid

_WRAP_LEVEL = 2  # light wrap is computed at 1/4 resolution
_WRAP_SIGMA = 3.0  # ... with this blur (px at that level): the wrap reaches ~12 px into the person at 720p


def parse_color(value: object) -> tuple[int, int, int]:
    """'#rrggbb' (or 'rrggbb') -> (b, g, r); a [b, g, r] sequence of 0..255 ints passes through."""
    if isinstance(value, str):
        text = value.strip().lstrip("#")
        if len(text) != 6:
            raise ValueError(f"colour must be '#rrggbb' or [b, g, r], got {value!r}")
        try:
            r, g, b = (int(text[i:i + 2], 16) for i in (0, 2, 4))
        except ValueError as exc:
            raise ValueError(f"colour must be '#rrggbb' or [b, g, r], got {value!r}") from exc
        return (b, g, r)
    if isinstance(value, (list, tuple)) and len(value) == 3 and all(isinstance(c, int) for c in value):
        if not all(0 <= c <= 255 for c in value):
            raise ValueError(f"colour components must be 0..255, got {value!r}")
        return (int(value[0]), int(value[1]), int(value[2]))
    raise ValueError(f"colour must be '#rrggbb' or [b, g, r], got {value!r}")


class BackgroundSettings(BaseModel):
    """What replaces the background."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: Literal["blur", "image", "video", "color", "passthrough"] = Field(
        "blur", description="blur | image | video | color | passthrough")
    mirror: bool = Field(False, description="flip the output horizontally")
    blur_strength: int = Field(60, ge=0, le=100, description="background blur, 0 (none) to 100 (disk radius 5% "
                               "of the frame width)")
    image: str | None = Field(None, description="background image file (mode image), cover-fitted")
    video: str | None = Field(None, description="background video file (mode video), cover-fitted, looping")
    color: tuple[int, int, int] = Field((0, 255, 0), description="background colour (mode color): '#rrggbb' or "
                                        "[b, g, r]")
    light_wrap: float = Field(0.3, ge=0.0, le=1.0, description="how much the new background's light spills onto "
                              "the person's edges (image and video modes)")

    @field_validator("color", mode="before")
    @classmethod
    def _color(cls, value: object) -> tuple[int, int, int]:
        return parse_color(value)

    @model_validator(mode="after")
    def _needs_file(self) -> BackgroundSettings:
        if self.mode == "image" and not self.image:
            raise ValueError("mode 'image' needs `image` (a path to a picture)")
        if self.mode == "video" and not self.video:
            raise ValueError("mode 'video' needs `video` (a path to a video file)")
        return self


MAX_IMAGE_BYTES = 64 << 20


def _is_regular(path: str) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def _read_image(path: str) -> np.ndarray | None:
    """Decode a picture without ever blocking: only a regular file of at most 64 MiB is read (a FIFO put in its
    place is refused, not waited on). None when it cannot be used."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_IMAGE_BYTES:
            return None
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        data = b"".join(chunks)[:MAX_IMAGE_BYTES]
    except OSError:
        return None
    finally:
        os.close(fd)
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None


def cover_window(image_width: int, image_height: int, width: int, height: int) -> tuple[int, int, int, int]:
    """(x0, y0, w, h): the centred window of an image that has the aspect ratio of ``width`` x ``height`` (what
    scaling the image to fill that size keeps)."""
    scale = max(width / image_width, height / image_height)
    cw, ch = min(image_width, round(width / scale)), min(image_height, round(height / scale))
    return (image_width - cw) // 2, (image_height - ch) // 2, cw, ch


def cover_fit(image: np.ndarray, width: int, height: int, out: np.ndarray | None = None) -> np.ndarray:
    """Scale ``image`` to fill ``width`` x ``height`` keeping its aspect ratio, centred, cropping the excess."""
    ih, iw = image.shape[:2]
    x0, y0, cw, ch = cover_window(iw, ih, width, height)
    crop = image[y0:y0 + ch, x0:x0 + cw]
    interp = cv2.INTER_AREA if max(width / iw, height / ih) < 1 else cv2.INTER_LINEAR  # shrinking: average
    return cv2.resize(crop, (width, height), dst=out, interpolation=interp)


def render_mask_debug(frame: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Debug view for the preview page: the person as is, the background darkened and tinted red, and the
    fractional (soft-edge) pixels of the alpha highlighted in yellow. Returns a new BGR uint8 image."""
    a = _as_uint8(alpha, None)
    tinted = cv2.addWeighted(frame, 0.35, np.full_like(frame, (0, 0, 160)), 1.0, 0.0)
    out = blend_full(frame, tinted, a, np.empty_like(frame))
    edge = cv2.inRange(a, 8, 247)
    out[edge > 0] = (0, 230, 255)
    return out


def _as_uint8(alpha: np.ndarray, buf: np.ndarray | None) -> np.ndarray:
    if alpha.dtype == np.uint8:
        return alpha
    if buf is None or buf.shape != alpha.shape:
        buf = np.empty(alpha.shape, np.uint8)
    return cv2.convertScaleAbs(alpha.astype(np.float32, copy=False), buf, alpha=255.0)


class Compositor:
    """``process(frame, alpha) -> BGR uint8 [H, W, 3]``. The result is a buffer reused by the next call (in
    ``passthrough`` mode without mirror it is ``frame`` itself)."""

    def __init__(self, settings: BackgroundSettings | None = None) -> None:
        self.settings = BackgroundSettings()
        self._blender = TileBlender()
        self._blur = BokehBlur()
        self._alpha_pyr = Pyramid()
        self._size: tuple[int, int] | None = None
        self._image: np.ndarray | None = None
        self._cap: cv2.VideoCapture | None = None
        self._alpha_u8: np.ndarray | None = None
        self.configure(settings or BackgroundSettings())

    # settings ------------------------------------------------------------------------------------------------
    def configure(self, settings: BackgroundSettings) -> None:
        """Apply new settings between frames; loads a new image/opens a new video only when its path changed."""
        old, self.settings = self.settings, settings
        if settings.mode == "image" and (self._image is None or settings.image != old.image):
            image = _read_image(str(settings.image))
            if image is None:
                raise ValueError(f"background image {settings.image!r} cannot be read")
            self._image = image
        if settings.mode != "image":
            self._image = None
        if settings.mode == "video" and (self._cap is None or settings.video != old.video):
            self._open_video(str(settings.video))
        if settings.mode != "video" and self._cap is not None:
            self._cap.release()
            self._cap = None
        self._size = None  # rebuild the static background on the next frame

    def _open_video(self, path: str) -> None:
        if self._cap is not None:
            self._cap.release()
        if not _is_regular(path):  # opening a FIFO would wait for a writer, stalling the frames
            raise ValueError(f"background video {path!r} is not a regular file")
        cap = cv2.VideoCapture(path)
        ok, _ = cap.read() if cap.isOpened() else (False, None)
        if not ok:
            cap.release()
            raise ValueError(f"background video {path!r} cannot be read")
        cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
        self._cap = cap

    def reset(self) -> None:
        """No temporal state apart from the background video's position, which restarts."""
        if self._cap is not None:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    # buffers -------------------------------------------------------------------------------------------------
    def _allocate(self, width: int, height: int) -> None:
        s = self.settings
        self._size = (width, height)
        self._out = np.empty((height, width, 3), np.uint8)
        self._bg = np.empty((height, width, 3), np.uint8)
        if s.mode == "image" and self._image is not None:
            cover_fit(self._image, width, height, self._bg)
        elif s.mode == "color":
            self._bg[:] = s.color
        self._wrap_colour = np.empty((height, width, 3), np.uint8)
        self._wrap_weight = np.empty((height, width), np.uint8)
        self._wrap_pyr = Pyramid()
        if s.mode == "image":
            self._wrap_colour_from_bg()

    def _wrap_colour_from_bg(self) -> None:
        """The light-wrap colour: the background, heavily blurred (cheaply, at 1/8 size)."""
        h, w = self._bg.shape[:2]
        small = self._wrap_pyr.build(self._bg, 3)[-1]
        blurred = cv2.GaussianBlur(small, (0, 0), 2.0)
        cv2.resize(blurred, (w, h), dst=self._wrap_colour, interpolation=cv2.INTER_LINEAR)

    def _next_video_frame(self) -> None:
        assert self._cap is not None
        ok, frame = self._cap.read()
        if not ok:  # end of file: loop
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = self._cap.read()
        if ok:
            cover_fit(frame, self._bg.shape[1], self._bg.shape[0], self._bg)

    def _wrap(self, alpha: np.ndarray, small: np.ndarray | None,
              small_level: int) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray | None] | tuple[None, None]:
        """Light-wrap (colour, weight) images and their tile map, or (None, None) when nothing to wrap."""
        lw = self.settings.light_wrap
        h, w = alpha.shape
        if lw <= 0 or (h >> _WRAP_LEVEL) < 4 or (w >> _WRAP_LEVEL) < 4:
            return None, None
        if small is not None and 1 <= small_level <= _WRAP_LEVEL and small.shape[1] == w >> small_level:
            a = small if small_level == _WRAP_LEVEL else self._alpha_pyr.build(small, _WRAP_LEVEL - small_level)[-1]
        else:
            a = self._alpha_pyr.build(alpha, _WRAP_LEVEL)[-1]
        inv_blur = cv2.GaussianBlur(cv2.bitwise_not(a), (0, 0), _WRAP_SIGMA)
        # weight = lw * alpha * blur(1 - alpha): only inside the person, near its edge
        weight = cv2.multiply(a, inv_blur, scale=lw / 255.0)
        cv2.resize(weight, (w, h), dst=self._wrap_weight, interpolation=cv2.INTER_LINEAR)
        tiles = None
        if h % 8 == 0 and w % 8 == 0:
            tiles = cv2.resize(weight, (w >> 3, h >> 3), interpolation=cv2.INTER_LINEAR)
            tiles = cv2.dilate(tiles, np.ones((3, 3), np.uint8))
        return (self._wrap_colour, self._wrap_weight), tiles

    # per frame -----------------------------------------------------------------------------------------------
    def process(self, frame: np.ndarray, alpha: np.ndarray | None, hints: RefineHints | None = None) -> np.ndarray:
        """``frame``: BGR uint8 [H, W, 3]; ``alpha``: uint8 [H, W] (0..255) or float32 [H, W] (0..1); None (no
        mask) keeps the whole frame (only mirrored if asked). ``hints``: optional ``MaskRefiner.hints`` from the
        call that produced ``alpha`` for this ``frame``: its downscaled frame and alpha are reused instead of
        recomputed (same result, less work)."""
        s = self.settings
        height, width = frame.shape[:2]
        if s.mode == "passthrough" or alpha is None:
            if not s.mirror:
                return frame
            if self._size != (width, height):
                self._allocate(width, height)
            return cv2.flip(frame, 1, dst=self._out)
        if alpha.shape != (height, width):
            raise ValueError(f"alpha shape {alpha.shape} does not match frame {frame.shape[:2]}")
        if self._size != (width, height):
            self._allocate(width, height)
        if alpha.dtype != np.uint8:
            self._alpha_u8 = _as_uint8(alpha, self._alpha_u8)
            alpha = self._alpha_u8
            hints = None
        levels, small, small_level = (hints.frame_levels, hints.alpha_small, hints.alpha_level) if hints else (
            None, None, 0)
        out = self._out
        wrap, tiles = None, None
        if s.mode == "blur":
            self._blur.process(frame, alpha, s.blur_strength, out, levels, small, small_level)
        else:
            if s.mode == "video":
                self._next_video_frame()
                if s.light_wrap > 0:
                    self._wrap_colour_from_bg()
            np.copyto(out, self._bg)
            if s.mode in ("image", "video"):
                wrap, tiles = self._wrap(alpha, small, small_level)
        self._blender.blend(frame, alpha, out, tiles=tiles, wrap=wrap, alpha_small=small, alpha_level=small_level)
        if s.mirror:
            cv2.flip(out, 1, dst=out)
        return out
