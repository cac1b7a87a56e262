"""Shipped face detector (YuNet, MIT) used by the beauty stage.

``face_detection_yunet.onnx`` sits beside this file with its card ``face_detection_yunet.json`` and its
licence ``LICENSE``; the daemon gets the path from :func:`yunet_path` and never reads ``../shared``.
"""

from __future__ import annotations

from pathlib import Path

YUNET_FILE = "face_detection_yunet.onnx"


def yunet_path() -> Path:
    """Path of the shipped YuNet face detector (runs with ``cv2.FaceDetectorYN``)."""
    return Path(__file__).resolve().parent / YUNET_FILE
