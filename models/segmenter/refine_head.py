"""A learned refine head at twice the coarse model's resolution, in the ONNX graph (training-time torch code).

    net = RefinedNet(OnnxNet.from_onnx(LANDSCAPE))   # input image [N,3,2h,2w] -> mask [N,1,2h,2w]

The coarse network sees the frame 2x2-averaged to its own size (144x256 for MediaPipe landscape); its logits are
upsampled bilinearly to the frame's 2x size and corrected there by a small head that sees the full-resolution frame
and the coarse mask: 3x3 conv (4 -> 8) + ReLU, depthwise 3x3 + ReLU, 1x1 conv (8 -> 1) added to the upsampled
logits. The last conv starts at zero, so an untrained head returns exactly the upsampled coarse mask. About
370 multiply-adds per output pixel (54M at 288x512).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class RefineHead(nn.Module):
    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(4, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, groups=width)
        self.out = nn.Conv2d(width, 1, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, image: torch.Tensor, coarse_logits: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(coarse_logits, size=image.shape[-2:], mode="bilinear", align_corners=False)
        h = F.relu(self.conv1(torch.cat([image - 0.5, torch.sigmoid(up)], dim=1)))
        h = F.relu(self.conv2(h))
        return up + self.out(h)


class RefinedNet(nn.Module):
    """Coarse network at half the input size + the refine head at the input size."""

    def __init__(self, coarse: nn.Module, coarse_hw: tuple[int, int] = (144, 256), width: int = 8) -> None:
        super().__init__()
        self.coarse = coarse
        self.head = RefineHead(width)
        self.input_hw = (2 * coarse_hw[0], 2 * coarse_hw[1])

    def forward(self, image: torch.Tensor, logits: bool = False, with_coarse: bool = False):
        coarse = self.coarse(F.avg_pool2d(image, 2), logits=True)
        refined = self.head(image, coarse)
        out = refined if logits else torch.sigmoid(refined)
        return (out, coarse) if with_coarse else out
