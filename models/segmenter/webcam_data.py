"""Webcam-domain training samples for the segmenter (numpy + OpenCV; training-time only).

Three kinds of sample, each a BGR uint8 frame at the model size and a soft target in 0..1:

- ``video``: frames of the clips in ``videos/`` that are not held out (``heldout.training_clips``), labelled by
  the teacher ensemble (``ensemble.Ensemble``); labels are computed once and cached under ``runs/``;
- ``composite``: a ``portrait-seg`` training person (human mask, its edge band replaced by IS-Net's finer soft
  label) scaled to video-call framing (head 17-48% of the frame height, head near the top, shoulders cut by the
  bottom edge) on a training background, on a crop of another training photo or on a training clip's frame
  (room textures; their own person labels are kept: ``target = a + (1 - a) * background_label``);
- ``street``: a ``portrait-seg`` training photo, whole or as a head-and-shoulders crop, with the same target.

Every sample gets webcam degradations (white balance, low light, gamma, noise, blur, JPEG) at twice the model
size and is then resized to the model size with ``cv2.INTER_AREA``, as the daemon does.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .data import head_and_shoulders_box, read_ids
from .heldout import training_backgrounds, training_clips

log = logging.getLogger(__name__)

MIX = {"composite": 0.45, "video": 0.35, "street": 0.20}
HEAD_SHARE = 0.13  # head height / standing person height, for full-body photos


@dataclass
class Labelled:
    image: np.ndarray  # BGR uint8
    target: np.ndarray  # float32 0..1, same size


def edge_sharpened(human: np.ndarray, isnet: np.ndarray, band_px: int = 4) -> np.ndarray:
    """Human mask (0/255) with its boundary band (``band_px`` each side) taken from IS-Net's soft label."""
    alpha = human.astype(np.float32) / 255.0
    hard = (human >= 128).astype(np.uint8)
    edge = hard - cv2.erode(hard, np.ones((3, 3), np.uint8))
    band = cv2.dilate(edge, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band_px + 1,) * 2)).astype(bool)
    alpha[band] = isnet[band].astype(np.float32) / 255.0
    return alpha


def load_people(root: Path) -> list[Labelled]:
    """``portrait-seg`` training photos (never ``val.txt``) with edge-sharpened human masks."""
    val = set(read_ids(root / "portrait-seg" / "val.txt"))
    people = []
    for p in sorted((root / "portrait-seg" / "images").glob("*.jpg")):
        if p.stem in val:
            continue
        image = cv2.imread(str(p), cv2.IMREAD_COLOR)
        human = cv2.imread(str(root / "portrait-seg" / "masks" / f"{p.stem}.png"), cv2.IMREAD_GRAYSCALE)
        isnet = cv2.imread(str(root / "teacher-labels" / "isnet" / "portrait-seg" / f"{p.stem}.png"),
                           cv2.IMREAD_GRAYSCALE)
        if image is None or human is None or isnet is None or not (human >= 128).any():
            continue
        people.append(Labelled(image, edge_sharpened(human, isnet)))
    return people


def _clip_frames(clip: Path, per_clip: int, long_side: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(clip))
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or 1
    wanted = set(np.linspace(0, n - 1, per_clip).round().astype(int).tolist())
    frames, index = [], 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if index in wanted:
            s = long_side / max(frame.shape[:2])
            frames.append(cv2.resize(frame, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s < 1 else frame)
        index += 1
    cap.release()
    return frames


def load_video_frames(root: Path, cache: Path, per_clip: int = 20, long_side: int = 384) -> list[Labelled]:
    """Frames of the training clips with ensemble labels; labelled once, then read from ``cache``."""
    from .ensemble import Ensemble

    teacher = None
    out = []
    for clip in training_clips(root / "videos"):
        folder = cache / f"{clip.stem}-{per_clip}-{long_side}"
        if not (folder / "done").exists():
            teacher = teacher or Ensemble.load()
            folder.mkdir(parents=True, exist_ok=True)
            for i, frame in enumerate(_clip_frames(clip, per_clip, long_side)):
                cv2.imwrite(str(folder / f"{i:03d}.png"), frame)
                cv2.imwrite(str(folder / f"{i:03d}.label.png"), np.round(teacher(frame) * 255).astype(np.uint8))
            (folder / "done").touch()
            log.info("labelled %s", clip.name)
        for p in sorted(folder.glob("[0-9][0-9][0-9].png")):
            label = cv2.imread(str(p.with_suffix(".label.png")), cv2.IMREAD_GRAYSCALE)
            out.append(Labelled(cv2.imread(str(p), cv2.IMREAD_COLOR), label.astype(np.float32) / 255.0))
    return out


def degrade(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Webcam look: white balance, exposure, gamma, sensor noise, defocus, JPEG."""
    x = img.astype(np.float32) / 255.0
    x *= rng.uniform(0.85, 1.15, 3).astype(np.float32)
    x *= rng.uniform(0.45, 1.2) if rng.random() < 0.5 else 1.0
    x = np.clip(x, 0, 1) ** rng.uniform(0.75, 1.35)
    if rng.random() < 0.5:
        x += rng.standard_normal(x.shape, dtype=np.float32) * np.float32(rng.uniform(0.005, 0.035))
    out = np.clip(x * 255 + 0.5, 0, 255).astype(np.uint8)
    if rng.random() < 0.3:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.5, 1.6))
    if rng.random() < 0.5:
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(30, 92))])
        out = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return out


def random_crop(item: Labelled, size: tuple[int, int], rng: np.random.Generator, min_scale: float = 0.6,
                box: tuple[float, float, float, float] | None = None) -> Labelled:
    """A crop (random, or ``box`` = x0, y0, w, h) squashed to ``size`` = (w, h), image and target alike."""
    h, w = item.image.shape[:2]
    if box is None:
        s = rng.uniform(min_scale, 1.0)
        cw, ch = w * s * rng.uniform(0.85, 1.0), h * s * rng.uniform(0.85, 1.0)
        box = (rng.uniform(0, w - cw), rng.uniform(0, h - ch), cw, ch)
    x0, y0, cw, ch = box
    m = np.array([[size[0] / cw, 0, -x0 * size[0] / cw], [0, size[1] / ch, -y0 * size[1] / ch]], np.float32)
    image = cv2.warpAffine(item.image, m, size, flags=cv2.INTER_AREA if cw > size[0] else cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REFLECT)
    target = cv2.warpAffine(item.target, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return Labelled(image, target)


def place_person(person: Labelled, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """2x3 affine that puts ``person`` at video-call framing on a ``size`` = (w, h) canvas."""
    w, h = size
    ys, xs = np.nonzero(person.target >= 0.5)
    top, bottom = ys.min(), ys.max()
    head_h = max(HEAD_SHARE * (bottom - top + 1), 4.0)
    head_rows = ys < top + head_h
    head_cx = xs[head_rows].mean()
    scale = rng.uniform(0.17, 0.48) * h / head_h
    img_h = person.image.shape[0]
    scale = max(scale, h * 1.05 / max(img_h - top, 1))  # the photo must reach below the bottom edge
    tx = rng.uniform(0.2, 0.8) * w - scale * head_cx
    ty = rng.uniform(-0.03, 0.16) * h - scale * top
    return np.array([[scale, 0, tx], [0, scale, ty]], np.float32)


class WebcamSampler:
    """Draws training samples of the three kinds (``MIX``); ``size`` = the model's (w, h)."""

    def __init__(self, people: list[Labelled], videos: list[Labelled], backgrounds: list[np.ndarray],
                 size: tuple[int, int], seed: int = 0) -> None:
        self.people, self.videos, self.backgrounds = people, videos, backgrounds
        self.size = size
        self.canvas = (2 * size[0], 2 * size[1])
        self.rng = np.random.default_rng(seed)
        self.kinds, self.weights = list(MIX), np.array(list(MIX.values()))
        self.target_scale = 1  # targets at 1x or 2x the model size (2x: loss on the upsampled mask)
        self.image_scale = 1  # images at 1x or 2x the model size (2x: for the refine head)

    def _pick(self, seq: list):
        return seq[int(self.rng.integers(len(seq)))]

    def background(self) -> Labelled:
        r = self.rng.random()
        if r < 0.55:
            bg = self._pick(self.backgrounds)
            return random_crop(Labelled(bg, np.zeros(bg.shape[:2], np.float32)), self.canvas, self.rng, 0.4)
        source = self.videos if r < 0.8 else self.people
        return random_crop(self._pick(source), self.canvas, self.rng, 0.3)

    def composite(self) -> Labelled:
        person, bg = self._pick(self.people), self.background()
        m = place_person(person, self.canvas, self.rng)
        img = cv2.warpAffine(person.image, m, self.canvas, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        a = cv2.warpAffine(person.target, m, self.canvas, flags=cv2.INTER_LINEAR)[..., None]
        fg, back = img.astype(np.float32), bg.image.astype(np.float32)
        if self.rng.random() < 0.15:  # backlight: bright room, dark person
            fg *= self.rng.uniform(0.4, 0.8)
            back = back * self.rng.uniform(1.0, 1.4) + 30
        if self.rng.random() < 0.3:  # shallow depth of field
            back = cv2.GaussianBlur(back, (0, 0), self.rng.uniform(1, 4))
        out = np.clip(a * fg + (1 - a) * back, 0, 255).astype(np.uint8)
        return Labelled(out, a[..., 0] + (1 - a[..., 0]) * bg.target)

    def street(self) -> Labelled:
        person = self._pick(self.people)
        box = None
        if self.rng.random() < 0.6:
            b = head_and_shoulders_box((person.target * 255).astype(np.uint8), width_factor=self.rng.uniform(1.2, 2.0),
                                       above=self.rng.uniform(0.03, 0.2), aspect=self.rng.uniform(1.3, 1.8))
            if b is not None:
                ih, iw = person.target.shape
                bw, bh = min(b[2], iw), min(b[3], ih)
                box = (min(max(b[0], 0.0), iw - bw), min(max(b[1], 0.0), ih - bh), bw, bh)
        return random_crop(person, self.canvas, self.rng, 0.8, box)

    def sample(self) -> tuple[np.ndarray, np.ndarray]:
        """(BGR uint8 [h, w, 3] at ``image_scale`` x the model size, target float32 at ``target_scale`` x)."""
        kind = self.kinds[int(self.rng.choice(len(self.kinds), p=self.weights))]
        item = self.composite() if kind == "composite" else self.street() if kind == "street" else \
            random_crop(self._pick(self.videos), self.canvas, self.rng, 0.6)
        image, target = degrade(item.image, self.rng), item.target
        if self.rng.random() < 0.5:
            image, target = image[:, ::-1], target[:, ::-1]
        image_size = (self.size[0] * self.image_scale, self.size[1] * self.image_scale)
        image = cv2.resize(np.ascontiguousarray(image), image_size, interpolation=cv2.INTER_AREA)
        target_size = (self.size[0] * self.target_scale, self.size[1] * self.target_scale)
        target = cv2.resize(np.ascontiguousarray(target), target_size, interpolation=cv2.INTER_AREA)
        return image, np.clip(target, 0, 1)


def load_backgrounds(root: Path) -> list[np.ndarray]:
    return [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in training_backgrounds(root / "backgrounds")]
