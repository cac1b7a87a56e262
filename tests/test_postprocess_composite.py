"""Compositing stage on real demo-clip frames with alphas from the refinement of the shipped MediaPipe model."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from pydantic import ValidationError
from vcam.postprocess.blend import TileBlender, blend_full
from vcam.postprocess.blur import BokehBlur
from vcam.postprocess.composite import (
    BackgroundSettings,
    Compositor,
    cover_fit,
    render_mask_debug,
)
from vcam.postprocess.mask import MaskRefiner, MaskSettings

from .conftest import read_demo_frames
from .test_postprocess_mask import segment

ASSETS = Path(__file__).resolve().parent.parent / "vcam" / "assets"
IMAGE = ASSETS / "backgrounds" / "city.jpg"


@pytest.fixture(scope="module")
def scene() -> tuple[list[np.ndarray], list[np.ndarray]]:
    frames = read_demo_frames(6, step=10)
    refiner = MaskRefiner(MaskSettings())
    alphas = [refiner.process(segment(f), f).copy() for f in frames]
    return frames, alphas


def _band(alpha: np.ndarray, inner: int, outer: int) -> np.ndarray:
    """Background pixels between ``inner`` and ``outer`` px from the person."""
    person = (alpha > 0).astype(np.uint8)
    dist = cv2.distanceTransform(1 - person, cv2.DIST_L2, 3)
    return (dist > inner) & (dist <= outer)


def _highpass_energy(img: np.ndarray, where: np.ndarray) -> float:
    """Mean detail finer than a sigma-4 Gaussian (what a background blur should remove)."""
    grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.float32)
    return float(np.abs(grey - cv2.GaussianBlur(grey, (0, 0), 4))[where].mean())


def test_settings_validation() -> None:
    for bad in ({"blur_strength": 101}, {"blur_strength": -1}, {"light_wrap": 1.5}, {"mode": "sepia"},
                {"mode": "image"}, {"mode": "video"}, {"color": "#12345"}, {"color": [0, 0, 300]},
                {"color": "green"}, {"extra": True}):
        with pytest.raises(ValidationError):
            BackgroundSettings(**bad)
    assert BackgroundSettings(color="#00ff00").color == (0, 255, 0)
    assert BackgroundSettings(color="#ff8000").color == (0, 128, 255)  # BGR
    assert BackgroundSettings(color=[10, 20, 30]).color == (10, 20, 30)
    with pytest.raises(ValidationError):
        BackgroundSettings().mode = "color"  # frozen


def test_blur_lowers_background_detail_and_keeps_the_person(scene) -> None:
    frames, alphas = scene
    comp = Compositor(BackgroundSettings(mode="blur", blur_strength=60))
    for frame, alpha in zip(frames, alphas):
        out = comp.process(frame, alpha)
        background, person = alpha == 0, alpha == 255
        assert background.mean() > 0.3 and person.mean() > 0.1
        assert _highpass_energy(out, background) < 0.3 * _highpass_energy(frame, background)
        assert np.array_equal(out[person], frame[person])


def test_blur_strength_orders_the_blur(scene) -> None:
    frames, alphas = scene
    background = alphas[0] == 0
    energy = []
    for strength in (0, 20, 60, 100):
        out = Compositor(BackgroundSettings(blur_strength=strength)).process(frames[0], alphas[0])
        energy.append(_highpass_energy(out, background))
    assert energy == sorted(energy, reverse=True) and energy[0] > 3 * energy[-1]
    zero = Compositor(BackgroundSettings(blur_strength=0)).process(frames[0], alphas[0])
    assert np.array_equal(zero, frames[0])


def test_normalised_blur_does_not_bleed_the_person_into_the_background(scene) -> None:
    # Paint the person magenta: a plain blur smears magenta into the background around her; the mask-weighted
    # normalised blur must not.
    frames, alphas = scene
    frame, alpha = frames[0].copy(), alphas[0]
    frame[alpha > 0] = (255, 0, 255)
    band = _band(alpha, 2, 40)
    blur = BokehBlur()
    weighted = blur.process(frame, alpha, 80, np.empty_like(frame)).copy()
    plain = blur.process(frame, np.zeros_like(alpha), 80, np.empty_like(frame)).copy()
    bg_only = frames[0][band].astype(np.float32)

    def magenta(img: np.ndarray) -> float:  # mean shift towards magenta relative to the untouched background
        d = img[band].astype(np.float32) - bg_only
        return float((d[:, 0] + d[:, 2] - 2 * d[:, 1]).mean())

    assert magenta(plain) > 60
    assert magenta(weighted) < 0.15 * magenta(plain)


def test_image_mode_cover_fits(scene) -> None:
    frames, _ = scene
    h, w = frames[0].shape[:2]
    picture = cv2.imread(str(IMAGE))
    empty = np.zeros((h, w), np.uint8)
    out = Compositor(BackgroundSettings(mode="image", image=str(IMAGE))).process(frames[0], empty)
    assert np.array_equal(out, cover_fit(picture, w, h))
    # cover-fit of a 4:3 crop into 16:9 keeps the aspect ratio: the centre band of the picture, scaled
    ph, pw = picture.shape[:2]
    square = picture[:, (pw - ph * 4 // 3) // 2:][:, : ph * 4 // 3]
    fitted = cover_fit(square, 320, 180)
    ch = round(square.shape[1] * 180 / 320)
    y0 = (square.shape[0] - ch) // 2
    expected = cv2.resize(square[y0:y0 + ch], (320, 180), interpolation=cv2.INTER_AREA)
    assert fitted.shape == (180, 320, 3)
    assert np.abs(fitted.astype(np.int16) - expected).mean() < 1.0


def test_image_mode_keeps_the_person_and_light_wrap_touches_only_the_rim(scene) -> None:
    frames, alphas = scene
    frame, alpha = frames[0], alphas[0]
    plain = Compositor(BackgroundSettings(mode="image", image=str(IMAGE), light_wrap=0.0)).process(frame, alpha)
    plain = plain.copy()
    wrapped = Compositor(BackgroundSettings(mode="image", image=str(IMAGE), light_wrap=0.8)).process(frame, alpha)
    person = alpha == 255
    assert np.array_equal(plain[person], frame[person])
    changed = np.any(wrapped != plain, axis=2)
    assert changed.any()
    inside = (alpha == 255).astype(np.uint8)
    depth = cv2.distanceTransform(inside, cv2.DIST_L2, 3)
    assert not changed[depth > 40].any()  # deep inside the person: untouched
    assert not changed[alpha == 0].any()  # the new background: untouched


def test_passthrough_is_identity_and_mirror_flips(scene) -> None:
    frames, alphas = scene
    frame, alpha = frames[0], alphas[0]
    assert Compositor(BackgroundSettings(mode="passthrough")).process(frame, alpha) is frame
    mirrored = Compositor(BackgroundSettings(mode="passthrough", mirror=True)).process(frame, alpha)
    assert np.array_equal(mirrored, frame[:, ::-1])
    blur = Compositor(BackgroundSettings()).process(frame, alpha).copy()
    blur_mirrored = Compositor(BackgroundSettings(mirror=True)).process(frame, alpha)
    assert np.array_equal(blur_mirrored, blur[:, ::-1])
    assert Compositor(BackgroundSettings()).process(frame, None) is frame  # no mask: frame untouched


def test_color_mode(scene) -> None:
    frames, alphas = scene
    out = Compositor(BackgroundSettings(mode="color", color="#00ff00")).process(frames[0], alphas[0])
    assert np.all(out[alphas[0] == 0] == (0, 255, 0))
    assert np.array_equal(out[alphas[0] == 255], frames[0][alphas[0] == 255])


def test_tile_blend_equals_full_blend_on_any_size(scene) -> None:
    frames, alphas = scene
    bg = cv2.GaussianBlur(frames[1], (0, 0), 8)
    for frame, alpha in ((frames[0], alphas[0]), (frames[0][:358, :636], alphas[0][:358, :636])):
        frame, alpha = np.ascontiguousarray(frame), np.ascontiguousarray(alpha)
        b = np.ascontiguousarray(bg[: frame.shape[0], : frame.shape[1]])
        expected = blend_full(frame, b, alpha, b.copy())
        out = b.copy()
        TileBlender().blend(frame, alpha, out)
        assert np.array_equal(out, expected)
        reference = (frame * (alpha[..., None] / 255.0) + b * (1 - alpha[..., None] / 255.0))
        assert np.abs(out - reference).max() <= 1.0


def test_float_alpha_accepted(scene) -> None:
    frames, alphas = scene
    comp = Compositor(BackgroundSettings())
    a = comp.process(frames[0], alphas[0]).copy()
    b = comp.process(frames[0], alphas[0].astype(np.float32) / 255.0)
    assert np.abs(a.astype(np.int16) - b).max() <= 1


def test_frame_size_change_reallocates_cleanly(scene) -> None:
    frames, alphas = scene
    for settings in (BackgroundSettings(), BackgroundSettings(mode="image", image=str(IMAGE)),
                     BackgroundSettings(mode="color", mirror=True)):
        comp = Compositor(settings)
        first = comp.process(frames[0], alphas[0]).copy()
        small = cv2.resize(frames[0], (640, 360), interpolation=cv2.INTER_AREA)
        assert comp.process(small, cv2.resize(alphas[0], (640, 360))).shape == (360, 640, 3)
        odd = np.ascontiguousarray(frames[0][:475, :853])
        assert comp.process(odd, np.ascontiguousarray(alphas[0][:475, :853])).shape == (475, 853, 3)
        assert np.array_equal(comp.process(frames[0], alphas[0]), first)
    with pytest.raises(ValueError):
        Compositor(BackgroundSettings()).process(frames[0], alphas[0][:100])


@pytest.mark.parametrize("settings", [BackgroundSettings(), BackgroundSettings(blur_strength=15),
                                      BackgroundSettings(mode="image", image=str(IMAGE), light_wrap=0.6)])
@pytest.mark.parametrize("mask_settings", [MaskSettings(), MaskSettings(soft=False), MaskSettings(work_width=320)])
def test_refiner_hints_give_the_same_composite(scene, settings, mask_settings) -> None:
    frames, _ = scene
    refiner = MaskRefiner(mask_settings)
    alpha, hints = refiner.refine(segment(frames[2]), frames[2])
    comp = Compositor(settings)
    shared = comp.process(frames[2], alpha, hints).copy()
    alone = comp.process(frames[2], alpha)
    # the blur and light-wrap weights come from the work-resolution alpha instead of a downscale of its upscale:
    # small differences on few pixels; the person's interior is identical
    diff = np.abs(shared.astype(np.int16) - alone).max(axis=2)
    assert diff.max() <= 16 and np.count_nonzero(diff) < 0.03 * diff.size
    interior = cv2.distanceTransform((alpha == 255).astype(np.uint8), cv2.DIST_L2, 3) > 40
    assert np.array_equal(shared[interior], frames[2][interior])
    # the tiles found from the small alpha give exactly the full-size blend
    bg = cv2.GaussianBlur(frames[2], (0, 0), 8)
    out = bg.copy()
    TileBlender().blend(frames[2], alpha, out, alpha_small=hints.alpha_small, alpha_level=hints.alpha_level)
    assert np.array_equal(out, blend_full(frames[2], bg, alpha, bg.copy()))


def test_video_mode_loops(scene, tmp_path: Path) -> None:
    frames, _ = scene
    path = tmp_path / "bg.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
    colours = [(0, 0, 200), (0, 200, 0), (200, 0, 0)]
    for c in colours:
        writer.write(np.full((240, 320, 3), c, np.uint8))
    writer.release()
    comp = Compositor(BackgroundSettings(mode="video", video=str(path), light_wrap=0.0))
    empty = np.zeros(frames[0].shape[:2], np.uint8)
    seen = [comp.process(frames[0], empty)[360, 640].astype(int) for _ in range(5)]
    for got, c in zip(seen, colours + colours[:2]):
        assert np.abs(got - c).max() < 12
    with pytest.raises(ValueError):
        Compositor(BackgroundSettings(mode="video", video=str(tmp_path / "missing.mp4")))
    with pytest.raises(ValueError):
        Compositor(BackgroundSettings(mode="image", image=str(tmp_path / "missing.jpg")))


def test_mask_debug_view(scene) -> None:
    frames, alphas = scene
    view = render_mask_debug(frames[0], alphas[0])
    assert view.shape == frames[0].shape and view.dtype == np.uint8
    person = alphas[0] == 255
    assert np.array_equal(view[person], frames[0][person])
    background = alphas[0] == 0
    assert view[background][:, 2].mean() > frames[0][background][:, 2].mean() * 0.35 + 100  # tinted red
