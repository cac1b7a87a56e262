"""Edge quality of mask refinement and compositing: raw model mask (bilinear-upsampled) vs refined.

    python -m tools.evaluation.edges                      # full table (quality, composite, temporal, timing)
    python -m tools.evaluation.edges --sections timing    # one section
    python -m tools.evaluation.edges --segmenter PATH.onnx --json results.json
    python -m tools.evaluation.edges strip                # docs/img/edges-strip.png (moving arms, no trailing)

Sections:
- quality: IoU and boundary F (3 px) against human masks on ``portrait-seg`` val (86 photos, native size, long
  side <= 512) and on 4:3 head-and-shoulders crops of them (from just above the head, resized to 640x480).
- composite: mean absolute error (grey levels, all channels) in a 10 px band around the true boundary between our
  composite and the ideal one (the same photo composited with the human mask) onto ``backgrounds/`` scenes
  (cover-fit); for blur mode the colour bleed: the same error restricted to the background side of the band, where
  the ideal is the blurred background computed with the human mask. A plain (unweighted) blur is shown for scale.
- temporal: flicker = ``unexplained_change`` (mask change optical flow does not explain) on the DAVIS person
  sequences and the first frames of every clip in ``videos/``, for the raw mask, refinement without temporal
  smoothing and with it; lag = distance (frame px) from the smoothed alpha's edge to the unsmoothed one's
  (mean, 95th and 99th percentile over all edge pixels of all frames), and on DAVIS IoU against the human masks.
- timing: median CPU ms per 1280x720 frame at one thread, per stage, on the demo clip, and the same scaled to the
  reference speed (where a reference op timed before every pass takes 15.8 ms).

The segmenter is any ``.onnx`` following the segmenter contract (default: the shipped MediaPipe landscape model).
This script reads ``../shared/data``; the product never imports it.
"""

from __future__ import annotations

from tools.paths import DATA_ROOT
import argparse
import json
import logging
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np

from tools.evaluation.metrics import boundary_f, iou, unexplained_change
from vcam.postprocess.blend import blend_full
from vcam.postprocess.blur import BokehBlur
from vcam.postprocess.composite import BackgroundSettings, Compositor, cover_fit
from vcam.postprocess.mask import MaskRefiner, MaskSettings, RefineHints
from vcam.segmenter import make_session

log = logging.getLogger("tools.evaluation.edges")

REPO = Path(__file__).resolve().parents[2]
DEFAULT_DATA = DATA_ROOT
DEFAULT_SEGMENTER = REPO / "models" / "mediapipe" / "selfie_segmentation_landscape.onnx"
DEMO = REPO / "vcam" / "assets" / "demo.mp4"
BAND_PX = 10


class OnnxSegmenter:
    """Any contract-following segmenter: BGR frame -> float32 mask at the model's resolution."""

    def __init__(self, path: Path) -> None:
        self.session = make_session(path, threads=1)
        shape = self.session.get_inputs()[0].shape
        self.height, self.width = int(shape[2]), int(shape[3])

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        small = cv2.resize(frame, (self.width, self.height), interpolation=cv2.INTER_AREA)
        x = np.ascontiguousarray(small[:, :, ::-1].transpose(2, 0, 1)[None], dtype=np.float32) / 255.0
        return self.session.run(["mask"], {"image": x})[0][0, 0]


def raw_alpha(mask: np.ndarray, width: int, height: int) -> np.ndarray:
    """The baseline: the model mask bilinearly upsampled to the frame, as uint8."""
    up = cv2.resize(mask, (width, height), interpolation=cv2.INTER_LINEAR)
    return np.clip(up * 255.0 + 0.5, 0, 255).astype(np.uint8)


# data ------------------------------------------------------------------------------------------------------------
def head_crop(frame: np.ndarray, gt: np.ndarray, size: tuple[int, int] = (640, 480)) -> tuple[np.ndarray, np.ndarray]:
    """A 4:3 head-and-shoulders crop starting just above the head (the topmost person row), resized to ``size``."""
    h, w = gt.shape
    rows = np.flatnonzero(gt.max(axis=1) > 127)
    top = int(rows[0]) if rows.size else 0
    cw = w
    ch = round(cw * 3 / 4)
    if ch > h:
        ch, cw = h, round(h * 4 / 3)
    y0 = max(0, min(h - ch, top - round(0.08 * ch)))
    x0 = (w - cw) // 2
    crop, gcrop = frame[y0:y0 + ch, x0:x0 + cw], gt[y0:y0 + ch, x0:x0 + cw]
    frame_out = cv2.resize(crop, size, interpolation=cv2.INTER_LINEAR)
    gt_out = (cv2.resize(gcrop, size, interpolation=cv2.INTER_LINEAR) > 127).astype(np.uint8) * 255
    return frame_out, gt_out


def val_items(data: Path, crops: bool) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    root = data / "portrait-seg"
    for stem in (root / "val.txt").read_text().split():
        frame = cv2.imread(str(root / "images" / f"{stem}.jpg"), cv2.IMREAD_COLOR)
        gt = cv2.imread(str(root / "masks" / f"{stem}.png"), cv2.IMREAD_GRAYSCALE)
        if crops:
            frame, gt = head_crop(frame, gt)
        yield stem, frame, gt


def read_clip(path: Path, limit: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while len(frames) < limit:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


def read_sequence(folder: Path) -> tuple[list[np.ndarray], list[np.ndarray]]:
    names = sorted(p.stem for p in (folder / "images").glob("*.jpg"))
    frames = [cv2.imread(str(folder / "images" / f"{n}.jpg"), cv2.IMREAD_COLOR) for n in names]
    masks = [cv2.imread(str(folder / "masks" / f"{n}.png"), cv2.IMREAD_GRAYSCALE) for n in names]
    return frames, masks


def band_of(gt: np.ndarray, px: int = BAND_PX) -> np.ndarray:
    """Pixels within ``px`` of the true boundary."""
    g = (gt > 127).astype(np.uint8)
    edge = g - cv2.erode(g, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REPLICATE)
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))
    return cv2.dilate(edge, disk) > 0


# sections --------------------------------------------------------------------------------------------------------
def refine_still(refiner: MaskRefiner, mask: np.ndarray, frame: np.ndarray) -> np.ndarray:
    refiner.reset()
    return refiner.process(mask, frame).copy()


def section_quality(seg: OnnxSegmenter, data: Path, settings: MaskSettings) -> dict:
    out = {}
    refiner = MaskRefiner(settings)
    for crops in (False, True):
        scores: dict[str, list[float]] = {"iou_raw": [], "iou_refined": [], "bf_raw": [], "bf_refined": []}
        for _, frame, gt in val_items(data, crops):
            mask = seg(frame)
            raw = raw_alpha(mask, frame.shape[1], frame.shape[0])
            ref = refine_still(refiner, mask, frame)
            scores["iou_raw"].append(iou(raw, gt))
            scores["iou_refined"].append(iou(ref, gt))
            scores["bf_raw"].append(boundary_f(raw, gt))
            scores["bf_refined"].append(boundary_f(ref, gt))
        out["crops_640x480" if crops else "val_native"] = {k: float(np.mean(v)) for k, v in scores.items()} | {
            "n": len(scores["iou_raw"])}
    return out


def _backgrounds(data: Path) -> list[Path]:
    return sorted((data / "backgrounds").glob("*.jpg"))


def section_composite(seg: OnnxSegmenter, data: Path, settings: MaskSettings, blur_strength: int) -> dict:
    refiner = MaskRefiner(settings)
    bgs = _backgrounds(data)
    out = {}
    for crops in (False, True):
        err: dict[str, list[float]] = {k: [] for k in ("replace_raw", "replace_refined", "blur_raw",
                                                         "blur_refined", "blur_plain_refined")}
        for i, (_, frame, gt) in enumerate(val_items(data, crops)):
            h, w = gt.shape
            mask = seg(frame)
            alphas = {"raw": raw_alpha(mask, w, h), "refined": refine_still(refiner, mask, frame)}
            band = band_of(gt)
            bg_band = band & (gt <= 127)
            # replaced background
            bg = cover_fit(cv2.imread(str(bgs[i % len(bgs)]), cv2.IMREAD_COLOR), w, h)
            ideal = blend_full(frame, bg, gt, bg.copy())
            for name, a in alphas.items():
                ours = blend_full(frame, bg, a, bg.copy())
                err[f"replace_{name}"].append(float(np.abs(ours.astype(np.int16) - ideal)[band].mean()))
            # blurred background: the ideal uses the human mask for both the weighted blur and the blend
            blur = BokehBlur()
            ideal_bg = blur.process(frame, gt, blur_strength, np.empty_like(frame)).copy()
            ideal = blend_full(frame, ideal_bg, gt, ideal_bg.copy())
            for name, a in alphas.items():
                comp_bg = blur.process(frame, a, blur_strength, np.empty_like(frame))
                ours = blend_full(frame, comp_bg, a, comp_bg.copy())
                err[f"blur_{name}"].append(float(np.abs(ours.astype(np.int16) - ideal)[bg_band].mean()))
            plain_bg = blur.process(frame, np.zeros_like(gt), blur_strength, np.empty_like(frame))
            ours = blend_full(frame, plain_bg, alphas["refined"], plain_bg.copy())
            err["blur_plain_refined"].append(float(np.abs(ours.astype(np.int16) - ideal)[bg_band].mean()))
        out["crops_640x480" if crops else "val_native"] = {k: float(np.mean(v)) for k, v in err.items()}
    return out


def edge_offsets(alphas: Sequence[np.ndarray], refs: Sequence[np.ndarray]) -> np.ndarray:
    """Distances (px) from each edge pixel of ``alphas[t]`` (cut at 0.5) to the nearest edge of ``refs[t]``."""
    dists = []
    kernel = np.ones((3, 3), np.uint8)
    for a, r in zip(alphas, refs):
        am, rm = (a > 127).astype(np.uint8), (r > 127).astype(np.uint8)
        a_edge = am - cv2.erode(am, kernel, borderType=cv2.BORDER_REPLICATE)
        r_edge = rm - cv2.erode(rm, kernel, borderType=cv2.BORDER_REPLICATE)
        if not a_edge.any() or not r_edge.any():
            continue
        dt = cv2.distanceTransform(1 - r_edge, cv2.DIST_L2, 3)
        dists.append(dt[a_edge > 0])
    return np.concatenate(dists) if dists else np.zeros(1, np.float32)


def temporal_one(seg: OnnxSegmenter, frames: list[np.ndarray], settings: MaskSettings,
                 gts: list[np.ndarray] | None) -> dict:
    h, w = frames[0].shape[:2]
    masks = [seg(f) for f in frames]
    raw = [raw_alpha(m, w, h) for m in masks]
    still = MaskRefiner(settings.model_copy(update={"temporal_strength": 0.0}))
    smooth = MaskRefiner(settings)
    a0 = [still.process(m, f).copy() for m, f in zip(masks, frames)]
    a1 = [smooth.process(m, f).copy() for m, f in zip(masks, frames)]
    offs = edge_offsets(a1, a0)
    res = {
        "frames": len(frames),
        "flicker_raw": unexplained_change(frames, raw),
        "flicker_refined": unexplained_change(frames, a0),
        "flicker_smoothed": unexplained_change(frames, a1),
        "lag_mean_px": float(offs.mean()), "lag_p95_px": float(np.percentile(offs, 95)),
        "lag_p99_px": float(np.percentile(offs, 99)),
    }
    if gts is not None:
        res["flicker_human"] = unexplained_change(frames, gts)
        res["iou_raw"] = float(np.mean([iou(a, g) for a, g in zip(raw, gts)]))
        res["iou_refined"] = float(np.mean([iou(a, g) for a, g in zip(a0, gts)]))
        res["iou_smoothed"] = float(np.mean([iou(a, g) for a, g in zip(a1, gts)]))
        res["bf_raw"] = float(np.mean([boundary_f(a, g) for a, g in zip(raw, gts)]))
        res["bf_refined"] = float(np.mean([boundary_f(a, g) for a, g in zip(a0, gts)]))
        res["bf_smoothed"] = float(np.mean([boundary_f(a, g) for a, g in zip(a1, gts)]))
        # what smoothing changed, judged by the human masks: person it added (kept) that is background (a trail or
        # a kept false positive) or person; person it removed that is person or background (flicker removed)
        added = [(s > 127) & (u <= 127) for s, u in zip(a1, a0)]
        removed = [(s <= 127) & (u > 127) for s, u in zip(a1, a0)]
        n = len(gts)
        res["added_wrong_px"] = sum(int(np.count_nonzero(a & (g <= 127))) for a, g in zip(added, gts)) / n
        res["added_right_px"] = sum(int(np.count_nonzero(a & (g > 127))) for a, g in zip(added, gts)) / n
        res["removed_wrong_px"] = sum(int(np.count_nonzero(r & (g > 127))) for r, g in zip(removed, gts)) / n
        res["removed_right_px"] = sum(int(np.count_nonzero(r & (g <= 127))) for r, g in zip(removed, gts)) / n
    return res


def section_temporal(seg: OnnxSegmenter, data: Path, settings: MaskSettings, clip_frames: int) -> dict:
    out = {}
    for folder in sorted((data / "temporal").iterdir()):
        if (folder / "images").is_dir():
            frames, gts = read_sequence(folder)
            out[f"davis/{folder.name}"] = temporal_one(seg, frames, settings, gts)
            log.info("temporal %s done", folder.name)
    for clip in sorted((data / "videos").glob("*.mp4")):
        frames = read_clip(clip, clip_frames)
        if len(frames) >= 2:
            out[f"clip/{clip.stem}"] = temporal_one(seg, frames, settings, None)
            log.info("temporal %s done", clip.stem)
    return out


PASSES = 5


def _cpu_ms(fn, n: int) -> float:
    """Median CPU time per call (ms) over calls ``fn(0) .. fn(n - 1)``."""
    times = []
    for i in range(n):
        t0 = time.process_time()
        fn(i)
        times.append(time.process_time() - t0)
    return float(np.median(times) * 1e3)


#: the reference speed: a full-frame 51x51 Gaussian at 720p takes this long there (the speed the 3 ms budget of
#: refine + composite is set at); the stage costs are also given scaled to it
REFERENCE_MS = 15.8


def section_timing(seg: OnnxSegmenter, data: Path, settings: MaskSettings, frames_n: int) -> dict:
    """Per stage: the best of ``PASSES`` passes of the median CPU ms per frame, and its ratio to the reference op
    timed just before the same pass (the median ratio over the passes; this shared machine's speed drifts by
    20-50% between minutes, the ratio much less), scaled to the 15.8 ms reference speed (``*_scaled``)."""
    cv2.setNumThreads(1)
    frames = read_clip(DEMO, frames_n)
    masks = [seg(f) for f in frames]
    n = len(frames)
    # the segmenter's 2x2-box halvings of each frame, which the pipeline hands to the refiner (vcam.segmenter)
    halvings = []
    for f in frames:
        half = cv2.resize(f, (f.shape[1] // 2, f.shape[0] // 2), interpolation=cv2.INTER_AREA)
        halvings.append([half, cv2.resize(half, (half.shape[1] // 2, half.shape[0] // 2),
                                          interpolation=cv2.INTER_AREA)])
    refiner = MaskRefiner(settings)
    for i in range(n):  # warm-up pass
        refiner.process(masks[i], frames[i])
    alphas, hints = [], []
    for i in range(n):
        alpha, h = refiner.refine(masks[i], frames[i])
        alphas.append(alpha.copy())
        hints.append(RefineHints([lv.copy() for lv in h.frame_levels], h.alpha_small.copy(), h.alpha_level))
    stages = {"refine": lambda i: refiner.process(masks[i], frames[i])}
    image = str(REPO / "vcam" / "assets" / "backgrounds" / "city.jpg")
    modes = {"blur": BackgroundSettings(mode="blur"),
             "image": BackgroundSettings(mode="image", image=image),
             "image_no_wrap": BackgroundSettings(mode="image", image=image, light_wrap=0.0),
             "color": BackgroundSettings(mode="color")}
    for name, bs in modes.items():
        comp = Compositor(bs)
        comp.process(frames[0], alphas[0])
        stages[f"composite_{name}"] = lambda i, c=comp: c.process(frames[i], alphas[i], hints[i])
    blur = Compositor(BackgroundSettings(mode="blur"))

    def both(i: int) -> None:  # the refiner halves the frame itself
        blur.process(frames[i], *refiner.refine(masks[i], frames[i]))

    def both_pipeline(i: int) -> None:  # as in the daemon: the segmenter's halvings are reused
        blur.process(frames[i], *refiner.refine(masks[i], frames[i], halvings[i]))

    stages["refine_plus_blur"] = both
    stages["refine_plus_blur_pipeline"] = both_pipeline
    dst = np.empty_like(frames[0])

    def reference(i: int) -> None:
        cv2.GaussianBlur(frames[i % n], (51, 51), 0, dst=dst)

    best = {k: float("inf") for k in stages}
    ratios: dict[str, list[float]] = {k: [] for k in stages}
    refs = []
    for _ in range(PASSES):
        for name, fn in stages.items():
            ref_ms = _cpu_ms(reference, 10)
            ms = _cpu_ms(fn, n)
            refs.append(ref_ms)
            best[name] = min(best[name], ms)
            ratios[name].append(ms / ref_ms)
    out: dict = {"frames": n}
    for name in stages:
        out[name] = best[name]
        out[name + "_scaled"] = float(np.median(ratios[name]) * REFERENCE_MS)
    out["reference_gauss51_720p"] = float(np.min(refs))
    return out


# output ----------------------------------------------------------------------------------------------------------
def _pct(new: float, old: float) -> str:
    return f"{(new - old) / old * 100:+.0f}%" if old else "n/a"


def print_table(results: dict, file=sys.stdout) -> None:
    w = file.write
    if "quality" in results:
        w("\n## Mask quality vs human masks (portrait-seg val)\n")
        w(f"{'set':<16}{'IoU raw':>9}{'IoU ref':>9}{'BF raw':>9}{'BF ref':>9}{'BF gain':>9}\n")
        for k, v in results["quality"].items():
            w(f"{k:<16}{v['iou_raw']:>9.4f}{v['iou_refined']:>9.4f}{v['bf_raw']:>9.4f}{v['bf_refined']:>9.4f}"
              f"{(v['bf_refined'] - v['bf_raw']) * 100:>+8.1f}p\n")
    if "composite" in results:
        w(f"\n## Composite error vs ideal (MAE, grey levels, {BAND_PX} px band around the true boundary)\n")
        w(f"{'set':<16}{'replace raw':>12}{'replace ref':>12}{'change':>8}{'blur raw':>10}{'blur ref':>10}"
          f"{'change':>8}{'plain blur':>11}\n")
        for k, v in results["composite"].items():
            w(f"{k:<16}{v['replace_raw']:>12.2f}{v['replace_refined']:>12.2f}"
              f"{_pct(v['replace_refined'], v['replace_raw']):>8}{v['blur_raw']:>10.2f}{v['blur_refined']:>10.2f}"
              f"{_pct(v['blur_refined'], v['blur_raw']):>8}{v['blur_plain_refined']:>11.2f}\n")
    if "temporal" in results:
        w("\n## Flicker (unexplained_change x1000, lower is steadier) and lag of temporal smoothing\n")
        w(f"{'sequence':<30}{'raw':>7}{'refined':>8}{'smooth':>8}{'vs raw':>8}{'lag mean':>9}{'p95':>6}{'p99':>6}"
          "\n")
        tot = {"raw": [], "ref": [], "sm": []}
        for k, v in results["temporal"].items():
            tot["raw"].append(v["flicker_raw"])
            tot["ref"].append(v["flicker_refined"])
            tot["sm"].append(v["flicker_smoothed"])
            w(f"{k:<30}{v['flicker_raw'] * 1e3:>7.2f}{v['flicker_refined'] * 1e3:>8.2f}"
              f"{v['flicker_smoothed'] * 1e3:>8.2f}{_pct(v['flicker_smoothed'], v['flicker_raw']):>8}"
              f"{v['lag_mean_px']:>9.2f}{v['lag_p95_px']:>6.1f}{v['lag_p99_px']:>6.1f}\n")
        m = {k: float(np.mean(x)) for k, x in tot.items()}
        w(f"{'mean (pooled)':<30}{m['raw'] * 1e3:>7.2f}{m['ref'] * 1e3:>8.2f}{m['sm'] * 1e3:>8.2f}"
          f"{_pct(m['sm'], m['raw']):>8}\n")
        for group in ("clip/", "davis/"):
            ratios = [v["flicker_smoothed"] / v["flicker_raw"] for k, v in results["temporal"].items()
                      if k.startswith(group) and v["flicker_raw"] > 0]
            if ratios:
                w(f"{group + '* median change vs raw':<38}{(np.median(ratios) - 1) * 100:>+7.0f}%   "
                  f"(mean {(np.mean(ratios) - 1) * 100:+.0f}%, n={len(ratios)})\n")
        w("\n## DAVIS person sequences vs human masks (IoU, boundary F 3 px)\n")
        w(f"{'sequence':<30}{'IoU raw':>8}{'IoU ref':>8}{'IoU sm':>8}{'BF raw':>8}{'BF ref':>8}{'BF sm':>8}"
          f"{'human flicker':>14}\n")
        for k, v in results["temporal"].items():
            if "iou_raw" in v:
                w(f"{k:<30}{v['iou_raw']:>8.4f}{v['iou_refined']:>8.4f}{v['iou_smoothed']:>8.4f}{v['bf_raw']:>8.4f}"
                  f"{v['bf_refined']:>8.4f}{v['bf_smoothed']:>8.4f}{v['flicker_human'] * 1e3:>14.2f}\n")
        rows = [(k, v) for k, v in results["temporal"].items() if "added_wrong_px" in v]
        if rows:
            w("\n## What smoothing changed vs the unsmoothed alpha, judged by the human masks (px per frame)\n")
            w(f"{'sequence':<30}{'added, background (trail)':>27}{'added, person':>15}{'removed, person':>17}"
              f"{'removed, background':>21}\n")
            for k, v in rows:
                w(f"{k:<30}{v['added_wrong_px']:>27.0f}{v['added_right_px']:>15.0f}{v['removed_wrong_px']:>17.0f}"
                  f"{v['removed_right_px']:>21.0f}\n")
    if "timing" in results:
        t = results["timing"]
        w("\n## CPU ms per 1280x720 frame, one thread (demo clip): best of 5 passes of the median process_time, and\n"
          f"## scaled to the reference speed (median over passes of the ratio to a 51x51 Gaussian timed just before, "
          f"x {REFERENCE_MS})\n")
        w(f"{'frames':<28}{t['frames']:>8d}\n")
        w(f"{'stage':<28}{'ms here':>8}{'scaled':>8}\n")
        for k, v in t.items():
            if k != "frames" and not k.endswith("_scaled"):
                scaled = t.get(k + "_scaled")
                w(f"{k:<28}{v:>8.3f}" + (f"{scaled:>8.3f}\n" if scaled is not None else "\n"))


# strip -----------------------------------------------------------------------------------------------------------
def write_strip(seg: OnnxSegmenter, frames: list[np.ndarray], settings: MaskSettings, start: int, count: int,
                step: int, out: Path, width: int = 256) -> int:
    """Rows: frame, alpha without temporal smoothing, alpha with it, blur composite with it, for ``count``
    frames every ``step`` from ``start`` (all frames from 0 are processed, so the smoother has its history).
    Returns the number of red (trail) pixels of the smoothed row, counted before JPEG compression."""
    still = MaskRefiner(settings.model_copy(update={"temporal_strength": 0.0}))
    smooth = MaskRefiner(settings)
    comp = Compositor(BackgroundSettings(mode="blur"))
    tiles: list[list[np.ndarray]] = [[], [], [], []]
    red = 0
    for i, f in enumerate(frames[: start + count * step]):
        m = seg(f)
        a0 = still.process(m, f)
        a1 = smooth.process(m, f)
        if i >= start and (i - start) % step == 0:
            size = (width, round(f.shape[0] * width / f.shape[1]))

            def small(x: np.ndarray, size: tuple[int, int] = size) -> np.ndarray:
                return cv2.resize(x, size, interpolation=cv2.INTER_AREA)

            diff = cv2.cvtColor(small(a1), cv2.COLOR_GRAY2BGR)
            # where smoothing keeps person that the unsmoothed alpha dropped (a trail) -> red
            trail = small(cv2.subtract(a1, a0))
            diff[trail > 24] = (0, 0, 255)
            red += int(np.count_nonzero(trail > 24))
            tiles[0].append(small(f))
            tiles[1].append(cv2.cvtColor(small(a0), cv2.COLOR_GRAY2BGR))
            tiles[2].append(diff)
            tiles[3].append(small(comp.process(f, a1)))
    labels = ["frame", "alpha, no temporal", "alpha, temporal (red = trail)", "blur composite"]
    rows = []
    for label, row in zip(labels, tiles):
        img = np.hstack(row)
        cv2.putText(img, label, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 255, 255), 1, cv2.LINE_AA)
        rows.append(img)
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), np.vstack(rows))
    log.info("wrote %s (%d red trail pixels in the smoothed row)", out, red)
    return red


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.evaluation.edges", description=__doc__.split("\n")[0])
    p.add_argument("command", nargs="?", default="table", choices=["table", "strip"])
    p.add_argument("--segmenter", type=Path, default=DEFAULT_SEGMENTER, help="contract-following .onnx")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--sections", default="quality,composite,temporal,timing")
    p.add_argument("--clip-frames", type=int, default=150, help="frames per clip in videos/ (temporal)")
    p.add_argument("--timing-frames", type=int, default=100)
    p.add_argument("--blur-strength", type=int, default=BackgroundSettings().blur_strength)
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--load", type=Path, help="print the table of a results file written by --json, run nothing")
    p.add_argument("--settings", default="{}", help="MaskSettings overrides as JSON, e.g. '{\"refine_eps\": 0.01}'")
    p.add_argument("--strip-source", type=Path, help="strip: a clip or a temporal/<seq> folder "
                   "(default: DAVIS dance-twirl)")
    p.add_argument("--strip-start", type=int, default=40)
    p.add_argument("--strip-count", type=int, default=6)
    p.add_argument("--strip-step", type=int, default=2)
    p.add_argument("--out", type=Path, default=REPO / "docs" / "img" / "edges-strip.png")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.load:
        print_table(json.loads(args.load.read_text()))
        return 0
    cv2.setNumThreads(1)
    seg = OnnxSegmenter(args.segmenter)
    settings = MaskSettings(**json.loads(args.settings))
    if args.command == "strip":
        src = args.strip_source or args.data / "temporal" / "dance-twirl"
        frames = read_sequence(src)[0] if src.is_dir() else read_clip(src, args.strip_start + 100 * args.strip_step)
        write_strip(seg, frames, settings, args.strip_start, args.strip_count, args.strip_step, args.out)
        return 0
    sections = set(args.sections.split(","))
    results: dict = {"segmenter": Path(args.segmenter).name, "settings": settings.model_dump()}
    if "quality" in sections:
        results["quality"] = section_quality(seg, args.data, settings)
    if "composite" in sections:
        results["composite"] = section_composite(seg, args.data, settings, args.blur_strength)
    if "temporal" in sections:
        results["temporal"] = section_temporal(seg, args.data, settings, args.clip_frames)
    if "timing" in sections:
        results["timing"] = section_timing(seg, args.data, settings, args.timing_frames)
    print_table(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
