"""Time TinySR's design alternatives with random weights (ONNX Runtime, one thread, 640x360 luma input).

    python -m models.sr.candidates

Prints GFLOPs and CPU ms (median / min, round-robin so the shared machine's load hits all alike) for:
ESPCN-like nets at full input resolution (C channels, B body convs, nearest-repeat anchor), the same with
ORT's cubic Resize as the anchor, and TinySR (half resolution, 16 channels) with 1 and 2 body blocks.
"""

from __future__ import annotations

import io
import os
import time

import numpy as np
import onnxruntime as ort
import torch
import torch.nn.functional as F
from torch import nn

from .net import TinySR, to_inference


class FullRes(nn.Module):
    """ESPCN-like: 3x3 convs at the input resolution, C -> 4 sub-pixels, pixel_shuffle(2), plus an anchor."""

    def __init__(self, channels: int, body: int, anchor: str = "nearest") -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(1, channels, 3, 1, 1), nn.ReLU()]
        for _ in range(body):
            layers += [nn.Conv2d(channels, channels, 3, 1, 1), nn.ReLU()]
        layers.append(nn.Conv2d(channels, 4, 3, 1, 1))
        self.body = nn.Sequential(*layers)
        self.anchor = anchor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        if self.anchor == "nearest":
            return F.pixel_shuffle(y + x.repeat(1, 4, 1, 1), 2)
        return F.pixel_shuffle(y, 2) + F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)


def gflops(model: nn.Module, h: int = 360, w: int = 640) -> float:
    total = 0

    def hook(mod: nn.Module, _inp: object, out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(mod, nn.Conv2d):
            total += 2 * out.numel() * mod.in_channels // mod.groups * mod.kernel_size[0] * mod.kernel_size[1]

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    with torch.no_grad():
        model(torch.zeros(1, 1, h, w))
    for handle in handles:
        handle.remove()
    return total / 1e9


def session(model: nn.Module) -> ort.InferenceSession:
    buf = io.BytesIO()
    torch.onnx.export(model.eval(), (torch.zeros(1, 1, 360, 640),), buf, input_names=["image"], output_names=["sr"],
                      opset_version=17, dynamo=False)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(buf.getvalue(), so, providers=["CPUExecutionProvider"])


def main(runs: int = 30) -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    candidates: dict[str, nn.Module] = {
        "full-res C8 B1 (nearest anchor)": FullRes(8, 1),
        "full-res C16 B1 (nearest anchor)": FullRes(16, 1),
        "full-res C8 B1 (ORT cubic Resize anchor)": FullRes(8, 1, "bicubic"),
        "TinySR C16 B1 (shipped shape)": to_inference(TinySR(16, 1)),
        "TinySR C16 B2": to_inference(TinySR(16, 2)),
    }
    sessions = {name: session(m) for name, m in candidates.items()}
    x = np.random.default_rng(0).random((1, 1, 360, 640), dtype=np.float32)
    times: dict[str, list[float]] = {name: [] for name in sessions}
    for s in sessions.values():
        s.run(None, {"image": x})
    for _ in range(runs):
        for name, s in sessions.items():
            t0 = time.process_time()
            s.run(None, {"image": x})
            times[name].append((time.process_time() - t0) * 1e3)
    print("| candidate (random weights) | GFLOPs | CPU ms median | CPU ms min |")
    print("|---|---|---|---|")
    for name, m in candidates.items():
        t = times[name]
        print(f"| {name} | {gflops(m):.2f} | {np.median(t):.1f} | {np.min(t):.1f} |")
    print(f"\nload average (1 min) after timing: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
