"""Beauty stage: texture-preserving skin smoothing on the faces of the camera frame.

Runs on the camera frame before compositing (see docs/beauty.md): YuNet finds the faces now and then
(``faces.FaceTracker``), and each face region gets a smooth correction computed at a small working
resolution (``skin.SkinFilter``) that attenuates the mid-frequency band (blemishes, blotches), fills small dark
spots and evens the tone, while all detail finer than the working resolution (pores) is left exactly as it was.
Pixels outside the detector's face boxes are never changed.

    stage = BeautyStage(BeautySettings(enabled=True, strength=0.5, preset="natural"), model_path=yunet_path())
    out = stage.process(frame_bgr_uint8)

``process`` returns either the input frame itself (disabled, strength 0, no face) or the stage's own output
buffer, which is overwritten by the next call; callers must not write into it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from .faces import Face, FaceTracker
from .skin import FaceRegion, SkinFilter, SkinParams

Preset = Literal["natural", "soft"]

# Effect amounts at strength 1 (``mid``, ``spot``, ``tone``, ``lift`` scale with the strength, capped at 1) and
# the edge threshold ``eps`` at strength 0.5 (it scales with 0.5 + strength: stronger also means flatter).
PRESETS: dict[str, SkinParams] = {
    # Keeps the face's own texture and shading: removes blotches and spots, evens the tone a little.
    "natural": SkinParams(mid=2.0, texture=1.0, radius=0.10, eps=128.0, spot=1.0, tone=0.4, lift=0.06),
    # Smoother: more of the finest texture removed, stronger tone evening.
    "soft": SkinParams(mid=2.0, texture=0.6, radius=0.10, eps=128.0, spot=1.0, tone=0.7, lift=0.10),
}


class BeautySettings(BaseModel):
    """Settings of the beauty stage (``[beauty]`` section of the config)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = Field(False, description="Smooth the skin of the faces in the camera frame")
    strength: float = Field(0.5, ge=0.0, le=1.0, description="Overall amount of smoothing, 0 = none, 1 = most")
    preset: Preset = Field("natural", description="Look: 'natural' keeps more texture, 'soft' smooths more")
    texture: float | None = Field(
        None, ge=0.0, le=1.0, description="Share of the finest skin texture kept (None = the preset's value)"
    )
    detect_interval: int = Field(6, ge=1, le=30, description="Frames between face detections around a tracked face")
    max_faces: int = Field(2, ge=1, le=8, description="Most faces smoothed per frame")


def default_model_path() -> Path:
    """The shipped YuNet face detector, found and sha256-checked by the model registry."""
    from ..registry import verified_model_path

    return verified_model_path("yunet", "face-detection")


class BeautyStage:
    """Skin smoothing of up to ``max_faces`` tracked faces; one thread, preallocated full-frame output."""

    face_px = 128  # face width at the working resolution (nearest integer shrink factor: skin_ops)

    def __init__(self, settings: BeautySettings | None = None, model_path: str | Path | None = None) -> None:
        self._model_path = Path(model_path) if model_path is not None else None
        self._tracker: FaceTracker | None = None
        self._filter = SkinFilter(self.face_px)
        self._out: np.ndarray | None = None
        self._up: np.ndarray | None = None
        self._shape: tuple[int, ...] | None = None
        self.regions: list[tuple[int, int, int, int]] = []  # (x0, y0, x1, y1) written in the last frame
        self.faces: list[Face] = []  # the faces treated in the last frame
        self.settings = settings or BeautySettings()
        self._params = self._resolve(self.settings)

    # -- stage contract --------------------------------------------------------------------------------------

    def configure(self, settings: BeautySettings) -> None:
        """Swap settings between frames; face tracks and skin models survive unless the stage is switched off."""
        was_on = self._active(self.settings)
        self.settings = settings
        self._params = self._resolve(settings)
        if self._tracker is not None:
            self._tracker.detect_interval = settings.detect_interval
            self._tracker.max_faces = settings.max_faces
        if was_on and not self._active(settings):
            self.reset()  # tracks would be stale when it comes back on

    def reset(self) -> None:
        if self._tracker is not None:
            self._tracker.reset()
        self._filter.reset()
        self.regions = []
        self.faces = []

    def process(self, frame: np.ndarray, inplace: bool = False) -> np.ndarray:
        """BGR uint8 [H, W, 3] in, same size out (the input itself when nothing is to be done).

        With ``inplace=True`` the face regions are written into ``frame`` itself, which saves copying the whole
        frame (about 0.3 ms at 720p); only for callers that own the frame and no longer need the original.
        """
        self.regions = []
        self.faces = []
        if not self._active(self.settings):
            return frame
        if frame.shape != self._shape:  # another camera or resolution: the tracks and skin models are stale
            self.reset()
            self._shape = frame.shape
        faces = self._get_tracker().update(frame)
        self._filter.forget_except({f.track_id for f in faces})
        if not faces:
            return frame
        if inplace:
            out = frame
        else:
            if self._out is None or self._out.shape != frame.shape:
                self._out = np.empty_like(frame)
            out = self._out
            np.copyto(out, frame)
        for face in faces:
            region = FaceRegion(face, frame.shape, self.face_px, self._filter.scale_of(face.track_id))
            if region.empty:
                continue
            x0, y0, x1, y1 = region.rect
            roi = out[y0:y1, x0:x1]
            corr = self._filter.correction(face.track_id, region, roi, self._params)
            if face.presence < 1.0:
                corr *= face.presence
            up = self._upsample_buffer(y1 - y0, x1 - x0)
            cv2.resize(corr, (x1 - x0, y1 - y0), dst=up, interpolation=cv2.INTER_LINEAR)
            _clip_to_box(up, face.box, region.rect)  # the upsampling's reach past the shape's rim
            cv2.add(roi, up, dst=roi, dtype=cv2.CV_8U)  # rounds and saturates; C == 0 leaves a pixel as it was
            self.regions.append(region.rect)
            self.faces.append(face)
        return out

    # -- helpers ---------------------------------------------------------------------------------------------

    @staticmethod
    def _active(settings: BeautySettings) -> bool:
        return settings.enabled and settings.strength > 0.0

    @staticmethod
    def _resolve(settings: BeautySettings) -> SkinParams:
        """Strength -> effect amounts, on a scale that changes the picture evenly (docs/beauty.md, measured): up to
        0.5 the share of the blemish band removed grows linearly, which lowers its energy by an even number of
        dB per step (0.8-1.0 dB per 0.1); above 0.5 that band is gone, and the finest working-resolution
        texture is taken away linearly instead (all of it at 1 for ``natural``) with a wider base."""
        p = PRESETS[settings.preset]
        s = settings.strength
        beyond = max(0.0, s - 0.5) * 2.0  # 0 up to the default, 1 at full strength
        texture = p.texture if settings.texture is None else settings.texture
        if settings.texture is None:
            texture *= 1.0 - beyond
        return SkinParams(
            mid=min(1.0, p.mid * s),
            texture=texture,
            radius=p.radius * (1.0 + 0.3 * beyond),
            eps=p.eps * (0.5 + s),
            spot=min(1.0, p.spot * s),
            tone=min(1.0, p.tone * s),
            lift=p.lift * s,
        )

    def _get_tracker(self) -> FaceTracker:
        if self._tracker is None:
            path = self._model_path or default_model_path()
            self._tracker = FaceTracker(
                path, detect_interval=self.settings.detect_interval, max_faces=self.settings.max_faces
            )
        return self._tracker

    def _upsample_buffer(self, h: int, w: int) -> np.ndarray:
        # One buffer reused across frames; it only grows (regions change size as faces move).
        if self._up is None or self._up.shape[0] < h or self._up.shape[1] < w:
            self._up = np.empty((max(h, 8), max(w, 8), 3), np.float32)
        return self._up[:h, :w]


def _clip_to_box(corr: np.ndarray, box: np.ndarray, rect: tuple[int, int, int, int]) -> None:
    """Zero the correction of the region ``rect`` outside the face box (x, y, w, h): pixels outside the box are
    never changed, even where the bilinear upsampling carries the correction a few pixels past the face
    shape's rim (the shape reaches the box's bottom edge, the chin)."""
    x0, y0 = rect[:2]
    h, w = corr.shape[:2]
    bx0, by0 = int(np.floor(box[0])) - x0, int(np.floor(box[1])) - y0
    bx1, by1 = int(np.ceil(box[0] + box[2])) - x0, int(np.ceil(box[1] + box[3])) - y0
    corr[:max(0, min(h, by0))] = 0.0
    corr[max(0, by1):] = 0.0
    corr[:, :max(0, min(w, bx0))] = 0.0
    corr[:, max(0, bx1):] = 0.0
