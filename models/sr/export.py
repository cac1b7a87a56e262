"""Export a trained TinySR checkpoint to the super-resolution ONNX contract (RepVGG branches folded) + card.

    python -m models.sr.export --ckpt runs/sr/final.pt            # -> models/sr/tinysr_x2.onnx + .json

Contract: input ``image`` float32 [1,1,H+4,W+4] (BT.601 luma in [0,1] of an H x W image, H and W even, edge-padded
by 2 pixels on every side; dynamic) -> output ``sr`` uint8 [1,16,H/2,W/2]: the 2x luma in levels (rounded,
saturated: the graph ends in ``QuantizeLinear``, scale 1/255) before the pixel shuffle (``DepthToSpace(4)`` of it
is the [1,1,2H,2W] image; channel 4*my+mx holds pixel (4p+my, 4q+mx)). The card's ``figures`` are filled by
``python -m tools.evaluation.sr --write-card``; re-exporting keeps figures only while the file's sha256 is unchanged.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import torch

from . import shipped_card_path, shipped_model_path
from .net import TinySR, _Core, to_inference

log = logging.getLogger(__name__)

CARD_BASE = {
    "name": "tinysr-x2",
    "task": "super-resolution",
    "input_size": [360, 640],
    "tier": "lite",
    "priority": 10,
    "licence": "GPL-2.0-or-later",
    "licence_file": "LICENSE",
    "io": {
        "input": ("image float32 [1,1,H+4,W+4]: BT.601 luma (OpenCV YCrCb Y) / 255 of an H x W image, edge-padded "
                  "by 2 on every side (H and W even, dynamic)"),
        "output": ("sr uint8 [1,16,H/2,W/2]: the 2x luma in levels 0-255 (rounded, saturated) before the pixel "
                   "shuffle; DepthToSpace(blocksize 4) of it is the [1,1,2H,2W] image (channel 4*my+mx = pixel "
                   "(4p+my, 4q+mx))"),
        "pad": 2,
        "pixel_shuffle": 4,
        "channels": 1,
        "scale": 2,
        "size_multiple": 2,
    },
}


def load_checkpoint(path: Path) -> TinySR:
    ck = torch.load(path, map_location="cpu", weights_only=False)
    net = TinySR(**ck.get("config", {}))
    net.load_state_dict(ck["model"])
    return net.eval()


def export_onnx(net: TinySR, out: Path, opset: int = 17) -> float:
    """Fold a copy of ``net``, write ``out``; returns max |onnx - unfolded torch| on a real-size input."""
    import onnx
    import onnxruntime as ort

    ref = copy.deepcopy(net).float().eval()
    inf = _Core(to_inference(copy.deepcopy(net).float()))
    dummy = torch.rand(1, 1, 364, 644)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(inf, (dummy,), str(out), input_names=["image"], output_names=["sr"], opset_version=opset,
                      do_constant_folding=True, dynamo=False,
                      dynamic_axes={"image": {2: "height", 3: "width"}, "sr": {2: "height_half", 3: "width_half"}})
    # constant folding (plain ONNX ops stay plain ONNX ops)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    opts.optimized_model_filepath = str(out)
    ort.InferenceSession(str(out), opts, providers=["CPUExecutionProvider"])
    _append_uint8_output(out)
    onnx.checker.check_model(onnx.load(str(out)))
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    err = 0.0
    for h, w in ((360, 640), (96, 130)):
        x = torch.rand(1, 1, h, w)
        xpad = torch.nn.functional.pad(x, (2, 2, 2, 2), mode="replicate")
        levels = sess.run(["sr"], {"image": xpad.numpy()})[0].astype(np.float32)
        got = torch.nn.functional.pixel_shuffle(torch.from_numpy(levels), 4).numpy() / 255
        with torch.no_grad():
            want = ref(x).clamp(0, 1).numpy()
        # beyond the rounding to whole levels (half a level at most)
        err = max(err, float(np.abs(got - want).max()) - 0.5 / 255)
    if err > 1e-4:
        raise RuntimeError(f"ONNX output differs from the unfolded PyTorch model by {err}")
    log.info("exported %s (max |onnx - torch| beyond rounding to levels = %.2e)", out, err)
    return err


def _append_uint8_output(path: Path) -> None:
    """End the graph in ``QuantizeLinear`` (scale 1/255, zero point 0): the output becomes the luma in uint8
    levels, rounded and saturated by ORT's vectorised kernel (cheaper than converting the float output)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    m = onnx.load(str(path))
    (out,) = m.graph.output
    last = next(n for n in m.graph.node if out.name in n.output)
    last.output[list(last.output).index(out.name)] = out.name + "_float"
    m.graph.initializer.extend([numpy_helper.from_array(np.array(1 / 255, np.float32), "sr_scale"),
                                numpy_helper.from_array(np.array(0, np.uint8), "sr_zero_point")])
    m.graph.node.append(helper.make_node("QuantizeLinear", [out.name + "_float", "sr_scale", "sr_zero_point"],
                                         [out.name], name="to_uint8"))
    out.type.tensor_type.elem_type = TensorProto.UINT8
    onnx.save(m, str(path))


def write_card(onnx_path: Path, card_path: Path, source: str, extra: dict | None = None) -> dict:
    digest = hashlib.sha256(onnx_path.read_bytes()).hexdigest()
    old = json.loads(card_path.read_text()) if card_path.exists() else {}
    card = dict(CARD_BASE, file=onnx_path.name, source=source, sha256=digest)
    card.update(extra or {})
    # measured figures belong to one exact file
    card["figures"] = old.get("figures", {}) if old.get("sha256") == digest else {}
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    return card


def training_history(ckpt_path: Path) -> list[dict]:
    """The training phases behind a checkpoint, oldest first (follows ``--init`` back to its source)."""
    phases: list[dict] = []
    path: Path | None = ckpt_path
    while path is not None and path.exists():
        ck = torch.load(path, map_location="cpu", weights_only=False)
        args = ck.get("args") or {}
        phase = {"checkpoint": str(path), "steps": ck["step"], "minutes": round(ck["elapsed"] / 60, 1),
                 "config": ck.get("config", {})}
        if args:
            phase["loss"], phase["lr"], phase["bn_freeze"] = args.get("loss"), args.get("lr"), args.get("bn_freeze")
            if args.get("clean_share") not in (None, "None"):
                phase["clean_share"] = args["clean_share"]
        phases.insert(0, phase)
        init = args.get("init")
        path = Path(init) if init not in (None, "None") else None
    return phases


DEFAULT_SOURCE = ("vcam TinySR trained by models.sr.train (phases: `training`) on ../shared/data photos and video "
                  "frames (held-out clips excluded; see docs/sr.md), exported by models.sr.export")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", type=Path, required=True, help="training checkpoint (runs/sr/final.pt)")
    p.add_argument("--out", type=Path, default=shipped_model_path())
    p.add_argument("--source", default=DEFAULT_SOURCE, help="the card's source line")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    net = load_checkpoint(args.ckpt)
    err = export_onnx(net, args.out)
    card_path = args.out.with_suffix(".json") if args.out != shipped_model_path() else shipped_card_path()
    params = sum(int(np.prod(t.shape)) for t in to_inference(copy.deepcopy(net)).state_dict().values())
    write_card(args.out, card_path, source=args.source,
               extra={"training": training_history(args.ckpt),
                      "export_max_abs_diff_vs_unfolded": err,
                      "params_folded_incl_fixed_anchor": params})
    log.info("card %s", card_path)


if __name__ == "__main__":
    main()
