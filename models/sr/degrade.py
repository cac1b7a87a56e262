"""Webcam-like 2x degradation of a high-resolution frame (numpy + OpenCV only: shared by training and evaluation).

A webcam's 360p frame is a downscaled sensor image after some optics/ISP softness, with sensor noise,
usually JPEG-compressed (MJPEG over USB) before it reaches us. :func:`degrade` reproduces that chain on
a high-resolution BGR frame: mild Gaussian blur -> 2x downscale (area, bicubic or bilinear) -> Gaussian
noise (luma and a little chroma) -> JPEG. :func:`downscale_clean` is the clean reference (area only).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["Degradation", "DegradeParams", "degrade", "downscale_clean", "luma"]

_INTERP = {"area": cv2.INTER_AREA, "bicubic": cv2.INTER_CUBIC, "bilinear": cv2.INTER_LINEAR}


@dataclass(frozen=True)
class Degradation:
    """Ranges the degradation parameters are drawn from (uniformly)."""

    # Real webcams bin/scale a sharp-ish, ISP-sharpened sensor image: blur is the minority case (a blur-heavy
    # mix, p=0.6, sigma<=0.9, lost 1.4 dB to bicubic on clean held-out frames in a 1.5-minute trial).
    blur_sigma: tuple[float, float] = (0.2, 0.8)  # Gaussian sigma in high-res pixels, before downscaling
    blur_prob: float = 0.35
    methods: tuple[str, ...] = ("area", "area", "bicubic", "bilinear")
    noise_sigma: tuple[float, float] = (0.0, 4.0)  # luma noise, 8-bit levels
    noise_prob: float = 0.7
    jpeg_quality: tuple[int, int] = (55, 95)
    jpeg_prob: float = 0.75
    # Share of pairs left clean (area or bicubic 2x downscale only), so the net also learns to sharpen
    # noise-free input instead of smoothing it; 0 for the evaluation's webcam protocol.
    clean_prob: float = 0.0


@dataclass(frozen=True)
class DegradeParams:
    """One draw of the degradation (kept fixed across a clip to mimic one camera)."""

    blur_sigma: float
    method: str
    noise_sigma: float
    jpeg_quality: int | None

    @staticmethod
    def draw(rng: np.random.Generator, cfg: Degradation = Degradation()) -> DegradeParams:
        if cfg.clean_prob > 0 and rng.random() < cfg.clean_prob:
            return DegradeParams(0.0, str(rng.choice(["area", "area", "bicubic"])), 0.0, None)
        blur = float(rng.uniform(*cfg.blur_sigma)) if rng.random() < cfg.blur_prob else 0.0
        method = str(cfg.methods[rng.integers(len(cfg.methods))])
        noise = float(rng.uniform(*cfg.noise_sigma)) if rng.random() < cfg.noise_prob else 0.0
        jpeg = int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1)) if rng.random() < cfg.jpeg_prob else None
        return DegradeParams(blur, method, noise, jpeg)


def degrade(hr_bgr: np.ndarray, params: DegradeParams, rng: np.random.Generator) -> np.ndarray:
    """High-res BGR uint8 [H, W, 3] (H, W even) -> webcam-like BGR uint8 [H/2, W/2, 3].

    ``rng`` draws the noise only, so one ``params`` with a fresh noise draw per frame behaves like a camera.
    """
    h, w = hr_bgr.shape[:2]
    img = hr_bgr
    if params.blur_sigma > 0.05:
        img = cv2.GaussianBlur(img, (0, 0), params.blur_sigma)
    lr = cv2.resize(img, (w // 2, h // 2), interpolation=_INTERP[params.method])
    if params.noise_sigma > 0:
        # mostly luma noise (same on all channels) plus weaker independent chroma noise
        shape = lr.shape[:2]
        n = rng.normal(0.0, params.noise_sigma, shape)[..., None] + rng.normal(0.0, params.noise_sigma * 0.5, lr.shape)
        lr = np.clip(lr.astype(np.float32) + n, 0, 255).astype(np.uint8)
    if params.jpeg_quality is not None:
        ok, buf = cv2.imencode(".jpg", lr, [cv2.IMWRITE_JPEG_QUALITY, params.jpeg_quality])
        assert ok
        lr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return lr


def downscale_clean(hr_bgr: np.ndarray) -> np.ndarray:
    """The clean reference: 2x area downscale, nothing else."""
    h, w = hr_bgr.shape[:2]
    return cv2.resize(hr_bgr, (w // 2, h // 2), interpolation=cv2.INTER_AREA)


def luma(bgr: np.ndarray) -> np.ndarray:
    """BT.601 luma (OpenCV's YCrCb Y) as uint8 [H, W]: the channel the network works on."""
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2YCrCb)[..., 0].copy()
