"""Ship a webcam-domain fine-tune of MediaPipe landscape as a segmenter tier: ``vcam_seg_<tier>.onnx`` + card.

    python -m tools.evaluation.segmenter --model full=runs/seg_192x336.onnx --json runs/seg-eval.json
    python -m models.segmenter.ship_mp --tier full --input-size 192x336 --figures runs/seg-eval.json --eval-name full

    python -m models.segmenter.ship_mp --tier full --refresh --figures runs/seg-eval.json --eval-name vcam-seg-full

    python -m models.segmenter.ship_mp --tier lite --graph runs/lite_192x320.onnx \
        --ckpt models/segmenter/checkpoints/webcam_lite_192x320.ckpt --figures runs/seg-eval-lite.json --eval-name lite-new

The weights come from the committed checkpoint of that input size (``checkpoints/webcam_mp_HxW.ckpt``), the
training history from its rows of ``checkpoints/ledger.jsonl``, the figures from one run of the evaluation (this
model's rows and the reference's, on the webcam val, the portrait-seg crops, DAVIS flicker and latency).
``--refresh`` keeps the shipped ``.onnx`` and its card's training record and replaces only the card's figures
(and sha256) with those of a new evaluation of that file: for a graph rewrite, or a re-measurement.
``--graph`` ships a ``lite_graph`` candidate, or a shipped tier's graph trained at another ``--input-size``: its
trained weights (``--ckpt``) written into that graph.
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import onnx

from .ensemble import LANDSCAPE
from .export_mp import write_onnx
from .finetune import INPUT_SIZE, LEDGER, _parse_hw, ckpt_for_size, graph_size, load_start
from .lite_graph import BUILD_COMMAND, START_WEIGHTS
from .ship import HERE, card_name, figures_for, sha256

log = logging.getLogger(__name__)

# Above MediaPipe landscape (10) only a tier that met its targets against it: `auto` probes the tiers ranked above
# MediaPipe, then MediaPipe (vcam.segmenter.pick_tier). lite missed two (README.md), so it ranks below.
PRIORITY = {"full": 12, "lite": 9}
TRAIN_DATA = [
    "start: MediaPipe selfie segmentation landscape weights (Apache-2.0)",
    "videos/ clips except the held-out ones (MIT / Apache-2.0 / CC-BY-4.0 / Pixabay), labels = mean of MediaPipe "
    "landscape, its mirror image and MediaPipe general (teacher ensemble)",
    "portrait-seg human masks (Clothing Co-Parsing, Apache-2.0; val.txt excluded) with IS-Net's edge band, "
    "composited at video-call framing onto backgrounds/ (Apache-2.0 / BSD / Unsplash / Pexels / CC0 / Pixabay / "
    "FAL + CC-BY; held-out rooms excluded) with webcam degradations",
]


def ledger_rows(input_hw: tuple[int, int], ledger: Path = LEDGER, ckpt: Path | None = None) -> list[dict]:
    """The ledger rows of the fine-tune at ``input_hw`` (rows without a size are 144x256); with ``ckpt``, those
    of the ``--graph`` fine-tune kept in that checkpoint (their model names start with its stem)."""
    rows = [json.loads(line) for line in ledger.read_text().splitlines() if line.strip()]
    if ckpt is not None:
        return [r for r in rows if r.get("model", "").startswith(f"{ckpt.stem}:")]
    return [r for r in rows if r.get("model", "mediapipe-landscape") == "mediapipe-landscape"
            and tuple(r.get("input_size", INPUT_SIZE)) == input_hw]


def webcam_figures(eval_json: Path, name: str) -> dict:
    data = json.loads(eval_json.read_text())
    ref = data["reference"]
    pick = {n: {k: data["webcam"][n][k] for k in ("composites", "clips", "all")} for n in (name, ref)}
    c, r = pick[name]["composites"], pick[ref]["composites"]
    return {"scores": pick, "versus_reference_composites": {
        "iou_points": round(100 * (c["iou"] - r["iou"]), 2),
        "boundary_f_points": round(100 * (c["bf"] - r["bf"]), 2),
        "boundary_f_refined_points": round(100 * (c["bf_refined"] - r["bf_refined"]), 2),
        "sad_refined_ratio": round(c["sad_refined"] / r["sad_refined"], 3)}}


def write_card(onnx_path: Path, tier: str, input_hw: tuple[int, int], meta: dict, figures: dict,
               priority: int, graph: tuple[Path, Path] | None = None, graph_origin: str | None = None) -> Path:
    """The model card; ``graph`` = (the graph, its checkpoint) for a ``--graph`` model, ``graph_origin`` where a
    graph that is not a ``lite_graph`` candidate comes from."""
    h, w = input_hw
    card = {
        "name": f"vcam-seg-{tier}", "task": "segmentation", "file": onnx_path.name, "input_size": [h, w],
        "tier": tier, "priority": priority, "licence": "Apache-2.0", "licence_file": "../mediapipe/LICENSE",
        "licence_note": "a fine-tune of MediaPipe's Apache-2.0 weights; vcam's changes under the same licence",
        "source": f"MediaPipe selfie segmentation landscape's graph, op for op, run at {h}x{w}, every weight "
                  "fine-tuned in the webcam domain by models.segmenter.finetune, exported fp32 by "
                  "models.segmenter.ship_mp",
        "sha256": sha256(onnx_path),
        "io": {"input": f"image float32 [1,3,{h},{w}] RGB in [0,1]",
               "output": f"mask float32 [1,1,{h},{w}] person probability (sigmoid inside the graph)"},
        "training": {"command": f"VCAM_DATA=../shared/data python -m models.segmenter.finetune --input-size {h}x{w} "
                                "--target-scale S --minutes M  (once per segment, S and M as in its ledger row)",
                     "weights": "EMA (decay 0.999), stored fp16", "checkpoint": ckpt_for_size(input_hw).name,
                     "segments": meta.get("segments"), "steps_total": meta.get("steps_total"),
                     "minutes_total": meta.get("minutes_total"),
                     "started_from": meta.get("coarse_from") or meta.get("started_from"),
                     "ledger": [{k: r.get(k, 1 if k == "target_scale" else None)
                                 for k in ("segment", "steps", "minutes", "lr_peak", "target_scale", "finished_utc")}
                                for r in ledger_rows(input_hw)],
                     "data": TRAIN_DATA},
        "figures": figures,
    }
    if graph is not None:
        _graph_card(card, onnx_path, *graph, origin=graph_origin)
    path = onnx_path.with_suffix(".json")
    path.write_text(json.dumps(card, indent=2) + "\n")
    return path


def _graph_card(card: dict, onnx_path: Path, graph: Path, ckpt: Path, origin: str | None = None) -> None:
    """What differs for a ``--graph`` model: its source, training command, checkpoint, ledger and start."""
    model = onnx.load(str(graph))
    props = {p.key: p.value for p in model.metadata_props}
    # a lite_graph candidate (written by its main() with the command, or built in code); else a tier's own graph
    rewritten = BUILD_COMMAND in props or model.doc_string.startswith("vcam lite candidate")
    built = " (models.segmenter.lite_graph)" if rewritten else ""
    card["source"] = (f"{onnx.load(str(onnx_path)).doc_string}{built}; every weight fine-tuned in the webcam domain "
                      "by models.segmenter.finetune --graph, exported fp32 by models.segmenter.ship_mp --graph")
    training = card["training"]
    training["graph_command"] = (props.get(BUILD_COMMAND, f"unknown: {graph} was written without its command")
                                 if rewritten else f"none: {graph} as it is" + (f" ({origin})" if origin else ""))
    start = props.get(START_WEIGHTS, "vcam_seg_full.onnx" if rewritten else graph.name)
    h, w = card["input_size"]
    training["command"] = (f"VCAM_DATA=../shared/data python -m models.segmenter.finetune --graph {graph} "
                           f"--input-size {h}x{w} --ckpt models/segmenter/checkpoints/{ckpt.name} "
                           "--target-scale S --minutes M [--lr L] "
                           "[--distill D] (once per segment, S, M, L and D as in its ledger row)")
    training["checkpoint"] = ckpt.name
    keys = ("segment", "steps", "minutes", "lr_peak", "target_scale", "distill", "distill_weight", "finished_utc")
    training["ledger"] = [{k: r[k] for k in keys if k in r}
                          for r in ledger_rows(tuple(card["input_size"]), ckpt=ckpt)]
    training["data"] = [f"start: {start}'s weights (a fine-tune of MediaPipe selfie segmentation landscape, "
                        f"Apache-2.0){', restructured by models.segmenter.lite_graph' if rewritten else ''}"
                        ] + TRAIN_DATA[1:]


def figures_from(eval_json: Path, eval_name: str) -> dict:
    figures = figures_for(eval_json, eval_name) | {"webcam_val": webcam_figures(eval_json, eval_name)}
    figures["command"] = json.loads(eval_json.read_text()).get(
        "command", f"python -m tools.evaluation.segmenter --model {eval_name}=PATH --json {eval_json}")
    return figures


def refresh_card(onnx_path: Path, figures: dict) -> Path:
    """Replace the figures and sha256 of the card beside ``onnx_path``; everything else stays."""
    path = onnx_path.with_suffix(".json")
    card = json.loads(path.read_text())
    card["sha256"], card["figures"] = sha256(onnx_path), figures
    path.write_text(json.dumps(card, indent=2) + "\n")
    return path


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tier", required=True, choices=sorted(PRIORITY))
    p.add_argument("--input-size", metavar="HxW", help="required unless --refresh")
    p.add_argument("--figures", type=Path, required=True, help="JSON from tools.evaluation.segmenter --json")
    p.add_argument("--eval-name", required=True, help="this model's name in that evaluation (its --model NAME)")
    p.add_argument("--priority", type=int, default=None, help="default: full 12, lite 9 (MediaPipe is 10)")
    p.add_argument("--refresh", action="store_true", help="keep the shipped .onnx, replace only the card's figures")
    p.add_argument("--graph", type=Path, default=None,
                   help="the ONNX graph the weights go into: a lite_graph candidate or a copy of a shipped tier (with "
                   "--ckpt); --input-size overrides the size it declares")
    p.add_argument("--ckpt", type=Path, default=None, help="the --graph model's checkpoint")
    p.add_argument("--graph-origin", default=None,
                   help="for a --graph that is not a lite_graph candidate: where that file comes from (for the card)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    figures = figures_from(args.figures, args.eval_name)
    if args.refresh:
        log.info("wrote %s", refresh_card(HERE / f"{card_name(args.tier)}.onnx", figures))
        return
    if args.graph is not None:
        if args.ckpt is None:
            p.error("--graph needs --ckpt")
        hw = _parse_hw(p, args.input_size) if args.input_size else graph_size(args.graph)
    elif not args.input_size:
        p.error("--input-size is required unless --refresh or --graph")
    else:
        hw = _parse_hw(p, args.input_size)
    net, meta = load_start(args.ckpt or ckpt_for_size(hw), input_hw=hw, graph=args.graph)
    onnx_path = write_onnx(net, HERE / f"{card_name(args.tier)}.onnx", args.graph or LANDSCAPE)
    priority = args.priority if args.priority is not None else PRIORITY[args.tier]
    graph = (args.graph, args.ckpt) if args.graph is not None else None
    log.info("wrote %s", write_card(onnx_path, args.tier, hw, meta, figures, priority, graph, args.graph_origin))


if __name__ == "__main__":
    main()
