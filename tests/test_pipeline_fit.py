"""Camera frames of another aspect ratio than the output are framed (cropped or padded), never stretched
unless output.fit = "stretch" asks for it."""

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


def test_crop_takes_the_centre_as_before() -> None:
    config = build_config({"preset": "off", "output": {"sinks": [], "fit": "crop"}, "upscale": {"mode": "off"}})
    pipeline = Pipeline(config, segmenter=None)
    pipeline.process(_disk_frame(640, 480))
    assert pipeline.framing_window == fit_window(640, 480, 1280, 720) == (0, 60, 640, 360)


class ColourSegmenter:
    """An ideal segmenter for the synthetic scenes: the person is the pixels of the person's colour."""

    def segment(self, frame: np.ndarray, gate: object = None) -> tuple[np.ndarray, list[np.ndarray]]:
        person = np.all(np.abs(frame.astype(np.int16) - (120, 150, 200)) < 8, axis=2).astype(np.float32)
        return cv2.resize(person, (256, 144), interpolation=cv2.INTER_AREA), []


class SizeRecordingSegmenter(ColourSegmenter):
    def __init__(self) -> None:
        self.sizes: list[tuple[int, int]] = []

    def segment(self, frame: np.ndarray, gate: object = None) -> tuple[np.ndarray, list[np.ndarray]]:
        self.sizes.append((frame.shape[1], frame.shape[0]))
        return super().segment(frame, gate)


def test_a_camera_larger_than_the_output_is_shrunk_before_segmenting() -> None:
    """A 1080p camera on a 720p output: the segmenter (and every later stage) sees the 720p frame."""
    seg = SizeRecordingSegmenter()
    config = build_config({"preset": "blur", "output": {"width": 1280, "height": 720, "sinks": []}})
    pipeline = Pipeline(config, segmenter=seg)  # type: ignore[arg-type]
    frame = _disk_frame(1920, 1080)
    out = pipeline.process(frame)
    assert seg.sizes == [(1280, 720)] and out.shape == (720, 1280, 3)
    assert pipeline.timings_ms["upscale"] < pipeline.timings_ms["fit"]  # nothing left to resize there
    plain = cv2.resize(frame, (1280, 720), interpolation=cv2.INTER_LINEAR)
    passthrough = build_config({"preset": "off", "output": {"width": 1280, "height": 720, "sinks": []}})
    assert np.array_equal(Pipeline(passthrough, segmenter=None).process(frame), plain)


@pytest.mark.parametrize("camera", [(720, 1280), (720, 1080)])
def test_auto_fit_frames_the_head_of_an_upright_phone(camera: tuple[int, int]) -> None:
    from tests.framing_scenes import Person, draw_people, head_inside

    person = Person(camera[0] / 2 - 40, camera[1] * 0.25, camera[0] * 0.3)
    frame, _ = draw_people(*camera, [person])
    config = build_config({"output": {"sinks": []}, "upscale": {"mode": "off"}, "framing": {"faces": False}})
    assert config.output.fit == "auto"  # the default
    pipeline = Pipeline(config, segmenter=ColourSegmenter())  # type: ignore[arg-type]
    assert not head_inside(person.face(), fit_window(*camera, 1280, 720), camera)  # the centre crop cuts it
    for _ in range(3):
        out = pipeline.process(frame)
    assert out.shape == (720, 1280, 3)
    assert head_inside(person.face(), pipeline.framing_window, camera)
    assert person.face().h / pipeline.framing_window[3] <= 0.5


def test_framing_mode_switches_through_vcam_set() -> None:
    from vcam.config import ConfigError
    from vcam.live_config import LiveConfig

    config = build_config({"preset": "off", "output": {"sinks": []}, "upscale": {"mode": "off"}})
    pipeline = Pipeline(config, segmenter=None)
    live = LiveConfig(config, pipeline.configure)  # what `vcam set` and the control API's "set" go through
    frame = _disk_frame(1280, 720)
    pipeline.process(frame)
    assert pipeline.framing_window is None  # a 16:9 camera passes as it is
    live.set_field("framing.mode", "auto")
    pipeline.process(frame)
    assert pipeline.framing_window == (0, 0, 1280, 720)  # nobody found yet: the whole frame, now framed
    with pytest.raises(ConfigError, match="framing.mode"):
        live.set_field("framing.mode", "follow")
    assert pipeline.config.framing.mode == "auto"  # the refused change left the running config alone


def test_a_zoomed_in_window_goes_through_super_resolution() -> None:
    from tests.framing_scenes import Person, draw_people, head_inside

    person = Person(700, 260, 120)
    frame, _ = draw_people(1280, 720, [person])
    config = build_config({"output": {"sinks": []}, "framing": {"mode": "auto", "faces": False}})
    pipeline = Pipeline(config, segmenter=ColourSegmenter())  # type: ignore[arg-type]
    for _ in range(3):
        out = pipeline.process(frame)
    x0, y0, w, h = pipeline.framing_window
    assert h < 720 and w % 4 == 0 and h % 4 == 0  # cropped in (any window size the operator picks works)
    assert out.shape == (720, 1280, 3)
    assert head_inside(person.face(), pipeline.framing_window, (1280, 720))


def test_a_window_size_change_keeps_super_resolution_working() -> None:
    """A zoom hands the upscaler frames of a new size, super-resolution on: each comes out at the output size."""
    from tests.framing_scenes import Person, draw_people

    config = build_config({"output": {"sinks": [], "fit": "stretch"}, "upscale": {"mode": "on"}})  # frames as they are
    pipeline = Pipeline(config, segmenter=ColourSegmenter())  # type: ignore[arg-type]
    for height in (408, 408, 404, 404):  # the person reaches the bottom edge in both sizes
        frame, _ = draw_people(720, height, [Person(360, 150, 150)])
        assert pipeline.process(frame).shape == (720, 1280, 3)
