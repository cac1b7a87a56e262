"""Still-scene reuse of the segmenter's mask: the model is skipped only while its input picture is still."""
from __future__ import annotations

import numpy as np
import pytest

from vcam.config import build_config
from vcam.pipeline import Pipeline
from vcam.still_scene import StillSceneGate


def picture(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (96, 160, 3), dtype=np.uint8)


def noisy(p: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(p + rng.normal(0, sigma, p.shape), 0, 255).astype(np.uint8)


def ask(gate: StillSceneGate, p: np.ndarray, mask: np.ndarray) -> bool:
    """One frame through the gate as the segmenter uses it; True when the model ran."""
    if gate.reusable_mask(p) is not None:
        return False
    gate.remember(mask)
    return True


def test_still_pictures_reuse_the_mask_at_most_max_reused_times() -> None:
    gate, p, mask = StillSceneGate(threshold=6.0, max_reused=2), picture(), np.zeros((96, 160), np.float32)
    ran = [ask(gate, noisy(p, 2.0, i), mask) for i in range(7)]  # webcam-like noise only
    assert ran == [True, False, False, True, False, False, True]
    reused = gate.reusable_mask(noisy(p, 2.0, 99))
    assert reused is not None and not reused.flags.writeable  # later frames share it: read-only


def test_a_small_local_change_runs_the_model() -> None:
    gate, p, mask = StillSceneGate(threshold=6.0, max_reused=8), picture(), np.zeros((96, 160), np.float32)
    assert ask(gate, p, mask)
    moved = p.copy()
    moved[40:48, 80:88] = np.clip(moved[40:48, 80:88].astype(np.int16) + 40, 0, 255)  # one 8x8 block changes
    assert ask(gate, moved, mask)


def test_slow_drift_is_measured_against_the_picture_the_model_saw() -> None:
    gate, p, mask = StillSceneGate(threshold=6.0, max_reused=8), picture(), np.zeros((96, 160), np.float32)
    assert ask(gate, p, mask)
    # each frame 3 grey levels brighter than the one before: under the threshold frame to frame, not in sum
    ran = [ask(gate, np.clip(p.astype(np.int16) + 3 * k, 0, 255).astype(np.uint8), mask) for k in range(1, 5)]
    assert ran == [False, True, False, True]


@pytest.mark.parametrize("threshold,max_reused", [(0.0, 2), (6.0, 0)])
def test_off_runs_every_frame(threshold: float, max_reused: int) -> None:
    gate, p, mask = StillSceneGate(threshold, max_reused), picture(), np.zeros((96, 160), np.float32)
    assert all(ask(gate, p, mask) for _ in range(4))


def test_reset_forgets_the_mask() -> None:
    gate, p, mask = StillSceneGate(), picture(), np.zeros((96, 160), np.float32)
    assert ask(gate, p, mask)
    gate.reset()
    assert ask(gate, p, mask)


class CountingSegmenter:
    """Wraps a real segmenter and counts model runs (calls where the gate did not hand back its mask)."""

    def __init__(self, inner) -> None:
        self.inner, self.runs = inner, 0

    def segment(self, frame, gate=None):
        before = gate.skipped if gate is not None else 0
        result = self.inner.segment(frame, gate=gate)
        if gate is None or gate.skipped == before:
            self.runs += 1
        return result


def test_pipeline_skips_the_model_on_a_still_scene_and_not_when_the_setting_is_off() -> None:
    from vcam.segmenter import load_segmenter

    seg = load_segmenter("mediapipe-selfie-landscape")
    frame = np.full((360, 640, 3), 90, np.uint8)
    frame[60:360, 220:420] = (60, 110, 200)  # a still "person"
    for overrides, expected_runs in (({}, 4), ({"model": {"still_threshold": 0}}, 10)):
        counting = CountingSegmenter(seg)
        pipeline = Pipeline(build_config({"output": {"width": 640, "height": 360, "sinks": []}} | overrides,
                                         origin="test"), counting)
        for _ in range(10):
            out = pipeline.run(frame).output
            assert out is not None and out.shape == (360, 640, 3)
        assert counting.runs == expected_runs  # runs on frames 1, 4, 7, 10 with the default max_reused_frames 2
        pipeline.segmenter = counting  # a model swap forgets the remembered mask
        pipeline.run(frame)
        assert counting.runs == expected_runs + 1


def test_back_from_passthrough_the_model_runs_on_the_first_frame() -> None:
    """The mask remembered before a stretch of passthrough belongs to a scene long gone: it is not reused."""
    from vcam.segmenter import load_segmenter

    counting = CountingSegmenter(load_segmenter("mediapipe-selfie-landscape"))
    frame = np.full((360, 640, 3), 90, np.uint8)
    frame[60:360, 220:420] = (60, 110, 200)
    blur = build_config({"output": {"width": 640, "height": 360, "sinks": []}}, origin="test")
    passthrough = build_config({"output": {"width": 640, "height": 360, "sinks": []},
                                "background": {"mode": "passthrough"}}, origin="test")
    pipeline = Pipeline(blur, counting)
    pipeline.run(frame)
    assert counting.runs == 1
    pipeline.configure(passthrough)
    pipeline.run(frame)
    assert counting.runs == 1  # no segment stage in passthrough
    pipeline.configure(blur)
    pipeline.run(frame)
    assert counting.runs == 2  # the same still picture, yet the model runs again
    pipeline.run(frame)
    assert counting.runs == 2  # and from then on the gate works as before
