"""Export a trained from-scratch RepVGG network as ``runs/repvgg/vcam_seg_<tier>.onnx`` with its model card.

    python -m models.segmenter.ship --tier lite --ckpt runs/seg-lite/last.pt [--figures eval.json] [--out-dir D]

The shipped tiers are the webcam-domain fine-tunes of MediaPipe (``ship_mp.py``); this network lost to them on
every webcam figure (README.md), so it is written outside the package unless ``--out-dir`` says otherwise.

The card follows docs/ARCHITECTURE.md; ``--figures`` merges the JSON written by
``python -m tools.evaluation.segmenter --json`` (this tier's row and the reference's, with the command).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
from pathlib import Path

import torch

from .export import export_onnx, load_checkpoint

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
# Below MediaPipe landscape (10): it does not beat it on the evaluation (see README.md).
PRIORITY = {"lite": 8, "full": 7}
TRAIN_DATA = [
    "portrait-seg: Clothing Co-Parsing photos with human person masks (github bearpaw/clothing-co-parsing, "
    "Apache-2.0), val.txt ids excluded",
    "unlabelled-people: Clothing Co-Parsing photos (Apache-2.0), LivePortrait examples (MIT), SadTalker examples "
    "(Apache-2.0), Pixabay images (Pixabay Content License)",
    "teacher soft labels: IS-Net small (weights MIT upstream, via @imgly/background-removal-data) and MediaPipe "
    "selfie segmentation (Apache-2.0)",
    "online teacher for attention distillation: MediaPipe selfie segmentation landscape (Apache-2.0)",
    "backgrounds for compositing: DavidGhantarjyan/Human-Segmentation-main scenes (no licence stated; used for "
    "augmentation only, not shipped) and 4 Pixabay images",
]


def card_name(tier: str) -> str:
    return f"vcam_seg_{tier}"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_card(onnx_path: Path, tier: str, ckpt: dict, figures: dict | None = None,
               input_size: tuple[int, int] | None = None, ckpt_tier: str | None = None,
               flip_tta: bool = False) -> Path:
    cfg = dict(ckpt["config"])
    args = ckpt.get("args", {})
    trained_tier = ckpt_tier or tier
    if input_size:
        cfg["input_size"] = list(input_size)
    card = {
        "name": f"vcam-seg-{tier}",
        "task": "segmentation",
        "file": onnx_path.name,
        "input_size": list(cfg["input_size"]),
        "tier": tier,
        "priority": PRIORITY.get(tier, 10),
        "licence": "GPL-2.0-or-later",
        "licence_note": "vcam's own weights, under the project licence (pyproject.toml); training data licences below",
        "source": "vcam's own encoder-decoder-refine RepVGG segmenter (models.segmenter), trained from "
                  "scratch, RepVGG branches folded, exported fp32 by models.segmenter.ship"
                  + (f"; the '{trained_tier}' tier's weights" if trained_tier != tier else "")
                  + (f"; trained at {ckpt['config']['input_size'][0]}x{ckpt['config']['input_size'][1]}, run at "
                     f"{cfg['input_size'][0]}x{cfg['input_size'][1]}" if input_size else "")
                  + ("; the graph averages the masks of the image and of its mirror image (flip test-time "
                     "augmentation, twice the compute)" if flip_tta else ""),
        "sha256": sha256(onnx_path),
        "io": {"input": f"image float32 [1,3,{cfg['input_size'][0]},{cfg['input_size'][1]}] RGB in [0,1]",
               "output": f"mask float32 [1,1,{cfg['input_size'][0]},{cfg['input_size'][1]}] person probability "
                         "(sigmoid inside the graph)"},
        "architecture": cfg | {"flip_tta": flip_tta},
        "training": {
            "command": f"python -m models.segmenter.train --tier {trained_tier} --out runs/seg-{trained_tier} "
                       f"--steps {args.get('steps')} --minutes {args.get('minutes')} --threads "
                       f"{args.get('threads')} --batch {args.get('batch')} --seed {args.get('seed')}",
            "steps_done": ckpt["step"],
            "minutes": round(ckpt.get("elapsed", 0.0) / 60, 1),
            "weights": "EMA (decay 0.999)",
            "data": TRAIN_DATA,
            "loss_history_tail": ckpt.get("history", [])[-3:],
        },
        "figures": figures or {},
    }
    path = onnx_path.with_suffix(".json")
    path.write_text(json.dumps(card, indent=2) + "\n")
    return path


def figures_for(eval_json: Path, name: str) -> dict:
    data = json.loads(eval_json.read_text())
    ref = data["reference"]
    pick = lambda section: {k: v for k, v in data[section].items() if k in (name, ref, "human-masks")}
    acc, lat, fl = data["accuracy"], data["latency"], data.get("flicker", {})
    versus = {
        "hs_iou_points": round(100 * (acc[name]["hs_iou"] - acc[ref]["hs_iou"]), 2),
        "hs_boundary_f_points": round(100 * (acc[name]["hs_bf"] - acc[ref]["hs_bf"]), 2),
        "full_iou_points": round(100 * (acc[name]["full_iou"] - acc[ref]["full_iou"]), 2),
        "full_boundary_f_points": round(100 * (acc[name]["full_bf"] - acc[ref]["full_bf"]), 2),
        "latency_ratio_wall": round(lat[name]["ms"] / lat[ref]["ms"], 3),
        "latency_ratio_cpu": round(lat[name]["cpu_ms"] / lat[ref]["cpu_ms"], 3),
    }
    if name in fl and ref in fl:
        versus["flicker_ratio_davis"] = round(fl[name]["davis"] / fl[ref]["davis"], 3)
        versus["flicker_ratio_videos"] = round(fl[name]["videos"] / fl[ref]["videos"], 3)
    return {"command": "python -m tools.evaluation.segmenter --json <file>", "reference": ref,
            "versus_reference": versus, "accuracy_val": pick("accuracy"), "latency_1thread": pick("latency"),
            "flicker": pick("flicker"), "protocol": "see tools/evaluation/segmenter.py and models/segmenter/README.md"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tier", required=True)
    p.add_argument("--ckpt", type=Path, required=True)
    p.add_argument("--figures", type=Path, help="JSON from tools.evaluation.segmenter --json")
    p.add_argument("--card-only", action="store_true", help="rewrite the card for the existing .onnx")
    p.add_argument("--input-size", type=int, nargs=2, metavar=("H", "W"),
                   help="run the checkpoint at another input size (a resolution tier)")
    p.add_argument("--flip-tta", action="store_true", help="average with the mirrored image inside the graph")
    p.add_argument("--ckpt-tier", help="the tier the checkpoint was trained as, when it differs from --tier")
    p.add_argument("--out-dir", type=Path, default=Path("runs/repvgg"), help="where the .onnx and card go")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    ckpt = torch.load(args.ckpt, map_location="cpu", weights_only=False)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = args.out_dir / f"{card_name(args.tier)}.onnx"
    size = tuple(args.input_size) if args.input_size else None
    if not args.card_only:
        export_onnx(load_checkpoint(args.ckpt), onnx_path, input_size=size, flip_tta=args.flip_tta)
    figures = figures_for(args.figures, f"vcam-seg-{args.tier}") if args.figures else None
    log.info("wrote %s", write_card(onnx_path, args.tier, ckpt, figures, size, args.ckpt_tier,
                                         args.flip_tta))


if __name__ == "__main__":
    main()
