"""Tuning probes for mask refinement and temporal smoothing, on portrait-seg TRAINING photos and clip prefixes.

    python -m tools.evaluation.edges_tune refine            # default vs snap/centre variants and refinement probes
    python -m tools.evaluation.edges_tune refine --probes-only
    python -m tools.evaluation.edges_tune flicker --frames 40   # temporal-smoothing variants on the clip prefixes

``refine``: 100 training photos (not in val.txt; fixed seed), native size and 640x480 head-and-shoulders crops:
boundary F (3 px), IoU and the 10 px band composite error (as ``edges.py``), for MaskRefiner settings variants and
for probes that are not in the product (a full-resolution colour guided filter, a confidence-weighted grey guided
filter, a two-scale guided filter, a chroma-weighted guide) to see how far refinement of this kind can go.
``flicker``: the first ``--frames`` frames of every clip in ``videos/``: median/mean/worst change of
``unexplained_change`` vs the raw mask, and the median/max over clips of the 99th-percentile edge lag (px), for
the motion-compensated smoother with settings variants.
Reads ``../shared/data``; the product never imports it.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable

import cv2
import numpy as np

from tools.evaluation.edges import (DEFAULT_DATA, DEFAULT_SEGMENTER, OnnxSegmenter, _backgrounds, band_of,
                                   edge_offsets, head_crop, raw_alpha, read_clip)
from tools.evaluation.metrics import boundary_f, iou, unexplained_change
from vcam.postprocess.blend import blend_full
from vcam.postprocess.composite import cover_fit
from vcam.postprocess.mask import MaskRefiner, MaskSettings
from vcam.postprocess.pyramid import level_for_width

log = logging.getLogger("tools.evaluation.edges_tune")
Refine = Callable[[np.ndarray, np.ndarray], np.ndarray]


def training_items(seg: OnnxSegmenter, n: int = 100) -> list[tuple]:
    root = DEFAULT_DATA / "portrait-seg"
    val = set((root / "val.txt").read_text().split())
    stems = sorted(p.stem for p in (root / "images").glob("*.jpg") if p.stem not in val)
    stems = list(np.random.default_rng(0).choice(stems, n, replace=False))
    bgs = [cv2.imread(str(p)) for p in _backgrounds(DEFAULT_DATA)]
    items = []
    for stem in stems:
        f = cv2.imread(str(root / "images" / f"{stem}.jpg"))
        g = cv2.imread(str(root / "masks" / f"{stem}.png"), cv2.IMREAD_GRAYSCALE)
        for crop in (False, True):
            ff, gg = head_crop(f, g) if crop else (f, g)
            h, w = gg.shape
            bg = cover_fit(bgs[len(items) % len(bgs)], w, h)
            items.append((crop, ff, gg, seg(ff), bg, band_of(gg), blend_full(ff, bg, gg, bg.copy())))
    return items


def score(items: list[tuple], fn: Refine) -> str:
    res: dict[bool, list] = {False: [], True: []}
    for crop, f, g, m, bg, band, ideal in items:
        a = fn(m, f)
        ours = blend_full(f, bg, a, bg.copy())
        res[crop].append((boundary_f(a, g), iou(a, g), float(np.abs(ours.astype(np.int16) - ideal)[band].mean())))
    parts = []
    for crop, v in res.items():
        if not v:
            continue
        bf, io, band = np.mean(v, axis=0)
        parts.append(f"{'crops' if crop else 'native'}: BF {bf:.4f} IoU {io:.4f} band {band:.2f}")
    return " | ".join(parts)


def refiner(**kw) -> Refine:
    r = MaskRefiner(MaskSettings(**kw))

    def fn(m: np.ndarray, f: np.ndarray) -> np.ndarray:
        r.reset()
        return r.process(m, f).copy()
    return fn


def _box(x: np.ndarray, r: int) -> np.ndarray:
    return cv2.boxFilter(x, -1, (2 * r + 1, 2 * r + 1), borderType=cv2.BORDER_REFLECT)


def _snap_lut(centre: float = 0.55, snap: float = 0.35) -> np.ndarray:
    v = np.arange(256, dtype=np.float32)
    half = (0.5 - snap) * 255
    return np.clip(np.round((v - centre * 255 + half) * 255.0 / (2 * half)), 0, 255).astype(np.uint8)


def colour_gf(image: np.ndarray, p: np.ndarray, r: int, eps: float) -> np.ndarray:
    """He et al.'s colour guided filter (float32 image [H,W,3] in [0,1], mask [H,W])."""
    m_i = [_box(image[..., c], r) for c in range(3)]
    m_p = _box(p, r)
    cov = np.stack([_box(image[..., c] * p, r) - m_i[c] * m_p for c in range(3)], -1)
    sigma = np.empty(image.shape[:2] + (3, 3), np.float32)
    for i in range(3):
        for j in range(i, 3):
            sigma[..., i, j] = sigma[..., j, i] = _box(image[..., i] * image[..., j], r) - m_i[i] * m_i[j]
    sigma += eps * np.eye(3, dtype=np.float32)
    a = np.linalg.solve(sigma, cov[..., None])[..., 0]
    b = m_p - sum(a[..., c] * m_i[c] for c in range(3))
    return sum(_box(a[..., c], r) * image[..., c] for c in range(3)) + _box(b, r)


def probe_colour(r: int, eps: float) -> Refine:
    """Colour guided filter at full frame resolution (the frame's own size; not affordable at 720p)."""
    lut = _snap_lut()

    def fn(m: np.ndarray, f: np.ndarray) -> np.ndarray:
        h, w = f.shape[:2]
        q = colour_gf(f.astype(np.float32) / 255, cv2.resize(m, (w, h)), r, eps)
        return cv2.LUT(np.clip(q * 255 + 0.5, 0, 255).astype(np.uint8), lut)
    return fn


def probe_grey(r: int = 2, eps: float = 1e-3, gamma: float | None = None, pre: tuple[int, float] | None = None,
               chroma: float = 0.0) -> Refine:
    """The product's two-resolution grey guided filter, with: ``gamma``: confidence weights |2p-1|^gamma + 0.05
    (the uncertain band does not constrain the fit); ``pre``: a first coarse pass (radius, eps); ``chroma``: guide =
    Y/2 + chroma * (|Cr - 0.5| + |Cb - 0.5|)."""
    lut = _snap_lut()

    def coef(i: np.ndarray, p: np.ndarray, wt: np.ndarray, rad: int, e: float) -> tuple[np.ndarray, np.ndarray]:
        sw = _box(wt, rad) + 1e-6
        mi, mp = _box(wt * i, rad) / sw, _box(wt * p, rad) / sw
        a = (_box(wt * i * p, rad) / sw - mi * mp) / (_box(wt * i * i, rad) / sw - mi * mi + e)
        return _box(a, rad), _box(mp - a * mi, rad)

    def fn(m: np.ndarray, f: np.ndarray) -> np.ndarray:
        h, w = f.shape[:2]
        work = f
        for _ in range(level_for_width(w, 640)):
            work = cv2.resize(work, (work.shape[1] // 2, work.shape[0] // 2), interpolation=cv2.INTER_AREA)
        if chroma:
            ycc = cv2.cvtColor(work, cv2.COLOR_BGR2YCrCb).astype(np.float32) / 255
            guide = ycc[..., 0] * 0.5 + chroma * (np.abs(ycc[..., 1] - 0.5) + np.abs(ycc[..., 2] - 0.5))
        else:
            guide = cv2.cvtColor(work, cv2.COLOR_BGR2GRAY).astype(np.float32) / 255
        gsize = (guide.shape[1] // 2, guide.shape[0] // 2)
        grid = cv2.resize(guide, gsize, interpolation=cv2.INTER_AREA)
        p = cv2.resize(m, gsize, interpolation=cv2.INTER_LINEAR)
        if pre:
            a, b = coef(grid, p, np.ones_like(p), *pre)
            p = np.clip(a * grid + b, 0, 1)
        wt = np.ones_like(p) if gamma is None else np.abs(2 * p - 1) ** gamma + 0.05
        a, b = coef(grid, p, wt, r, eps)
        size = guide.shape[::-1]
        q = cv2.resize(a, size) * guide + cv2.resize(b, size)
        al = cv2.LUT(np.clip(q * 255 + 0.5, 0, 255).astype(np.uint8), lut)
        return al if al.shape == (h, w) else cv2.resize(al, (w, h))
    return fn


def run_refine(seg: OnnxSegmenter, probes_only: bool) -> None:
    items = training_items(seg)
    print("raw                     ", score(items, lambda m, f: raw_alpha(m, f.shape[1], f.shape[0])))
    variants = [] if probes_only else [{}, {"snap": 0.3, "snap_center": 0.5}, {"snap": 0.4, "snap_center": 0.5},
                {"snap": 0.45, "snap_center": 0.5}, {"soft": False}, {"snap_center": 0.5},
                {"snap_center": 0.6}, {"snap": 0.4}, {"refine_radius": 4}, {"refine_eps": 0.0003},
                {"grid_levels": 2}, {"dilate_px": 2, "erode_px": 2}]
    for kw in variants:
        print(f"MaskRefiner {kw}", score(items, refiner(**kw)), flush=True)
    native = [it for it in items if not it[0]]  # the colour probe at 640x480 crops is slow; photos only
    for r, eps in ((4, 1e-3), (8, 1e-3), (4, 1e-4)):
        print(f"colour GF full-res r={r} eps={eps} (native only)", score(native, probe_colour(r, eps)), flush=True)
    for kw in ({}, {"gamma": 1.0}, {"gamma": 2.0}, {"pre": (6, 1e-3)}, {"chroma": 1.0}, {"chroma": 2.0}):
        print(f"grey GF probe {kw}", score(items, probe_grey(**kw)), flush=True)


def run_flicker(seg: OnnxSegmenter, frames_n: int, variants: list[dict]) -> None:
    clips = []
    for path in sorted((DEFAULT_DATA / "videos").glob("*.mp4")):
        frames = read_clip(path, frames_n)
        masks = [seg(f) for f in frames]
        raw = [raw_alpha(m, f.shape[1], f.shape[0]) for m, f in zip(masks, frames)]
        clips.append((frames, masks, unexplained_change(frames, raw)))
    for kw in variants:
        st = MaskSettings(**kw)
        change, lag = [], []
        for frames, masks, flicker_raw in clips:
            still, smooth = MaskRefiner(st.model_copy(update={"temporal_strength": 0.0})), MaskRefiner(st)
            a0 = [still.process(m, f).copy() for m, f in zip(masks, frames)]
            a1 = [smooth.process(m, f).copy() for m, f in zip(masks, frames)]
            change.append(unexplained_change(frames, a1) / flicker_raw - 1)
            lag.append(np.percentile(edge_offsets(a1, a0), 99))
        c = np.array(change) * 100
        print(f"{kw}: flicker vs raw median {np.median(c):+.1f}% mean {c.mean():+.1f}% worst {c.max():+.1f}%; "
              f"lag p99 median {np.median(lag):.1f} px, max {np.max(lag):.1f} px", flush=True)


# the smoother's settings: flow field resolution, gating thresholds, strength, jump
FLICKER_VARIANTS = [{}, {"flow_levels": 3}, {"flow_noise": 3, "flow_ramp": 12}, {"flow_noise": 8, "flow_ramp": 24},
                    {"temporal_strength": 0.85}, {"temporal_strength": 0.92}, {"motion_jump": 0.6},
                    {"flow_noise": 64, "motion_jump": 1.0, "temporal_strength": 0.8}]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("what", choices=("refine", "flicker"))
    p.add_argument("--frames", type=int, default=40)
    p.add_argument("--probes-only", action="store_true", help="refine: skip the MaskRefiner settings variants")
    p.add_argument("--variants", help="flicker: a JSON list of MaskSettings overrides to run instead of the "
                   "built-in list, e.g. '[{}, {\"flow_levels\": 3}]'")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cv2.setNumThreads(1)
    seg = OnnxSegmenter(DEFAULT_SEGMENTER)
    if args.what == "refine":
        run_refine(seg, args.probes_only)
    else:
        run_flicker(seg, args.frames, json.loads(args.variants) if args.variants else FLICKER_VARIANTS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
