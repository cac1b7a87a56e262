"""Motion-compensated temporal smoothing (postprocess/temporal.py FlowSmoother) in the mask refiner."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from vcam.postprocess.mask import MaskRefiner, MaskSettings
from vcam.postprocess.temporal import FlowSmoother

from .conftest import read_demo_frames
from .test_postprocess_mask import _changes, _edge_offset, segment

FLOW = MaskSettings()


@pytest.fixture(scope="module")
def clip() -> tuple[list[np.ndarray], list[np.ndarray]]:
    frames = read_demo_frames(24)
    return frames, [segment(f) for f in frames]


@pytest.fixture(scope="module")
def scene() -> tuple[np.ndarray, np.ndarray]:
    """The demo frame's grey image at 640x360 and the model's mask for it at that size (float32 0..1)."""
    (big,) = read_demo_frames(1)
    grey = cv2.cvtColor(cv2.resize(big, (640, 360), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)
    mask = cv2.resize(segment(big), (640, 360), interpolation=cv2.INTER_LINEAR)
    return grey, mask


def _noise(rng: np.random.Generator, shape: tuple[int, int], amplitude: float) -> np.ndarray:
    """Spatially smooth noise of about +-amplitude: the kind of frame-to-frame wobble a model's mask has."""
    n = cv2.GaussianBlur(rng.standard_normal(shape).astype(np.float32), (0, 0), 4)
    return n * np.float32(amplitude / max(float(np.abs(n).max()), 1e-6))


def _pan(scene, step: int, n: int, amplitude: float, seed: int = 0):
    """Windows of 480x270 sliding ``step`` px per frame over the scene: grey frames, true masks (the mask moves
    exactly with the image) and noisy masks (true + smooth noise, clipped)."""
    grey, mask = scene
    rng = np.random.default_rng(seed)
    h, w = 270, 480
    greys, truth, noisy = [], [], []
    for i in range(n):
        x = 40 + i * step
        greys.append(np.ascontiguousarray(grey[45:45 + h, x:x + w]))
        t = np.ascontiguousarray(mask[45:45 + h, x:x + w])
        truth.append(t)
        noisy.append(np.clip(t + _noise(rng, (h, w), amplitude), 0, 1).astype(np.float32))
    return greys, truth, noisy


def _band(m: np.ndarray) -> np.ndarray:
    """Pixels within a few px of the mask's edge (where flicker shows)."""
    b = (m > 0.5).astype(np.uint8)
    k = np.ones((9, 9), np.uint8)
    return (cv2.dilate(b, k) - cv2.erode(b, k)) > 0


def test_flow_smoother_steadies_a_mask_on_a_moving_scene(scene) -> None:
    # The scene pans 3 px per frame: the smoother warps its history with the image and smooths the noisy mask.
    # Flicker = change between frames that the (known) motion does not explain, in the band around the edge.
    step = 3
    greys, truth, noisy = _pan(scene, step, 24, 0.25)
    flow = FlowSmoother()
    out: dict[str, list[np.ndarray]] = {"noisy": [], "flow": []}
    for g, m in zip(greys, noisy):
        out["flow"].append(flow.process(m.copy(), g, 0.92, 12, 32, 0.9, 2).copy())
        out["noisy"].append(m)
    flicker, error = {}, {}
    for k, seq in out.items():
        f, e = [], []
        for i in range(8, len(seq)):
            band = _band(truth[i])[:, :-step]
            f.append(np.abs(seq[i][:, :-step] - seq[i - 1][:, step:])[band].mean())
            e.append(np.abs(seq[i] - truth[i])[:, :-step][band].mean())
        flicker[k], error[k] = float(np.mean(f)), float(np.mean(e))
    assert flicker["flow"] < 0.4 * flicker["noisy"], flicker
    # and it stays as close to the true mask as the noisy input is
    assert error["flow"] < 1.1 * error["noisy"], error


def test_flow_smoother_keeps_up_with_the_moving_edge(scene) -> None:
    # Without noise, the smoothed mask of a scene panning 6 px per frame stays on the true (moving) edge.
    greys, truth, _ = _pan(scene, 6, 12, 0.0)
    flow = FlowSmoother()
    for g, t in zip(greys, truth):
        a = flow.process(t.copy(), g, 0.95, 12, 32, 0.9, 2).copy()
    assert _edge_offset((a * 255).astype(np.uint8), (truth[-1] * 255).astype(np.uint8)) <= 1.5


def test_flow_smoother_follows_what_the_flow_cannot_explain(scene) -> None:
    grey, mask = scene
    g0 = np.ascontiguousarray(grey[45:315, 40:520])
    m0 = np.ascontiguousarray(mask[45:315, 40:520])
    flow = FlowSmoother()
    for _ in range(4):
        flow.process(m0.copy(), g0, 0.95, 12, 32, 0.9, 2)
    # something new enters the frame (its image and the mask change together): followed at once
    g1, m1 = g0.copy(), m0.copy()
    g1[20:120, 20:120] = 255 - g1[20:120, 20:120]
    m1[20:120, 20:120] = 1.0 - m1[20:120, 20:120]
    out = flow.process(m1.copy(), g1, 0.95, 12, 32, 0.9, 2)
    inner = (slice(30, 110), slice(30, 110))
    assert np.abs(out[inner] - m1[inner]).mean() < 0.05
    # a large mask jump where the image did not change (a low-contrast move) is followed too
    m2 = m1.copy()
    m2[150:250, 300:400] = 1.0 - m2[150:250, 300:400]
    out = flow.process(m2.copy(), g1, 0.95, 12, 32, 0.9, 2)
    assert np.abs(out[160:240, 310:390] - m2[160:240, 310:390]).mean() < 0.05


def test_flow_smoother_flushes_values_decaying_to_zero(scene) -> None:
    # values that decay geometrically towards 0 would turn denormal (and every float op after them slow): flushed
    grey, _ = scene
    g = np.ascontiguousarray(grey[45:315, 40:520])
    flow = FlowSmoother()
    m = np.full(g.shape, 0.5, np.float32)
    flow.process(m, g, 0.95, 12, 32, 1.0, 2)
    for _ in range(400):
        out = flow.process(np.zeros(g.shape, np.float32), g, 0.95, 12, 32, 1.0, 2)
    assert np.count_nonzero(out) == 0


def test_motion_compensated_refiner_still_scene_flickers_less(clip) -> None:
    # The same real frame over and over with the model's masks for the clip's frames: every change is flicker.
    frames, masks = clip
    off, on = MaskRefiner(MaskSettings(temporal_strength=0.0)), MaskRefiner(FLOW)
    a_off = [off.process(m, frames[0]).copy() for m in masks]
    a_on = [on.process(m, frames[0]).copy() for m in masks]
    assert _changes(a_on) < 0.5 * _changes(a_off)


def test_motion_compensated_refiner_does_not_trail_a_fast_pan() -> None:
    # A real frame panned 12 px per frame. The model's masks of the moving window wobble; a reference that moves
    # exactly with the pan is the alpha of the whole frame, cropped like the window. The smoothed alpha must be
    # at least as close to it as the unsmoothed one (a trail would put it farther) and stay within 4 px of the
    # unsmoothed one (what remains is the wobble it smooths away).
    (big,) = read_demo_frames(1)
    w, h, step = 960, 540, 12
    xs = range(0, 12 * step, step)
    frames = [np.ascontiguousarray(big[90:90 + h, x:x + w]) for x in xs]
    masks = [segment(f) for f in frames]
    whole = MaskRefiner(MaskSettings(temporal_strength=0.0)).process(segment(big), big)
    reference = [np.ascontiguousarray(whole[90:90 + h, x:x + w]) for x in xs]
    off, on = MaskRefiner(MaskSettings(temporal_strength=0.0)), MaskRefiner(FLOW)
    d_off, d_on = [], []
    for i, (f, m) in enumerate(zip(frames, masks)):
        a_off = off.process(m, f)
        a_on = on.process(m, f)
        if i >= 4:
            d_off.append(_edge_offset(a_off, reference[i]))
            d_on.append(_edge_offset(a_on, reference[i]))
    assert np.mean(d_on) <= np.mean(d_off)
    assert _edge_offset(a_on, a_off) <= 4.0


def test_smoothing_resets_cleanly(clip) -> None:
    frames, masks = clip
    r = MaskRefiner(FLOW)
    for f, m in zip(frames[:6], masks[:6]):
        r.process(m, f)
    r.reset()
    fresh = r.process(masks[0], frames[5]).copy()
    assert np.array_equal(fresh, MaskRefiner(FLOW).process(masks[0], frames[5]))
    # other frame sizes and the off switch work with it
    small = cv2.resize(frames[6], (640, 360), interpolation=cv2.INTER_AREA)
    assert r.process(masks[6], small).shape == (360, 640)
    r.configure(FLOW.model_copy(update={"temporal_strength": 0.0}))
    assert r.process(masks[7], frames[7]).shape == frames[7].shape[:2]
