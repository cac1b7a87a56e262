"""The upscale stage and the shipped TinySR model, on real frames of the demo clip (held out from SR training)."""

from __future__ import annotations

import hashlib
import json

import cv2
import numpy as np
import onnxruntime as ort
import pytest
from pydantic import ValidationError
from models.sr import shipped_card_path, shipped_model_path
from models.sr.degrade import DegradeParams, degrade, luma
from vcam.postprocess.upscale import (
    CONTEXT,
    Upscaler,
    UpscaleSettings,
    default_model_path,
    person_box,
)

OUT = (1280, 720)
# a typical webcam: area downscale, mild sensor noise, MJPEG at quality 85
WEBCAM = DegradeParams(blur_sigma=0.0, method="area", noise_sigma=2.0, jpeg_quality=85)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


def _person_mask(frame_hw: tuple[int, int]) -> np.ndarray:
    """A low-res (144x256) person mask over the woman of the demo clip (centre, head to bottom edge)."""
    mask = np.zeros((144, 256), np.float32)
    mask[int(0.08 * 144):, int(0.38 * 256):int(0.80 * 256)] = 1.0
    return mask


@pytest.fixture(scope="module")
def small(demo_frames: list[np.ndarray]) -> np.ndarray:
    return cv2.resize(demo_frames[0], (640, 360), interpolation=cv2.INTER_AREA)


def test_shipped_model_follows_contract_and_card() -> None:
    path = shipped_model_path()
    assert default_model_path() == path and path.is_file()
    card = json.loads(shipped_card_path().read_text())
    assert card["task"] == "super-resolution" and card["file"] == path.name
    assert card["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert card["io"]["channels"] == 1 and card["io"]["scale"] == 2
    assert (path.parent / card["licence_file"]).is_file()
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,), (out,) = sess.get_inputs(), sess.get_outputs()
    assert inp.name == "image" and inp.shape[:2] == [1, 1] and not isinstance(inp.shape[2], int)
    assert out.name == "sr" and out.shape[:2] == [1, 16]
    assert card["io"]["pad"] == 2 and card["io"]["pixel_shuffle"] == 4
    for h, w in ((360, 640), (98, 150)):
        # input: the h x w luma edge-padded by 2; output: the 2x luma before DepthToSpace(4)
        y = sess.run(None, {"image": np.full((1, 1, h + 4, w + 4), 0.5, np.float32)})[0]
        assert y.shape == (1, 16, h // 2, w // 2) and y.dtype == np.uint8  # luma levels, rounded, saturated
        assert np.abs(y.astype(int) - 128).max() <= 5  # a flat image stays flat


def test_stage_is_the_model_luma_with_bilinear_chroma(small: np.ndarray) -> None:
    """Whole-frame SR equals the plain recipe: YCrCb, model luma (padded input, DepthToSpace, rounded) in Y,
    bilinear 2x Cr/Cb, back to BGR; computed here with an independent dynamic-shape session."""
    out = Upscaler(UpscaleSettings(mode="on", person_only=False)).process(small, None, OUT).astype(int)
    ycc = cv2.cvtColor(small, cv2.COLOR_BGR2YCrCb)
    sess = ort.InferenceSession(str(shipped_model_path()), providers=["CPUExecutionProvider"])
    xpad = cv2.copyMakeBorder(ycc[..., 0], 2, 2, 2, 2, cv2.BORDER_REPLICATE).astype(np.float32)[None, None] / 255
    raw = sess.run(None, {"image": xpad})[0][0]  # uint8 [16, 180, 320]
    y = raw.reshape(4, 4, 180, 320).transpose(2, 0, 3, 1).reshape(720, 1280)  # DepthToSpace(4), CRD
    up = cv2.resize(ycc, OUT, interpolation=cv2.INTER_LINEAR)
    up[..., 0] = y
    want = cv2.cvtColor(up, cv2.COLOR_YCrCb2BGR).astype(int)
    assert np.abs(out - want).max() <= 1  # float rounding (fixed-shape vs dynamic session) only
    bilinear_y = cv2.resize(ycc[..., 0], OUT, interpolation=cv2.INTER_LINEAR).astype(int)
    assert np.abs(up[..., 0].astype(int) - bilinear_y).mean() > 0.1  # SR does change the luma (0 if it did not run)


def test_one_fixed_shape_session_per_crop_shape(small: np.ndarray) -> None:
    up = Upscaler(UpscaleSettings(mode="on", person_only=True))
    mask = _person_mask(small.shape[:2])
    up.process(small, mask, OUT)
    up.process(small, None, OUT)  # no mask: whole frame
    assert len(up._runs) == 2 and (360, 640) in up._runs
    for i in range(12):  # many box shapes: only the most recent few sessions are kept
        m = np.zeros((144, 256), np.float32)
        m[20:120, 60 + 4 * i:150 + 6 * i] = 1.0
        up.reset()
        assert up.process(small, m, OUT).shape == (720, 1280, 3)
    assert 2 < len(up._runs) <= 8


def test_sr_beats_bicubic_on_webcam_frames(demo_frames: list[np.ndarray]) -> None:
    rng = np.random.default_rng(0)
    up = Upscaler(UpscaleSettings(mode="on", person_only=False))
    gains = []
    for hr in demo_frames[::10]:
        lr = degrade(hr, WEBCAM, rng)
        out = up.process(lr, None, out_size=OUT)
        assert out.shape == (720, 1280, 3) and out.dtype == np.uint8
        bicubic = cv2.resize(lr, OUT, interpolation=cv2.INTER_CUBIC)
        gains.append(_psnr(luma(out), luma(hr)) - _psnr(luma(bicubic), luma(hr)))
    assert min(gains) > 0.3, gains


def test_off_is_plain_resize(small: np.ndarray) -> None:
    up = Upscaler(UpscaleSettings(mode="off"))
    out = up.process(small, _person_mask(small.shape[:2]), out_size=OUT)
    assert np.array_equal(out, cv2.resize(small, OUT, interpolation=cv2.INTER_LINEAR))
    assert not up._runs  # off never loads the model
    assert up.last_box is None


def test_auto_runs_sr_only_when_the_frame_is_smaller(small: np.ndarray, demo_frames: list[np.ndarray]) -> None:
    up = Upscaler(UpscaleSettings(mode="auto", person_only=False), cost_probe=lambda w, h: 5.0)
    up.process(small, None, out_size=OUT)
    assert up.last_box == (0, 0, 640, 360)
    big = demo_frames[1]
    out = up.process(big, None, out_size=(960, 540))
    assert up.last_box is None
    # shrinking by less than 2x: bilinear (non-integer INTER_AREA costs ~4x more); by 2x or more: area averaging
    assert np.array_equal(out, cv2.resize(big, (960, 540), interpolation=cv2.INTER_LINEAR))
    out = up.process(big, None, out_size=(640, 360))
    assert np.array_equal(out, cv2.resize(big, (640, 360), interpolation=cv2.INTER_AREA))


def test_auto_leaves_frames_above_its_pixel_budget_to_a_plain_resize(demo_frames: list[np.ndarray]) -> None:
    # a 720p camera feeding a 1080p output: 2x SR of 1280x720 costs ~4x the 360p figure, over a frame's time
    hd = demo_frames[2]
    up = Upscaler(UpscaleSettings(mode="auto", person_only=False), cost_probe=lambda w, h: 5.0)
    out = up.process(hd, None, out_size=(1920, 1080))
    assert up.last_box is None and not up._runs
    assert np.array_equal(out, cv2.resize(hd, (1920, 1080), interpolation=cv2.INTER_LINEAR))
    # VGA and below still get it; a raised budget, or "on", gets it for 720p too
    vga = cv2.resize(hd, (640, 480), interpolation=cv2.INTER_AREA)
    up.process(vga, None, out_size=(1280, 960))  # a new size: its first frame is resized plainly
    up.process(vga, None, out_size=(1280, 960))
    assert up.last_box == (0, 0, 640, 480)
    raised = Upscaler(UpscaleSettings(mode="auto", person_only=False, auto_max_pixels=1280 * 720),
                      cost_probe=lambda w, h: 5.0)
    raised.process(hd, None, out_size=(1920, 1080))
    assert raised.last_box == (0, 0, 1280, 720)


def test_person_only_equals_whole_frame_sr_inside_the_box(small: np.ndarray) -> None:
    whole = Upscaler(UpscaleSettings(mode="on", person_only=False)).process(small, None, OUT).copy()
    person = Upscaler(UpscaleSettings(mode="on", person_only=True))
    out = person.process(small, _person_mask(small.shape[:2]), OUT)
    x0, y0, x1, y1 = person.last_box
    assert 0 < x0 and x1 < 640 and (x1 - x0) * (y1 - y0) < 0.7 * 640 * 360  # a real saving
    inside = np.abs(out[2 * y0:2 * y1, 2 * x0:2 * x1].astype(int) - whole[2 * y0:2 * y1, 2 * x0:2 * x1])
    assert inside.max() <= 1  # rounding of the float32 sums only
    # outside the box the cheap bilinear path runs, which differs from SR
    assert np.abs(out[:, : 2 * x0].astype(int) - whole[:, : 2 * x0]).mean() > 0.1


def test_no_person_means_no_sr(small: np.ndarray) -> None:
    up = Upscaler(UpscaleSettings(mode="on", person_only=True))
    out = up.process(small, np.zeros((144, 256), np.float32), OUT)
    assert up.last_box is None and not up._runs
    ycc = cv2.resize(cv2.cvtColor(small, cv2.COLOR_BGR2YCrCb), OUT, interpolation=cv2.INTER_LINEAR)
    assert np.array_equal(out, cv2.cvtColor(ycc, cv2.COLOR_YCrCb2BGR))


def test_box_is_kept_while_the_person_stays_inside(small: np.ndarray) -> None:
    up = Upscaler(UpscaleSettings(mode="on"))
    mask = _person_mask(small.shape[:2])
    up.process(small, mask, OUT)
    first = up.last_box
    shrunk = mask.copy()
    shrunk[:, :130] = 0  # the person moved inwards (the old box still holds them)
    up.process(small, shrunk, OUT)
    assert up.last_box == first
    up.reset()
    up.process(small, shrunk, OUT)
    assert up.last_box != first


def test_person_box_geometry() -> None:
    mask = np.zeros((144, 256), np.uint8)
    mask[40:100, 100:150] = 255
    x0, y0, x1, y1 = person_box(mask, (360, 640), threshold=0.5, margin=0.0)
    assert all(v % 8 == 0 for v in (x0, y0, x1, y1))
    assert x0 <= 250 and x1 >= 375 and y0 <= 100 and y1 >= 250  # mask cols 100..150 of 256, rows 40..100 of 144
    assert x1 - x0 <= 375 - 250 + 16 and y1 - y0 <= 250 - 100 + 16
    assert CONTEXT % 2 == 0
    assert person_box(np.zeros((10, 10), np.float32), (360, 640), 0.5, 0.1) is None


def test_output_size_other_than_2x_and_odd_frames(small: np.ndarray) -> None:
    up = Upscaler(UpscaleSettings(mode="on", person_only=False))
    assert up.process(small, None, out_size=(1920, 1080)).shape == (1080, 1920, 3)
    odd = np.ascontiguousarray(small[:359, :639])
    out = up.process(odd, None, out_size=OUT)
    assert np.array_equal(out, cv2.resize(odd, OUT, interpolation=cv2.INTER_LINEAR))


def test_settings_are_validated() -> None:
    with pytest.raises(ValidationError):
        UpscaleSettings(mode="always")
    with pytest.raises(ValidationError):
        UpscaleSettings(margin=2.0)
    with pytest.raises(ValidationError):
        UpscaleSettings(unknown=1)
