from __future__ import annotations

import numpy as np
import pytest

from vcam.sources import (CameraSource, SourceError, VideoFileSource, normalize_frame, open_source,
                          parse_camera_device)


def test_normalize_handles_grey_bgra_and_odd_sizes(demo_frame: np.ndarray) -> None:
    grey = demo_frame[:101, :203, 0]
    out = normalize_frame(grey)
    assert out.shape == (100, 202, 3) and out.flags.c_contiguous
    bgra = np.dstack([demo_frame, np.full(demo_frame.shape[:2], 255, np.uint8)])
    assert normalize_frame(bgra).shape == demo_frame.shape
    assert normalize_frame(demo_frame) is demo_frame  # the common case costs nothing


@pytest.mark.parametrize("bad", [np.zeros((10, 10, 2), np.uint8), np.zeros((10, 10, 3), np.float32),
                                 np.zeros((1, 1, 3), np.uint8)])
def test_normalize_rejects_unusable_frames(bad: np.ndarray) -> None:
    with pytest.raises(ValueError):
        normalize_frame(bad)


def test_demo_source_loops_and_reports_fps() -> None:
    src = open_source("demo", 1280, 720, 30, realtime=False)
    src.open()
    try:
        assert src.fps == pytest.approx(30, abs=0.5)
        frames = [src.read() for _ in range(300)]  # the clip has 282 frames: it must wrap around
        assert all(f is not None and f.shape == (720, 1280, 3) for f in frames)
    finally:
        src.close()


def test_camera_specs_parse() -> None:
    assert parse_camera_device("0") == 0
    assert parse_camera_device("/dev/video4") == "/dev/video4"
    assert parse_camera_device("clip.mp4") is None
    assert isinstance(open_source("2", 640, 480, 30), CameraSource)


def test_missing_camera_and_file_give_actionable_errors(tmp_path) -> None:
    with pytest.raises(SourceError, match="does not exist.*vcam devices"):
        CameraSource("/dev/video99", 1280, 720, 30).open()
    with pytest.raises(SourceError, match="not found"):
        VideoFileSource(tmp_path / "nope.mp4").open()
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video")
    with pytest.raises(SourceError, match="cannot decode"):
        VideoFileSource(junk).open()
