"""The teacher ensemble for webcam frames: MediaPipe landscape + its mirror image + MediaPipe general, averaged.

    teacher = Ensemble.load()
    label = teacher(frame_bgr)   # float32 [H, W] person probability at the frame's size

Each member sees what the daemon would feed it (``cv2.INTER_AREA`` resize to its input size, RGB, /255) and its
mask is resized back to the frame bilinearly. ONNX Runtime, one thread (numpy + OpenCV + ORT, no torch).
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

MEDIAPIPE = Path(__file__).resolve().parents[1] / "mediapipe"
LANDSCAPE = MEDIAPIPE / "selfie_segmentation_landscape.onnx"
GENERAL = MEDIAPIPE / "selfie_segmentation.onnx"


def session(path: Path) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def run_model(sess: ort.InferenceSession, frame_bgr: np.ndarray) -> np.ndarray:
    """Mask float32 at the frame size for one ONNX segmenter (contract: ``image`` -> ``mask``)."""
    _, _, h, w = sess.get_inputs()[0].shape
    small = cv2.resize(frame_bgr, (int(w), int(h)), interpolation=cv2.INTER_AREA)
    x = cv2.cvtColor(small, cv2.COLOR_BGR2RGB).astype(np.float32).transpose(2, 0, 1)[None] / 255.0
    mask = sess.run(["mask"], {"image": x})[0][0, 0]
    return cv2.resize(mask, frame_bgr.shape[1::-1], interpolation=cv2.INTER_LINEAR)


class Ensemble:
    def __init__(self, landscape: ort.InferenceSession, general: ort.InferenceSession) -> None:
        self.landscape, self.general = landscape, general

    @classmethod
    def load(cls) -> "Ensemble":
        return cls(session(LANDSCAPE), session(GENERAL))

    def __call__(self, frame_bgr: np.ndarray) -> np.ndarray:
        frame_bgr = np.ascontiguousarray(frame_bgr)
        mirrored = run_model(self.landscape, np.ascontiguousarray(frame_bgr[:, ::-1]))[:, ::-1]
        total = run_model(self.landscape, frame_bgr) + mirrored + run_model(self.general, frame_bgr)
        return (total / 3.0).astype(np.float32)
