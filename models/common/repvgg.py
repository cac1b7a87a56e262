"""RepVGG re-parameterisable 3x3 convolution block (PyTorch, training only).

During training a :class:`RepConv3x3` sums three branches, each followed by BatchNorm:
a 3x3 conv, a 1x1 conv and (when ``in_ch == out_ch`` and ``stride == 1``) the identity.
:meth:`RepConv3x3.fold` turns the block into a single 3x3 conv with bias, giving the same
output (in eval mode) at the cost of one plain convolution. :func:`fold_model` folds every
block of a model in place; call it after ``model.eval()`` and before ONNX export.

Usage::

    from models.common.repvgg import RepConv3x3, fold_model
    block = RepConv3x3(16, 32, stride=2)          # 3x3 + 1x1 (+ identity) with BN, ReLU
    model.eval(); fold_model(model)                # every RepConv3x3 -> one 3x3 conv
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["RepConv3x3", "fold_model", "fuse_conv_bn"]


def fuse_conv_bn(weight: torch.Tensor, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (weight, bias) of a bias-free conv followed by ``bn`` (eval statistics)."""
    std = torch.sqrt(bn.running_var + bn.eps)
    scale = bn.weight / std
    return weight * scale.reshape(-1, 1, 1, 1), bn.bias - bn.running_mean * scale


class RepConv3x3(nn.Module):
    """3x3 conv block with parallel 1x1 and identity branches (each with BN), foldable to one 3x3 conv.

    Args:
        in_ch: input channels.
        out_ch: output channels.
        stride: 1 or 2 (the identity branch exists only for stride 1 and in_ch == out_ch).
        act: apply ReLU after the sum (True) or leave the block linear (False).
        groups: conv groups (1 = dense; in_ch = depthwise).
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, act: bool = True, groups: int = 1) -> None:
        super().__init__()
        self.in_ch, self.out_ch, self.stride, self.groups = in_ch, out_ch, stride, groups
        self.conv3 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, groups=groups, bias=False)
        self.bn3 = nn.BatchNorm2d(out_ch)
        # The 1x1 branch runs at stride 1 on a subsampled input: same result as a stride-2 1x1 conv, which
        # crashes in backward on channels_last tensors with few channels (torch 2.13 CPU).
        self.conv1 = nn.Conv2d(in_ch, out_ch, 1, 1, 0, groups=groups, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.bn_id = nn.BatchNorm2d(out_ch) if (in_ch == out_ch and stride == 1) else None
        self.act = nn.ReLU(inplace=True) if act else nn.Identity()
        self.folded: nn.Conv2d | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.folded is not None:
            return self.act(self.folded(x))
        x1 = x if self.stride == 1 else x[..., :: self.stride, :: self.stride]
        y = self.bn3(self.conv3(x)) + self.bn1(self.conv1(x1))
        if self.bn_id is not None:
            y = y + self.bn_id(x)
        return self.act(y)

    @torch.no_grad()
    def equivalent_kernel(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The (weight [out, in/groups, 3, 3], bias [out]) of the single conv equal to the three branches."""
        w3, b3 = fuse_conv_bn(self.conv3.weight, self.bn3)
        w1, b1 = fuse_conv_bn(self.conv1.weight, self.bn1)
        w = w3 + nn.functional.pad(w1, [1, 1, 1, 1])
        b = b3 + b1
        if self.bn_id is not None:
            per_group = self.in_ch // self.groups
            ident = torch.zeros_like(w3)
            for c in range(self.in_ch):
                ident[c, c % per_group, 1, 1] = 1.0
            wi, bi = fuse_conv_bn(ident, self.bn_id)
            w, b = w + wi, b + bi
        return w, b

    @torch.no_grad()
    def fold(self) -> None:
        """Replace the branches by one 3x3 conv (uses BN running statistics: call in eval mode)."""
        if self.folded is not None:
            return
        w, b = self.equivalent_kernel()
        conv = nn.Conv2d(self.in_ch, self.out_ch, 3, self.stride, 1, groups=self.groups, bias=True)
        conv.weight.copy_(w)
        conv.bias.copy_(b)
        conv.to(device=w.device, dtype=w.dtype)
        self.folded = conv
        for name in ("conv3", "bn3", "conv1", "bn1", "bn_id"):
            if hasattr(self, name):
                delattr(self, name)
        self.bn_id = None

    reparameterize = fold


def fold_model(model: nn.Module) -> nn.Module:
    """Fold every :class:`RepConv3x3` in ``model`` in place (sets eval mode) and return the model."""
    model.eval()
    for module in model.modules():
        if isinstance(module, RepConv3x3):
            module.fold()
    return model
