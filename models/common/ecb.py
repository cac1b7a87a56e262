"""Edge-oriented re-parameterisable 3x3 conv block (ECBSR-style; PyTorch, training only).

:class:`ECBConv3x3` is a :class:`~models.common.repvgg.RepConv3x3` (3x3, 1x1 and identity branches with BN)
with four more training-time branches, all linear in the input, so the block still folds into ONE 3x3 conv:

- expand-squeeze: 1x1 conv to ``expand * out_ch`` channels, then a 3x3 conv back to ``out_ch``, then BN;
- Sobel-x, Sobel-y, Laplacian: a 1x1 conv, then the fixed 3x3 edge mask per channel with a learned
  per-channel scale and bias (Zhang et al., "Edge-oriented Convolution Block for Real-time Super
  Resolution on Mobile Devices", 2021).

The 1x1 convs in front of the 3x3 stages have no bias, so the zero padding of the 3x3 stage sees exactly
what the folded conv's zero padding sees: the fold is exact at the borders too. The extra branches start
silent, so a block loaded from a plain RepConv3x3 checkpoint begins as that block.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .repvgg import RepConv3x3, fuse_conv_bn

__all__ = ["ECBConv3x3", "EDGE_MASKS"]

EDGE_MASKS = {
    "sobel_x": [[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]],
    "sobel_y": [[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]],
    "laplacian": [[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]],
}


class _EdgeBranch(nn.Module):
    """1x1 conv (no bias) -> fixed depthwise edge mask x learned per-channel scale, + learned bias."""

    def __init__(self, in_ch: int, out_ch: int, mask: list[list[float]]) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 1, bias=False)
        self.register_buffer("mask", torch.tensor(mask).reshape(1, 1, 3, 3), persistent=False)
        self.scale = nn.Parameter(torch.zeros(out_ch))  # silent at the start; the scale's gradient is not zero
        self.bias = nn.Parameter(torch.zeros(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.scale.reshape(-1, 1, 1, 1) * self.mask
        return F.conv2d(self.conv1(x), k, self.bias, padding=1, groups=k.shape[0])

    @torch.no_grad()
    def equivalent_kernel(self) -> tuple[torch.Tensor, torch.Tensor]:
        w1 = self.conv1.weight[:, :, 0, 0]  # [out, in]
        w = self.scale.reshape(-1, 1, 1, 1) * w1[:, :, None, None] * self.mask
        return w, self.bias.clone()


class ECBConv3x3(RepConv3x3):
    """RepConv3x3 plus expand-squeeze and Sobel/Laplacian branches; folds into one 3x3 conv (stride 1 only).

    Args:
        in_ch, out_ch, act: as :class:`RepConv3x3`.
        expand: width multiplier of the expand-squeeze branch.
    """

    def __init__(self, in_ch: int, out_ch: int, act: bool = True, expand: int = 2) -> None:
        super().__init__(in_ch, out_ch, stride=1, act=act)
        mid = expand * out_ch
        self.es1 = nn.Conv2d(in_ch, mid, 1, bias=False)
        self.es3 = nn.Conv2d(mid, out_ch, 3, 1, 1, bias=False)
        self.bn_es = nn.BatchNorm2d(out_ch)
        nn.init.zeros_(self.bn_es.weight)  # silent at the start
        self.edges = nn.ModuleList(_EdgeBranch(in_ch, out_ch, m) for m in EDGE_MASKS.values())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.folded is not None:
            return self.act(self.folded(x))
        y = self.bn3(self.conv3(x)) + self.bn1(self.conv1(x)) + self.bn_es(self.es3(self.es1(x)))
        if self.bn_id is not None:
            y = y + self.bn_id(x)
        for edge in self.edges:
            y = y + edge(x)
        return self.act(y)

    @torch.no_grad()
    def equivalent_kernel(self) -> tuple[torch.Tensor, torch.Tensor]:
        w, b = super().equivalent_kernel()
        # es3(es1(x)): kernel[o, i] = sum_m es3[o, m] * es1[m, i]
        w_es = torch.einsum("omhw,mi->oihw", self.es3.weight, self.es1.weight[:, :, 0, 0])
        w_es, b_es = fuse_conv_bn(w_es, self.bn_es)
        w, b = w + w_es, b + b_es
        for edge in self.edges:
            we, be = edge.equivalent_kernel()
            w, b = w + we, b + be
        return w, b

    @torch.no_grad()
    def fold(self) -> None:
        if self.folded is not None:
            return
        super().fold()
        for name in ("es1", "es3", "bn_es", "edges"):
            delattr(self, name)
