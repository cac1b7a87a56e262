"""Export the webcam-domain fine-tune of MediaPipe landscape to ONNX (the segmenter contract).

    python -m models.segmenter.export_mp --out runs/vcam_seg_webcam.onnx     # from checkpoints/webcam_mp.ckpt

    python -m models.segmenter.export_mp --input-size 192x336 --out runs/vcam_seg_192x336.onnx

    python -m models.segmenter.export_mp --refine-head --out runs/vcam_seg_webcam_refine.onnx

    python -m models.segmenter.export_mp --graph runs/lite_192x320.onnx \
        --ckpt models/segmenter/checkpoints/webcam_lite_192x320.ckpt --out runs/lite_192x320_s1.onnx

The fine-tune keeps MediaPipe's graph op for op, so export writes the trained weights into a copy of
``models/mediapipe/selfie_segmentation_landscape.onnx`` (same nodes, same latency at the same size): input ``image``
float32 [1,3,H,W] RGB 0..1, output ``mask`` [1,1,H,W] person probability (sigmoid inside the graph), H x W the
size it was fine-tuned at (144x256 unless ``--input-size``).
With ``--graph`` (a ``lite_graph`` candidate) the trained weights go into a copy of that graph instead.
With ``--refine-head`` (``refine_head.RefinedNet``) the graph is traced by ``torch.onnx.export`` instead: input
``image`` [1,3,288,512], output ``mask`` [1,1,288,512].
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from ..mediapipe.graph_opt import commute_resize_conv
from ..mediapipe.torch_net import OnnxNet, _key
from .ensemble import LANDSCAPE
from .finetune import INPUT_SIZE, REFINE_CKPT, _parse_hw, ckpt_for_size, graph_size, load_start
from .refine_head import RefinedNet

log = logging.getLogger(__name__)


def write_onnx(net: OnnxNet, out: Path, src: Path = LANDSCAPE) -> Path:
    """Copy ``src`` with every trainable initializer replaced by ``net``'s weights (fp32), its input and output
    declared at ``net.input_hw`` (the graph is fully convolutional; its Resize nodes use scales, not sizes)."""
    model = onnx.load(str(src))
    h, w = getattr(net, "input_hw", INPUT_SIZE)
    for value in (model.graph.input[0], model.graph.output[0]):
        dims = value.type.tensor_type.shape.dim
        dims[2].dim_value, dims[3].dim_value = h, w
    weights = {k: v.detach().float().cpu().numpy() for k, v in net.weights.items()}
    replaced = 0
    for tensor in model.graph.initializer:
        key = _key(tensor.name)
        if key in weights:
            value = weights[key].astype(np.float32)
            if value.shape != tuple(tensor.dims):
                raise ValueError(f"{tensor.name}: shape {value.shape} != {tuple(tensor.dims)}")
            tensor.CopyFrom(numpy_helper.from_array(value, tensor.name))
            replaced += 1
    if replaced != len(weights):
        raise ValueError(f"replaced {replaced} of {len(weights)} weights")
    model.doc_string = ("vcam webcam-domain fine-tune of MediaPipe selfie segmentation (landscape)" if src == LANDSCAPE
                        else f"vcam webcam-domain fine-tune; graph: {model.doc_string}")
    commute_resize_conv(model)  # no-op when src is already rewritten (models.mediapipe.build does it)
    onnx.checker.check_model(model)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out))
    return out


class _Contract(torch.nn.Module):
    def __init__(self, net: RefinedNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image)


def export_refined(net: RefinedNet, out: Path) -> Path:
    """Trace ``net`` to ONNX (contract names) and check ONNX Runtime against torch on a random frame."""
    import onnxruntime as ort

    wrapper = _Contract(net.eval())
    dummy = torch.rand(1, 3, *net.input_hw)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(wrapper, (dummy,), str(out), input_names=["image"], output_names=["mask"], opset_version=17,
                      do_constant_folding=True, dynamo=False)
    with torch.no_grad():
        expected = wrapper(dummy).numpy()
    got = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(["mask"], {"image": dummy.numpy()})[0]
    if np.abs(got - expected).max() > 1e-4:
        raise RuntimeError(f"ONNX export differs from torch by {np.abs(got - expected).max():.2e}")
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--refine-head", action="store_true", help="the MediaPipe + refine head model")
    p.add_argument("--input-size", default=None, metavar="HxW", help="the fine-tune at this input size "
                   f"(default {INPUT_SIZE[0]}x{INPUT_SIZE[1]}; checkpoint webcam_mp_HxW.ckpt)")
    p.add_argument("--ckpt", type=Path, default=None, help="default: the committed checkpoint of that model")
    p.add_argument("--graph", type=Path, default=None, help="the ONNX graph the weights go into: a lite_graph "
                   "candidate or a shipped tier (then --ckpt is required); --input-size overrides its declared size")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    if args.graph is not None and args.ckpt is None:
        p.error("--graph needs --ckpt")
    if args.input_size:
        hw = _parse_hw(p, args.input_size)
    else:
        hw = graph_size(args.graph) if args.graph is not None else INPUT_SIZE
    args.ckpt = args.ckpt or (REFINE_CKPT if args.refine_head else ckpt_for_size(hw))
    if not args.ckpt.exists():
        raise SystemExit(f"no checkpoint at {args.ckpt}: run `python -m models.segmenter.finetune` first")
    torch.set_num_threads(1)
    net, meta = load_start(args.ckpt, args.refine_head, hw, args.graph)
    if args.refine_head:
        out = export_refined(net, args.out)
    else:
        out = write_onnx(net, args.out, args.graph or LANDSCAPE)
    log.info("wrote %s (%s)", out, meta)


if __name__ == "__main__":
    main()
