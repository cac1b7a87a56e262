"""Train TinySR on webcam-degraded luma pairs, on one CPU thread, within a time budget.

    python -m models.sr.train --out runs/sr --minutes 45            # fresh run
    python -m models.sr.train --out runs/sr --minutes 45 --resume   # continue after an interruption
    python -m models.sr.train --out runs/sr-ft --init runs/sr/final.pt --pairs runs/sr/pairs.npz \
        --learn-anchor --loss psnr --clean-share 0.3 --lr 5e-4 --minutes 36   # fine-tune (see docs/sr.md)

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
    p.add_argument("--pairs", type=Path, help="the cached pairs (default OUT/pairs.npz; built there if missing)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument("--init", type=Path, help="start from this checkpoint's weights (fine-tuning; fresh schedule)")
    p.add_argument("--loss", choices=("l1", "mse", "psnr"), default="l1",
                   help="pixel loss on luma; psnr = minus the mean per-patch PSNR (log MSE), which weighs soft, "
                        "low-error patches as the per-frame dB figures of the evaluation do")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--patch", type=int, default=48, help="low-res training crop side (even, <= 64)")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--channels", type=int, default=16)
    p.add_argument("--blocks", type=int, default=1)
    p.add_argument("--block", choices=("rep", "ecb"), default="rep",
                   help="training-time block: RepVGG, or RepVGG + expand-squeeze + Sobel/Laplacian (ECB); "
                        "both fold into the same plain 3x3 convs")
    p.add_argument("--learn-anchor", action="store_true",
                   help="train the linear (bicubic-initialised) anchor too; same exported graph")
    p.add_argument("--anchor-lr", type=float, default=0.1, help="the anchor's learning rate, relative to --lr")
    p.add_argument("--bn-freeze", type=float, default=0.15, help="final fraction of the budget with BN frozen")
    p.add_argument("--ckpt-minutes", type=float, default=2.0)
    p.add_argument("--clean-prob", type=float, default=0.0,
                   help="share of training pairs that are clean 2x downscales (no blur, noise or JPEG)")
    p.add_argument("--clean-share", type=float,
                   help="resample the cached pairs so that this share of each batch is clean (default: as built)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    return p.parse_args(argv)


def clean_pairs(hr: np.ndarray, lr: np.ndarray) -> np.ndarray:
    """Which cached pairs are clean: the low-res luma is the area or bicubic 2x downscale of the high-res luma
    to within 2 levels (luma of a downscaled BGR patch vs downscale of its luma: rounding only)."""
    mask = np.empty(len(hr), bool)
    half = (lr.shape[2], lr.shape[1])
    for i in range(len(hr)):
        d = min(int(np.abs(cv2.resize(hr[i], half, interpolation=m).astype(np.int16) - lr[i]).max())
                for m in (cv2.INTER_AREA, cv2.INTER_CUBIC))
        mask[i] = d <= 2
    return mask


class PairSampler:
    """Random aligned crops of the cached pairs with flips/transposes; yields torch batches in [0, 1].

    ``clean``/``clean_share``: draw each crop from the clean pairs with this probability (else from the others).
    """

    def __init__(self, hr: np.ndarray, lr: np.ndarray, patch: int, rng: np.random.Generator,
                 clean: np.ndarray | None = None, clean_share: float | None = None) -> None:
        self.hr, self.lr, self.patch, self.rng = hr, lr, patch, rng
        self.clean_share = clean_share
        if clean_share is not None:
            self.clean_idx, self.other_idx = np.flatnonzero(clean), np.flatnonzero(~clean)

    def _indices(self, n: int) -> np.ndarray:
        if self.clean_share is None:
            return self.rng.integers(0, len(self.lr), n)
        pick_clean = self.rng.random(n) < self.clean_share
        return np.where(pick_clean, self.rng.choice(self.clean_idx, n), self.rng.choice(self.other_idx, n))

    def batch(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        p, lr_side = self.patch, self.lr.shape[1]
        idx = self._indices(n)
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


def psnr_loss(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """Minus the mean per-patch PSNR / 10 (dB are averaged per frame in the evaluation, so an error on a soft
    patch costs more dB than the same error on a textured one). The floor (60 dB) keeps flat patches finite."""
    mse = (sr - hr).pow(2).mean(dim=(1, 2, 3))
    return torch.log10(mse + 1e-6).mean()


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = F.mse_loss(a.clamp(0, 1), b).item()
    return 10 * math.log10(1.0 / max(mse, 1e-12))


@torch.no_grad()
def validate(model: TinySR, lo: torch.Tensor, hi: torch.Tensor) -> tuple[float, float, float]:
    """(PSNR of the model, PSNR of bicubic, mean per-patch dB gain over bicubic) on the validation pairs."""
    was_training = model.training
    model.eval()
    sr = model(lo).clamp(0, 1)
    bic = F.interpolate(lo, scale_factor=2, mode="bicubic", align_corners=False).clamp(0, 1)
    model.train(was_training)
    per_patch = lambda x: (x - hi).pow(2).mean(dim=(1, 2, 3)).clamp_min(1e-10)
    gain = 10 * torch.log10(per_patch(bic) / per_patch(sr)).mean().item()
    return psnr(sr, hi), psnr(bic, hi), gain


def set_bn_frozen(model: nn.Module, frozen: bool) -> None:
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.train(not frozen)


def load_pairs(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    cache = args.pairs or args.out / "pairs.npz"
    if cache.exists():
        with np.load(cache) as z:
            return z["hr"], z["lr"]
    hr, lr = build_pairs(seed=args.seed, cfg=Degradation(clean_prob=args.clean_prob), root=args.data)
    np.savez(cache, hr=hr, lr=lr)
    return hr, lr


def init_from(model: TinySR, state: dict) -> None:
    """Load ``state`` into ``model``; a plain RepVGG checkpoint may start an ECB / learned-anchor model, whose
    extra branches then start silent and whose anchor starts as the checkpoint's (bicubic)."""
    missing, unexpected = model.load_state_dict(state, strict=False)
    new = ("es1", "es3", "bn_es", "edges", "anchor_w")
    bad = [k for k in missing if not any(part in k.split(".") for part in new)] + list(unexpected)
    if bad:
        raise ValueError(f"checkpoint does not fit the model: {bad}")


def model_config(args: argparse.Namespace) -> dict:
    return {"channels": args.channels, "blocks": args.blocks, "block": args.block, "learn_anchor": args.learn_anchor}


def make_optimizer(model: TinySR, args: argparse.Namespace) -> torch.optim.Adam:
    """Adam; the anchor (when trained) in its own group at ``--anchor-lr`` times the learning rate."""
    anchor = [p for n, p in model.named_parameters() if n == "anchor_w"]
    rest = [p for n, p in model.named_parameters() if n != "anchor_w"]
    groups = [{"params": rest, "lr_scale": 1.0}]
    if anchor:
        groups.append({"params": anchor, "lr_scale": args.anchor_lr})
    return torch.optim.Adam(groups, lr=args.lr)


def make_sampler(hr: np.ndarray, lr: np.ndarray, args: argparse.Namespace, rng: np.random.Generator) -> PairSampler:
    clean = None
    if args.clean_share is not None:
        clean = clean_pairs(hr, lr)
        log.info("%.1f%% of the training pairs are clean; sampling %.0f%% clean", 100 * clean.mean(),
                 100 * args.clean_share)
    return PairSampler(hr, lr, args.patch, rng, clean, args.clean_share)


def restore(path: Path, model: TinySR, opt: torch.optim.Optimizer, rng: np.random.Generator) -> tuple[int, float]:
    """Continue from a checkpoint: weights, optimiser and random states; returns (step, elapsed seconds)."""
    ck = torch.load(path, weights_only=False)
    model.load_state_dict(ck["model"])
    opt.load_state_dict(ck["opt"])
    rng.bit_generator.state = ck["rng"]
    torch.set_rng_state(ck["torch_rng"])
    log.info("resumed at step %d, %.1f min elapsed", ck["step"], ck["elapsed"] / 60)
    return ck["step"], ck["elapsed"]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(1)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)

    hr, lr = load_pairs(args)
    # fixed validation split: 2% of the (shuffled-once) pairs, never trained on
    order = np.random.default_rng(args.seed).permutation(len(hr))
    n_val = max(64, len(hr) // 50)
    val_idx, train_idx = order[:n_val], order[n_val:]
    val_lo, val_hi = (torch.from_numpy(a[val_idx]).float().div(255).unsqueeze(1) for a in (lr, hr))
    log.info("%d training pairs, %d validation pairs", len(train_idx), n_val)

    config = model_config(args)
    model = TinySR(**config).to(memory_format=torch.channels_last)
    opt = make_optimizer(model, args)
    rng = np.random.default_rng(args.seed + 1)
    step, elapsed = 0, 0.0
    ckpt_path = args.out / "last.pt"
    if args.init is not None and not (args.resume and ckpt_path.exists()):
        init_from(model, torch.load(args.init, weights_only=False)["model"])
        log.info("initialised from %s", args.init)
    if args.resume and ckpt_path.exists():
        step, elapsed = restore(ckpt_path, model, opt, rng)
    sampler = make_sampler(hr[train_idx], lr[train_idx], args, rng)

    def save(path: Path) -> None:
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "elapsed": elapsed,
                    "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(), "config": config,
                    "args": {k: str(v) for k, v in vars(args).items()}}, path)

    loss_fn = {"l1": F.l1_loss, "mse": F.mse_loss, "psnr": psnr_loss}[args.loss]
    budget = args.minutes * 60
    model.train()
    bar = tqdm(total=int(budget), initial=int(elapsed), unit="s", desc="training")
    last_ckpt = time.monotonic()
    loss_avg = None
    while elapsed < budget:
        t0 = time.monotonic()
        frac = elapsed / budget
        for g in opt.param_groups:
            g["lr"] = g["lr_scale"] * args.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * frac)))
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
            p_sr, p_bic, gain = validate(model, val_lo, val_hi)
            log.info("step %d  loss %.4f  val PSNR %.2f dB (bicubic %.2f, gain %+.2f; per patch %+.2f)",
                     step, loss_avg, p_sr, p_bic, p_sr - p_bic, gain)
            save(ckpt_path)
            last_ckpt = time.monotonic()
    bar.close()
    p_sr, p_bic, gain = validate(model, val_lo, val_hi)
    log.info("done: %d steps, val PSNR %.2f dB (bicubic %.2f, gain %+.2f; per patch %+.2f)",
             step, p_sr, p_bic, p_sr - p_bic, gain)
    save(ckpt_path)
    save(args.out / "final.pt")


if __name__ == "__main__":
    main()
