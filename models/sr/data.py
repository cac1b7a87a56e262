"""Training pairs for TinySR: high-res luma patches and their webcam-degraded half-size luma (numpy + OpenCV).

Sources (``../shared/data``, see its README for licences): the people photos of ``portrait-seg`` (minus
``val.txt``) and ``unlabelled-people``, the four Pixabay ``backgrounds`` (the others carry no licence and are
for compositing augmentation only), and frames of every clip in ``videos`` except the held-out ones
(:data:`tools.splits.HELD_OUT_CLIPS`, used by ``tools.evaluation.sr``; held-out photos are skipped too). Pairs are built once and cached in RAM (and on
disk as ``.npz``), so training never decodes or degrades on the fly.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from tools.paths import DATA_ROOT
from tools.splits import HELD_OUT_CLIPS, is_held_out_photo

from .degrade import Degradation, DegradeParams, degrade, luma

log = logging.getLogger(__name__)

__all__ = ["DATA_ROOT", "HELD_OUT_CLIPS", "build_pairs", "iter_sources", "read_frames"]

HR_PATCH = 128  # high-res patch side; the low-res patch is half


def read_frames(path: Path, step: int = 1, limit: int | None = None) -> Iterator[np.ndarray]:
    """Every ``step``-th BGR frame of a video (at most ``limit``)."""
    cap = cv2.VideoCapture(str(path))
    i = n = 0
    try:
        while limit is None or n < limit:
            ok, frame = cap.read()
            if not ok:
                break
            if i % step == 0:
                n += 1
                yield frame
            i += 1
    finally:
        cap.release()


def iter_sources(root: Path = DATA_ROOT, video_step: int = 4) -> Iterator[tuple[str, np.ndarray, int]]:
    """(name, BGR image, patches to take) for every training source."""
    val = set((root / "portrait-seg" / "val.txt").read_text().split())
    for path in sorted((root / "portrait-seg" / "images").glob("*.jpg")):
        if path.stem not in val:
            yield path.name, cv2.imread(str(path)), 6
    for path in sorted((root / "unlabelled-people" / "images").glob("*.jpg")):
        if is_held_out_photo(path):
            continue
        yield path.name, cv2.imread(str(path)), 6
    for path in sorted((root / "backgrounds").glob("pixabay_*.jpg")):
        yield path.name, cv2.imread(str(path)), 60
    for path in sorted((root / "videos").glob("*.mp4")):
        if path.name in HELD_OUT_CLIPS:
            continue
        for k, frame in enumerate(read_frames(path, step=video_step)):
            yield f"{path.name}#{k}", frame, 10


def _sharp_enough(patch_y: np.ndarray, rng: np.random.Generator) -> bool:
    """Keep textured patches; keep only a few flat ones (they teach the net nothing but still occur)."""
    energy = float(cv2.Laplacian(patch_y, cv2.CV_32F).var())
    return energy > 20.0 or rng.random() < 0.15


def build_pairs(seed: int = 0, cfg: Degradation | None = None, root: Path = DATA_ROOT,
                progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """All training pairs: (hr [N, 128, 128] uint8 luma, lr [N, 64, 64] uint8 luma)."""
    cfg = cfg or Degradation()
    rng = np.random.default_rng(seed)
    hrs: list[np.ndarray] = []
    lrs: list[np.ndarray] = []
    sources = iter_sources(root)
    if progress:
        from tqdm import tqdm

        sources = tqdm(sources, desc="building pairs", unit="src")
    for _name, img, n_patches in sources:
        if img is None:
            continue
        # random mild pre-downscale of large sources: sharper targets, more scale variety
        if max(img.shape[:2]) > 600 and rng.random() < 0.5:
            s = rng.uniform(0.6, 1.0)
            img = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        h, w = img.shape[:2]
        if h < HR_PATCH or w < HR_PATCH:
            continue
        for _ in range(n_patches):
            y0 = int(rng.integers(0, h - HR_PATCH + 1))
            x0 = int(rng.integers(0, w - HR_PATCH + 1))
            hr = img[y0:y0 + HR_PATCH, x0:x0 + HR_PATCH]
            hr_y = luma(hr)
            if not _sharp_enough(hr_y, rng):
                continue
            lr = degrade(hr, DegradeParams.draw(rng, cfg), rng)
            hrs.append(hr_y)
            lrs.append(luma(lr))
    log.info("built %d pairs", len(hrs))
    return np.stack(hrs), np.stack(lrs)
