"""Webcam-domain validation set for the segmenter, built deterministically from ``../shared/data`` only.

    python -m tools.evaluation.webcam_val --out runs/webcam-val      # write the frames and labels to look at
    python -m tools.evaluation.webcam_val --through-grid 144x256     # what a perfect mask at that size scores
    python -m tools.evaluation.webcam_val --teacher-agreement        # teacher labels against the human masks

Two subsets, neither ever trained on (``models.segmenter.heldout`` names what is held out):

- ``composites``: each ``portrait-seg`` ``val.txt`` person, cut out by its human mask and placed at video-call
  framing on a 640x360 (16:9) frame: head height 20-45% of the frame (face about 15-35%), head in the upper third
  (top of the head 3-10% below the top edge), head centre 35-65% across, shoulders cut by the bottom edge; the room
  is a held-out background (``HELDOUT_BACKGROUNDS``, cycled), cover-cropped at a random offset. Ground truth = the
  alpha the person was composited with (the human mask, warped bilinearly). Frames are JPEG-encoded at quality
  85. The random draws come from ``numpy.random.default_rng(int(id))``. This compositing code is separate from
  the training data engine's.
- ``clips``: 12 evenly spaced frames of every held-out clip (``HELDOUT_CLIPS``), long side 640, labelled by the
  teacher ensemble (``models.segmenter.ensemble``: MediaPipe landscape + mirror + general, averaged). These labels
  are MediaPipe's own, so this subset measures agreement with the ensemble, not truth; it is reported per clip.

Scores (``evaluate``): IoU at 0.5 and boundary F (3 px) of the model mask resized to the frame (bilinear), and,
after the product's ``MaskRefiner`` (default settings, temporal state reset per frame), boundary F and alpha SAD
(sum of |alpha - ground truth| over the frame / 1000).
"""
from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from models.segmenter.data import read_ids
from models.segmenter.heldout import HELDOUT_BACKGROUNDS, HELDOUT_CLIPS
from tools.evaluation.metrics import boundary_f, iou
from tools.paths import DATA_ROOT

log = logging.getLogger(__name__)

FRAME_SIZE = (640, 360)  # W, H
CLIP_FRAMES = 12
HEAD_SHARE = 0.13  # head height / person height in the full-body val photos


@dataclass
class ValFrame:
    subset: str  # "composites" or "clips"
    group: str  # the clip's name for clips, "composites" otherwise
    name: str
    image: np.ndarray  # BGR uint8
    truth: np.ndarray  # float32 0..1


def _cover_crop(bg: np.ndarray, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    w, h = size
    s = max(w / bg.shape[1], h / bg.shape[0]) * rng.uniform(1.0, 1.3)
    big = cv2.resize(bg, (round(bg.shape[1] * s), round(bg.shape[0] * s)), interpolation=cv2.INTER_AREA)
    x0 = int(rng.integers(0, big.shape[1] - w + 1))
    y0 = int(rng.integers(0, big.shape[0] - h + 1))
    return big[y0:y0 + h, x0:x0 + w]


def _framing(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The 2x3 affine that places the person of ``mask`` (uint8 0..255) at video-call framing in the frame."""
    w, h = FRAME_SIZE
    ys, xs = np.nonzero(mask >= 128)
    top, bottom = ys.min(), ys.max()
    head = max(HEAD_SHARE * (bottom - top + 1), 4.0)
    head_cx = xs[ys < top + head].mean()
    scale = rng.uniform(0.20, 0.45) * h / head
    scale = max(scale, 1.02 * h / (mask.shape[0] - top))  # the photo reaches below the bottom edge
    tx = rng.uniform(0.35, 0.65) * w - scale * head_cx
    ty = rng.uniform(0.03, 0.10) * h - scale * top
    return np.array([[scale, 0, tx], [0, scale, ty]], np.float32)


def composite(image: np.ndarray, mask: np.ndarray, bg: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """One person at video-call framing on ``bg`` (see the module doc): (BGR frame, alpha 0..1)."""
    rng = np.random.default_rng(seed)
    m = _framing(mask, rng)
    person = cv2.warpAffine(image, m, FRAME_SIZE, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    alpha = cv2.warpAffine((mask >= 128).astype(np.float32), m, FRAME_SIZE, flags=cv2.INTER_LINEAR)
    room = _cover_crop(bg, FRAME_SIZE, rng).astype(np.float32)
    frame = alpha[..., None] * person + (1 - alpha[..., None]) * room
    ok, buf = cv2.imencode(".jpg", np.clip(frame + 0.5, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 85])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR), alpha


def composites(root: Path = DATA_ROOT, limit: int | None = None) -> list[ValFrame]:
    backgrounds = [cv2.imread(str(root / "backgrounds" / n), cv2.IMREAD_COLOR) for n in HELDOUT_BACKGROUNDS]
    out = []
    for k, i in enumerate(read_ids(root / "portrait-seg" / "val.txt")[:limit]):
        image = cv2.imread(str(root / "portrait-seg" / "images" / f"{i}.jpg"), cv2.IMREAD_COLOR)
        mask = cv2.imread(str(root / "portrait-seg" / "masks" / f"{i}.png"), cv2.IMREAD_GRAYSCALE)
        frame, alpha = composite(image, mask, backgrounds[k % len(backgrounds)], int(i))
        out.append(ValFrame("composites", "composites", i, frame, alpha))
    return out


def clip_frames(root: Path = DATA_ROOT, per_clip: int = CLIP_FRAMES, teacher=None) -> list[ValFrame]:
    from models.segmenter.ensemble import Ensemble

    teacher = teacher or Ensemble.load()
    out = []
    for name in HELDOUT_CLIPS:
        cap = cv2.VideoCapture(str(root / "videos" / name))
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        wanted = set(np.linspace(0, n - 1, per_clip).round().astype(int).tolist())
        index = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if index in wanted:
                s = 640 / max(frame.shape[:2])
                frame = cv2.resize(frame, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s < 1 else frame
                out.append(ValFrame("clips", Path(name).stem, f"{Path(name).stem}#{index}", frame, teacher(frame)))
            index += 1
        cap.release()
    return out


def build(root: Path = DATA_ROOT, limit: int | None = None) -> list[ValFrame]:
    """The whole set (``limit``: the first N composites and N/8 frames per clip, for quick checks)."""
    per_clip = CLIP_FRAMES if limit is None else max(2, min(CLIP_FRAMES, limit // len(HELDOUT_CLIPS)))
    return composites(root, limit) + clip_frames(root, per_clip)


def _sad(alpha_u8: np.ndarray, truth: np.ndarray) -> float:
    return float(np.abs(alpha_u8.astype(np.float32) / 255.0 - truth).sum() / 1000.0)


def evaluate(predict: Callable[[np.ndarray], np.ndarray], frames: list[ValFrame]) -> dict[str, dict[str, float]]:
    """Mean scores per subset, per clip and overall; ``predict(frame_bgr) -> mask at the model's resolution``."""
    from vcam.postprocess.mask import MaskRefiner

    refiner = MaskRefiner()
    rows: dict[str, dict[str, list[float]]] = {}
    for f in frames:
        mask = predict(f.image).astype(np.float32)
        up = cv2.resize(mask, f.image.shape[1::-1], interpolation=cv2.INTER_LINEAR)
        refiner.reset()
        alpha = refiner.process(mask, f.image).copy()
        scores = {"iou": iou(up, f.truth), "bf": boundary_f(up, f.truth, band_px=3),
                  "bf_refined": boundary_f(alpha, f.truth, band_px=3), "sad_refined": _sad(alpha, f.truth)}
        for key in {f.subset, f"clip:{f.group}" if f.subset == "clips" else f.subset, "all"}:
            for k, v in scores.items():
                rows.setdefault(key, {}).setdefault(k, []).append(v)
    return {key: {k: float(np.mean(v)) for k, v in d.items()} | {"n": len(next(iter(d.values())))}
            for key, d in rows.items()}


_CACHE: dict[int | None, list[ValFrame]] = {}


def score_torch(net, limit: int | None = None) -> dict[str, dict[str, float]]:
    """Scores of a torch segmenter (``net(x) -> probability``; input ``net.input_hw``, default 144x256) on the
    set; used by training."""
    import torch

    if limit not in _CACHE:
        _CACHE[limit] = build(limit=limit)

    def predict(frame: np.ndarray) -> np.ndarray:
        h, w = getattr(net, "input_hw", (144, 256))
        small = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)
        x = cv2.cvtColor(small, cv2.COLOR_BGR2RGB).astype(np.float32).transpose(2, 0, 1)[None] / 255.0
        with torch.no_grad():
            return net(torch.from_numpy(x))[0, 0].numpy()

    return evaluate(predict, _CACHE[limit])


def through_grid(frames: list[ValFrame], hw: tuple[int, int]) -> dict[str, float]:
    """IoU and boundary F of the true masks themselves, area-averaged to an ``hw`` model grid and resized back
    bilinearly, as the product resizes a model's mask: the most a perfect soft mask at that size could score."""
    scores: dict[str, list[float]] = {"iou": [], "bf": []}
    for f in frames:
        small = cv2.resize(f.truth.astype(np.float32), (hw[1], hw[0]), interpolation=cv2.INTER_AREA)
        up = cv2.resize(small, f.truth.shape[::-1], interpolation=cv2.INTER_LINEAR)
        scores["iou"].append(iou(up, f.truth))
        scores["bf"].append(boundary_f(up, f.truth, band_px=3))
    return {k: float(np.mean(v)) for k, v in scores.items()}


def teacher_agreement(root: Path = DATA_ROOT, teachers: tuple[str, ...] = ("isnet", "mediapipe-selfie"),
                      limit: int | None = None) -> dict[str, dict[str, float]]:
    """IoU and boundary F of each teacher's soft label (``teacher-labels/<teacher>/portrait-seg``, made on the
    original photo) against the human mask, both placed with the composites' own transform: how far the labels
    we could train edges on are from the truth the composites are scored against."""
    scores: dict[str, dict[str, list[float]]] = {t: {"iou": [], "bf": []} for t in teachers}
    for i in read_ids(root / "portrait-seg" / "val.txt")[:limit]:
        mask = cv2.imread(str(root / "portrait-seg" / "masks" / f"{i}.png"), cv2.IMREAD_GRAYSCALE)
        m = _framing(mask, np.random.default_rng(int(i)))
        truth = cv2.warpAffine((mask >= 128).astype(np.float32), m, FRAME_SIZE, flags=cv2.INTER_LINEAR)
        for t in teachers:
            label = cv2.imread(str(root / "teacher-labels" / t / "portrait-seg" / f"{i}.png"), cv2.IMREAD_GRAYSCALE)
            label = cv2.resize(label, mask.shape[::-1], interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255
            placed = cv2.warpAffine(label, m, FRAME_SIZE, flags=cv2.INTER_LINEAR)
            scores[t]["iou"].append(iou(placed, truth))
            scores[t]["bf"].append(boundary_f(placed, truth, band_px=3))
    return {t: {k: float(np.mean(v)) for k, v in s.items()} for t, s in scores.items()}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, help="write the set here (images and true masks)")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--through-grid", nargs="+", default=[], metavar="HxW",
                   help="print the score of the composites' true masks passed through a model grid of this size")
    p.add_argument("--teacher-agreement", action="store_true",
                   help="print how well the teacher labels agree with the human masks on the composites")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    if args.teacher_agreement:
        for t, sc in teacher_agreement(DATA_ROOT, limit=args.limit).items():
            log.info("%s labels vs the human masks on the composites: IoU %.2f, boundary F %.2f", t,
                     100 * sc["iou"], 100 * sc["bf"])
    truths = composites(DATA_ROOT, args.limit) if args.through_grid else []
    for text in args.through_grid:
        h, w = (int(v) for v in text.split("x"))
        scores = through_grid(truths, (h, w))
        log.info("true masks through a %dx%d grid: IoU %.2f, boundary F %.2f", h, w, 100 * scores["iou"],
                 100 * scores["bf"])
    if args.out is None:
        return
    args.out.mkdir(parents=True, exist_ok=True)
    for f in build(limit=args.limit):
        stem = args.out / f"{f.subset}-{f.name.replace('#', '-')}"
        cv2.imwrite(f"{stem}.jpg", f.image)
        cv2.imwrite(f"{stem}.truth.png", np.round(f.truth * 255).astype(np.uint8))
    log.info("wrote %s", args.out)


if __name__ == "__main__":
    main()
