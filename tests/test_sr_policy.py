"""The SR policy of the upscale stage in ``auto`` mode: 2x SR only where its measured cost fits the frame budget
together with the other stages (its cost measured once and scaled by pixels), on steady frame sizes, and on
pictures not too soft for it; otherwise a plain resize (bicubic for a soft picture). The cost measurement is
injected (no clock in these tests)."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest

from vcam.postprocess.upscale import OTHER_STAGES_MS, Upscaler, UpscaleSettings


class Probe:
    """A fake cost measurement: fixed CPU ms per 640x360-equivalent of pixels; counts its calls."""

    def __init__(self, ms_at_360p: float) -> None:
        self.ms_at_360p = ms_at_360p
        self.calls: list[tuple[int, int]] = []

    def __call__(self, w: int, h: int) -> float:
        self.calls.append((w, h))
        return self.ms_at_360p * w * h / (640 * 360)


def textured(h: int, w: int) -> np.ndarray:
    """Blurred noise with a webcam's amount of fine detail (finest-band energy ~5, over the soft-picture gate's
    2.7: SR is not ruled out for softness)."""
    rng = np.random.default_rng(3)
    return cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (0, 0), 1.5)


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    return textured(360, 640)


def plain(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return cv2.resize(frame, size, interpolation=cv2.INTER_LINEAR)


def test_sr_runs_when_its_cost_fits_the_budget(frame: np.ndarray) -> None:
    probe = Probe(8.0)  # 8 + 12 (other stages) <= 22
    up = Upscaler(UpscaleSettings(mode="auto", person_only=False), cost_probe=probe)
    out = up.process(frame, None, out_size=(1280, 720))
    assert up.last_box == (0, 0, 640, 360)
    assert not np.array_equal(out, plain(frame, (1280, 720)))
    for _ in range(3):
        up.process(frame, None, out_size=(1280, 720))
    assert probe.calls == [(640, 360)]  # measured once


def test_plain_resize_when_sr_does_not_fit(frame: np.ndarray) -> None:
    probe = Probe(12.0)  # 12 + 12 > 22: e.g. a slower machine
    up = Upscaler(UpscaleSettings(mode="auto", person_only=False), cost_probe=probe)
    out = up.process(frame, None, out_size=(1280, 720))
    assert up.last_box is None
    assert np.array_equal(out, plain(frame, (1280, 720)))
    # a larger budget lets it in (the decision is taken again after a budget change)
    up.configure(UpscaleSettings(mode="auto", person_only=False, frame_budget_ms=30.0))
    up.process(frame, None, out_size=(1280, 720))
    assert up.last_box == (0, 0, 640, 360)


def test_the_other_stages_count(frame: np.ndarray) -> None:
    up = Upscaler(UpscaleSettings(mode="auto", person_only=False), cost_probe=Probe(8.0))
    up.other_stages_ms = 16.0  # as a pipeline with heavier stages would report: 8 + 16 > 22
    up.process(frame, None, out_size=(1280, 720))
    assert up.last_box is None
    assert OTHER_STAGES_MS + 8.0 <= UpscaleSettings().frame_budget_ms  # the default admits a 8 ms SR


def test_portrait_crop_upscaled_by_less_than_2x_is_sr_then_resized_only_within_budget() -> None:
    # a 720x404 strip of an upright phone for a 1280x720 output (1.78x): SR costs 1.26x the 360p figure
    strip = textured(404, 720)
    cheap = Upscaler(UpscaleSettings(mode="auto", person_only=False), cost_probe=Probe(6.0))
    out = cheap.process(strip, None, out_size=(1280, 720))
    assert cheap.last_box == (0, 0, 720, 404) and out.shape == (720, 1280, 3)  # 2x to 1440x808, then resized
    costly = Upscaler(UpscaleSettings(mode="auto", person_only=False), cost_probe=Probe(9.0))  # 11.4 + 12 > 22
    out = costly.process(strip, None, out_size=(1280, 720))
    assert costly.last_box is None and np.array_equal(out, plain(strip, (1280, 720)))


def test_on_ignores_the_budget_and_off_never_measures(frame: np.ndarray) -> None:
    probe = Probe(100.0)
    on = Upscaler(UpscaleSettings(mode="on", person_only=False), cost_probe=probe)
    on.process(frame, None, out_size=(1280, 720))
    assert on.last_box == (0, 0, 640, 360)
    off = Upscaler(UpscaleSettings(mode="off"), cost_probe=probe)
    off.process(frame, None, out_size=(1280, 720))
    assert probe.calls == [] and off.last_box is None


def test_no_measurement_when_no_upscale_is_needed(frame: np.ndarray) -> None:
    probe = Probe(1.0)
    up = Upscaler(UpscaleSettings(mode="auto"), cost_probe=probe)
    up.process(frame, None, out_size=(640, 360))
    up.process(frame, None, out_size=(320, 180))
    assert probe.calls == []


def test_decision_is_logged_once(frame: np.ndarray, caplog: pytest.LogCaptureFixture) -> None:
    up = Upscaler(UpscaleSettings(mode="auto", person_only=False), cost_probe=Probe(12.0))
    with caplog.at_level(logging.INFO, logger="vcam.postprocess.upscale"):
        for _ in range(5):
            up.process(frame, None, out_size=(1280, 720))
    decisions = [r for r in caplog.records if "super-resolution (auto) off" in r.getMessage()]
    assert len(decisions) == 1
    assert "640x360" in decisions[0].getMessage() and "plain upscale" in decisions[0].getMessage()


def test_default_probe_measures_the_sr_path_once(frame: np.ndarray) -> None:
    # the real measurement (thread CPU time of a few calls): only its contract is checked here, not its value
    up = Upscaler(UpscaleSettings(mode="auto", person_only=False))
    ms = up._measure_sr_ms(320, 180)
    assert ms > 0.0 and up.last_box is None


def test_a_size_that_changes_every_frame_is_resized_plainly_then_sr_once_it_holds() -> None:
    # an auto-framing zoom: the crop grows a little every frame; SR would build a session per passing size
    probe = Probe(4.0)
    up = Upscaler(UpscaleSettings(mode="auto", person_only=False), cost_probe=probe)
    sizes = [(640, 360), (648, 364), (656, 368), (664, 372), (664, 372)]
    boxes = []
    for w, h in sizes:
        up.process(textured(h, w), None, out_size=(1280, 720))
        boxes.append(up.last_box)
    assert boxes[0] == (0, 0, 640, 360)  # the first frame: nothing to compare with
    assert boxes[1:4] == [None, None, None]  # zooming: plain resize
    assert boxes[4] == (0, 0, 664, 372)  # the size held: SR again
    assert probe.calls == [(640, 360)]  # measured once, scaled by the pixel count for other sizes


def test_the_cost_scales_with_pixels_across_sizes() -> None:
    # 6 ms at 640x360 fits (6 + 12 <= 22); the same machine on 720x404 (1.26x the pixels) costs 7.6 ms: fits;
    # with 8 ms at 640x360, 720x404 costs 10.1 ms: 22.1 > 22, plain
    for ms, expected in ((6.0, (0, 0, 720, 404)), (8.0, None)):
        probe = Probe(ms)
        up = Upscaler(UpscaleSettings(mode="auto", person_only=False), cost_probe=probe)
        up.process(textured(360, 640), None, out_size=(1280, 720))
        strip = textured(404, 720)
        up.process(strip, None, out_size=(1280, 720))  # a new size: resized plainly this frame
        up.process(strip, None, out_size=(1280, 720))
        assert up.last_box == expected and probe.calls == [(640, 360)]


# -- a picture too soft for SR ----------------------------------------------------------------------------------


def test_the_soft_gate_switches_on_the_smoothed_energy_with_a_margin() -> None:
    from vcam.postprocess.soft_input import SHARP_ABOVE, SOFT_BELOW, SoftInputGate

    assert (SOFT_BELOW, SHARP_ABOVE) == (2.5, 2.7)
    gate = SoftInputGate(smoothing=0.5)
    assert gate.observe(2.0) is True  # the first measurement decides alone
    assert gate.observe(2.65) is True  # smoothed 2.325
    assert gate.observe(3.2) is False  # smoothed 2.7625: over 2.7
    gate = SoftInputGate(smoothing=0.5)
    gate.observe(2.0)
    for _ in range(10):
        gate.observe(2.6)  # between the two thresholds: stays soft for good
    assert gate.soft
    for _ in range(10):
        gate.observe(4.0)
    assert not gate.soft
    for _ in range(10):
        gate.observe(2.6)  # and from sharp, the same figure keeps it sharp
    assert not gate.soft


def test_auto_upscales_a_soft_clean_picture_with_bicubic(frame: np.ndarray) -> None:
    rng = np.random.default_rng(4)
    soft = cv2.GaussianBlur(rng.integers(0, 256, (360, 640, 3), dtype=np.uint8), (0, 0), 2.5)
    up = Upscaler(UpscaleSettings(mode="auto", person_only=False), cost_probe=Probe(5.0))
    for _ in range(3):
        out = up.process(soft, None, out_size=(1280, 720))
        assert up.last_box is None
        assert np.array_equal(out, cv2.resize(soft, (1280, 720), interpolation=cv2.INTER_CUBIC))
    up.reset()  # a new camera: measured again, and this one gets SR
    up.process(frame, None, out_size=(1280, 720))
    assert up.last_box == (0, 0, 640, 360)
    # mode "on", or the fallback switched off: SR on the soft picture too
    for settings in (UpscaleSettings(mode="on", person_only=False),
                     UpscaleSettings(mode="auto", person_only=False, soft_fallback=False)):
        forced = Upscaler(settings, cost_probe=Probe(5.0))
        forced.process(soft, None, out_size=(1280, 720))
        assert forced.last_box == (0, 0, 640, 360)
