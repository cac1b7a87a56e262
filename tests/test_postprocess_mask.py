"""Mask refinement stage on real demo-clip frames with masks from the shipped MediaPipe landscape model."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import pytest
from pydantic import ValidationError
from vcam.postprocess.mask import MaskRefiner, MaskSettings

from tools.evaluation.metrics import iou
from vcam.segmenter import make_session

from .conftest import read_demo_frames

MODEL = Path(__file__).resolve().parent.parent / "models" / "mediapipe" / "selfie_segmentation_landscape.onnx"


@lru_cache(maxsize=1)
def _session():
    return make_session(MODEL, threads=1)


def segment(frame: np.ndarray) -> np.ndarray:
    small = cv2.resize(frame, (256, 144), interpolation=cv2.INTER_AREA)
    x = np.ascontiguousarray(small[:, :, ::-1].transpose(2, 0, 1)[None], dtype=np.float32) / 255.0
    return _session().run(["mask"], {"image": x})[0][0, 0]


@pytest.fixture(scope="module")
def clip() -> tuple[list[np.ndarray], list[np.ndarray]]:
    frames = read_demo_frames(24)
    return frames, [segment(f) for f in frames]


def still(settings: MaskSettings, mask: np.ndarray, frame: np.ndarray) -> np.ndarray:
    refiner = MaskRefiner(settings)
    return refiner.process(mask, frame).copy()


def test_settings_validation() -> None:
    for bad in ({"temporal_strength": 1.5}, {"dilate_px": -1}, {"refine_radius": 0}, {"threshold": 1.2},
                {"snap": 0.5}, {"work_width": 10}, {"nonsense": 1}):
        with pytest.raises(ValidationError):
            MaskSettings(**bad)
    s = MaskSettings()
    with pytest.raises(ValidationError):
        s.soft = False  # frozen


def test_output_is_full_resolution_alpha_close_to_the_model(clip) -> None:
    frames, masks = clip
    alpha = still(MaskSettings(), masks[0], frames[0])
    assert alpha.shape == frames[0].shape[:2] and alpha.dtype == np.uint8
    raw = cv2.resize(masks[0], (alpha.shape[1], alpha.shape[0]), interpolation=cv2.INTER_LINEAR)
    assert iou(alpha, raw) > 0.95
    # soft edges exist, and most of the frame is decided (0 or 255)
    fractional = np.count_nonzero((alpha > 0) & (alpha < 255)) / alpha.size
    assert 0.001 < fractional < 0.15


def test_snap_center_moves_the_edge_and_snap_sets_its_width(clip) -> None:
    frames, masks = clip
    person = {c: int((still(MaskSettings(snap_center=c), masks[0], frames[0]) > 127).sum()) for c in (0.4, 0.5, 0.6)}
    assert person[0.4] > person[0.5] > person[0.6]  # a higher centre pulls the edge into the person
    soft = {s: int(((a > 8) & (a < 247)).sum()) for s in (0.1, 0.4)
            for a in [still(MaskSettings(snap=s), masks[0], frames[0])]}
    assert soft[0.1] > soft[0.4] > 0  # a larger snap: a narrower (still soft) edge


def test_guided_filter_uint8_output_matches_the_float_path(clip) -> None:
    from vcam.postprocess.guided import FastGuidedFilter

    grey = cv2.cvtColor(clip[0][0], cv2.COLOR_BGR2GRAY)
    work = cv2.resize(grey, (640, 360), interpolation=cv2.INTER_AREA)
    grid = cv2.resize(work, (320, 180), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    mask = cv2.resize(clip[1][0], (320, 180), interpolation=cv2.INTER_LINEAR)
    gf = FastGuidedFilter()
    q = gf.apply(grid, mask, work.astype(np.float32) / 255, 2, 1e-3).copy()
    out = gf.apply(grid, mask, work, 2, 1e-3, out_u8=np.empty(work.shape, np.uint8))
    expect = np.clip(np.round(q * 255), 0, 255)
    assert out.dtype == np.uint8
    assert np.abs(out.astype(np.float32) - expect).max() <= 1


def test_snap_folded_into_the_guided_filter_equals_the_curve_applied_after(clip) -> None:
    from vcam.postprocess.guided import FastGuidedFilter
    from vcam.postprocess.mask import _snap_affine

    grey = cv2.cvtColor(clip[0][0], cv2.COLOR_BGR2GRAY)
    work = cv2.resize(grey, (640, 360), interpolation=cv2.INTER_AREA)
    grid = cv2.resize(work, (320, 180), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    mask = cv2.resize(clip[1][0], (320, 180), interpolation=cv2.INTER_LINEAR)
    gain, offset = _snap_affine(MaskSettings())
    gf = FastGuidedFilter()
    q = gf.apply(grid, mask, work.astype(np.float32) / 255, 2, 1e-3).copy()
    out = gf.apply(grid, mask, work, 2, 1e-3, out_u8=np.empty(work.shape, np.uint8), out_affine=(gain, offset))
    expect = np.clip(np.round(q * 255 * gain + offset), 0, 255)
    assert np.abs(out.astype(np.float32) - expect).max() <= 1
    assert 0.001 < np.count_nonzero((out > 0) & (out < 255)) / out.size < 0.1  # snapped, still soft


def test_threshold_mode_is_binary(clip) -> None:
    frames, masks = clip
    alpha = still(MaskSettings(soft=False), masks[0], frames[0])
    assert set(np.unique(alpha)) <= {0, 255}


def test_dilation_erosion_and_feathering_compose_with_refinement(clip) -> None:
    frames, masks = clip
    base = still(MaskSettings(), masks[0], frames[0])
    grown = still(MaskSettings(dilate_px=8), masks[0], frames[0])
    shrunk = still(MaskSettings(erode_px=8), masks[0], frames[0])
    feathered = still(MaskSettings(feather_px=6), masks[0], frames[0])
    area = lambda a: np.count_nonzero(a > 127)
    assert area(grown) > area(base) * 1.02 and area(shrunk) < area(base) * 0.98
    # dilation keeps the refined soft edge soft (it moves it), it does not binarise it
    assert np.count_nonzero((grown > 0) & (grown < 255)) > 0.5 * np.count_nonzero((base > 0) & (base < 255))
    soft = lambda a: np.count_nonzero((a > 0) & (a < 255))
    assert soft(feathered) > 1.3 * soft(base)
    # equal dilation and erosion (a closing) keep the outline roughly where it was
    closed = still(MaskSettings(dilate_px=6, erode_px=6), masks[0], frames[0])
    assert iou(closed, base) > 0.97


def test_refinement_off_still_gives_full_resolution_alpha(clip) -> None:
    frames, masks = clip
    alpha = still(MaskSettings(refine=False), masks[0], frames[0])
    assert alpha.shape == frames[0].shape[:2]
    assert iou(alpha, still(MaskSettings(), masks[0], frames[0])) > 0.95


def _changes(alphas: list[np.ndarray]) -> float:
    return float(np.mean([np.abs(a.astype(np.int16) - b).mean() for a, b in zip(alphas[1:], alphas[:-1])]))


def test_temporal_smoothing_reduces_change_on_a_still_scene(clip) -> None:
    # The same real frame over and over, with the masks the model gave for the clip's first frames: the image is
    # still, so every change of the mask is flicker.
    frames, masks = clip
    off, on = MaskRefiner(MaskSettings(temporal_strength=0.0)), MaskRefiner(MaskSettings())
    a_off = [off.process(m, frames[0]).copy() for m in masks]
    a_on = [on.process(m, frames[0]).copy() for m in masks]
    assert _changes(a_on) < 0.5 * _changes(a_off)


def _edge_offset(a: np.ndarray, b: np.ndarray) -> float:
    """95th percentile distance (px) from a's 0.5-edge to b's."""
    k = np.ones((3, 3), np.uint8)
    am, bm = (a > 127).astype(np.uint8), (b > 127).astype(np.uint8)
    ae, be = am - cv2.erode(am, k), bm - cv2.erode(bm, k)
    dt = cv2.distanceTransform(1 - be, cv2.DIST_L2, 3)
    return float(np.percentile(dt[ae > 0], 95))


def test_temporal_smoothing_does_not_lag_on_a_moving_edge() -> None:
    # A real frame panned 12 px per frame (a window sliding over it): the person's edges move fast; the smoothed
    # alpha must stay with the unsmoothed one (no trail) within 3 px.
    (big,) = read_demo_frames(1)
    w, h, step = 960, 540, 12
    frames = [np.ascontiguousarray(big[90:90 + h, x:x + w]) for x in range(0, 12 * step, step)]
    masks = [segment(f) for f in frames]
    off = MaskRefiner(MaskSettings(temporal_strength=0.0))
    on = MaskRefiner(MaskSettings(temporal_strength=0.95))
    for f, m in zip(frames, masks):
        a_off = off.process(m, f)
        a_on = on.process(m, f)
    assert _edge_offset(a_on, a_off) <= 3.0


def test_frame_size_change_reallocates_cleanly(clip) -> None:
    frames, masks = clip
    refiner = MaskRefiner(MaskSettings())
    a1 = refiner.process(masks[0], frames[0]).copy()
    small = cv2.resize(frames[1], (640, 360), interpolation=cv2.INTER_AREA)
    a2 = refiner.process(masks[1], small)
    assert a2.shape == (360, 640)
    odd = np.ascontiguousarray(frames[2][:477, :851])
    assert refiner.process(masks[2], odd).shape == (477, 851)
    a3 = refiner.process(masks[0], frames[0])
    assert a3.shape == frames[0].shape[:2]
    # after the size changes the temporal state restarted: the same input gives the same first-frame output
    assert np.array_equal(a3, a1)


def test_configure_keeps_state_and_reset_drops_it(clip) -> None:
    frames, masks = clip
    refiner = MaskRefiner(MaskSettings())
    for f, m in zip(frames[:5], masks[:5]):
        refiner.process(m, f)
    refiner.configure(MaskSettings(feather_px=2))
    assert refiner.settings.feather_px == 2
    smoothed = refiner.process(masks[0], frames[5]).copy()
    refiner.reset()
    fresh = refiner.process(masks[0], frames[5])
    reference = still(MaskSettings(feather_px=2), masks[0], frames[5])
    assert np.array_equal(fresh, reference)
    assert not np.array_equal(smoothed, reference)


def test_uint8_mask_input_accepted(clip) -> None:
    frames, masks = clip
    m8 = np.clip(masks[0] * 255 + 0.5, 0, 255).astype(np.uint8)
    a = still(MaskSettings(), m8, frames[0])
    assert iou(a, still(MaskSettings(), masks[0], frames[0])) > 0.99


def test_segmenter_halvings_are_reused_and_give_the_same_alpha(clip) -> None:
    """The pipeline hands the segmenter's 2x2-box halvings of the frame to the refiner: same alpha, and the
    refiner's hints then carry those very buffers to the compositor (no second halving of the frame)."""
    from vcam.segmenter import load_segmenter

    seg = load_segmenter("mediapipe-selfie-landscape")
    frames, _ = clip
    own, shared = MaskRefiner(), MaskRefiner()
    for frame in frames[:6]:
        mask, levels = seg.segment(frame)
        assert [lv.shape for lv in levels] == [(360, 640, 3), (180, 320, 3)]
        expected = own.process(mask, frame).copy()
        got, hints = shared.refine(mask, frame, levels)
        np.testing.assert_array_equal(got, expected)
        assert hints.frame_levels[0] is levels[0]
    # levels that are not halvings of this frame are ignored, not trusted
    wrong = [np.zeros((360, 640, 3), np.uint8)]
    np.testing.assert_array_equal(shared.process(mask, frames[0], wrong[:0]), own.process(mask, frames[0]))
    bad = [np.zeros((361, 640, 3), np.uint8)]
    assert shared.refine(mask, frames[0], bad)[1].frame_levels[0] is not bad[0]


def test_bench_reference_baseline_costs_more_than_vcam() -> None:
    """``vcam bench --reference`` times Linux-Fake-Background-Webcam's blur on the same frames: a full-resolution
    21x21 Gaussian and float blend, which our low-resolution path must beat by a wide margin."""
    from vcam.bench import run_bench

    result = run_bench(frames=20, segmenter="mediapipe-selfie-landscape", reference=True)
    assert result["reference_cpu_ms_per_frame"] > 0
    assert 0 < result["ratio_to_reference"] < 0.9
