"""Failing closed, checked against generated garbage: whatever a segmenter returns, a background mode either has
a mask it can trust or, once the short hold has run out, shows no shape of the room."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from vcam.buffers import TripleBuffer
from vcam.config import build_config
from vcam.failsafe import HOLD_S
from vcam.frame import mask_problem
from vcam.pipeline import Pipeline
from vcam.processing import Processor
from vcam.stats import DaemonStats

from .conftest import high_frequency_energy, read_demo_frames

FRAME = read_demo_frames(1, start=40)[0]


def _coarse_detail(frame: np.ndarray) -> float:
    return high_frequency_energy(cv2.resize(frame, (160, 90), interpolation=cv2.INTER_AREA))


class Returns:
    """A segmenter whose mask is whatever the test says."""

    def __init__(self) -> None:
        self.mask: object = None

    def segment(self, frame, gate=None):
        return self.mask, []


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


CLOCK, SEGMENTER = Clock(), Returns()
PROCESSORS = {preset: Processor(Pipeline(build_config({"preset": preset, "output": {"sinks": []}}), None, CLOCK),
                                TripleBuffer(), DaemonStats(), threading.Event())
              for preset in ("blur", "office", "green-screen")}
for proc in PROCESSORS.values():
    proc.pipeline.segmenter = SEGMENTER

VALUES = st.sampled_from([0.0, 0.5, 1.0, np.nan, np.inf, -np.inf, 7.0, -3.0])
garbage = st.one_of(
    st.none(), st.integers(), st.text(max_size=5),
    arrays(st.sampled_from([np.float32, np.float64, np.uint8, np.int32, np.bool_]),
           st.lists(st.integers(0, 6), max_size=4).map(tuple)),  # any rank, any values of the dtype
    arrays(np.float32, st.tuples(st.integers(1, 40), st.integers(1, 40)), elements=VALUES),
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mask=garbage, preset=st.sampled_from(sorted(PROCESSORS)))
def test_a_background_mode_never_shows_the_room_whatever_the_mask(mask, preset) -> None:
    proc = PROCESSORS[preset]
    SEGMENTER.mask = mask
    CLOCK.now += HOLD_S + 1  # no good mask to hold on to any more
    proc.captured.publish_copy(FRAME)
    assert proc.step(timeout=0)
    out = proc.finished.take_slot(timeout=0).image
    assert out.shape == (720, 1280, 3)
    if mask_problem(mask) is not None:
        assert proc.stats.fail_closed and _coarse_detail(out) < 0.1 * _coarse_detail(FRAME)
    else:
        assert proc.stats.fail_closed is None


@pytest.mark.parametrize("mask, problem", [
    (np.full((9, 16), 0.5, np.float32), None),
    (np.full((9, 16), 200, np.uint8), None),
    (np.full((9, 16), 3.0, np.float32), "outside 0..1"),
    (np.full((9, 16), np.nan, np.float32), "NaN"),
    (np.zeros((1, 1, 9, 16), np.float32), "rank 4"),
    (np.zeros((9, 16), np.int64), "dtype int64"),
    (np.zeros((1, 16), np.float32), "too small"),
    ([[0.5]], "list"),
])
def test_mask_problems_are_named(mask, problem) -> None:
    found = mask_problem(mask)
    assert found is None if problem is None else problem in found
