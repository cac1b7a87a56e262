"""TinySR: vcam's tiny learned 2x luma super-resolution (architecture, data, training, export, shipped ONNX).

``tinysr_x2.onnx`` sits beside this file with its card ``tinysr_x2.json`` and licence ``LICENSE``; the
daemon gets the path from :func:`shipped_model_path` and never reads ``../shared``. Importing this package
does not import torch (only ``net``, ``train`` and ``export`` do).
"""

from __future__ import annotations

from pathlib import Path

MODEL_FILE = "tinysr_x2.onnx"
CARD_FILE = "tinysr_x2.json"


def shipped_model_path() -> Path:
    """Path of the shipped 2x luma super-resolution model (ONNX: input ``image`` [1,1,H+4,W+4], the luma / 255
    edge-padded by 2 -> ``sr`` uint8 [1,16,H/2,W/2], the 2x luma before the pixel shuffle; see the card)."""
    return Path(__file__).resolve().parent / MODEL_FILE


def shipped_card_path() -> Path:
    """Path of the shipped model's card (JSON)."""
    return Path(__file__).resolve().parent / CARD_FILE
