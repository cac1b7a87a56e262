"""Camera frames of another aspect ratio than the output are cropped to its centre, never stretched."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from vcam.config import build_config
from vcam.pipeline import Pipeline, fit_window


def test_fit_window_crops_the_centre_to_the_output_aspect() -> None:
    assert fit_window(640, 480, 1280, 720) == (0, 60, 640, 360)  # 4:3 webcam, 16:9 output: top and bottom go
    assert fit_window(1280, 800, 1280, 720) == (0, 40, 1280, 720)  # 16:10
    assert fit_window(1280, 720, 640, 480) == (160, 0, 960, 720)  # wider than a 4:3 output: the sides go
    assert fit_window(1920, 1080, 1280, 720) is None  # same aspect: nothing to crop
    assert fit_window(1280, 722, 1280, 720) is None  # within 1%
    x0, y0, w, h = fit_window(1000, 999, 1280, 720)
    assert w % 2 == 0 and h % 2 == 0 and x0 % 2 == 0 and y0 % 2 == 0


def _disk_frame(width: int, height: int) -> np.ndarray:
    frame = np.full((height, width, 3), 40, np.uint8)
    cv2.circle(frame, (width // 2, height // 2), height // 4, (255, 255, 255), -1)
    return frame


def _disk_size(out: np.ndarray) -> tuple[int, int]:
    ys, xs = np.nonzero(out[:, :, 0] > 127)
    return int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)


@pytest.mark.parametrize("camera", [(640, 480), (1280, 800), (960, 720)])
def test_a_round_disk_stays_round_in_the_output(camera: tuple[int, int]) -> None:
    config = build_config({"preset": "off", "output": {"width": 1280, "height": 720, "sinks": []},
                           "upscale": {"mode": "off"}})
    out = Pipeline(config, segmenter=None).process(_disk_frame(*camera))  # passthrough: the frame as it comes
    assert out.shape == (720, 1280, 3) and out.flags.c_contiguous
    w, h = _disk_size(out)
    assert abs(w / h - 1) < 0.03, (w, h)


def test_stretch_stretches_the_frame_to_the_output() -> None:
    config = build_config({"preset": "off", "output": {"width": 1280, "height": 720, "sinks": [], "fit": "stretch"},
                           "upscale": {"mode": "off"}})
    w, h = _disk_size(Pipeline(config, segmenter=None).process(_disk_frame(640, 480)))
    assert w / h > 1.3  # 4:3 -> 16:9 stretched by 4/3
