"""Train a segmenter tier from scratch on CPU (or CUDA when present).

    python -m models.segmenter.train --tier lite --out runs/seg-lite --steps 6000 --minutes 70 --threads 2
    python -m models.segmenter.train --tier lite --out runs/seg-lite --resume      # continue a stopped run

Losses: BCE + soft Dice against human masks (boundary-weighted), pixelwise distillation against the IS-Net /
MediaPipe soft labels (weighted below the human masks), attention transfer from the online MediaPipe teacher's
encoder features, temporal (shift) consistency between a batch and a shifted/perturbed copy, and the edge loss
on the training-only edge branch. The cosine learning-rate schedule follows ``--steps`` (reproducible with ``--seed``) unless the
``--minutes`` budget would run out first: then it follows the elapsed share of the budget, so a run on a slower
(or busier) machine still anneals fully within the budget, with fewer steps.
Checkpoints: ``OUT/last.pt`` every ``--ckpt-minutes`` and at the end (weights, EMA weights, optimiser, RNG state).
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
import torch
import torch.nn.functional as F

from ..common.losses import attention_loss, boundary_band, shift_consistency_loss, soft_dice_loss
from .data import Augmenter, load_corpus
from .model import TIERS, SegNet

log = logging.getLogger(__name__)

# (student encoder stage index, teacher feature name): strides 4, 8, 16 on both sides
ATTENTION_PAIRS = ((1, "enc_s4"), (2, "enc_s8"), (3, "enc_s16"))
WEIGHTS = {"hard": 1.0, "dice": 0.5, "distill_labelled": 0.3, "distill_unlabelled": 0.7, "edge": 0.5,
           "attention": 1.0, "temporal": 1.0}


class Teacher:
    """MediaPipe landscape run through ONNX Runtime with its encoder features exposed (helper from
    ``models.mediapipe.teacher_features``)."""

    def __init__(self, threads: int = 1) -> None:
        from models.mediapipe.teacher_features import build_teacher_session

        self.sess, feats = build_teacher_session(num_threads=threads)
        wanted = {name for _, name in ATTENTION_PAIRS}
        self.names = [name for name, _stride, _ch in feats if name in wanted]

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        return dict(zip(self.names, self.sess.run(self.names, {"image": images})))


class BatchStream(torch.utils.data.IterableDataset):
    """Endless stream of augmented batches (and the teacher's features for them).

    Seeded by (seed, first step), so a resumed run draws a reproducible stream. Runs in a DataLoader worker process
    (``--workers 1``) so that augmentation and the teacher overlap the training step."""

    def __init__(self, items: list, backgrounds: list, size: tuple[int, int], batch: int, seed: int, start_step: int,
                 use_teacher: bool) -> None:
        super().__init__()
        self.items, self.backgrounds, self.size, self.batch = items, backgrounds, size, batch
        self.seed, self.start_step, self.use_teacher = seed, start_step, use_teacher

    def __iter__(self):
        torch.set_num_threads(1)
        cv2.setNumThreads(1)
        aug = Augmenter(self.items, self.backgrounds, size=self.size, seed=0)
        aug.rng = np.random.default_rng([self.seed, self.start_step])
        teacher = Teacher() if self.use_teacher else None
        while True:
            images, target, soft, labelled = aug.batch(self.batch)
            feats = teacher(images) if teacher else {}
            yield images, target, soft, labelled, feats


def shift_images(x: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """Move the content of ``x`` by (dx, dy) pixels, replicating the border into the uncovered strip."""
    h, w = x.shape[-2:]
    padded = F.pad(x, (max(dx, 0), max(-dx, 0), max(dy, 0), max(-dy, 0)), mode="replicate")
    return padded[..., max(-dy, 0): max(-dy, 0) + h, max(-dx, 0): max(-dx, 0) + w]


def lr_at(step: int, progress: float, base: float, warmup: int = 150) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to zero as ``progress`` goes 0 -> 1."""
    if step < warmup:
        return base * (step + 1) / warmup
    return base * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def compute_losses(net: SegNet, x: torch.Tensor, target: torch.Tensor, soft: torch.Tensor, labelled: torch.Tensor,
                   teacher_feats: dict[str, torch.Tensor] | None, rng: np.random.Generator,
                   n_temporal: int) -> dict[str, torch.Tensor]:
    logits, edge_logits, feats = net.forward_train(x)
    n = x.shape[0]
    band = boundary_band(target)
    pix_w = 1.0 + 2.0 * band  # boundary pixels count three times
    lab = labelled.view(n, 1, 1, 1)
    bce_hard = F.binary_cross_entropy_with_logits(logits, target, weight=pix_w, reduction="none")
    losses = {"hard": (bce_hard * lab).mean() / lab.mean().clamp_min(1e-6) if labelled.any() else logits.sum() * 0}
    losses["dice"] = soft_dice_loss(logits, target, weight=labelled) if labelled.any() else logits.sum() * 0
    bce_soft = F.binary_cross_entropy_with_logits(logits, soft, reduction="none").mean(dim=(1, 2, 3))
    w_d = labelled * WEIGHTS["distill_labelled"] + (1 - labelled) * WEIGHTS["distill_unlabelled"]
    losses["distill"] = (bce_soft * w_d).mean()
    pos = band.mean().clamp_min(1e-3)
    losses["edge"] = F.binary_cross_entropy_with_logits(edge_logits, band, pos_weight=(1 - pos) / pos / 4)
    if teacher_feats:
        losses["attention"] = sum(attention_loss(feats[i], teacher_feats[name]) for i, name in ATTENTION_PAIRS)
    if n_temporal:
        dx, dy = (int(v) for v in rng.integers(-12, 13, size=2))
        xs = shift_images(x[:n_temporal], dx, dy)
        gain = torch.from_numpy(rng.uniform(0.9, 1.1, size=(n_temporal, 1, 1, 1)).astype(np.float32))
        xs = (xs * gain + torch.randn_like(xs) * 0.01).clamp(0, 1).contiguous(memory_format=torch.channels_last)
        ps = torch.sigmoid(net(xs))
        losses["temporal"] = shift_consistency_loss(torch.sigmoid(logits[:n_temporal]), ps, dx, dy)
    return losses


class Ema:
    """Exponential moving average of weights and BN statistics."""

    def __init__(self, net: torch.nn.Module, decay: float = 0.999) -> None:
        self.decay = decay
        self.state = {k: v.detach().clone() for k, v in net.state_dict().items()}

    @torch.no_grad()
    def update(self, net: torch.nn.Module, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))
        for k, v in net.state_dict().items():
            if v.dtype.is_floating_point:
                self.state[k].mul_(d).add_(v.detach(), alpha=1 - d)
            else:
                self.state[k].copy_(v)


def save(path: Path, net: SegNet, ema: Ema, opt: torch.optim.Optimizer, step: int, args: argparse.Namespace, history: list[dict], elapsed: float) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"model": net.state_dict(), "ema": ema.state, "opt": opt.state_dict(), "step": step,
                "config": net.cfg.to_dict(),
                "torch_rng": torch.get_rng_state(), "args": vars(args) | {"out": str(args.out)},
                "history": history, "elapsed": elapsed}, tmp)
    tmp.replace(path)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tier", choices=sorted(TIERS), default="lite")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--steps", type=int, default=6000, help="schedule length (optimizer steps)")
    p.add_argument("--minutes", type=float, default=90.0, help="wall-clock budget; stops early with a checkpoint")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--threads", type=int, default=1, help="torch threads of the training step")
    p.add_argument("--workers", type=int, default=1, help="0: augment in-process; 1: in a worker process")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--temporal-frac", type=float, default=0.25, help="share of each batch given a shifted twin")
    p.add_argument("--no-teacher", action="store_true", help="skip attention distillation (no online teacher)")
    p.add_argument("--limit", type=int, default=None, help="photos per folder (smoke tests)")
    p.add_argument("--ckpt-minutes", type=float, default=3.0)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(1)
    torch.manual_seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    ckpt_path = args.out / "last.pt"

    net = SegNet(TIERS[args.tier]).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    items, backgrounds = load_corpus(limit=args.limit)
    ema = Ema(net)
    step, history, elapsed = 0, [], 0.0  # elapsed: training seconds before this (resumed) process
    if args.resume and ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        net.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        ema.state = ck["ema"]
        step, history, elapsed = ck["step"], ck.get("history", []), ck.get("elapsed", 0.0)
        torch.set_rng_state(ck["torch_rng"])
        log.info("resumed from %s at step %d", ckpt_path, step)
    stream = BatchStream(items, backgrounds, net.cfg.input_size, args.batch, args.seed, step, not args.no_teacher)
    loader = iter(torch.utils.data.DataLoader(stream, batch_size=None, num_workers=args.workers,
                                              prefetch_factor=4 if args.workers else None))
    loss_rng = np.random.default_rng([args.seed + 1, step])
    n_temporal = max(1, int(round(args.temporal_frac * args.batch))) if args.temporal_frac > 0 else 0

    progress = None
    if not args.no_progress:
        from tqdm import tqdm

        progress = tqdm(total=args.steps, initial=step, desc=f"seg-{args.tier}", unit="step", mininterval=5)
    budget = args.minutes * 60
    start = last_ckpt = time.monotonic()
    running: dict[str, float] = {}
    net.train()
    while step < args.steps:
        if elapsed + time.monotonic() - start > budget:
            log.info("time budget of %.1f min reached at step %d", args.minutes, step)
            break
        images, target, soft, labelled, tfeats = (torch.as_tensor(v) if not isinstance(v, dict) else
                                                  {k: torch.as_tensor(f) for k, f in v.items()} for v in next(loader))
        x = images.contiguous(memory_format=torch.channels_last)
        losses = compute_losses(net, x, target, soft, labelled, tfeats or None, loss_rng, n_temporal)
        total = sum(WEIGHTS.get(k, 1.0) * v for k, v in losses.items())
        for g in opt.param_groups:
            g["lr"] = lr_at(step, max(step / args.steps, (elapsed + time.monotonic() - start) / budget), args.lr)
        opt.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        opt.step()
        ema.update(net, step)
        step += 1
        for k, v in losses.items():
            fv = float(v.detach())
            running[k] = 0.98 * running.get(k, fv) + 0.02 * fv
        if progress:
            progress.update(1)
            if step % 20 == 0:
                progress.set_postfix({k: f"{v:.3f}" for k, v in running.items()})
        if step % 200 == 0:
            history.append({"step": step, "t": round(elapsed + time.monotonic() - start, 1)} |
                           {k: round(v, 4) for k, v in running.items()})
            log.info("step %d %s", step, json.dumps(history[-1]))
        if time.monotonic() - last_ckpt > args.ckpt_minutes * 60:
            save(ckpt_path, net, ema, opt, step, args, history, elapsed + time.monotonic() - start)
            last_ckpt = time.monotonic()
    save(ckpt_path, net, ema, opt, step, args, history, elapsed + time.monotonic() - start)
    if progress:
        progress.close()
    log.info("saved %s at step %d (%.1f min)", ckpt_path, step, (time.monotonic() - start) / 60)


if __name__ == "__main__":
    main()
