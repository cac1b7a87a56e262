"""Measure the beauty stage: texture kept, mid band removed, outside untouched, flicker, cost.

    python -m tools.evaluation.beauty                  # the table (docs/beauty.md quotes it)
    python -m tools.evaluation.beauty --grid docs/img/beauty_grid.jpg   # before/after grid for the docs
    python -m tools.evaluation.beauty --coverage      # where the blemish band left sits (by the stage's mask)
    python -m tools.evaluation.beauty --reference-scales 1 0.8 0.9 1.1 1.25   # a steadier reference face

Faces come from ``../shared/data/unlabelled-people/images`` (photos where YuNet finds a face at least
``--min-face`` pixels wide) and from frames of the clips of ``../shared/data/videos/`` that
``tools.splits.BEAUTY_CLIP_PATTERNS`` names (tuning and held-out clips: ``tools.splits``).

Measurement region: an independent *skin region* per face, built here from a fresh full-frame YuNet detection of
the input (not from the stage's own colour mask): the inner face ellipse minus eyes+brows, lips and nostrils
around the landmarks. A second region, the *skin-colour region*, is that region less the areas whose colour is
not skin (``skin_colour_region``: an open mouth's inside, hair, a collar, background of a turned head); the
blemish band is reported on both. Bands are measured on luma (float):
- fine band: ``Y - gauss(Y, sigma=1)``, the finest Laplacian scale (pores, fine hair);
- mid band:  ``gauss(Y, s1) - gauss(Y, s2)`` with s1 = max(1.5, 1 % of the face width), s2 = 4 % (blemishes,
  blotches, uneven shading).
Each figure is energy (mean square) after / before, pooled over faces. Still images are fed to the stage
``--settle`` times (as a still video would be) so the face track has settled; the last output is measured.
"""

from __future__ import annotations

from tools.paths import DATA_ROOT
import argparse
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from tools.evaluation.edges import read_clip
from tools.splits import beauty_clips, is_beauty_held_out_clip, is_held_out_photo
from vcam.postprocess.beauty import BeautySettings, BeautyStage
from vcam.postprocess.faces import _iou

log = logging.getLogger(__name__)

DATA = DATA_ROOT
DEMO = Path(__file__).resolve().parents[2] / "vcam" / "assets" / "demo.mp4"


# -- regions and bands ---------------------------------------------------------------------------------------


class Detector:
    """A plain full-frame YuNet, independent of the stage's tracker (reference faces for the measurement)."""

    def __init__(self, model_path: Path, long_side: int = 640, rescale: float = 1.0) -> None:
        self.long_side = long_side
        self.rescale = rescale  # the frame is resized by this much more before detection (--reference-scale)
        self.net = cv2.FaceDetectorYN.create(str(model_path), "", (long_side, long_side), 0.7)

    def __call__(self, frame: np.ndarray) -> list[np.ndarray]:
        h, w = frame.shape[:2]
        scale = min(1.0, self.long_side / max(h, w)) * self.rescale
        size = (round(w * scale), round(h * scale))
        self.net.setInputSize(size)
        if scale == 1:
            small = frame
        else:
            small = cv2.resize(frame, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        _, rows = self.net.detect(small)
        return [] if rows is None else [r[:14] / scale for r in rows]


class ConsensusDetector:
    """Reference faces averaged over detections of the frame at several scales: YuNet's box and landmarks move
    by several percent of the face width with the input scale (``--reference-scale``), and the figures of a small
    face move with them; the mean of the matched detections (IoU > 0.5 with the first scale's) is steadier."""

    def __init__(self, model_path: Path, scales: list[float]) -> None:
        self.detectors = [Detector(model_path, rescale=f) for f in scales]

    def __call__(self, frame: np.ndarray) -> list[np.ndarray]:
        first, *others = [d(frame) for d in self.detectors]
        out = []
        for face in first:
            rows = [face]
            for found in others:
                best = max(found, key=lambda r: _iou(r, face), default=None)
                if best is not None and _iou(best, face) > 0.5:
                    rows.append(best)
            out.append(np.mean(rows, axis=0))
        return out


def skin_region(shape: tuple[int, ...], det: np.ndarray) -> np.ndarray:
    """Bool mask: inner face ellipse minus eyes+brows, lips, nostrils (from the five landmarks), within the box."""
    x, y, w, h = det[:4]
    lm = det[4:14].reshape(5, 2)
    re, le, nose, rm, lm_ = lm
    mask = np.zeros(shape[:2], np.uint8)
    cv2.ellipse(mask, (int(x + w / 2), int(y + 0.52 * h)), (int(0.42 * w), int(0.52 * h)), 0, 0, 360, 1, -1)
    ed = float(np.hypot(*(le - re)))
    for eye in (re, le):
        cv2.ellipse(mask, (int(eye[0]), int(eye[1] - 0.2 * ed)), (int(0.45 * ed), int(0.45 * ed)), 0, 0, 360, 0, -1)
    mouth = (rm + lm_) / 2
    cv2.ellipse(mask, (int(mouth[0]), int(mouth[1])), (int(0.5 * np.hypot(*(lm_ - rm)) + 0.2 * ed), int(0.3 * ed)),
                0, 0, 360, 0, -1)
    cv2.ellipse(mask, (int(nose[0]), int(nose[1] + 0.05 * ed)), (int(0.35 * ed), int(0.2 * ed)), 0, 0, 360, 0, -1)
    inside = np.zeros_like(mask)  # within the face box: the stage must not change anything outside it
    inside[max(0, int(y)):max(0, int(y + h)), max(0, int(x)):max(0, int(x + w))] = 1
    return (mask & inside).astype(bool)


SKIN_SPREADS = 3.0  # colour farther than this many robust spreads from the face's median skin chroma is not skin
SKIN_MIN_SPREAD = 3.0  # grey levels: the smallest spread of the skin chroma taken (a very even face)
NOT_SKIN_SIZE = 0.03  # not-skin areas narrower than this share of the face width are kept (blemishes are small)


def skin_colour_region(frame: np.ndarray, region: np.ndarray, face_w: float) -> np.ndarray:
    """``region`` less the areas whose colour is not skin: chroma (CrCb) farther than ``SKIN_SPREADS`` robust
    spreads (1.4826 x median absolute deviation, at least ``SKIN_MIN_SPREAD`` levels) from the median chroma of
    ``region`` itself, in blobs that survive an opening of ``NOT_SKIN_SIZE`` of the face width (so a red spot,
    a blemish, stays in). What this takes out: the inside of an open mouth and lips beyond the landmark
    exclusion, hair over the forehead or cheek, a collar, background inside the ellipse of a turned head."""
    ycc = cv2.cvtColor(frame, cv2.COLOR_BGR2YCrCb).astype(np.float32)
    chroma = ycc[..., 1:][region]
    if chroma.shape[0] < 16:
        return region
    median = np.median(chroma, axis=0)
    spread = np.maximum(1.4826 * np.median(np.abs(chroma - median), axis=0), SKIN_MIN_SPREAD)
    d2 = ((ycc[..., 1] - median[0]) / spread[0]) ** 2 + ((ycc[..., 2] - median[1]) / spread[1]) ** 2
    far = ((d2 > SKIN_SPREADS ** 2) & region).astype(np.uint8)
    k = max(3, 2 * round(NOT_SKIN_SIZE * face_w / 2) + 1)
    far = cv2.morphologyEx(far, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    return region & (far == 0)


def luma(frame: np.ndarray) -> np.ndarray:
    """BT.601 luma as float32, not rounded (a rounded luma adds its own frame-to-frame change of about 5 % on
    still skin when the channels are offset by different amounts)."""
    if frame.ndim == 2:
        return frame.astype(np.float32)
    return cv2.cvtColor(frame.astype(np.float32), cv2.COLOR_BGR2GRAY)


def fine_band(y: np.ndarray) -> np.ndarray:
    return y - cv2.GaussianBlur(y, (0, 0), 1.0)


def mid_band(y: np.ndarray, face_w: float, skin: np.ndarray | None = None) -> np.ndarray:
    """Band-pass ``gauss(s1) - gauss(s2)``, s1 = 1 %, s2 = 4 % of the face width (blemishes, blotches).

    With ``skin`` (bool mask) the Gaussians are normalised convolutions over the skin only, so the band holds
    the skin's own blemishes and not the edges of the eyes, brows, lips and nostrils leaking into it (at 4 % of
    the face width, eyeliner next to the measured skin otherwise dominates the energy)."""
    s1 = max(1.5, 0.01 * face_w)
    s2 = max(2 * s1, 0.04 * face_w)
    if skin is None:
        return cv2.GaussianBlur(y, (0, 0), s1) - cv2.GaussianBlur(y, (0, 0), s2)
    m = skin.astype(np.float32)
    ym = y * m

    def blur(sigma: float) -> np.ndarray:
        return cv2.GaussianBlur(ym, (0, 0), sigma) / np.maximum(cv2.GaussianBlur(m, (0, 0), sigma), 1e-3)

    return blur(s1) - blur(s2)


@dataclass
class Pool:
    """Pooled energies before/after over many faces."""

    fine: list[float] = field(default_factory=lambda: [0.0, 0.0])
    mid: list[float] = field(default_factory=lambda: [0.0, 0.0])  # skin-only band (see mid_band)
    mid_plain: list[float] = field(default_factory=lambda: [0.0, 0.0])  # plain band-pass, feature edges included
    mid_colour: list[float] = field(default_factory=lambda: [0.0, 0.0])  # skin-only band, skin-colour region
    outside_max: int = 0
    faces: int = 0
    ratios: list[tuple[float, float]] = field(default_factory=list)  # per face: fine, mid

    def add(self, before: np.ndarray, after: np.ndarray, regions: list, det: np.ndarray) -> None:
        region = skin_region(before.shape, det)
        yb, ya = luma(before), luma(after)
        fb, fa = fine_band(yb)[region], fine_band(ya)[region]
        mb, ma = mid_band(yb, det[2], region)[region], mid_band(ya, det[2], region)[region]
        pb, pa = mid_band(yb, det[2])[region], mid_band(ya, det[2])[region]
        self.mid_plain[0] += float((pb * pb).sum())
        self.mid_plain[1] += float((pa * pa).sum())
        self.fine[0] += float((fb * fb).sum())
        self.fine[1] += float((fa * fa).sum())
        self.mid[0] += float((mb * mb).sum())
        self.mid[1] += float((ma * ma).sum())
        colour = skin_colour_region(before, region, det[2])
        cb, ca = mid_band(yb, det[2], colour)[colour], mid_band(ya, det[2], colour)[colour]
        self.mid_colour[0] += float((cb * cb).sum())
        self.mid_colour[1] += float((ca * ca).sum())
        self.outside_max = max(self.outside_max, outside_max_diff(before, after, regions))
        self.faces += 1
        self.ratios.append((float((fa * fa).sum() / max((fb * fb).sum(), 1e-9)),
                            float((ma * ma).sum() / max((mb * mb).sum(), 1e-9))))

    def merge(self, other: Pool) -> None:
        for k in range(2):
            self.fine[k] += other.fine[k]
            self.mid[k] += other.mid[k]
            self.mid_plain[k] += other.mid_plain[k]
            self.mid_colour[k] += other.mid_colour[k]
        self.outside_max = max(self.outside_max, other.outside_max)
        self.faces += other.faces
        self.ratios += other.ratios

    def row(self) -> tuple[float, float]:
        """Pooled ratios: energy summed over all faces after / before (faces with more energy weigh more)."""
        return self.fine[1] / max(self.fine[0], 1e-9), self.mid[1] / max(self.mid[0], 1e-9)

    def per_face(self) -> tuple[float, float]:
        """Mean of the per-face ratios (every face weighs the same)."""
        if not self.ratios:
            return float("nan"), float("nan")
        r = np.array(self.ratios)
        return float(r[:, 0].mean()), float(r[:, 1].mean())


def outside_max_diff(before: np.ndarray, after: np.ndarray, regions: list[tuple[int, int, int, int]]) -> int:
    """Largest absolute pixel change outside the regions the stage reported as written."""
    outside = np.ones(before.shape[:2], bool)
    for x0, y0, x1, y1 in regions:
        outside[y0:y1, x0:x1] = False
    if not outside.any():
        return 0
    return int(np.abs(before.astype(np.int16) - after.astype(np.int16))[outside].max())


# -- data ----------------------------------------------------------------------------------------------------


def settings_for(preset: str, strength: float) -> BeautySettings:
    return BeautySettings(enabled=True, strength=strength, preset=preset)  # type: ignore[arg-type]


# -- steady-state measurement ------------------------------------------------------------------------------


def outside_changed(before: np.ndarray, after: np.ndarray, boxes: list[np.ndarray], level: int = 2) -> tuple[int, int]:
    """(pixels outside the reference face boxes changed by more than ``level`` in any channel, pixels outside)."""
    outside = np.ones(before.shape[:2], bool)
    for d in boxes:
        x, y, w, h = (int(round(v)) for v in d[:4])
        outside[max(0, y):max(0, y + h), max(0, x):max(0, x + w)] = False
    changed = (cv2.absdiff(before, after).max(axis=2) > level) & outside
    return int(changed.sum()), int(outside.sum())


def still_skin(y0: np.ndarray, y1: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Skin pixels whose input hardly moves between two frames (5x5 mean changes by < 1 level)."""
    return region & (np.abs(cv2.blur(y1, (5, 5)) - cv2.blur(y0, (5, 5))) < 1.0)


@dataclass
class Score:
    """Pooled figures of one source (a clip, or a set of photos)."""

    name: str
    held_out: bool
    pool: Pool = field(default_factory=Pool)
    shimmer: list[float] = field(default_factory=lambda: [0.0, 0.0])  # sum |d out|, sum |d in| on still skin
    still: list[int] = field(default_factory=lambda: [0, 0])  # still skin pixels, skin pixels (shimmer pairs)
    outside: list[int] = field(default_factory=lambda: [0, 0])  # changed > 2 levels, all outside the faces
    cpu: list[float] = field(default_factory=lambda: [0.0, 0.0])  # CPU seconds of the stage, faces treated

    def merge(self, other: Score) -> None:
        self.pool.merge(other.pool)
        for a, b in ((self.shimmer, other.shimmer), (self.still, other.still), (self.outside, other.outside),
                     (self.cpu, other.cpu)):
            for k in range(2):
                a[k] += b[k]

    def row(self) -> str:
        fine, mid = self.pool.row()
        shimmer = f"{self.shimmer[0] / self.shimmer[1]:.3f}" if self.shimmer[1] > 0 else ""
        still = f"{self.still[0] / self.still[1]:.0%}" if self.still[1] else ""
        outside = self.outside[0] / max(self.outside[1], 1)
        ms = 1000 * self.cpu[0] / max(self.cpu[1], 1)
        mark = "held-out" if self.held_out else "tuning"
        plain = self.pool.mid_plain[1] / max(self.pool.mid_plain[0], 1e-9)
        colour = self.pool.mid_colour[1] / max(self.pool.mid_colour[0], 1e-9)
        return (f"| {self.name} | {mark} | {self.pool.faces} | {fine:.1%} | {mid:.1%} | {colour:.1%} | {plain:.1%} | "
                f"{shimmer} | {still} | {outside:.4%} | {ms:.2f} |")


def _timed(stage: BeautyStage, frame: np.ndarray, score: Score) -> np.ndarray:
    t0 = time.thread_time()
    out = stage.process(frame)
    score.cpu[0] += time.thread_time() - t0
    score.cpu[1] += len(stage.regions)
    return out


def measure_pair(stage: BeautyStage, det: Detector, warm: list[np.ndarray], pair: tuple[np.ndarray, np.ndarray],
                 score: Score) -> None:
    """Reset, ``warm`` frames as a live stream, then measure the output pair (bands on the first, shimmer on the
    still skin between the two, changes outside the reference faces on both)."""
    stage.reset()
    for f in warm:
        _timed(stage, f, score)
    outs, regions = [], []
    for f in pair:
        outs.append(_timed(stage, f, score).copy())
        regions.append(list(stage.regions))
    refs = [d for d in det(pair[0]) if d[2] >= 48]
    for src, out in zip(pair, outs):
        changed, total = outside_changed(src, out, refs or det(src))
        score.outside[0] += changed
        score.outside[1] += total
    if not refs or not stage.regions:
        return
    y_in = [luma(f) for f in pair]
    y_out = [luma(o) for o in outs]
    for ref in refs:
        region = skin_region(pair[0].shape, ref)
        score.pool.add(pair[0], outs[0], regions[0], ref)
        still = still_skin(y_in[0], y_in[1], region)
        score.shimmer[0] += float(np.abs(y_out[1] - y_out[0])[still].sum())
        score.shimmer[1] += float(np.abs(y_in[1] - y_in[0])[still].sum())
        score.still[0] += int(still.sum())
        score.still[1] += int(region.sum())


def upscaled(frames: list[np.ndarray], height: int) -> list[np.ndarray]:
    """Frames smaller than ``height`` enlarged to it (bilinear, even width), as the upscale stage's plain resize
    hands a low-resolution camera's frame to the beauty stage in the daemon."""
    h, w = frames[0].shape[:2]
    if h >= height:
        return frames
    size = (round(w * height / h) // 2 * 2, height)
    return [cv2.resize(f, size, interpolation=cv2.INTER_LINEAR) for f in frames]


def measure_clip(stage: BeautyStage, det: Detector, path: Path, max_frames: int, every: int, warmup: int,
                 held_out: bool, upscale_to: int = 0) -> Score:
    """Every ``every`` frames: ``warmup`` frames of warm-up from a reset stage, then one measured pair."""
    frames = read_clip(path, max_frames)
    if upscale_to:
        frames = upscaled(frames, upscale_to)
    score = Score(path.stem, held_out)
    for i in range(warmup, len(frames) - 1, every):
        measure_pair(stage, det, frames[i - warmup:i], (frames[i], frames[i + 1]), score)
    return score


def measure_photos(stage: BeautyStage, det: Detector, limit: int, min_face: int, warmup: int, held_out: bool
                   ) -> Score:
    """Photos of ``unlabelled-people`` with a face at least ``min_face`` wide, each fed as a still stream."""
    score = Score("unlabelled-people photos", held_out)
    for path in sorted((DATA / "unlabelled-people" / "images").glob("*.jpg"))[:limit]:
        if is_held_out_photo(path) != held_out:
            continue
        img = cv2.imread(str(path))
        found = det(img) if img is not None else []
        refs = [d for d in found if d[2] >= min_face]
        if not refs:
            continue
        stage.reset()
        for _ in range(warmup):
            _timed(stage, img, score)
        out = _timed(stage, img, score)
        changed, total = outside_changed(img, out, found)
        score.outside[0] += changed
        score.outside[1] += total
        if stage.regions:
            for ref in refs:
                score.pool.add(img, out, stage.regions, ref)
    return score


def measure_cost(model_path: Path, settings: BeautySettings, path: Path, max_frames: int, passes: int = 5
                 ) -> dict[str, float]:
    """CPU ms per frame at the clip's resolution (one thread), detection amortised over the clip.

    The machine is shared, so each figure is the best of ``passes`` passes over the clip (the median is given
    too), next to a fixed reference operation timed the same way in the same run.
    """
    frames = read_clip(path, max_frames)
    stage = BeautyStage(settings, model_path=model_path)
    for f in frames[:10]:  # warm-up: model load, first detections, buffers
        stage.process(f)
    faces, per_pass = 0, []
    for _ in range(passes):
        t0 = time.process_time()
        for f in frames:
            stage.process(f)
            faces += len(stage.regions)
        per_pass.append((time.process_time() - t0) / len(frames) * 1000)
    out = np.empty_like(frames[0])
    copy, ref = [], []
    for _ in range(passes):
        t0 = time.process_time()
        for f in frames:
            np.copyto(out, f)
        copy.append((time.process_time() - t0) / len(frames) * 1000)
        t0 = time.process_time()
        for f in frames[:30]:
            cv2.GaussianBlur(f, (0, 0), 2.0, dst=out)
        ref.append((time.process_time() - t0) / 30 * 1000)
    return {"ms_frame": min(per_pass), "ms_frame_median": float(np.median(per_pass)), "ms_copy": min(copy),
            "ms_reference": min(ref), "faces_per_frame": faces / (passes * len(frames)), "shape": frames[0].shape}


# -- grid ----------------------------------------------------------------------------------------------------


def make_grid(model_path: Path, out_path: Path) -> None:
    """Before / natural 0.5 / soft 0.8 crops of faces, each with a zoom of the cheek below it.

    Sources: the demo clip and clips whose licences allow showing them in the docs (MIT / Apache-2.0).
    """
    sources = [(DEMO, 60), (DATA / "videos" / "face-s32.mp4", 60), (DATA / "videos" / "talking-head-2.mp4", 60),
               (DATA / "videos" / "face-d3.mp4", 60)]
    looks = [("before", None), ("natural 0.5", settings_for("natural", 0.5)), ("soft 0.8", settings_for("soft", 0.8))]
    rows = []
    for path, n in sources:
        frames = read_clip(path, n)
        outs, rect, face = [], None, None
        for _, settings in looks:
            if settings is None:
                outs.append(frames[-1])
                continue
            stage = BeautyStage(settings, model_path=model_path)
            for f in frames:
                out = stage.process(f)
            outs.append(out.copy())
            if stage.regions:
                rect, face = stage.regions[0], stage.faces[0]
        if rect is None or face is None:
            log.warning("no face in %s", path.name)
            continue
        x0, y0, x1, y1 = rect
        y1 = y0 + int(0.62 * (y1 - y0))  # the face, not the neck
        tiles = [cv2.resize(o[y0:y1, x0:x1], (300, round(300 * (y1 - y0) / (x1 - x0))),
                            interpolation=cv2.INTER_AREA) for o in outs]
        h = min(t.shape[0] for t in tiles)
        rows.append(np.hstack([t[:h] for t in tiles]))
        # A 2x zoom (nearest neighbour) of the cheek shows what happens to pores and fine detail.
        re, le, _, rm, _ = face.landmarks
        cx, cy = (int(v) for v in (re + rm) / 2 - (le - re) * 0.15)
        hw, hh = max(20, int(0.25 * face.box[2])), max(12, int(0.13 * face.box[2]))
        zoom = [cv2.resize(o[cy - hh:cy + hh, cx - hw:cx + hw], (300, round(300 * hh / hw)),
                           interpolation=cv2.INTER_NEAREST) for o in outs]
        rows.append(np.hstack(zoom))
    width = max(r.shape[1] for r in rows)
    grid = np.vstack([np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows])
    header = np.full((28, width, 3), 255, np.uint8)
    for i, (name, _) in enumerate(looks):
        cv2.putText(header, name, (i * 300 + 8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out_path), np.vstack([header, grid]), [cv2.IMWRITE_JPEG_QUALITY, 90])
    log.info("wrote %s", out_path)


# -- main ----------------------------------------------------------------------------------------------------


def measure_detector(model: Path, passes: int = 5) -> dict[str, float]:
    """CPU ms of one YuNet detection as the tracker runs it (ONNX Runtime, one thread, best of ``passes``) at the
    tracker's two input sizes."""
    from vcam.postprocess.faces import _shrink
    from vcam.postprocess.yunet import YuNet

    frame = read_clip(DEMO, 1)[0]
    out = {}
    for name, size, image in (("crop 96x96", (96, 96), _shrink(frame[0:480, 560:1040], (96, 96))),
                              ("full frame 320x180", (320, 180), _shrink(frame, (320, 180)))):
        net = YuNet(model, size, 0.6)
        net.detect(image)
        best = float("inf")
        for _ in range(passes):
            t0 = time.process_time()
            for _ in range(40):
                net.detect(image)
            best = min(best, (time.process_time() - t0) / 40 * 1000)
        out[name] = best
    return out


def print_cost(model: Path, settings: BeautySettings) -> None:
    det = measure_detector(model)
    print("YuNet detection, CPU ms one thread (best of 5): "
          + ", ".join(f"{k} {v:.2f} ms" for k, v in det.items()))
    print(f"cost (CPU ms per frame, one thread, best of 5 passes; load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} CPUs when measured):")
    for path in (DEMO, DATA / "videos" / "face-s32.mp4", DATA / "videos" / "webcam-desk-1080p-a.mp4",
                 DATA / "videos" / "webcam-lowres-1.mp4"):
        c = measure_cost(model, settings, path, 150)
        per_face = (c["ms_frame"] - c["ms_copy"]) / max(c["faces_per_frame"], 1e-9)
        print(f"  {path.name} {c['shape'][1]}x{c['shape'][0]}: {c['ms_frame']:.2f} ms/frame (median pass "
              f"{c['ms_frame_median']:.2f}), {c['faces_per_frame']:.2f} faces/frame, detection amortised; "
              f"full-frame output copy {c['ms_copy']:.2f} ms (skipped with inplace=True); "
              f"per face without the copy {per_face:.2f} ms; reference GaussianBlur sigma 2 on the frame "
              f"{c['ms_reference']:.2f} ms")


def print_strength_scale(det: Detector, model: Path, args: argparse.Namespace, paths: list[Path]) -> None:
    """Blemish band energy kept (dB) and fine texture kept per strength, pooled over ``paths`` (steady state)."""
    print(f"strength scale, preset {args.preset}, clips: {', '.join(p.stem for p in paths)}")
    print("| strength | blemish band energy kept (dB) | fine texture kept |")
    print("|---|---|---|")
    for strength in args.strengths:
        stage = BeautyStage(settings_for(args.preset, strength), model_path=model)
        total = Score("all", False)
        for path in paths:
            total.merge(measure_clip(stage, det, path, args.clip_frames, args.every, args.warmup, False))
        fine, mid = total.pool.row()
        print(f"| {strength:g} | {10 * np.log10(mid):+.2f} | {fine:.1%} |", flush=True)


def clip_set(path: Path) -> str:
    return "held-out" if is_beauty_held_out_clip(path) else "tuning"


def print_table_head(columns: list[str]) -> None:
    """A markdown table's header and separator lines."""
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))


SHIFTS = (1, 3, 8)  # frame pixels, for --translation-check


def translation_ratios(stage: BeautyStage, det: Detector, frame: np.ndarray, warmup: int
                       ) -> list[tuple[float, float, float]] | None:
    """For a noise-free pure translation of ``frame`` by each of ``SHIFTS`` pixels: (still share of the skin,
    shimmer ratio of an ideal smoothing, shimmer ratio of the stage), with the main table's still-skin test.

    The ideal smoothing removes the blemish band of each frame fully (``y - mid_band(y)``): it follows the face
    exactly and has no noise to flicker with, so whatever it scores is what a moving face alone adds to the
    figure. The stage is warmed up on the still frame, then fed the frame and its shifted copy."""
    found = [d for d in det(frame) if d[2] >= 48]
    if not found:
        return None
    ref = max(found, key=lambda d: d[2])
    skin, y_frame = skin_region(frame.shape, ref), luma(frame)
    rows = []
    for v in SHIFTS:
        moved = np.ascontiguousarray(np.roll(frame, v, axis=1))
        region = skin & np.roll(skin, v, axis=1)
        stage.reset()
        for _ in range(warmup):
            stage.process(frame)
        outs = [luma(stage.process(f).copy()) for f in (frame, moved)]
        y_in = [y_frame, luma(moved)]
        ideal = [y - mid_band(y, ref[2]) for y in y_in]
        still = still_skin(y_in[0], y_in[1], region)
        d_in = max(float(np.abs(y_in[1] - y_in[0])[still].sum()), 1e-9)
        rows.append((float(still.sum() / max(region.sum(), 1)),
                     float(np.abs(ideal[1] - ideal[0])[still].sum()) / d_in,
                     float(np.abs(outs[1] - outs[0])[still].sum()) / d_in))
    return rows


def print_translation_check(det: Detector, model: Path, args: argparse.Namespace, paths: list[Path]) -> None:
    """What the shimmer figure gives on a moving face that has no flicker at all (see ``translation_ratios``)."""
    print("pure translation (noise-free) of one frame per clip: still share of the skin / shimmer ratio of an "
          "ideal smoothing / of the stage")
    print_table_head(["clip", "set", *(f"shift {v} px" for v in SHIFTS)])
    stage = BeautyStage(settings_for(args.preset, args.strength), model_path=model)
    for path in paths:
        frames = read_clip(path, args.warmup + 1)
        rows = translation_ratios(stage, det, frames[args.warmup], args.warmup)
        if rows is None:
            continue
        cells = " | ".join(f"{a:.0%} / {b:.3f} / {c:.3f}" for a, b, c in rows)
        print(f"| {path.stem} | {clip_set(path)} | {cells} |", flush=True)


MASK_BINS = (0.0, 0.1, 0.5, 0.9, 1.01)


def mask_coverage(stage: BeautyStage, det: Detector, path: Path, args: argparse.Namespace
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Blemish band energy (before, after) of one clip, split by the stage's own skin-mask weight (``MASK_BINS``)
    at each measured skin pixel; steady state as in the main table, first measured frame of each pair."""
    before, after = np.zeros(len(MASK_BINS) - 1), np.zeros(len(MASK_BINS) - 1)
    frames = read_clip(path, args.clip_frames)
    for i in range(args.warmup, len(frames) - 1, args.every):
        stage.reset()
        for f in frames[i - args.warmup:i]:
            stage.process(f)
        out = stage.process(frames[i])
        weight = stage._filter.last_mask
        if len(stage.regions) != 1 or weight is None:  # the stage's mask is kept for its last face only
            continue
        x0, y0, x1, y1 = stage.regions[0]
        m = np.zeros(out.shape[:2], np.float32)
        m[y0:y1, x0:x1] = cv2.resize(weight, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
        for ref in [d for d in det(frames[i]) if d[2] >= 48]:
            region = skin_region(out.shape, ref)
            eb = mid_band(luma(frames[i]), ref[2], region) ** 2
            ea = mid_band(luma(out), ref[2], region) ** 2
            for k in range(len(MASK_BINS) - 1):
                sel = region & (m >= MASK_BINS[k]) & (m < MASK_BINS[k + 1])
                before[k] += float(eb[sel].sum())
                after[k] += float(ea[sel].sum())
    return before, after


def print_coverage(det: Detector, model: Path, args: argparse.Namespace, paths: list[Path]) -> None:
    """Where the blemish band that is left sits: per clip, by the stage's skin-mask weight."""
    bins = [f"{MASK_BINS[k]:g}-{min(1.0, MASK_BINS[k + 1]):g}" for k in range(len(MASK_BINS) - 1)]
    print("blemish band energy by the stage's skin-mask weight: share of the clip's band energy before the stage "
          "| kept of that share")
    print_table_head(["clip", "set", "band kept", *(f"mask {b}" for b in bins)])
    stage = BeautyStage(settings_for(args.preset, args.strength), model_path=model)
    for path in paths:
        before, after = mask_coverage(stage, det, path, args)
        total = max(before.sum(), 1e-9)
        cells = " | ".join(f"{b / total:.0%} / {a / max(b, 1e-9):.0%}" for b, a in zip(before, after))
        print(f"| {path.stem} | {clip_set(path)} | {after.sum() / total:.1%} | {cells} |", flush=True)


def main(argv: list[str] | None = None) -> None:
    from models.faces import yunet_path

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="natural", choices=["natural", "soft"])
    ap.add_argument("--strength", type=float, default=0.5)
    ap.add_argument("--images", type=int, default=1200, help="at most this many photos are looked at")
    ap.add_argument("--min-face", type=int, default=64, help="smallest face width (px) measured in photos")
    ap.add_argument("--warmup", type=int, default=15, help="frames fed to a reset stage before each measured pair")
    ap.add_argument("--clip-frames", type=int, default=150)
    ap.add_argument("--every", type=int, default=15, help="a measured pair every N clip frames")
    ap.add_argument("--only", nargs="*", help="only clips whose name contains one of these")
    ap.add_argument("--no-photos", action="store_true")
    ap.add_argument("--strengths", type=float, nargs="*",
                    help="print the blemish band (dB) and fine texture kept at these strengths, pooled over the clips")
    ap.add_argument("--coverage", action="store_true",
                    help="print where the blemish band left sits, by the stage's skin-mask weight, per clip")
    ap.add_argument("--translation-check", action="store_true",
                    help="print the shimmer figure of an ideal smoothing and of the stage on a pure translation")
    ap.add_argument("--split", choices=["all", "tuning", "held-out"], default="all", help="which clips")
    ap.add_argument("--grid", type=Path, help="write the before/after grid here and exit")
    ap.add_argument("--cost-only", action="store_true", help="only the cost figures")
    ap.add_argument("--reference-scale", type=float, default=1.0, metavar="F",
                    help="resize each frame by F more before the reference detection (how much the figures move "
                    "with the reference faces' own landmark noise)")
    ap.add_argument("--reference-scales", type=float, nargs="+", metavar="F",
                    help="reference faces: the mean of the detections on the frame resized by each of these (the first one's "
                    "faces, each matched by IoU > 0.5)")
    ap.add_argument("--upscale-to", type=int, default=0, metavar="H",
                    help="enlarge clips lower than H pixels to H (bilinear) before the stage, as the daemon does for "
                    "a small camera and an H-pixel-high output")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cv2.setNumThreads(1)
    model = yunet_path()
    if args.grid:
        make_grid(model, args.grid)
        return
    settings = settings_for(args.preset, args.strength)
    if args.cost_only:
        print_cost(model, settings)
        return
    stage, det = BeautyStage(settings, model_path=model), (
        ConsensusDetector(model, args.reference_scales) if args.reference_scales
        else Detector(model, rescale=args.reference_scale))
    tuning, held_out = beauty_clips(DATA)
    chosen = [p for p in {"all": tuning + held_out, "tuning": tuning, "held-out": held_out}[args.split]
              if not args.only or any(k in p.name for k in args.only)]
    if args.coverage:
        print_coverage(det, model, args, chosen)
        return
    if args.strengths:
        print_strength_scale(det, model, args, chosen)
        return
    if args.translation_check:
        print_translation_check(det, model, args, chosen)
        return
    print(f"beauty stage, preset={args.preset} strength={args.strength}; steady state: {args.warmup} frames of "
          f"warm-up from a reset stage before each measured pair, a pair every {args.every} frames of the first "
          f"{args.clip_frames}" + (f"; clips enlarged to {args.upscale_to} px high first" if args.upscale_to else ""))
    print("| source | set | faces | fine kept | blemish band kept (skin) | blemish band kept (skin colour) | "
          "plain band-pass kept | shimmer on still skin (out/in) | still share of the skin | "
          "outside faces changed > 2 | ms per face |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    totals = {False: Score("all tuning clips", False), True: Score("all held-out clips", True)}
    worst = {False: [0.0, 0.0], True: [0.0, 0.0]}  # blemish band kept: landmark skin region, skin-colour region
    for path in chosen:
        score = measure_clip(stage, det, path, args.clip_frames, args.every, args.warmup,
                             is_beauty_held_out_clip(path), args.upscale_to)
        print(score.row(), flush=True)
        totals[score.held_out].merge(score)
        if score.pool.faces:
            colour = score.pool.mid_colour[1] / max(score.pool.mid_colour[0], 1e-9)
            worst[score.held_out] = [max(worst[score.held_out][0], score.pool.row()[1]),
                                     max(worst[score.held_out][1], colour)]
    for flag, total in totals.items():
        print(total.row() + f" worst clip: blemish band kept {worst[flag][0]:.1%} (skin), "
              f"{worst[flag][1]:.1%} (skin colour)")
    if not args.no_photos:
        for flag in [f for f in (False, True) if args.split == "all" or f == (args.split == "held-out")]:
            print(measure_photos(stage, det, args.images, args.min_face, args.warmup, flag).row())
    print("| (all measured faces) bit-identical outside the stage's own regions: max abs diff "
          f"{max(t.pool.outside_max for t in totals.values())} |")


if __name__ == "__main__":
    main()
