"""Mask quality metrics shared by every evaluation script (numpy + OpenCV only)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np


def _binary(mask: np.ndarray, threshold: float) -> np.ndarray:
    """Binarise a mask given as float [0,1] or uint8 [0,255]."""
    m = mask.astype(np.float32)
    if mask.dtype == np.uint8:
        m /= 255.0
    return m >= threshold


def iou(pred: np.ndarray, gt: np.ndarray, threshold: float = 0.5) -> float:
    """Intersection over union of the two masks binarised at ``threshold``; 1.0 when both are empty."""
    p, g = _binary(pred, threshold), _binary(gt, threshold)
    union = np.logical_or(p, g).sum()
    if union == 0:
        return 1.0
    return float(np.logical_and(p, g).sum() / union)


def _boundary(m: np.ndarray) -> np.ndarray:
    u8 = m.astype(np.uint8)
    eroded = cv2.erode(u8, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REPLICATE)
    return (u8 - eroded).astype(bool)


def boundary_f(pred: np.ndarray, gt: np.ndarray, band_px: int = 3, threshold: float = 0.5) -> float:
    """Boundary F-score (DAVIS-style): precision and recall of boundary pixels matched within ``band_px``."""
    pb, gb = _boundary(_binary(pred, threshold)), _boundary(_binary(gt, threshold))
    if not pb.any() and not gb.any():
        return 1.0
    if not pb.any() or not gb.any():
        return 0.0
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band_px + 1, 2 * band_px + 1))
    gt_band = cv2.dilate(gb.astype(np.uint8), disk).astype(bool)
    pred_band = cv2.dilate(pb.astype(np.uint8), disk).astype(bool)
    precision = np.logical_and(pb, gt_band).sum() / pb.sum()
    recall = np.logical_and(gb, pred_band).sum() / gb.sum()
    if precision + recall == 0:
        return 0.0
    return float(2 * precision * recall / (precision + recall))


def _flow_grey(frame_bgr: np.ndarray, width: int) -> np.ndarray:
    h, w = frame_bgr.shape[:2]
    size = (width, max(1, round(h * width / w)))
    return cv2.cvtColor(cv2.resize(frame_bgr, size, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)


def unexplained_change(frames_bgr: Sequence[np.ndarray], masks: Sequence[np.ndarray], flow_width: int = 256) -> float:
    """Mean absolute mask change between consecutive frames that optical flow does not explain.

    For each pair (t-1, t), the previous mask is warped into frame t with dense Farneback flow computed on the
    frames (so genuine motion is forgiven), and the mean |mask_t - warped(mask_{t-1})| is taken over all pixels.
    Masks may be float [0,1] or uint8; they are compared at ``flow_width`` resolution. Lower is steadier. Compare
    models on the same frames (and for labelled sequences against the human masks' own value).
    """
    if len(frames_bgr) != len(masks) or len(frames_bgr) < 2:
        raise ValueError("need at least two frames and one mask per frame")
    greys = [_flow_grey(f, flow_width) for f in frames_bgr]
    h, w = greys[0].shape
    grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    soft = []
    for m in masks:
        m = m.astype(np.float32) / (255.0 if m.dtype == np.uint8 else 1.0)
        soft.append(cv2.resize(m, (w, h), interpolation=cv2.INTER_AREA))
    changes = []
    for t in range(1, len(greys)):
        # Flow from frame t to frame t-1: where each pixel of t came from.
        flow = cv2.calcOpticalFlowFarneback(greys[t], greys[t - 1], None, 0.5, 3, 15, 3, 5, 1.2, 0)
        warped = cv2.remap(soft[t - 1], grid_x + flow[..., 0], grid_y + flow[..., 1], cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)
        changes.append(float(np.abs(soft[t] - warped).mean()))
    return float(np.mean(changes))
