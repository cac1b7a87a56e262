"""TinySR: a 2x luma super-resolution network small enough for one CPU thread at 360p (PyTorch, training only).

Layout (``C`` = 16 channels, everything at half the input resolution):

    Y [1,1,H,W] -> edge-pad 2 -> pixel_unshuffle(2) -> RepConv3x3(4, C) -> RepConv3x3(C, C) -> RepConv3x3(C, 16, linear)
                -> + bicubic anchor (fixed) -> pixel_shuffle(4) -> Y' [1,1,2H,2W]

Working on the space-to-depth input keeps ONNX Runtime's convolutions at 16 channels, a multiple of its
AVX-512 block size, which is what makes it fast (the same FLOPs at full resolution with 4-8 channels run
2-3x slower). The network only learns a residual over bicubic upscaling ("anchor"); the anchor is a fixed
linear map of the input, added before the pixel shuffle. Edge padding of the input makes the anchor equal
OpenCV's INTER_CUBIC resize everywhere, borders included.

For export, :func:`to_inference` folds the RepVGG branches and rewrites the unshuffle + first 3x3 conv as
one 6x6 stride-2 conv on the full-resolution input (the same arithmetic, no transpose), and the anchor as a
fixed 6x6 stride-2 conv whose sum ONNX Runtime fuses into the last conv (when the session's input shape is
fixed). Input H and W must be even. The exported graph (:meth:`TinySRInference.core` + a uint8
``QuantizeLinear``) leaves the edge padding and the final pixel shuffle to the caller
(``postprocess/upscale.py``), where OpenCV does them cheaper.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..common.ecb import ECBConv3x3
from ..common.repvgg import RepConv3x3, fold_model

__all__ = ["TinySR", "TinySRInference", "bicubic_anchor_kernel", "to_inference"]


def _cubic(t: float, a: float = -0.75) -> float:
    """Keys cubic kernel (a = -0.75, as OpenCV's INTER_CUBIC)."""
    t = abs(t)
    if t <= 1:
        return (a + 2) * t**3 - (a + 3) * t**2 + 1
    if t < 2:
        return a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a
    return 0.0


def bicubic_anchor_kernel() -> np.ndarray:
    """Weights [16, 1, 6, 6] of the stride-2 conv that, on the input edge-padded by 2, equals 2x bicubic
    upscaling (half-pixel centres, as cv2.resize INTER_CUBIC) followed by pixel_unshuffle(4).

    Output channel ``4*my + mx`` holds hi-res pixel (4p+my, 4q+mx); tap ``a`` reads input row 2p-2+a.
    """
    taps = np.zeros((4, 6), np.float64)
    for m in range(4):
        # hi-res row X = 4p + m maps to source coordinate X/2 - 0.25 = 2p + m/2 - 0.25
        src = m / 2 - 0.25
        for a in range(6):
            taps[m, a] = _cubic(src - (a - 2))
    taps /= taps.sum(axis=1, keepdims=True)
    kernel = np.einsum("ia,jb->ijab", taps, taps).reshape(16, 1, 6, 6)
    return kernel.astype(np.float32)


def _anchor_from_unshuffled() -> torch.Tensor:
    """The bicubic anchor as a 3x3 conv on the pixel_unshuffle(2) input: weights [16, 4, 3, 3]."""
    return torch.from_numpy(_conv6s2_to_unshuffled(bicubic_anchor_kernel()))


def _conv6s2_to_unshuffled(w6: np.ndarray) -> np.ndarray:
    """[O,1,6,6] stride-2 conv weights on x -> the equal [O,4,3,3] conv on pixel_unshuffle(x, 2)."""
    out = np.zeros((w6.shape[0], 4, 3, 3), w6.dtype)
    for a in range(6):
        for b in range(6):
            out[:, (a % 2) * 2 + (b % 2), a // 2, b // 2] = w6[:, 0, a, b]
    return out


def _unshuffled_to_conv6s2(w3: torch.Tensor) -> torch.Tensor:
    """[O,4,3,3] conv on pixel_unshuffle(x, 2) -> the equal [O,1,6,6] stride-2 conv on x."""
    out = w3.new_zeros((w3.shape[0], 1, 6, 6))
    for a in range(6):
        for b in range(6):
            out[:, 0, a, b] = w3[:, (a % 2) * 2 + (b % 2), a // 2, b // 2]
    return out


class TinySR(nn.Module):
    """Training form: RepVGG blocks on the pixel_unshuffle(2) input, residual over a fixed bicubic anchor.

    Args:
        channels: feature channels (keep a multiple of 16 for ONNX Runtime's blocked convolutions).
        blocks: 3x3 blocks between the head and the tail.
        block: ``"rep"`` (RepVGG: 3x3, 1x1, identity) or ``"ecb"`` (those plus expand-squeeze and
            Sobel/Laplacian branches); both fold into the same plain 3x3 convs.
        learn_anchor: train the linear anchor too (starts as bicubic; exported as the same fixed-size conv,
            so the inference graph and its cost do not change).
    """

    def __init__(self, channels: int = 16, blocks: int = 1, block: str = "rep", learn_anchor: bool = False) -> None:
        super().__init__()
        self.channels, self.blocks = channels, blocks
        if block not in ("rep", "ecb"):
            raise ValueError(f"block must be 'rep' or 'ecb', not {block!r}")
        make = (lambda i, o, act=True: RepConv3x3(i, o, act=act)) if block == "rep" else ECBConv3x3
        self.head = make(4, channels)
        self.body = nn.Sequential(*[make(channels, channels) for _ in range(blocks)])
        self.tail = make(channels, 16, act=False)
        if learn_anchor:
            self.anchor_w = nn.Parameter(_anchor_from_unshuffled())
        else:
            self.register_buffer("anchor_w", _anchor_from_unshuffled(), persistent=False)
        # start as plain bicubic: the residual branch outputs zero until it learns something
        for bn in (self.tail.bn3, self.tail.bn1, self.tail.bn_id):
            if bn is not None:
                nn.init.zeros_(bn.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = F.pixel_unshuffle(F.pad(x, (2, 2, 2, 2), mode="replicate"), 2)
        # the head's 3x3 conv pads by 1: dropping its outermost outputs makes it a valid (unpadded) conv
        f = self.head(u)[:, :, 1:-1, 1:-1]
        y = self.tail(self.body(f)) + F.conv2d(u, self.anchor_w)
        return F.pixel_shuffle(y, 4)


class TinySRInference(nn.Module):
    """Export form: plain convs only (what the shipped ONNX contains)."""

    def __init__(self, head: nn.Conv2d, body: list[nn.Conv2d], tail: nn.Conv2d,
                 anchor: torch.Tensor | None = None) -> None:
        super().__init__()
        self.head = head
        self.body = nn.ModuleList(body)
        self.tail = tail
        self.anchor = nn.Conv2d(1, 16, 6, 2, 0, bias=False)
        with torch.no_grad():
            self.anchor.weight.copy_(torch.from_numpy(bicubic_anchor_kernel()) if anchor is None else anchor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(self.core(F.pad(x, (2, 2, 2, 2), mode="replicate")), 4)

    def core(self, xpad: torch.Tensor) -> torch.Tensor:
        """What the ONNX file holds (before its closing uint8 ``QuantizeLinear``, see ``export``): the 2x luma
        before the pixel shuffle.

        ``xpad``: the input edge-padded by 2, [1,1,H+4,W+4] -> [1,16,H/2,W/2], channel ``4*my + mx`` = 2x pixel
        (4p+my, 4q+mx). The stage pads and shuffles itself: cheaper in OpenCV (the shuffle on uint8) than
        ORT's Pad and DepthToSpace on float."""
        y = torch.relu(self.head(xpad))
        for conv in self.body:
            y = torch.relu(conv(y))
        return self.tail(y) + self.anchor(xpad)


class _Core(nn.Module):
    """Export wrapper: :meth:`TinySRInference.core` as ``forward``."""

    def __init__(self, net: TinySRInference) -> None:
        super().__init__()
        self.net = net

    def forward(self, xpad: torch.Tensor) -> torch.Tensor:
        return self.net.core(xpad)


@torch.no_grad()
def to_inference(model: TinySR) -> TinySRInference:
    """Fold ``model`` (in place, eval mode) and return the equivalent plain-conv network."""
    fold_model(model)
    hw, hb = model.head.folded.weight, model.head.folded.bias
    head = nn.Conv2d(1, model.channels, 6, 2, 0)
    head.weight.copy_(_unshuffled_to_conv6s2(hw))
    head.bias.copy_(hb)
    body = [blk.folded for blk in model.body]
    anchor = _unshuffled_to_conv6s2(model.anchor_w.detach())
    return TinySRInference(head, body, model.tail.folded, anchor).eval()
