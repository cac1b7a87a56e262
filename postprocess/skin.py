"""Texture-preserving skin smoothing of one face (the per-face work of the beauty stage).

The face + neck region is cut out of the frame and shrunk by an integer factor ``s`` so that the face is about
``face_px`` pixels wide ("working resolution"; the cost per face is then the same at any camera resolution).
Everything is computed there and the result is a *correction* ``C`` that is upsampled and added to the
full-resolution pixels:

    I_w  = working-resolution image           B = fast guided filter of I_w (edge-preserving base)
    F    = I_w - gauss3(I_w)                  (finest working-resolution band)
    C    = -m * k_mid * ((I_w - B) - texture * F)          attenuate the mid band, keep ``texture`` of F
         + spot fill (dark small blobs found by a black top-hat, filled from the morphological closing)
         + tone evening (base chroma pulled towards the face's mean skin chroma) and a mid-tone lift

Everything finer than the working resolution (pores, hair, eyelashes at full resolution) is never touched,
because the correction is a smooth upsampled field; so fine texture is kept by construction. ``m`` is the
feathered skin mask: skin colour (a per-face Gaussian in CrCb, learnt from the cheeks and nose between the
landmarks, smoothed over time) x face/neck ellipses x (1 - eyes/brows/lips/nostrils from the landmarks).
``m`` is exactly 0 on the border of the region, so pixels outside it are exactly unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .faces import Face

_LUMA = np.array([0.114, 0.587, 0.299], np.float32)  # BGR weights


@dataclass(frozen=True)
class SkinParams:
    """Effect amounts at the stage's current strength (see ``BeautyStage``)."""

    mid: float  # share of the mid band removed in the skin, 0..1
    texture: float  # share of the finest working-resolution band kept, 0..1
    radius: float  # guided-filter radius as a share of the face width
    eps: float  # guided-filter edge threshold (grey levels, squared inside)
    spot: float  # dark-spot fill, 0..1
    tone: float  # chroma evening towards the mean skin chroma, 0..1
    lift: float  # mid-tone lift, share of the parabola B(255-B)/255


@dataclass
class SkinModel:
    """Per-face skin colour model (CrCb mean and spread), smoothed over frames."""

    mean: np.ndarray  # [2]
    spread: np.ndarray  # [2]
    chroma: np.ndarray  # [3] mean skin chroma (BGR minus luma) of the base


class FaceRegion:
    """Where a face's work happens: the full-resolution rectangle, its working scale and geometry."""

    def __init__(self, face: Face, frame_shape: tuple[int, ...], face_px: int) -> None:
        h, w = frame_shape[:2]
        bx, by, bw, bh = (float(v) for v in face.box)
        # A power of two: INTER_AREA then takes its fast integer path (other factors cost several times more).
        self.scale = s = int(2 ** max(1, round(np.log2(max(bw, 1.0) / face_px))))
        cx = bx + bw / 2
        # Face ellipse (forehead to chin) and neck ellipse, in frame pixels: centre x, centre y, semi-axes.
        self.ellipses = ((cx, by + 0.47 * bh, 0.58 * bw, 0.68 * bh), (cx, by + 1.15 * bh, 0.42 * bw, 0.42 * bh))
        x0 = min(e[0] - e[2] for e in self.ellipses) - 2 * s
        x1 = max(e[0] + e[2] for e in self.ellipses) + 2 * s
        y0 = min(e[1] - e[3] for e in self.ellipses) - 2 * s
        y1 = max(e[1] + e[3] for e in self.ellipses) + 2 * s
        x0, y0 = max(0, int(x0)), max(0, int(y0))
        x1, y1 = min(w, int(np.ceil(x1))), min(h, int(np.ceil(y1)))
        # Trim to a multiple of s (the margin of 2*s keeps the ellipses inside).
        x1 -= (x1 - x0) % s
        y1 -= (y1 - y0) % s
        self.rect = (x0, y0, x1, y1)
        self.work_size = ((x1 - x0) // s, (y1 - y0) // s)  # (w, h)
        self.empty = self.work_size[0] < 8 or self.work_size[1] < 8
        self.landmarks = (face.landmarks - np.array([x0, y0], np.float32)) / s  # working coordinates
        self.face_w = bw / s


def _region_weight(region: FaceRegion, out: np.ndarray, feather: float = 0.18) -> None:
    """Face and neck ellipses, 1 inside and ramping to exactly 0 at their rim, in working pixels."""
    ww, wh = region.work_size
    s = region.scale
    x0, y0 = region.rect[:2]
    xs = (np.arange(ww, dtype=np.float32) + 0.5) * s + x0
    ys = (np.arange(wh, dtype=np.float32) + 0.5) * s + y0
    out[:] = 0
    for cx, cy, ax, ay in region.ellipses:
        r = np.sqrt(((xs[None, :] - cx) / ax) ** 2 + ((ys[:, None] - cy) / ay) ** 2)
        np.maximum(out, np.clip((1.0 - r) / feather, 0.0, 1.0), out=out)


def _exclusions(region: FaceRegion, canvas: np.ndarray) -> None:
    """Eyes with brows, lips and nostrils from the five landmarks, as 255 on a uint8 canvas (not feathered)."""
    re, le, nose, rm, lm = region.landmarks
    ed = float(np.hypot(*(le - re)))
    angle = float(np.degrees(np.arctan2(le[1] - re[1], le[0] - re[0])))
    up = np.array([np.sin(np.radians(angle)), -np.cos(np.radians(angle))], np.float32)  # towards the forehead
    canvas[:] = 0
    if ed < 2:
        return

    def ellipse(centre: np.ndarray, ax: float, ay: float) -> None:
        c = (int(round(centre[0] * 16)), int(round(centre[1] * 16)))
        cv2.ellipse(canvas, c, (int(ax * 16), int(ay * 16)), angle, 0, 360, 255, -1, cv2.LINE_AA, 4)

    for eye in (re, le):
        ellipse(eye + up * 0.16 * ed, 0.40 * ed, 0.36 * ed)  # eye + brow
    mouth = (rm + lm) / 2 - up * 0.03 * ed
    ellipse(mouth, 0.5 * float(np.hypot(*(lm - rm))) + 0.14 * ed, 0.26 * ed)
    ellipse(nose - up * 0.10 * ed, 0.26 * ed, 0.13 * ed)  # nostrils


class SkinFilter:
    """Computes and applies the correction for one face; holds its buffers (resized when the region does)."""

    def __init__(self, face_px: int = 72) -> None:
        self.face_px = face_px
        self._shape: tuple[int, int] | None = None
        self._models: dict[int, SkinModel] = {}

    def reset(self) -> None:
        self._models.clear()

    def forget_except(self, track_ids: set[int]) -> None:
        for k in list(self._models):
            if k not in track_ids:
                del self._models[k]

    def _buffers(self, ww: int, wh: int) -> None:
        if self._shape == (wh, ww):
            return
        self._shape = (wh, ww)
        self._region = np.empty((wh, ww), np.float32)
        self._canvas = np.empty((wh, ww), np.uint8)

    # -- masks -----------------------------------------------------------------------------------------------

    def _skin_model(self, track_id: int, region: FaceRegion, ycc: np.ndarray) -> SkinModel:
        """CrCb statistics of the cheeks and nose between eyes and mouth, blended into the track's model."""
        re, le, nose, rm, lm = region.landmarks
        ed = float(np.hypot(*(le - re)))
        xa, xb = sorted((float(re[0]), float(le[0])))
        ya = float(max(re[1], le[1])) + 0.25 * ed
        yb = float(min(rm[1], lm[1])) - 0.05 * ed
        wh, ww = ycc.shape[:2]
        x0, x1 = int(np.clip(xa, 0, ww - 1)), int(np.clip(xb, 1, ww))
        y0, y1 = int(np.clip(ya, 0, wh - 1)), int(np.clip(yb, 1, wh))
        model = self._models.get(track_id)
        if x1 - x0 >= 2 and y1 - y0 >= 2:
            mu, sd = cv2.meanStdDev(ycc[y0:y1, x0:x1])
            mean = mu[1:, 0].astype(np.float32)
            spread = np.maximum(sd[1:, 0], 2.5).astype(np.float32)
            if model is None:
                model = SkinModel(mean, spread, np.zeros(3, np.float32))
                self._models[track_id] = model
            else:
                model.mean += 0.15 * (mean - model.mean)
                model.spread += 0.15 * (spread - model.spread)
        if model is None:  # no usable patch yet: a broad generic skin model
            model = SkinModel(np.array([150.0, 110.0], np.float32), np.array([8.0, 8.0], np.float32), np.zeros(3))
        return model

    def mask(self, track_id: int, region: FaceRegion, work: np.ndarray) -> np.ndarray:
        """Feathered skin mask at working resolution, float32 [h, w] in [0, 1], exactly 0 on the border."""
        wh, ww = work.shape[:2]
        self._buffers(ww, wh)
        _region_weight(region, self._region)
        ycc = cv2.cvtColor(work, cv2.COLOR_BGR2YCrCb)
        model = self._skin_model(track_id, region, ycc)
        d = (ycc[..., 1:].astype(np.float32) - model.mean) / model.spread
        dist = np.sqrt((d * d).sum(axis=2))
        skin = np.clip((3.5 - dist) * (1.0 / 1.5), 0.0, 1.0)  # 1 within 2 spreads of the mean, 0 beyond 3.5
        _exclusions(region, self._canvas)
        feather = max(0.5, 0.025 * region.face_w)
        excl = cv2.GaussianBlur(self._canvas, (0, 0), feather).astype(np.float32) * (1.0 / 255.0)
        m = cv2.GaussianBlur(skin, (0, 0), feather)
        m *= 1.0 - excl
        m *= self._region  # exact zeros outside the ellipses, whatever the blurs spread
        return m

    # -- correction ------------------------------------------------------------------------------------------

    def correction(self, track_id: int, region: FaceRegion, roi: np.ndarray, p: SkinParams) -> np.ndarray:
        """Correction (float32 [h, w, 3], grey levels) at working resolution for the face in ``roi``."""
        ww, wh = region.work_size
        work8 = cv2.resize(roi, (ww, wh), interpolation=cv2.INTER_AREA)
        m = self.mask(track_id, region, work8)
        work = work8.astype(np.float32)
        base = guided_filter(work, max(1.0, p.radius * region.face_w), p.eps)
        smooth = cv2.GaussianBlur(work, (3, 3), 0)
        detail = work - base
        detail -= p.texture * (work - smooth)
        corr = detail
        corr *= -p.mid
        if p.spot > 0:
            result = corr * m[..., None]
            result += work
            luma = cv2.cvtColor(result, cv2.COLOR_BGR2GRAY)
            k = 2 * max(1, int(round(0.04 * region.face_w))) + 1
            kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
            tophat = cv2.morphologyEx(luma, cv2.MORPH_BLACKHAT, kernel)
            spot = np.clip((tophat - 3.0) * (1.0 / 8.0), 0.0, p.spot)
            spot *= cv2.erode(m, kernel)  # only blobs with skin all around: not hair strands at the skin's edge
            closed = cv2.morphologyEx(result, cv2.MORPH_CLOSE, kernel)
            corr += (closed - result) * spot[..., None]
        model = self._models.get(track_id)
        if (p.tone > 0 or p.lift > 0) and model is not None:
            luma_b = base @ _LUMA
            chroma = base - luma_b[..., None]
            weight = float(m.sum())
            if weight > 1:
                mean = m.reshape(1, -1) @ chroma.reshape(-1, 3) / weight
                mean = mean[0]
                model.chroma += 0.2 * (mean - model.chroma) if model.chroma.any() else mean
                corr += p.tone * (model.chroma - chroma)
            if p.lift > 0:
                corr += (p.lift / 255.0) * (base * (255.0 - base))
        corr *= m[..., None]
        return corr


def guided_filter(image: np.ndarray, radius: float, eps: float) -> np.ndarray:
    """Fast self-guided filter (He & Sun 2015), per channel: coefficients at half resolution, float32 in/out."""
    h, w = image.shape[:2]
    small = cv2.resize(image, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA)
    r = max(1, int(round(radius / 2)))
    ksize = (2 * r + 1, 2 * r + 1)
    mean = cv2.boxFilter(small, -1, ksize)
    var = cv2.boxFilter(small * small, -1, ksize) - mean * mean
    a = var / (var + eps * eps)
    b = mean - a * mean
    a = cv2.resize(cv2.boxFilter(a, -1, ksize), (w, h), interpolation=cv2.INTER_LINEAR)
    b = cv2.resize(cv2.boxFilter(b, -1, ksize), (w, h), interpolation=cv2.INTER_LINEAR)
    return a * image + b
