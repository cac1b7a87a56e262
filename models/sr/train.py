"""Train TinySR on webcam-degraded luma pairs, on one CPU thread, within a time budget.

    python -m models.sr.train --out runs/sr --minutes 45            # fresh run
    python -m models.sr.train --out runs/sr --minutes 45 --resume   # continue after an interruption

The learning-rate schedule (cosine) follows the elapsed fraction of the budget, so a resumed run ends
where an uninterrupted one would. For the last ``--bn-freeze`` fraction of the budget the BatchNorm
layers use their running statistics (RepSR's fix for the train/inference gap of BN in SR networks).
Writes ``OUT/pairs.npz`` (the cached pairs), ``OUT/last.pt`` (checkpoint, every ``--ckpt-minutes``)
and ``OUT/final.pt``; export with ``python -m models.sr.export``.
"""

from __future__ import annotations

import argparse
import logging
import math
import random
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from .data import DATA_ROOT, build_pairs
from .degrade import Degradation
from .net import TinySR

log = logging.getLogger("models.sr.train")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/sr"), help="run folder (cache, checkpoints)")
    p.add_argument("--data", type=Path, default=DATA_ROOT, help="the shared data folder")
    p.add_argument("--minutes", type=float, default=45.0, help="training time budget (excludes building pairs)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument("--init", type=Path, help="start from this checkpoint's weights (fine-tuning; fresh schedule)")
    p.add_argument("--loss", choices=("l1", "mse"), default="l1", help="pixel loss on luma")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--patch", type=int, default=48, help="low-res training crop side (even, <= 64)")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--channels", type=int, default=16)
    p.add_argument("--blocks", type=int, default=1)
    p.add_argument("--bn-freeze", type=float, default=0.15, help="final fraction of the budget with BN frozen")
    p.add_argument("--ckpt-minutes", type=float, default=2.0)
    p.add_argument("--clean-prob", type=float, default=0.0,
                   help="share of training pairs that are clean 2x downscales (no blur, noise or JPEG)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    return p.parse_args(argv)


class PairSampler:
    """Random aligned crops of the cached pairs with flips/transposes; yields torch batches in [0, 1]."""

    def __init__(self, hr: np.ndarray, lr: np.ndarray, patch: int, rng: np.random.Generator) -> None:
        self.hr, self.lr, self.patch, self.rng = hr, lr, patch, rng

    def batch(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        p, lr_side = self.patch, self.lr.shape[1]
        idx = self.rng.integers(0, len(self.lr), n)
        ys = self.rng.integers(0, lr_side - p + 1, n)
        xs = self.rng.integers(0, lr_side - p + 1, n)
        lo = np.empty((n, p, p), np.uint8)
        hi = np.empty((n, 2 * p, 2 * p), np.uint8)
        for k in range(n):
            a = self.lr[idx[k], ys[k]:ys[k] + p, xs[k]:xs[k] + p]
            b = self.hr[idx[k], 2 * ys[k]:2 * ys[k] + 2 * p, 2 * xs[k]:2 * xs[k] + 2 * p]
            flip = self.rng.integers(0, 8)
            if flip & 1:
                a, b = a[:, ::-1], b[:, ::-1]
            if flip & 2:
                a, b = a[::-1], b[::-1]
            if flip & 4:
                a, b = a.T, b.T
            lo[k], hi[k] = a, b
        to_t = lambda arr: torch.from_numpy(arr).float().div_(255.0).unsqueeze(1)
        return (to_t(lo).contiguous(memory_format=torch.channels_last),
                to_t(hi).contiguous(memory_format=torch.channels_last))


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = F.mse_loss(a.clamp(0, 1), b).item()
    return 10 * math.log10(1.0 / max(mse, 1e-12))


@torch.no_grad()
def validate(model: TinySR, lo: torch.Tensor, hi: torch.Tensor) -> tuple[float, float]:
    """(PSNR of the model, PSNR of bicubic) on the validation pairs, luma in [0, 1]."""
    was_training = model.training
    model.eval()
    sr = model(lo)
    bic = F.interpolate(lo, scale_factor=2, mode="bicubic", align_corners=False)
    model.train(was_training)
    return psnr(sr, hi), psnr(bic, hi)


def set_bn_frozen(model: nn.Module, frozen: bool) -> None:
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.train(not frozen)


def load_pairs(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    cache = args.out / "pairs.npz"
    if cache.exists():
        with np.load(cache) as z:
            return z["hr"], z["lr"]
    hr, lr = build_pairs(seed=args.seed, cfg=Degradation(clean_prob=args.clean_prob), root=args.data)
    np.savez(cache, hr=hr, lr=lr)
    return hr, lr


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(1)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)

    hr, lr = load_pairs(args)
    # fixed validation split: the last 2% of the (shuffled-once) pairs, never trained on
    order = np.random.default_rng(args.seed).permutation(len(hr))
    n_val = max(64, len(hr) // 50)
    val_idx, train_idx = order[:n_val], order[n_val:]
    val_lo = torch.from_numpy(lr[val_idx]).float().div(255).unsqueeze(1)
    val_hi = torch.from_numpy(hr[val_idx]).float().div(255).unsqueeze(1)
    log.info("%d training pairs, %d validation pairs", len(train_idx), n_val)

    model = TinySR(args.channels, args.blocks).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    rng = np.random.default_rng(args.seed + 1)
    step, elapsed = 0, 0.0
    ckpt_path = args.out / "last.pt"
    if args.init is not None and not (args.resume and ckpt_path.exists()):
        model.load_state_dict(torch.load(args.init, weights_only=False)["model"])
        log.info("initialised from %s", args.init)
    if args.resume and ckpt_path.exists():
        ck = torch.load(ckpt_path, weights_only=False)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step, elapsed = ck["step"], ck["elapsed"]
        rng.bit_generator.state = ck["rng"]
        torch.set_rng_state(ck["torch_rng"])
        log.info("resumed at step %d, %.1f min elapsed", step, elapsed / 60)
    sampler = PairSampler(hr[train_idx], lr[train_idx], args.patch, rng)

    def save(path: Path) -> None:
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "elapsed": elapsed,
                    "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
                    "config": {"channels": args.channels, "blocks": args.blocks},
                    "args": {k: str(v) for k, v in vars(args).items()}}, path)

    loss_fn = F.l1_loss if args.loss == "l1" else F.mse_loss
    budget = args.minutes * 60
    model.train()
    bar = tqdm(total=int(budget), initial=int(elapsed), unit="s", desc="training")
    last_ckpt = time.monotonic()
    loss_avg = None
    while elapsed < budget:
        t0 = time.monotonic()
        frac = elapsed / budget
        for g in opt.param_groups:
            g["lr"] = args.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * frac)))
        set_bn_frozen(model, frac > 1 - args.bn_freeze)
        lo, hi = sampler.batch(args.batch)
        loss = loss_fn(model(lo), hi)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        loss_avg = loss.item() if loss_avg is None else 0.98 * loss_avg + 0.02 * loss.item()
        dt = time.monotonic() - t0
        elapsed += dt
        bar.update(int(elapsed) - bar.n)
        if step % 200 == 0:
            bar.set_postfix(step=step, loss=f"{loss_avg:.4f}", lr=f"{opt.param_groups[0]['lr']:.1e}")
        if time.monotonic() - last_ckpt > args.ckpt_minutes * 60:
            p_sr, p_bic = validate(model, val_lo, val_hi)
            log.info("step %d  loss %.4f  val PSNR %.2f dB (bicubic %.2f, gain %+.2f)",
                     step, loss_avg, p_sr, p_bic, p_sr - p_bic)
            save(ckpt_path)
            last_ckpt = time.monotonic()
    bar.close()
    p_sr, p_bic = validate(model, val_lo, val_hi)
    log.info("done: %d steps, val PSNR %.2f dB (bicubic %.2f, gain %+.2f)", step, p_sr, p_bic, p_sr - p_bic)
    save(ckpt_path)
    save(args.out / "final.pt")


if __name__ == "__main__":
    main()
