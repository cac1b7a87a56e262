"""Texture-preserving skin smoothing of one face (the per-face work of the beauty stage).

The face region is cut out of the frame and shrunk by an integer factor ``s`` (1 for faces under 192 px) so
that the face is about ``face_px`` pixels wide: the "working resolution", where the cost per face is the same at
any camera resolution. Everything is computed there (the mask and the tone at half of it) and the result is a smooth
*correction* ``C`` that is upsampled and added to the full-resolution pixels of the region:

    Y    = working-resolution luma            B = fast guided filter of Y (edge-preserving base)
    D    = (1 - t) Y + t G(Y) - B             the detail above the base, less the share t ("texture") of the
                                              finest band (finer than 2 frame pixels), which is kept
    C_Y  = -k_mid m D + lift m Y(255 - Y)/255 mid band attenuated; mid-tones lifted against dullness
         + spot fill                          small dark blobs (black top-hat of the result, skin all around)
                                              filled by their own depth
    C    = C_Y (all three channels) + tone    tone: the skin's chroma pulled towards the face's mean skin chroma

Everything finer than the working resolution (pores, fine hair, eyelashes) is never touched, because the
correction is an upsampled field; so the finest texture is kept by construction. ``m`` is the feathered skin mask:
skin colour (a per-face Gaussian in CrCb learnt from the cheeks and nose between the landmarks, smoothed over
time) x smoothness near the rim (hair of skin colour has strands) x the face shape (a rounded box inside the
detector's face box) x (1 - eyes, brows, lips, nostrils around the landmarks). ``m`` is exactly 0 outside the
shape, which lies inside the region with a
margin, so pixels outside the face box are exactly unchanged. ``C`` is updated only where the image changed and
kept exactly where it did not (regions are snapped to the working grid so this follows a moving face): no shimmer.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .faces import Face
from .skin_ops import blend, change_weight, clip01, guided_filter, overlap, regrid, working_scale
from .skin_shapes import exclusions


@dataclass(frozen=True)
class SkinParams:
    """Effect amounts at the stage's current strength (see ``BeautyStage``)."""

    mid: float  # share of the mid band removed in the skin, 0..1
    texture: float  # share of the finest working-resolution band kept, 0..1
    radius: float  # guided-filter radius as a share of the face width
    eps: float  # guided-filter edge threshold: local contrast (grey levels, std) that counts as an edge
    spot: float  # dark-spot fill, 0..1
    tone: float  # chroma evening towards the mean skin chroma, 0..1
    lift: float  # mid-tone lift, share of the parabola Y(255-Y)/255


@dataclass
class SkinModel:
    """Per-face skin colour model (CrCb mean and spread), smoothed over frames."""

    mean: np.ndarray  # [2]
    spread: np.ndarray  # [2]
    chroma: np.ndarray  # [3] mean skin chroma (BGR minus luma)


class FaceRegion:
    """Where a face's work happens: the full-resolution rectangle, its working scale and geometry."""

    def __init__(self, face: Face, frame_shape: tuple[int, ...], face_px: int, previous_scale: int = 0) -> None:
        h, w = frame_shape[:2]
        bx, by, bw, bh = (float(v) for v in face.box)
        self.scale = s = working_scale(bw, face_px, previous_scale)
        cx = bx + bw / 2
        # The face shape: a rounded box (superellipse) inscribed in the detector's face box, so that nothing
        # outside the face box is changed; centre x, centre y, semi-axes, in frame pixels. Inset a little at the
        # top and sides (the tracker's crop detections give boxes up to ~10 % wider than a full-frame detection),
        # down to the box's bottom edge at the chin (crop detections end above a full-frame detection's chin).
        self.ellipses = ((cx, by + _SHAPE_CENTRE_Y * bh, _SHAPE_SIZE[0] * bw, _SHAPE_SIZE[1] * bh),)
        x0 = min(e[0] - e[2] for e in self.ellipses) - 4 * s
        x1 = max(e[0] + e[2] for e in self.ellipses) + 4 * s
        y0 = min(e[1] - e[3] for e in self.ellipses) - 4 * s
        y1 = max(e[1] + e[3] for e in self.ellipses) + 4 * s
        # Snap to a grid of 2*s pixels anchored at the frame origin: the working grids of consecutive frames
        # then line up, so the temporal smoothing can follow a moving face; even working size for the half-size
        # mask. The margin of 4*s keeps the ellipses and their blurred rims inside after the trim.
        g = 2 * s
        x0, y0 = max(0, int(x0) // g * g), max(0, int(y0) // g * g)
        x1, y1 = min(w, int(np.ceil(x1))), min(h, int(np.ceil(y1)))
        x1 -= (x1 - x0) % g
        y1 -= (y1 - y0) % g
        self.rect = (x0, y0, x1, y1)
        self.work_size = ((x1 - x0) // s, (y1 - y0) // s)  # (w, h)
        self.empty = self.work_size[0] < 16 or self.work_size[1] < 16
        self.landmarks = (face.landmarks - np.array([x0, y0], np.float32)) / s  # working coordinates
        self.face_w = bw / s


_SHAPE_POWER = 4.0  # superellipse exponent of the face shape: 2 = ellipse, larger = closer to the box
_SHAPE_SIZE = (0.45, 0.49)  # its semi-axes as shares of the box width and height
_SHAPE_CENTRE_Y = 0.51  # its centre, as a share of the box height from the box top (rim: 2 % to 100 %)
_SHAPE_FEATHER = 0.10  # its rim: the weight ramps from 1 to 0 over this share of the radius


def _region_weight(region: FaceRegion, out: np.ndarray, s: int) -> np.ndarray:
    """The face shape, 1 inside and ramping to exactly 0 at its rim, on a grid of s-pixel cells.

    Returns the normalised radius in the face shape (0 at its centre, 1 on its rim).
    """
    wh, ww = out.shape
    x0, y0 = region.rect[:2]
    xs = (np.arange(ww, dtype=np.float32) + 0.5) * s + x0
    ys = (np.arange(wh, dtype=np.float32) + 0.5) * s + y0
    out[:] = 0
    face_r = None
    for cx, cy, ax, ay in region.ellipses:
        q = _SHAPE_POWER
        r = (np.abs((xs[None, :] - cx) / ax) ** q + np.abs((ys[:, None] - cy) / ay) ** q) ** (1.0 / q)
        np.maximum(out, np.clip((1.0 - r) / _SHAPE_FEATHER, 0.0, 1.0), out=out)
        face_r = r if face_r is None else face_r
    assert face_r is not None
    return face_r


_SKIN_SPREADS = (4.0, 7.0)  # skin colour: full weight within this many spreads of the face's mean CrCb, none beyond
_TEXTURE_SIGMA = 2.0  # the kept finest band: detail finer than a Gaussian of this many frame pixels ...
_TEXTURE_FACE_SHARE = 0.03  # ... or of 3 % of the face width, if less (a 52 px face of a 360p webcam: 1.6 px,
# where 2 px would keep most of its blemish band, which lies at 1.5-3 px)
_TEXTURE_MIN_SIGMA = 0.5  # ... and at least this many working pixels (the smallest Gaussian that still acts: a
# large face's working grid is coarser than 2 frame pixels, and what is finer than the grid is never touched)
# Temporal gate: a working pixel keeps its correction while its 3x3 mean luma is within _STILL_LEVELS of the
# luma its correction was made for, and takes the new one fully from _MOVING_LEVELS.
_STILL_LEVELS, _MOVING_LEVELS = 1.5, 5.0
_HAIR_RADIUS = 1.0  # hair is looked for (by its strands' texture) only beyond this normalised radius
_EXCLUSION_FEATHER = 0.0125  # their feathering (Gaussian sigma), as a share of the face width


@dataclass
class _TrackState:
    model: SkinModel | None = None
    rect: tuple[int, int, int, int] | None = None  # region of the previous frame
    scale: int = 0  # its working scale
    luma: np.ndarray | None = None  # reference working-resolution luma (where the correction was last updated)
    corr: np.ndarray | None = None  # previous luma correction (working resolution)
    tone: np.ndarray | None = None  # previous tone correction (half the working resolution, BGR)
    mask: np.ndarray | None = None  # skin mask at half working resolution
    reused: bool = False  # the last frame reused the mask and tone of the one before
    geometry_key: tuple | None = None  # what the cached geometry was made for
    geometry: tuple[np.ndarray, ...] | None = None  # see SkinFilter._geometry


class SkinFilter:
    """Computes the correction for one face at a time; keeps per-track skin models and temporal state."""

    def __init__(self, face_px: int = 128) -> None:
        self.face_px = face_px
        self._tracks: dict[int, _TrackState] = {}
        self.last_mask: np.ndarray | None = None  # working-resolution skin mask of the last face (diagnostics)

    def reset(self) -> None:
        self._tracks.clear()

    def scale_of(self, track_id: int) -> int:
        """The working scale the track used in its last frame (0: none yet)."""
        state = self._tracks.get(track_id)
        return state.scale if state is not None else 0

    def forget_except(self, track_ids: set[int]) -> None:
        for k in list(self._tracks):
            if k not in track_ids:
                del self._tracks[k]

    # -- masks -----------------------------------------------------------------------------------------------

    def _skin_model(self, state: _TrackState, region: FaceRegion, ycc: np.ndarray, scale: float) -> SkinModel:
        """CrCb statistics of the cheeks and nose between eyes and mouth, blended into the track's model."""
        re, le, _nose, rm, lm = region.landmarks * scale
        ed = float(np.hypot(*(le - re)))
        xa, xb = sorted((float(re[0]), float(le[0])))
        ya = float(max(re[1], le[1])) + 0.25 * ed
        yb = float(min(rm[1], lm[1])) - 0.05 * ed
        wh, ww = ycc.shape[:2]
        xa, xb = xa - 0.2 * ed, xb + 0.2 * ed  # cheeks, nose and the skin between
        x0, x1 = int(np.clip(xa, 0, ww - 1)), int(np.clip(xb, 1, ww))
        y0, y1 = int(np.clip(ya, 0, wh - 1)), int(np.clip(yb, 1, wh))
        model = state.model
        if x1 - x0 >= 2 and y1 - y0 >= 2:
            mu, sd = cv2.meanStdDev(ycc[y0:y1, x0:x1])
            mean = mu[1:, 0].astype(np.float32)
            spread = np.maximum(sd[1:, 0], 3.0).astype(np.float32)
            if model is None:
                model = state.model = SkinModel(mean, spread, np.zeros(3, np.float32))
            else:
                model.mean += 0.15 * (mean - model.mean)
                model.spread += 0.15 * (spread - model.spread)
        if model is None:  # no usable patch: a broad generic skin model, not kept
            model = SkinModel(np.array([150.0, 110.0], np.float32), np.array([8.0, 8.0], np.float32), np.zeros(3))
        return model

    def mask(self, state: _TrackState, region: FaceRegion, ycc: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Feathered skin mask for ``ycc`` (float32 [h, w] in [0, 1]), exactly 0 outside the face ellipses.

        ``ycc`` is the region at half the working resolution (the mask is smooth, so that is plenty), ``y`` its
        luma as float32.
        """
        wh, ww = ycc.shape[:2]
        inner_sample, inner_weight, geometry = self._geometry(state, region, (wh, ww))
        model = self._skin_model(state, region, ycc, 0.5)
        _, cr, cb = cv2.split(ycc)
        # Squared distance to the model in spreads, through per-channel lookup tables (cheaper than arithmetic).
        levels = np.arange(256, dtype=np.float32)
        d2 = cv2.LUT(cr, ((levels - model.mean[0]) / model.spread[0]) ** 2)
        d2 += cv2.LUT(cb, ((levels - model.mean[1]) / model.spread[1]) ** 2)
        full, none = _SKIN_SPREADS
        skin = clip01((none * none - d2) * (1.0 / (none * none - full * full)))  # 1 within `full` spreads, 0 beyond
        # Hair can have the skin's colour (blond, red): it is told apart by its strands, i.e. fine texture.
        # Only towards the rim of the face, where hair is, so that blemishes in the middle still count as skin.
        hp = y - cv2.GaussianBlur(y, (3, 3), 0)
        k = 2 * max(1, round(0.05 * region.face_w)) + 1
        texture = cv2.boxFilter(hp * hp, -1, (k, k))
        inner = texture[::2, ::2][inner_sample]
        ref = max(4.0, float(np.median(inner))) if inner.size else 16.0  # the face's own skin texture
        smooth = clip01((3.0 * ref - texture) * (1.0 / (1.5 * ref)))  # hair: > 3x the skin's
        np.maximum(smooth, inner_weight, out=smooth)
        skin *= smooth
        feather = max(0.5, 0.0125 * region.face_w)
        m = cv2.GaussianBlur(skin, (0, 0), feather)
        m *= geometry  # ellipses x (1 - feathered eyes, brows, lips, nostrils): exact zeros outside the ellipses
        return m

    @staticmethod
    def _geometry(state: _TrackState, region: FaceRegion, shape: tuple[int, int]) -> tuple[np.ndarray, ...]:
        """At half working resolution: where the face's own skin texture is sampled (every other pixel of the
        inner face), where hair is not expected (inner face, 1, ramping to 0 towards the rim) and the ellipses
        x (1 - feathered eyes, brows, lips, nostrils).

        They depend only on the face's box and landmarks, which do not move for a still face: cached.
        """
        key = (region.rect, region.scale, region.ellipses, region.landmarks.tobytes())
        if state.geometry_key == key and state.geometry is not None:
            return state.geometry
        weight = np.empty(shape, np.float32)
        radius = _region_weight(region, weight, 2 * region.scale)
        canvas = np.empty(shape, np.uint8)
        exclusions(region.landmarks * 0.5, canvas)
        keep = cv2.GaussianBlur(canvas, (0, 0), max(0.5, _EXCLUSION_FEATHER * region.face_w)).astype(np.float32)
        keep *= -1.0 / 255.0
        keep += 1.0
        keep *= weight
        inner_weight = clip01((_HAIR_RADIUS - radius) * 6.0)
        state.geometry_key, state.geometry = key, (radius[::2, ::2] < 0.6, inner_weight, keep)
        return state.geometry

    # -- correction ------------------------------------------------------------------------------------------

    def correction(self, track_id: int, region: FaceRegion, roi: np.ndarray, p: SkinParams) -> np.ndarray:
        """Correction (float32 [h, w, 3], grey levels) at working resolution for the face in ``roi``."""
        state = self._tracks.setdefault(track_id, _TrackState())
        ww, wh = region.work_size
        hw, hh = ww // 2, wh // 2
        work8 = cv2.resize(roi, (ww, wh), interpolation=cv2.INTER_AREA)
        half8 = cv2.resize(work8, (hw, hh), interpolation=cv2.INTER_AREA)
        ycc = cv2.cvtColor(half8, cv2.COLOR_BGR2YCrCb)
        y_half = ycc[..., 0].astype(np.float32)
        # The skin mask and the tone change slowly: while the region stays put, every other frame reuses them.
        reuse = state.rect == region.rect and state.scale == region.scale and not state.reused
        reuse = reuse and state.mask is not None
        if reuse:
            m_half = state.mask
        else:
            m_half = state.mask = self.mask(state, region, ycc, y_half)
        state.reused = reuse
        m = cv2.resize(m_half, (ww, wh), interpolation=cv2.INTER_LINEAR)
        self.last_mask = m
        y = cv2.cvtColor(work8, cv2.COLOR_BGR2GRAY).astype(np.float32)
        corr = _luma_correction(region, y, y_half, m, p)
        if state.scale not in (0, region.scale) and state.rect is not None:
            _carry_over(state, region)
        alpha_map = self._keep_still(state, region, y, corr)
        tone = self._tone(state, region, half8, m_half, p, reuse, alpha_map)
        state.rect, state.scale = region.rect, region.scale
        if tone is None:
            return cv2.merge((corr, corr, corr))
        out = cv2.resize(tone, (ww, wh), interpolation=cv2.INTER_LINEAR)
        cv2.add(out, cv2.merge((corr, corr, corr)), dst=out)  # faster than numpy's broadcast over channels
        return out

    def _keep_still(self, state: _TrackState, region: FaceRegion, y: np.ndarray, corr: np.ndarray
                    ) -> np.ndarray | None:
        """Update ``corr`` in place only where the image changed since the correction there was made: a still
        pixel keeps its correction exactly (no shimmer from the camera's noise or from the filters' reach into
        moving neighbours such as the mouth). Returns the update weights (None: no previous frame to follow)."""
        s = region.scale
        ref, alpha_map = y, None
        if state.rect is not None and state.scale == s and state.luma is not None:
            dx, dy = (state.rect[0] - region.rect[0]) // s, (state.rect[1] - region.rect[1]) // s
            change = overlap(y, state.luma, dx, dy)
            if change is not None:
                cur, prev = change
                alpha = change_weight(y[cur], state.luma[prev], _STILL_LEVELS, _MOVING_LEVELS)
                blend(corr[cur], state.corr[prev], alpha)
                # Where the correction moved at all, the reference is the current image: the next identical
                # frame then changes nothing (a partial step is not followed by a drift over later frames).
                ref = y.copy()
                ref[cur] = np.where(alpha > 0, y[cur], state.luma[prev])
                alpha_map = np.ones_like(y)
                alpha_map[cur] = alpha
                # A kept correction never reaches beyond the current face shape (its geometry, not the skin
                # colour, so that noise in the colour mask does not wear the kept correction away).
                half = state.mask.shape if state.mask is not None else (y.shape[0] // 2, y.shape[1] // 2)
                shape = cv2.resize(self._geometry(state, region, half)[2], (y.shape[1], y.shape[0]),
                                   interpolation=cv2.INTER_NEAREST)
                corr *= shape > 0
        state.luma, state.corr = ref, corr  # neither is written to after this
        return alpha_map

    @staticmethod
    def _tone(state: _TrackState, region: FaceRegion, half8: np.ndarray, m_half: np.ndarray, p: SkinParams,
              reuse: bool, alpha_map: np.ndarray | None) -> np.ndarray | None:
        """Chroma pulled towards the face's mean skin chroma, at half resolution, kept where the image is still."""
        total = float(m_half.sum())
        if reuse and p.tone > 0 and state.tone is not None:
            return state.tone
        tone = None
        if p.tone > 0 and total > 1 and state.model is not None:
            small = half8.astype(np.float32)
            grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
            weights = m_half.reshape(1, -1) / total
            mean = (weights @ small.reshape(-1, 3))[0] - float((weights @ grey.reshape(-1, 1))[0, 0])
            model = state.model
            model.chroma = mean if not model.chroma.any() else model.chroma + 0.2 * (mean - model.chroma)
            tone = grey[..., None] - small  # minus the chroma ...
            tone += model.chroma  # ... plus the face's mean chroma
            tone *= (p.tone * m_half)[..., None]
            s = region.scale
            if state.rect is not None and state.scale == s and state.tone is not None and state.tone.shape[2] == 3:
                dx, dy = (state.rect[0] - region.rect[0]) // s, (state.rect[1] - region.rect[1]) // s
                found = overlap(m_half, state.tone[..., 0], dx // 2, dy // 2)
                if found is not None:
                    cur, prev = found
                    hh, hw = m_half.shape
                    a = 1.0 if alpha_map is None else cv2.resize(alpha_map, (hw, hh), interpolation=cv2.INTER_AREA)
                    blend(tone[cur], state.tone[prev], a if np.isscalar(a) else a[cur])
        state.tone = tone
        return tone


def _carry_over(state: _TrackState, region: FaceRegion) -> None:
    """The working scale changed (the face's size crossed a step): the reference luma, the correction and the
    tone move onto the new grid, so the still parts of the face keep their correction instead of all of it
    being made afresh (a full-strength flicker in that frame)."""
    assert state.rect is not None
    (ox, oy), so, (nx, ny), sn = state.rect[:2], state.scale, region.rect[:2], region.scale
    size = region.work_size
    if state.luma is not None and state.corr is not None:
        state.luma = regrid(state.luma, (ox, oy, so), (nx, ny, sn), size, -1e4)  # beyond: "changed", updated
        state.corr = regrid(state.corr, (ox, oy, so), (nx, ny, sn), size, 0.0)
    if state.tone is not None:
        state.tone = regrid(state.tone, (ox, oy, 2 * so), (nx, ny, 2 * sn), (size[0] // 2, size[1] // 2), 0.0)
    state.rect, state.scale = region.rect, region.scale


def _luma_correction(region: FaceRegion, y: np.ndarray, y_half: np.ndarray, m: np.ndarray, p: SkinParams
                     ) -> np.ndarray:
    """The luma correction of this frame: the detail above the edge-preserving base removed (less the share of
    the finest band kept), mid-tones lifted, small dark spots filled; all weighted by the skin mask ``m``."""
    base = guided_filter(y, max(1.0, p.radius * region.face_w), p.eps, y_half)
    if p.texture > 0:  # (1 - t) y + t G(y) - base; G: a Gaussian of 2 frame pixels (less on small faces)
        frame_sigma = min(_TEXTURE_SIGMA, _TEXTURE_FACE_SHARE * region.face_w * region.scale)
        sigma = max(_TEXTURE_MIN_SIGMA, frame_sigma / region.scale)
        detail = cv2.addWeighted(y, 1.0 - p.texture, cv2.GaussianBlur(y, (0, 0), sigma), p.texture, 0.0)
        detail -= base
    else:
        detail = y - base
    corr = cv2.multiply(detail, m, scale=-p.mid)
    if p.lift > 0:  # lift the mid-tones (a parabola, 0 at black and white) against dullness
        corr += cv2.multiply(cv2.multiply(y, 255.0 - y, scale=p.lift / 255.0), m)
    # Small dark spots left after that: a black top-hat finds them, filled by their own depth.
    if p.spot > 0:
        k = 2 * max(1, round(0.035 * region.face_w)) + 1
        kernel = np.ones((k, k), np.uint8)  # a rectangle: separable, 4x cheaper than an ellipse
        # On the lightly blurred result, so single-pixel texture (pores, noise) is not taken for a spot.
        tophat = cv2.morphologyEx(cv2.GaussianBlur(corr + y, (3, 3), 0), cv2.MORPH_BLACKHAT, kernel)
        # Shallow blobs are blemishes; deep ones (nostrils, eye corners the landmarks missed) are left alone.
        spot = np.minimum(np.clip((tophat - 4.0) * (1.0 / 6.0), 0.0, p.spot), np.clip((40.0 - tophat) * 0.1, 0, 1))
        spot *= cv2.erode(m, kernel)  # only blobs with skin all around: not hair strands at the skin's edge
        corr += spot * tophat
    return corr
