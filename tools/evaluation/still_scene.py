"""What still-scene mask reuse (``model.still_threshold``) skips and what it changes, per clip.

    python -m tools.evaluation.still_scene [--frames 150] [--model auto] [--threshold 6] [--max-reused 2]

For each clip of the data root's ``videos/`` (first ``--frames`` frames, resized to 1280 wide like a 720p
camera), the segmenter runs twice over the same frames: on every frame, and through the
:class:`vcam.still_scene.StillSceneGate` as the daemon does. Each mask sequence goes through its own
:class:`MaskRefiner` (default settings, temporal smoothing included), and the two alphas are compared frame by
frame: the share of frames whose model run was skipped, the mean absolute alpha difference (grey levels over
the whole frame) and the share of pixels whose alpha differs by more than 64 levels (mean and worst frame).
"""
from __future__ import annotations

import argparse
import logging

import cv2
import numpy as np

from tools.paths import DATA_ROOT
from vcam.postprocess.mask import MaskRefiner
from vcam.segmenter import Segmenter, load_segmenter
from vcam.still_scene import StillSceneGate

log = logging.getLogger(__name__)


def read_frames(path, n: int, width: int = 1280) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames: list[np.ndarray] = []
    while len(frames) < n:
        ok, frame = cap.read()
        if not ok:
            break
        h = int(round(frame.shape[0] * width / frame.shape[1] / 2)) * 2
        frames.append(cv2.resize(frame, (width, h), interpolation=cv2.INTER_AREA))
    cap.release()
    return frames


def compare(seg: Segmenter, frames: list[np.ndarray], gate: StillSceneGate) -> dict[str, float]:
    every, gated = MaskRefiner(), MaskRefiner()
    mean_diff, big_share = [], []
    for frame in frames:
        alpha_every = every.process(seg.segment(frame)[0].copy(), frame).astype(np.int16)
        alpha_gated = gated.process(seg.segment(frame, gate=gate)[0].copy(), frame).astype(np.int16)
        diff = np.abs(alpha_every - alpha_gated)
        mean_diff.append(float(diff.mean()))
        big_share.append(float((diff > 64).mean()))
    return {"frames": len(frames), "skipped": gate.skipped / max(gate.frames, 1),
            "alpha_mean_abs_diff": float(np.mean(mean_diff)), "alpha_diff_gt64_mean_pct": 100 * float(np.mean(big_share)),
            "alpha_diff_gt64_worst_pct": 100 * float(np.max(big_share))}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=150)
    p.add_argument("--model", default="auto")
    p.add_argument("--threshold", type=float, default=6.0)
    p.add_argument("--max-reused", type=int, default=2)
    p.add_argument("--clips", default="*.mp4")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    cv2.setNumThreads(1)
    seg = load_segmenter(args.model, threads=1)
    rows = []
    print(f"segmenter {seg.card.name}, threshold {args.threshold}, max reused {args.max_reused}, "
          f"{args.frames} frames per clip\n")
    print("| clip | skipped | alpha mean abs diff | pixels off by > 64 (mean / worst frame) |\n|---|---|---|---|")
    for path in sorted((DATA_ROOT / "videos").glob(args.clips)):
        r = compare(seg, read_frames(path, args.frames), StillSceneGate(args.threshold, args.max_reused))
        rows.append(r)
        print(f"| {path.name} | {100 * r['skipped']:.0f} % | {r['alpha_mean_abs_diff']:.3f} | "
              f"{r['alpha_diff_gt64_mean_pct']:.3f} % / {r['alpha_diff_gt64_worst_pct']:.2f} % |", flush=True)
    skipped = np.mean([r["skipped"] for r in rows])
    print(f"\nmean over {len(rows)} clips: skipped {100 * skipped:.0f} %, alpha mean abs diff "
          f"{np.mean([r['alpha_mean_abs_diff'] for r in rows]):.3f}, pixels off by > 64 "
          f"{np.mean([r['alpha_diff_gt64_mean_pct'] for r in rows]):.3f} %")


if __name__ == "__main__":
    main()
