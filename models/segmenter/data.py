"""Training data for the segmenter: RAM-cached corpus and webcam-style augmentation (numpy + OpenCV).

Corpus (``../shared/data``): ``portrait-seg`` (human masks, minus ``val.txt``), ``unlabelled-people`` (no human
mask), IS-Net and MediaPipe teacher soft labels for both, and ``backgrounds`` for compositing. Every image is
decoded once into RAM; a sample is cut out of it with a single affine warp straight to the model size.
"""
from __future__ import annotations

from tools.paths import DATA_ROOT
import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)



@dataclass
class Item:
    """One decoded photo with its labels (uint8, same size as the image)."""

    image: np.ndarray  # BGR
    human: np.ndarray | None  # 0/255 human mask, None for unlabelled photos
    isnet: np.ndarray  # IS-Net soft label
    mp: np.ndarray  # MediaPipe soft label


def read_ids(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def load_corpus(root: Path = DATA_ROOT, limit: int | None = None) -> tuple[list[Item], list[np.ndarray]]:
    """Decode the training photos (never the ``val.txt`` ids) and the backgrounds into RAM."""
    val = set(read_ids(root / "portrait-seg" / "val.txt"))
    items: list[Item] = []
    for folder in ("portrait-seg", "unlabelled-people"):
        paths = sorted((root / folder / "images").glob("*.jpg"))
        if folder == "portrait-seg":
            paths = [p for p in paths if p.stem not in val]
        for p in paths[:limit]:
            image = cv2.imread(str(p), cv2.IMREAD_COLOR)
            isnet = cv2.imread(str(root / "teacher-labels" / "isnet" / folder / f"{p.stem}.png"), cv2.IMREAD_GRAYSCALE)
            mp = cv2.imread(str(root / "teacher-labels" / "mediapipe-selfie" / folder / f"{p.stem}.png"),
                            cv2.IMREAD_GRAYSCALE)
            human = None
            if folder == "portrait-seg":
                human = cv2.imread(str(root / folder / "masks" / f"{p.stem}.png"), cv2.IMREAD_GRAYSCALE)
            if image is None or isnet is None or mp is None:
                log.warning("skipping %s (missing file)", p)
                continue
            items.append(Item(image, human, isnet, mp))
    backgrounds = [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in sorted((root / "backgrounds").glob("*.jpg"))]
    backgrounds = [b for b in backgrounds if b is not None]
    log.info("corpus: %d photos (%d with human masks), %d backgrounds", len(items),
             sum(i.human is not None for i in items), len(backgrounds))
    return items, backgrounds


@dataclass
class Sample:
    """One augmented training sample at the model size."""

    image: np.ndarray  # float32 [3,H,W] RGB 0..1
    target: np.ndarray  # float32 [H,W] in [0,1]: human mask where labelled, else IS-Net soft label
    soft: np.ndarray  # float32 [H,W] teacher soft label (IS-Net, blended with a little MediaPipe)
    labelled: bool


def _person_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) of the pixels above half, or None when the mask is empty."""
    ys, xs = np.nonzero(mask > 127)
    if len(ys) < 50:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def head_and_shoulders_box(mask: np.ndarray, width_factor: float = 1.5, above: float = 0.1,
                           aspect: float = 4 / 3) -> tuple[float, float, float, float] | None:
    """Webcam head-and-shoulders window (x0, y0, w, h) of a person mask, or None when empty.

    Rule (shared by evaluation and, randomised, by training): the *upper region* is the top 25% of the person's
    height (head and shoulders on a standing person). The window is ``width_factor`` x that region's width,
    ``aspect`` (w/h), centred on the region, its top ``above`` x its height above the top of the mask.
    """
    box = _person_box(mask)
    if box is None:
        return None
    x0, y0, x1, y1 = box
    band = mask[y0: y0 + max(2, int(0.25 * (y1 - y0)))] > 127
    cols = np.nonzero(band.any(axis=0))[0]
    rx0, rx1 = cols.min(), cols.max() + 1
    w = width_factor * (rx1 - rx0)
    h = w / aspect
    cx = 0.5 * (rx0 + rx1)
    return cx - w / 2, y0 - above * h, w, h


class Augmenter:
    """Builds training samples from the cached corpus with webcam-style framing and photometric noise."""

    def __init__(self, items: list[Item], backgrounds: list[np.ndarray], size: tuple[int, int] = (144, 256),
                 seed: int = 0, p_labelled: float = 0.6) -> None:
        self.items, self.backgrounds, self.size = items, backgrounds, size
        self.labelled = [i for i, it in enumerate(items) if it.human is not None]
        self.unlabelled = [i for i, it in enumerate(items) if it.human is None]
        self.p_labelled = p_labelled
        self.rng = np.random.default_rng(seed)

    # -- geometry -------------------------------------------------------------------------------------------------
    def _crop_box(self, mask: np.ndarray) -> tuple[float, float, float, float]:
        """Random (x0, y0, w, h) source window: webcam framing most of the time, else a loose whole-photo crop."""
        rng = self.rng
        ih, iw = mask.shape
        r = rng.random()
        if r < 0.7:
            box = head_and_shoulders_box(mask, width_factor=rng.uniform(1.1, 3.0), above=rng.uniform(-0.05, 0.4),
                                         aspect=rng.uniform(1.2, 1.9))
            if box is not None:
                x0, y0, w, h = box
                x0 += rng.uniform(-0.35, 0.35) * w  # off-centre, partly out of frame
                y0 += rng.uniform(-0.1, 0.15) * h
                return x0, y0, w, h
        if r < 0.85:  # upper body / mid shot
            box = _person_box(mask)
            if box is not None:
                bx0, by0, bx1, by1 = box
                ph = by1 - by0
                h = ph * rng.uniform(0.35, 0.8)
                w = h * rng.uniform(1.2, 1.9)
                cx = 0.5 * (bx0 + bx1) + rng.uniform(-0.3, 0.3) * w
                return cx - w / 2, by0 - rng.uniform(0.0, 0.2) * h, w, h
        scale = rng.uniform(0.6, 1.0)  # whole photo, squashed like the daemon squashes any frame
        w, h = iw * scale, ih * scale * rng.uniform(0.6, 1.0)
        return rng.uniform(0, iw - w), rng.uniform(0, ih - h), w, h

    @staticmethod
    def _clamp(box: tuple[float, float, float, float], shape: tuple[int, ...]) -> tuple[float, float, float, float]:
        """Shift the window inside the photo where it fits (a little headroom above the photo is allowed)."""
        x0, y0, w, h = box
        ih, iw = shape[:2]
        if w <= iw:
            x0 = min(max(x0, 0.0), iw - w)
        if h <= ih:
            y0 = min(max(y0, -0.08 * h), ih - h)
        return x0, y0, w, h

    def _warp_matrix(self, box: tuple[float, float, float, float]) -> np.ndarray:
        x0, y0, w, h = box
        oh, ow = self.size
        angle = np.deg2rad(self.rng.uniform(-8, 8)) if self.rng.random() < 0.3 else 0.0
        sx, sy = ow / w, oh / h
        c, s = np.cos(angle), np.sin(angle)
        # source -> output: scale about the box, rotated about the output centre
        m = np.array([[sx, 0, -x0 * sx], [0, sy, -y0 * sy], [0, 0, 1]], np.float64)
        rot = np.array([[c, -s, ow / 2 * (1 - c) + oh / 2 * s], [s, c, oh / 2 * (1 - c) - ow / 2 * s], [0, 0, 1]])
        return (rot @ m)[:2]

    # -- photometric ----------------------------------------------------------------------------------------------
    def _composite(self, img: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        """Paste the person (soft alpha) onto a random background crop of the same size."""
        bg = self.backgrounds[self.rng.integers(len(self.backgrounds))]
        oh, ow = img.shape[:2]
        bh, bw = bg.shape[:2]
        s = max(oh / bh, ow / bw) * self.rng.uniform(1.0, 1.6)
        bg = cv2.resize(bg, (max(ow, int(bw * s + 1)), max(oh, int(bh * s + 1))), interpolation=cv2.INTER_LINEAR)
        y = self.rng.integers(0, bg.shape[0] - oh + 1)
        x = self.rng.integers(0, bg.shape[1] - ow + 1)
        bg = bg[y: y + oh, x: x + ow].astype(np.float32)
        if self.rng.random() < 0.5:
            bg = cv2.GaussianBlur(bg, (0, 0), self.rng.uniform(0.5, 3.0))
        a = alpha[..., None]
        return img.astype(np.float32) * a + bg * (1 - a)

    def _photometric(self, img: np.ndarray) -> np.ndarray:
        """Colour jitter, blur, noise and JPEG on a float32 BGR image in 0..255; returns uint8."""
        rng = self.rng
        img = img * rng.uniform(0.6, 1.4) + rng.uniform(-30, 30)  # brightness / contrast
        img = img * rng.uniform(0.85, 1.15, size=3)  # white balance
        grey = img.mean(axis=2, keepdims=True)
        img = grey + (img - grey) * rng.uniform(0.5, 1.4)  # saturation
        if rng.random() < 0.25:
            img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.4, 1.5))
        if rng.random() < 0.4:
            img = img + rng.normal(0, rng.uniform(2, 10), img.shape).astype(np.float32)
        out = np.clip(img, 0, 255).astype(np.uint8)
        if rng.random() < 0.3:
            ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(25, 90))])
            if ok:
                out = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        return out

    # -- sample ---------------------------------------------------------------------------------------------------
    def sample(self) -> Sample:
        rng = self.rng
        labelled = bool(self.unlabelled == [] or (self.labelled and rng.random() < self.p_labelled))
        item = self.items[rng.choice(self.labelled if labelled else self.unlabelled)]
        ref = item.human if labelled else item.isnet
        box = self._clamp(self._crop_box(ref), ref.shape)
        mat = self._warp_matrix(box)
        oh, ow = self.size
        img, human, isnet, mp = item.image, item.human, item.isnet, item.mp
        if box[2] > 2 * ow:  # big downscale: pre-shrink (area) so the warp does not alias
            f = 2 * ow / box[2]
            small = lambda a: cv2.resize(a, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
            mat = mat @ np.diag([1 / f, 1 / f, 1.0])
            img, isnet, mp = small(img), small(isnet), small(mp)
            human = small(human) if labelled else None
        # outside the photo: zero labels, and the image is filled with a background by compositing below
        warp = lambda a: cv2.warpAffine(a, mat, (ow, oh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        valid = warp(np.full(img.shape[:2], 255, np.uint8)).astype(np.float32) / 255
        img = warp(img).astype(np.float32)
        isnet = warp(isnet).astype(np.float32) / 255
        mp = warp(mp).astype(np.float32) / 255
        target = warp(human).astype(np.float32) / 255 if labelled else isnet
        soft = 0.8 * isnet + 0.2 * mp
        if rng.random() < 0.4:  # cut the person out by its best label and paste it onto a new background
            img = self._composite(img, target)
        elif valid.min() < 1:  # the window left the photo: fill the outside with a background
            img = self._composite(img, valid)
        if rng.random() < 0.5:
            img, target, soft = img[:, ::-1], target[:, ::-1], soft[:, ::-1]
        img = self._photometric(np.ascontiguousarray(img))
        rgb = img[..., ::-1].transpose(2, 0, 1).astype(np.float32) / 255
        return Sample(np.ascontiguousarray(rgb), np.ascontiguousarray(target), np.ascontiguousarray(soft), labelled)

    def batch(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(images [n,3,H,W], targets [n,1,H,W], soft [n,1,H,W], labelled [n]) as float32 arrays."""
        ss = [self.sample() for _ in range(n)]
        return (np.stack([s.image for s in ss]), np.stack([s.target for s in ss])[:, None],
                np.stack([s.soft for s in ss])[:, None], np.array([s.labelled for s in ss], np.float32))
