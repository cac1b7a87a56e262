"""YuNet on ONNX Runtime gives cv2.FaceDetectorYN's detections (same boxes, landmarks and scores)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from models.faces import yunet_path
from vcam.sources import demo_clip_path
from vcam.postprocess.yunet import YuNet


def _demo_frames(count: int = 6, step: int = 25) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(demo_clip_path()))
    frames = []
    for i in range(count * step):
        ok, frame = cap.read()
        assert ok
        if i % step == 0:
            frames.append(frame)
    return frames


def _sorted(rows: np.ndarray | None) -> np.ndarray:
    if rows is None:
        return np.empty((0, 15), np.float32)
    return rows[np.argsort(-rows[:, 14])]


@pytest.mark.parametrize("size", [(320, 180), (320, 320), (160, 96)])
def test_same_detections_as_opencv_on_real_frames(size: tuple[int, int]) -> None:
    path = str(yunet_path())
    reference = cv2.FaceDetectorYN.create(path, "", size, 0.6)
    ours = YuNet(path, size, 0.6)
    found = 0
    for frame in _demo_frames():
        image = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
        expected, got = _sorted(reference.detect(image)[1]), _sorted(ours.detect(image)[1])
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, atol=1e-3)
        found += len(got)
    assert found >= 3  # the demo clip's speaker is found: the comparison is not between two empty lists


def test_a_crop_around_the_face_and_a_frame_without_one() -> None:
    path = str(yunet_path())
    frame = _demo_frames(1)[0]
    reference = cv2.FaceDetectorYN.create(path, "", (320, 180), 0.6)
    x, y, w, h = (int(v) for v in _sorted(reference.detect(cv2.resize(frame, (320, 180)))[1])[0][:4])
    scale = frame.shape[1] / 320
    side = int(2 * max(w, h) * scale)
    cx, cy = int((x + w / 2) * scale), int((y + h / 2) * scale)
    crop = cv2.resize(frame[max(0, cy - side // 2):cy + side // 2, max(0, cx - side // 2):cx + side // 2], (96, 96))
    crop_ref = cv2.FaceDetectorYN.create(path, "", (96, 96), 0.6)
    ours = YuNet(path, (96, 96), 0.6)
    count, rows = ours.detect(crop)
    assert count == 1
    np.testing.assert_allclose(_sorted(rows), _sorted(crop_ref.detect(crop)[1]), atol=1e-3)
    assert ours.detect(np.full((96, 96, 3), 128, np.uint8)) == (0, None)


def test_the_input_size_is_checked_and_can_change() -> None:
    ours = YuNet(str(yunet_path()), (96, 96))
    with pytest.raises(ValueError, match="set to 96x96"):
        ours.detect(np.zeros((100, 100, 3), np.uint8))
    ours.set_input_size((100, 100))
    assert ours.detect(np.zeros((100, 100, 3), np.uint8)) == (0, None)
