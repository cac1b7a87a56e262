"""Export a trained (or random) SegNet to the daemon's segmenter ONNX contract, RepVGG branches folded.

    python -m models.segmenter.export --ckpt runs/seg-lite/last.pt --out models/segmenter/vcam_seg_lite.onnx
"""
from __future__ import annotations

import argparse
import copy
import logging
from pathlib import Path

import numpy as np
import torch

from ..common.repvgg import fold_model
from .model import TIERS, ExportWrapper, SegNet, SegNetConfig

log = logging.getLogger(__name__)


def load_checkpoint(path: Path) -> SegNet:
    """Rebuild the (unfolded) network of a training checkpoint, with EMA weights when present."""
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    cfg = SegNetConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in ckpt["config"].items()})
    net = SegNet(cfg)
    net.load_state_dict(ckpt.get("ema") or ckpt["model"])
    return net


def export_onnx(net: SegNet, out: Path, opset: int = 17, input_size: tuple[int, int] | None = None,
                flip_tta: bool = False) -> Path:
    """Fold a copy of ``net`` and write ``out``: input ``image`` [1,3,H,W] -> output ``mask`` [1,1,H,W].

    ``input_size`` (H, W) overrides the training size: the network is fully convolutional, so the same weights
    can run at a higher resolution (a compute tier)."""
    folded = fold_model(copy.deepcopy(net).float().eval())
    h, w = input_size or folded.cfg.input_size
    wrapper = ExportWrapper(folded, flip_tta=flip_tta).eval()
    dummy = torch.rand(1, 3, h, w)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(wrapper, (dummy,), str(out), input_names=["image"], output_names=["mask"], opset_version=opset,
                      do_constant_folding=True, dynamo=False)
    _simplify_in_place(out)
    _check(wrapper, out, dummy)
    return out


def _simplify_in_place(path: Path) -> None:
    """Constant-fold shape arithmetic (static input size) with ORT's offline optimiser, keep plain ONNX ops."""
    import onnx
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    opts.optimized_model_filepath = str(path)
    ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    onnx.checker.check_model(onnx.load(str(path)))


def _check(wrapper: torch.nn.Module, path: Path, dummy: torch.Tensor) -> None:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(["mask"], {"image": dummy.numpy()})[0]
    with torch.no_grad():
        want = wrapper(dummy).numpy()
    err = float(np.abs(got - want).max())
    if err > 1e-4:
        raise RuntimeError(f"ONNX output differs from PyTorch by {err}")
    log.info("exported %s (max |onnx - torch| = %.2e)", path, err)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", type=Path, help="training checkpoint (omit for random weights)")
    parser.add_argument("--tier", choices=sorted(TIERS), default="lite", help="tier when no checkpoint is given")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--input-size", type=int, nargs=2, metavar=("H", "W"), help="override the input size")
    parser.add_argument("--flip-tta", action="store_true", help="average with the mirrored image in the graph")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    net = load_checkpoint(args.ckpt) if args.ckpt else SegNet(TIERS[args.tier])
    export_onnx(net, args.out, input_size=tuple(args.input_size) if args.input_size else None,
                flip_tta=args.flip_tta)


if __name__ == "__main__":
    main()
