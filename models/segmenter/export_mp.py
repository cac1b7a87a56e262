"""Export the webcam-domain fine-tune of MediaPipe landscape to ONNX (the segmenter contract).

    python -m models.segmenter.export_mp --out runs/vcam_seg_webcam.onnx     # from checkpoints/webcam_mp.ckpt

The fine-tune keeps MediaPipe's graph op for op, so export writes the trained weights into a copy of
``models/mediapipe/selfie_segmentation_landscape.onnx`` (same nodes, same latency): input ``image`` float32
[1,3,144,256] RGB 0..1, output ``mask`` [1,1,144,256] person probability (sigmoid inside the graph).
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from ..mediapipe.torch_net import OnnxNet, _key
from .ensemble import LANDSCAPE
from .finetune import REPO_CKPT, load_start

log = logging.getLogger(__name__)


def write_onnx(net: OnnxNet, out: Path, src: Path = LANDSCAPE) -> Path:
    """Copy ``src`` with every trainable initializer replaced by ``net``'s weights (fp32)."""
    model = onnx.load(str(src))
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
    model.doc_string = "vcam webcam-domain fine-tune of MediaPipe selfie segmentation (landscape)"
    onnx.checker.check_model(model)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out))
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", type=Path, default=REPO_CKPT)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    if not args.ckpt.exists():
        raise SystemExit(f"no checkpoint at {args.ckpt}: run `python -m models.segmenter.finetune` first")
    torch.set_num_threads(1)
    net, meta = load_start(args.ckpt)
    log.info("wrote %s (%s)", write_onnx(net, args.out), meta)


if __name__ == "__main__":
    main()
