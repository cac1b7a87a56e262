"""MediaPipe selfie segmentation as a trainable torch module, built from our converted ONNX graph.

    net = OnnxNet.from_onnx(Path("models/mediapipe/selfie_segmentation_landscape.onnx"))
    logits = net(x, logits=True)   # x: float32 [N,3,H,W] RGB 0..1

Every ONNX node becomes one step of a small interpreter; every initializer of a Conv / ConvTranspose becomes an
``nn.Parameter`` (so the whole network can be fine-tuned), the Resize scale constants stay buffers. Only the op
kinds our converter (``models.mediapipe.convert``) writes for the selfie models are supported; anything else
raises ``NotImplementedError``. Resize (half-pixel, linear) maps to ``F.interpolate(bilinear,
align_corners=False)``, which matches ONNX Runtime for any batch size. Training-time only (imports torch).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import helper, numpy_helper
from torch import nn


@dataclass(frozen=True)
class Node:
    op: str
    inputs: tuple[str, ...]
    output: str
    attrs: dict


def _key(name: str) -> str:
    """Initializer name -> a valid ``nn.ParameterDict`` key."""
    return name.replace("/", "__").replace(".", "_")


def _torch_pad(pads: list[int]) -> tuple[int, int, int, int]:
    """ONNX 2-D pads [top, left, bottom, right] -> F.pad order (left, right, top, bottom)."""
    top, left, bottom, right = pads
    return left, right, top, bottom


class OnnxNet(nn.Module):
    """An ONNX graph of Conv/ConvTranspose/Relu/HardSwish/Sigmoid/Add/Mul/GlobalAveragePool/AveragePool/Resize
    in torch (AveragePool: no padding, as ``models.segmenter.lite_graph`` writes it)."""

    SUPPORTED = {"Conv", "ConvTranspose", "Relu", "HardSwish", "Sigmoid", "Add", "Mul", "GlobalAveragePool",
                 "AveragePool", "Resize"}

    def __init__(self, nodes: list[Node], params: dict[str, np.ndarray], consts: dict[str, np.ndarray],
                 input_name: str, output_name: str) -> None:
        super().__init__()
        unsupported = sorted({n.op for n in nodes} - self.SUPPORTED)
        if unsupported:
            raise NotImplementedError(f"ONNX ops not supported by OnnxNet: {unsupported}")
        if not nodes or nodes[-1].op != "Sigmoid" or nodes[-1].output != output_name:
            raise NotImplementedError("OnnxNet expects the graph to end in Sigmoid -> output")
        self.nodes = nodes
        self.input_name, self.output_name = input_name, output_name
        self.weights = nn.ParameterDict({_key(k): nn.Parameter(torch.from_numpy(v.copy())) for k, v in params.items()})
        self.consts = {k: v for k, v in consts.items()}

    @classmethod
    def from_onnx(cls, path: Path) -> "OnnxNet":
        model = onnx.load(str(path))
        graph = model.graph
        init = {t.name: numpy_helper.to_array(t).astype(np.float32) for t in graph.initializer}
        nodes = [Node(n.op_type, tuple(n.input), n.output[0],
                      {a.name: helper.get_attribute_value(a) for a in n.attribute}) for n in graph.node]
        trainable = {name for n in nodes if n.op in ("Conv", "ConvTranspose") for name in n.inputs[1:] if name}
        params = {k: v for k, v in init.items() if k in trainable}
        consts = {k: v for k, v in init.items() if k not in trainable}
        return cls(nodes, params, consts, graph.input[0].name, graph.output[0].name)

    def _w(self, name: str) -> torch.Tensor:
        return self.weights[_key(name)]

    def _step(self, node: Node, env: dict[str, torch.Tensor]) -> torch.Tensor:
        a = env[node.inputs[0]]
        if node.op == "Conv":
            pads = _torch_pad(list(node.attrs.get("pads", [0, 0, 0, 0])))
            if any(pads):
                a = F.pad(a, pads)
            bias = self._w(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] else None
            return F.conv2d(a, self._w(node.inputs[1]), bias, stride=tuple(node.attrs.get("strides", [1, 1])),
                            dilation=tuple(node.attrs.get("dilations", [1, 1])), groups=node.attrs.get("group", 1))
        if node.op == "ConvTranspose":
            if any(node.attrs.get("pads", [0, 0, 0, 0])) or any(node.attrs.get("output_padding", [0, 0])):
                raise NotImplementedError("ConvTranspose with pads / output_padding")
            bias = self._w(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] else None
            return F.conv_transpose2d(a, self._w(node.inputs[1]), bias, stride=tuple(node.attrs["strides"]),
                                      groups=node.attrs.get("group", 1))
        if node.op == "Relu":
            return F.relu(a)
        if node.op == "HardSwish":
            return F.hardswish(a)
        if node.op == "Sigmoid":
            return torch.sigmoid(a)
        if node.op == "Add":
            return a + env[node.inputs[1]]
        if node.op == "Mul":
            return a * env[node.inputs[1]]
        if node.op == "GlobalAveragePool":
            return a.mean(dim=(2, 3), keepdim=True)
        if node.op == "AveragePool":
            if any(node.attrs.get("pads", [0, 0, 0, 0])) or node.attrs.get("ceil_mode", 0):
                raise NotImplementedError("AveragePool with pads / ceil_mode")
            return F.avg_pool2d(a, tuple(node.attrs["kernel_shape"]),
                                tuple(node.attrs.get("strides", node.attrs["kernel_shape"])))
        # Resize (checked in __init__): half-pixel linear with constant scales
        if node.attrs.get("mode", b"") != b"linear" or node.attrs.get("coordinate_transformation_mode") != b"half_pixel":
            raise NotImplementedError(f"Resize {node.attrs}")
        scales = self.consts[node.inputs[2]]
        return F.interpolate(a, scale_factor=(float(scales[2]), float(scales[3])), mode="bilinear",
                             align_corners=False)

    def forward(self, x: torch.Tensor, logits: bool = False) -> torch.Tensor:
        """Person probability [N,1,H,W] (or its logits, before the final Sigmoid, when ``logits``)."""
        env = {self.input_name: x}
        for node in self.nodes[:-1]:
            env[node.output] = self._step(node, env)
        pre = env[self.nodes[-1].inputs[0]]
        return pre if logits else torch.sigmoid(pre)


class ExportWrapper(nn.Module):
    """Contract wrapper for ONNX export: ``image`` float32 [1,3,H,W] RGB 0..1 -> ``mask`` [1,1,H,W]."""

    def __init__(self, net: OnnxNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image)
