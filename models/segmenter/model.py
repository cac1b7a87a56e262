"""Encoder-decoder-refine portrait segmenter built from foldable 3x3 RepVGG blocks (PyTorch, training/export only).

- Encoder: a single path of :class:`RepConv3x3` blocks; each stage starts with a stride-2 3x3 conv.
- Decoder: from the deepest stage up, a 3x3 conv at the low resolution, nearest upsampling, addition of the
  encoder feature of that resolution (multi-level fusion); the last level lands at 1/2 resolution.
- Refine head: at 1/2 resolution, 3x3 convs over the fused decoder + first (edge-rich) encoder feature; a final
  3x3 conv predicts 4 sub-pixel logits per position that a depth-to-space rearranges into the full-resolution mask
  (a learned upsample: no transposed or bilinear ops).
- Edge branch (training only): the same sub-pixel head predicting mask boundaries; absent from the export.
Every conv is a 3x3 RepConv3x3 and at most 64 channels are used anywhere.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..common.repvgg import RepConv3x3


@dataclass(frozen=True)
class SegNetConfig:
    """Widths and depths of one tier."""

    enc_widths: tuple[int, ...] = (8, 16, 32, 48, 64)  # strides 2, 4, 8, 16, 32
    enc_depths: tuple[int, ...] = (1, 1, 2, 2, 2)
    dec_extra: int = 0  # extra 3x3 convs per decoder level after the fusion
    refine_depth: int = 1  # 3x3 convs at stride 2 before the sub-pixel head
    input_size: tuple[int, int] = (144, 256)  # H, W

    def to_dict(self) -> dict:
        return asdict(self)


TIERS: dict[str, SegNetConfig] = {
    "lite": SegNetConfig(),
    "full": SegNetConfig(enc_widths=(12, 24, 32, 64, 64), enc_depths=(1, 2, 2, 3, 2)),
}


def _up_to(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour upsample ``x`` to the spatial size of ``ref``."""
    return F.interpolate(x, size=ref.shape[-2:], mode="nearest")


class SegNet(nn.Module):
    """Portrait segmenter. ``forward`` returns mask logits [N,1,H,W]; ``forward_train`` also returns edge logits
    and the intermediate encoder features used for attention distillation.

    Decoder level k (from the deepest): a 3x3 conv maps the running feature to the width of the next-shallower
    encoder stage at the low resolution (cheap), it is upsampled (nearest) and added to that stage's feature.
    """

    def __init__(self, cfg: SegNetConfig = SegNetConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        stages: list[nn.Module] = []
        in_ch = 3
        for width, depth in zip(cfg.enc_widths, cfg.enc_depths):
            blocks = [RepConv3x3(in_ch, width, stride=2)]
            blocks += [RepConv3x3(width, width) for _ in range(depth - 1)]
            stages.append(nn.Sequential(*blocks))
            in_ch = width
        self.encoder = nn.ModuleList(stages)
        dec: list[nn.Module] = []
        widths = cfg.enc_widths
        for k in range(len(widths) - 1, 0, -1):  # from the deepest stage to stride 4
            blocks = [RepConv3x3(widths[k], widths[k]) for _ in range(cfg.dec_extra if k < len(widths) - 1 else 0)]
            blocks.append(RepConv3x3(widths[k], widths[k - 1]))
            dec.append(nn.Sequential(*blocks))
        self.decoder = nn.ModuleList(dec)
        w0 = widths[0]
        self.refine = nn.Sequential(*[RepConv3x3(w0, w0) for _ in range(cfg.refine_depth)])
        self.head = RepConv3x3(w0, 4, act=False)  # 4 sub-pixel logits -> x2 by depth-to-space
        self.edge_head = RepConv3x3(w0, 4, act=False)  # training only

    def _features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        feats = []
        for stage in self.encoder:
            x = stage(x)
            feats.append(x)
        y = feats[-1]
        for i, fuse in enumerate(self.decoder):
            skip = feats[-2 - i]
            y = _up_to(fuse(y), skip) + skip
        return self.refine(y), feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r, _ = self._features(x)
        return F.pixel_shuffle(self.head(r), 2)

    def forward_train(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """(mask logits, edge logits, encoder features at strides 2, 4, 8, 16, 32)."""
        r, feats = self._features(x)
        return F.pixel_shuffle(self.head(r), 2), F.pixel_shuffle(self.edge_head(r), 2), feats


class ExportWrapper(nn.Module):
    """The shipped graph: RGB [0,1] image in, person probability out (sigmoid inside the graph).

    ``flip_tta``: also run the mirrored image and average the two probabilities (twice the compute, steadier and
    slightly more accurate masks; used by the ``full`` tier)."""

    def __init__(self, net: SegNet, flip_tta: bool = False) -> None:
        super().__init__()
        self.net = net
        self.flip_tta = flip_tta

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        prob = torch.sigmoid(self.net(image))
        if self.flip_tta:
            prob = 0.5 * (prob + torch.flip(torch.sigmoid(self.net(torch.flip(image, dims=[3]))), dims=[3]))
        return prob


def count_macs(net: nn.Module, input_size: tuple[int, int]) -> int:
    """Multiply-accumulates of the conv layers for one [1,3,H,W] input (the export graph, no edge head)."""
    macs = 0

    def hook(mod: nn.Conv2d, _inp, out) -> None:
        nonlocal macs
        k = mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
        macs += int(out.numel() * k)

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, nn.Conv2d)]
    was_training = net.training
    net.eval()
    with torch.no_grad():
        net(torch.zeros(1, 3, *input_size))
    net.train(was_training)
    for h in handles:
        h.remove()
    return macs
