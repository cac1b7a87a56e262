"""Losses shared by vcam's training scripts (PyTorch, training only)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["attention_map", "attention_loss", "boundary_band", "soft_dice_loss", "shift_consistency_loss"]


def attention_map(feat: torch.Tensor) -> torch.Tensor:
    """Spatial attention of a feature map [N,C,H,W] -> [N,H*W]: channel mean of squares, L2-normalised."""
    a = feat.float().pow(2).mean(dim=1)
    return F.normalize(a.flatten(1), dim=1)


def attention_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Attention transfer (Zagoruyko & Komodakis): squared distance of the normalised spatial attention maps.

    Channel counts may differ (they are reduced away); the student map is resized to the teacher's size.
    """
    if student.shape[-2:] != teacher.shape[-2:]:
        student = F.interpolate(student, size=teacher.shape[-2:], mode="bilinear", align_corners=False)
    return (attention_map(student) - attention_map(teacher)).pow(2).sum(dim=1).mean()


def boundary_band(mask: torch.Tensor, radius: int = 2) -> torch.Tensor:
    """1 within ``radius`` px of the 0.5 contour of ``mask`` [N,1,H,W], else 0 (morphological gradient)."""
    k = 2 * radius + 1
    hard = (mask > 0.5).float()
    dil = F.max_pool2d(hard, k, 1, radius)
    ero = -F.max_pool2d(-hard, k, 1, radius)
    return dil - ero


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """1 - soft Dice per sample, averaged with optional per-sample ``weight`` [N]."""
    p = torch.sigmoid(logits).flatten(1)
    t = target.flatten(1)
    dice = (2 * (p * t).sum(1) + 1) / (p.sum(1) + t.sum(1) + 1)
    loss = 1 - dice
    if weight is None:
        return loss.mean()
    return (loss * weight).sum() / weight.sum().clamp_min(1e-6)


def shift_consistency_loss(prob: torch.Tensor, prob_shifted: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """Mean |prob - unshift(prob_shifted)| over the overlap, where prob_shifted was computed on the input moved
    by (dx, dy) pixels (content at (x, y) now at (x + dx, y + dy))."""
    h, w = prob.shape[-2:]
    a = prob[..., max(0, -dy): h - max(0, dy), max(0, -dx): w - max(0, dx)]
    b = prob_shifted[..., max(0, dy): h - max(0, -dy), max(0, dx): w - max(0, -dx)]
    return (a - b).abs().mean()
