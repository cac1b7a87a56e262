"""Fine-tune MediaPipe's landscape segmenter in the webcam domain, in resumable segments.

    nice -n 5 python -m models.segmenter.finetune --minutes 40            # run (or resume) one segment

One command, run again and again: each run is one *segment* of ``--minutes`` of wall clock with its own warm-up
and cosine learning-rate decay (a warm restart), starting from the weights committed in the repository
(``checkpoints/webcam_mp.ckpt``: fp16 EMA weights, ~210 KB) or, before the first segment, from MediaPipe's own
weights (``models/mediapipe/selfie_segmentation_landscape.onnx`` as ``models.mediapipe.torch_net.OnnxNet``).
A segment that is stopped part-way resumes from ``--work/last.pt`` (weights, EMA, optimiser, sampler state,
written every ``--ckpt-minutes``). At the end of a segment the EMA weights are scored on the webcam validation set
(``tools.evaluation.webcam_val``, never trained on), written to the repository checkpoint, and one row (steps,
minutes, learning rate, validation scores) is appended to ``checkpoints/ledger.jsonl``.

``--graph G.onnx --ckpt C.ckpt`` trains another graph of the ops ``OnnxNet`` interprets (a
``lite_graph`` candidate) from its own weights, with its own checkpoint and ledger rows (model ``C: <graph doc>``).
``--distill M.onnx`` adds ``--distill-weight`` x the same loss against that model's probability on the same
(degraded) batch, run at its own input size and resized to the target.

Data: ``webcam_data.WebcamSampler`` (training clips with teacher-ensemble labels, video-call composites with
IS-Net-sharpened human masks, street photos). Loss: BCE with logits (weight 3 in the target's edge band) + 0.5 x
soft IoU. AdamW, EMA 0.999, batch 16, channels_last, one thread.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import time
from pathlib import Path

import cv2
import numpy as np
import onnx
import torch
import torch.nn.functional as F

from ..mediapipe.torch_net import OnnxNet
from .ensemble import LANDSCAPE
from .refine_head import RefinedNet

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
REPO_CKPT = HERE / "checkpoints" / "webcam_mp.ckpt"
REFINE_CKPT = HERE / "checkpoints" / "webcam_mp_refine.ckpt"
LEDGER = HERE / "checkpoints" / "ledger.jsonl"
INPUT_SIZE = (144, 256)  # H, W of MediaPipe landscape


def ckpt_for_size(hw: tuple[int, int]) -> Path:
    """The repository checkpoint of the fine-tune at input ``hw`` (MediaPipe's own size keeps ``REPO_CKPT``)."""
    return REPO_CKPT if hw == INPUT_SIZE else REPO_CKPT.with_name(f"webcam_mp_{hw[0]}x{hw[1]}.ckpt")


def lr_at(elapsed: float, total: float, base: float, warmup: float) -> float:
    """Linear warm-up over ``warmup`` seconds, then cosine from ``base`` to 2% of it at ``total`` seconds."""
    if elapsed < warmup:
        return base * max(elapsed, 1.0) / warmup
    p = min((elapsed - warmup) / max(total - warmup, 1e-6), 1.0)
    return base * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * p)))


def edge_band(target: torch.Tensor, px: int = 2) -> torch.Tensor:
    """Pixels within ``px`` of where the soft target crosses between 0.02 and 0.98 (or between 0 and 1)."""
    hard = (target > 0.5).float()
    grown = F.max_pool2d(hard, 2 * px + 1, 1, px)
    shrunk = -F.max_pool2d(-hard, 2 * px + 1, 1, px)
    soft = ((target > 0.02) & (target < 0.98)).float()
    return ((grown - shrunk) + soft).clamp(0, 1)


def loss_fn(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """Against a target larger than the logits, the logits are upsampled bilinearly first (as the product
    resizes the mask to the frame), so the loss also rewards where edges fall between model pixels."""
    scale = target.shape[-1] // logits.shape[-1]
    if scale > 1:
        logits = F.interpolate(logits, size=target.shape[-2:], mode="bilinear", align_corners=False)
    weight = 1.0 + 2.0 * edge_band(target, px=2 * scale)
    bce = F.binary_cross_entropy_with_logits(logits, target, weight=weight)
    p = torch.sigmoid(logits)
    inter = (p * target).sum(dim=(1, 2, 3))
    union = (p + target - p * target).sum(dim=(1, 2, 3))
    soft_iou = (1 - (inter + 1) / (union + 1)).mean()
    return bce + 0.5 * soft_iou, {"bce": float(bce.detach()), "soft_iou": float(soft_iou.detach())}


class Teacher:
    """A segmenter ONNX run on the (already degraded) training batch for distillation: the batch resized to its
    input size, its probability resized to the target's size (bilinear, as the product resizes masks)."""

    def __init__(self, path: Path) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.hw = tuple(self.session.get_inputs()[0].shape[2:])

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        small = F.interpolate(x.float().contiguous(), size=self.hw, mode="bilinear", align_corners=False)
        probs = [self.session.run(["mask"], {"image": small[i:i + 1].numpy()})[0] for i in range(len(small))]
        return F.interpolate(torch.from_numpy(np.concatenate(probs)), size=tuple(size), mode="bilinear",
                             align_corners=False).clamp(0, 1)


class Ema:
    def __init__(self, net: torch.nn.Module, decay: float = 0.999) -> None:
        self.decay = decay
        self.state = {k: v.detach().clone() for k, v in net.state_dict().items()}

    @torch.no_grad()
    def update(self, net: torch.nn.Module) -> None:
        for k, v in net.state_dict().items():
            self.state[k].mul_(self.decay).add_(v.detach(), alpha=1 - self.decay)


def to_batch(samples: list[tuple[np.ndarray, np.ndarray]]) -> tuple[torch.Tensor, torch.Tensor]:
    """BGR uint8 images + float targets -> (RGB 0..1 [N,3,H,W] channels_last, [N,1,H,W])."""
    x = np.stack([cv2.cvtColor(i, cv2.COLOR_BGR2RGB) for i, _ in samples]).astype(np.float32) / 255.0
    y = np.stack([t for _, t in samples]).astype(np.float32)[:, None]
    x = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
    return x, torch.from_numpy(y)


def build_net(refine: bool, input_hw: tuple[int, int] = INPUT_SIZE, graph: Path | None = None) -> torch.nn.Module:
    """MediaPipe landscape (or ``graph``, e.g. a ``lite_graph`` candidate) as a torch module; the graph is fully
    convolutional, so ``input_hw`` (multiples of 16) only changes the size it is trained and scored at."""
    coarse = OnnxNet.from_onnx(graph or LANDSCAPE)
    if refine:
        return RefinedNet(coarse, input_hw)
    coarse.input_hw = input_hw
    return coarse


def _load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def load_start(ckpt: Path, refine: bool = False, input_hw: tuple[int, int] = INPUT_SIZE,
               graph: Path | None = None) -> tuple[torch.nn.Module, dict]:
    """The network with the committed weights when there are any. Else MediaPipe's own weights (a ``graph``'s
    own weights for a ``graph``); a refine model's first segment, and the first segment at another input size,
    start from the committed 144x256 fine-tune (``REPO_CKPT``) when there is one."""
    net = build_net(refine, input_hw, graph)
    meta: dict = {"segments": 0, "steps_total": 0, "minutes_total": 0.0}
    if ckpt.exists():
        saved = _load(ckpt)
        net.load_state_dict({k: v.float() for k, v in saved["state"].items()})
        meta = saved["meta"]
    elif graph is not None:
        meta["started_from"] = onnx.load(str(graph)).doc_string
    elif (refine or input_hw != INPUT_SIZE) and REPO_CKPT.exists():
        saved = _load(REPO_CKPT)
        (net.coarse if refine else net).load_state_dict({k: v.float() for k, v in saved["state"].items()})
        meta["coarse_from"] = {"file": REPO_CKPT.name, **saved["meta"]}
    return net, meta


def save_repo_ckpt(path: Path, ema_state: dict, meta: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state": {k: v.half() for k, v in ema_state.items()}, "meta": meta}, path)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=40.0, help="wall-clock length of a segment")
    p.add_argument("--max-steps", type=int, default=None, help="stop the segment after this many steps (tests)")
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--warmup-s", type=float, default=60.0)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seed", type=int, default=None, help="sampler seed (default: the segment number)")
    p.add_argument("--ckpt-minutes", type=float, default=4.0)
    p.add_argument("--target-scale", type=int, default=1, choices=(1, 2),
                   help="targets at 1x or 2x the model size (2x: loss on the bilinearly upsampled mask)")
    p.add_argument("--input-size", type=str, default=None, metavar="HxW",
                   help=f"train at another input size (multiples of 16; default {INPUT_SIZE[0]}x{INPUT_SIZE[1]}); "
                   "its own checkpoint webcam_mp_HxW.ckpt, started from the 144x256 fine-tune")
    p.add_argument("--work", type=Path, default=None,
                   help="in-progress state (default runs/seg-webcam, with --refine-head runs/seg-webcam-refine)")
    p.add_argument("--refine-head", action="store_true",
                   help="train MediaPipe + the learned refine head at 2x (input 288x512; refine_head.py)")
    p.add_argument("--ckpt", type=Path, default=None,
                   help=f"repository checkpoint (default checkpoints/{REPO_CKPT.name}, with --refine-head "
                   f"checkpoints/{REFINE_CKPT.name})")
    p.add_argument("--ledger", type=Path, default=LEDGER)
    p.add_argument("--graph", type=Path, default=None,
                   help="train this ONNX graph (e.g. a models.segmenter.lite_graph candidate) instead of MediaPipe "
                   "landscape, from its own weights; needs --ckpt; input size from the graph unless --input-size")
    p.add_argument("--distill", type=Path, default=None, metavar="ONNX",
                   help="also fit this model's output (e.g. vcam_seg_full.onnx, run at its own input size and "
                   "resized to the target) with weight --distill-weight")
    p.add_argument("--distill-weight", type=float, default=0.5)
    p.add_argument("--val-limit", type=int, default=None, help="score on the first N validation frames only")
    args = p.parse_args(argv)
    args.input_hw = _parse_hw(p, args.input_size) if args.input_size else INPUT_SIZE
    if args.graph is not None:
        if args.ckpt is None or args.refine_head:
            p.error("--graph needs --ckpt (its own checkpoint) and no --refine-head")
        if not args.input_size:
            args.input_hw = graph_size(args.graph)
        args.work = args.work or Path(f"runs/seg-{args.ckpt.stem}")
    if args.ckpt is None:
        args.ckpt = REFINE_CKPT if args.refine_head else ckpt_for_size(args.input_hw)
    if args.work is None:
        sized = "" if args.input_hw == INPUT_SIZE else f"-{args.input_hw[0]}x{args.input_hw[1]}"
        args.work = Path("runs/seg-webcam-refine" if args.refine_head else f"runs/seg-webcam{sized}")
    if args.refine_head:
        args.target_scale = 2
    return args


def graph_size(graph: Path) -> tuple[int, int]:
    """The (H, W) input size an ONNX segmenter graph declares."""
    dims = onnx.load(str(graph)).graph.input[0].type.tensor_type.shape.dim
    return dims[2].dim_value, dims[3].dim_value


def _parse_hw(p: argparse.ArgumentParser, text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        p.error(f"--input-size {text!r}: expected HxW, e.g. 192x336")
    if h <= 0 or w <= 0 or h % 16 or w % 16:
        p.error(f"--input-size {text!r}: height and width must be positive multiples of 16")
    return h, w


def make_sampler(seed: int, input_hw: tuple[int, int] = INPUT_SIZE):
    """The real data engine (loads ``../shared/data``; video labels cached under ``runs/cache``)."""
    from tools.paths import DATA_ROOT

    from .webcam_data import WebcamSampler, load_backgrounds, load_people, load_video_frames

    people = load_people(DATA_ROOT)
    videos = load_video_frames(DATA_ROOT, Path("runs/cache/video-labels"))
    return WebcamSampler(people, videos, load_backgrounds(DATA_ROOT), (input_hw[1], input_hw[0]), seed)


def score(net: torch.nn.Module, limit: int | None) -> dict:
    from tools.evaluation.webcam_val import score_torch

    return score_torch(net, limit)


def run_segment(args: argparse.Namespace, sampler_factory=make_sampler, scorer=score) -> dict:
    """Run (or resume) one segment; returns its ledger row."""
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    last = args.work / "last.pt"
    net, meta = load_start(args.ckpt, args.refine_head, args.input_hw, args.graph)
    teacher = Teacher(args.distill) if args.distill else None
    state = torch.load(last, map_location="cpu", weights_only=False) if last.exists() else None
    segment = meta["segments"] + 1
    sampler = sampler_factory(args.seed if args.seed is not None else segment, args.input_hw)
    sampler.target_scale = args.target_scale
    sampler.image_scale = 2 if args.refine_head else 1
    net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    ema = Ema(net)
    step, elapsed = 0, 0.0
    if state is not None and state["segment"] == segment:
        net.load_state_dict(state["net"])
        opt.load_state_dict(state["opt"])
        ema.state = state["ema"]
        step, elapsed = state["step"], state["elapsed"]
        sampler.rng.bit_generator.state = state["rng"]
        log.info("resuming segment %d at step %d (%.1f min)", segment, step, elapsed / 60)
    total = args.minutes * 60.0
    t0, last_save, losses = time.monotonic() - elapsed, time.monotonic(), []
    while elapsed < total and (args.max_steps is None or step < args.max_steps):
        lr = lr_at(elapsed, total, args.lr, args.warmup_s)
        for g in opt.param_groups:
            g["lr"] = lr
        x, y = to_batch([sampler.sample() for _ in range(args.batch)])
        if args.refine_head:
            refined, coarse = net(x, logits=True, with_coarse=True)
            loss, parts = loss_fn(refined, y)
            loss = loss + 0.5 * loss_fn(coarse, y)[0]
        else:
            logits = net(x, logits=True)
            loss, parts = loss_fn(logits, y)
            if teacher is not None:
                soft = teacher(x, y.shape[-2:])
                distill, _ = loss_fn(logits, soft)
                loss = loss + args.distill_weight * distill
                parts["distill"] = float(distill.detach())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ema.update(net)
        step += 1
        losses.append(float(loss.detach()))
        elapsed = time.monotonic() - t0
        if step % 50 == 0:
            log.info("seg %d step %d %.1f/%.0f min lr %.2e loss %.4f %s", segment, step, elapsed / 60,
                     args.minutes, lr, float(np.mean(losses[-50:])), parts)
        if time.monotonic() - last_save > args.ckpt_minutes * 60:
            _save_work(last, segment, net, opt, ema, step, elapsed, sampler)
            last_save = time.monotonic()
    _save_work(last, segment, net, opt, ema, step, elapsed, sampler)
    return _finish(args, segment, meta, ema, step, elapsed, losses, scorer)


def _save_work(path: Path, segment: int, net, opt, ema: Ema, step: int, elapsed: float, sampler) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"segment": segment, "net": net.state_dict(), "opt": opt.state_dict(), "ema": ema.state,
                "step": step, "elapsed": elapsed, "rng": sampler.rng.bit_generator.state}, tmp)
    tmp.replace(path)


def _finish(args, segment: int, meta: dict, ema: Ema, step: int, elapsed: float, losses: list[float],
            scorer) -> dict:
    meta = {**meta, "segments": segment, "steps_total": meta["steps_total"] + step,
            "minutes_total": round(meta["minutes_total"] + elapsed / 60, 2)}
    save_repo_ckpt(args.ckpt, ema.state, meta)
    net = build_net(args.refine_head, args.input_hw, args.graph)
    net.load_state_dict({k: v.half().float() for k, v in ema.state.items()})
    model = "mediapipe-landscape+refine-head" if args.refine_head else "mediapipe-landscape"
    if args.graph is not None:
        model = f"{args.ckpt.stem}: {onnx.load(str(args.graph)).doc_string}"
    row = {"model": model, **({"distill": str(args.distill), "distill_weight": args.distill_weight}
                              if args.distill else {}),
           "segment": segment, "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "steps": step, "minutes": round(elapsed / 60, 2), "lr_peak": args.lr, "batch": args.batch,
           "target_scale": args.target_scale, "input_size": list(args.input_hw),
           "loss_last_100": round(float(np.mean(losses[-100:])), 4) if losses else None, **meta,
           "val": _safe_score(scorer, net.eval(), args.val_limit)}
    args.ledger.parent.mkdir(parents=True, exist_ok=True)
    with args.ledger.open("a") as f:
        f.write(json.dumps(row) + "\n")
    (args.work / "last.pt").unlink(missing_ok=True)
    log.info("segment %d done: %s", segment, row)
    return row


def _safe_score(scorer, net: torch.nn.Module, limit: int | None) -> dict:
    try:
        return scorer(net, limit)
    except Exception as exc:  # the weights are already saved; the row records why it has no scores
        log.exception("validation failed")
        return {"error": repr(exc)}


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run_segment(parse_args(argv))


if __name__ == "__main__":
    main()
