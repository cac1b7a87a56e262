"""CPU per frame of every clip in the data root's videos, as a ratio of the LFBW-style reference.

    python -m tools.evaluation.perf [--frames 90] [--size 1280x720] [--preset blur] [--model NAME]
                                    [--set SECTION.FIELD=VALUE] [--clips GLOB] [--json PATH]
    python -m tools.evaluation.perf --ops [--clips office-talk-720p.mp4]    # the costliest OpenCV calls

Runs ``vcam bench --reference`` (:func:`vcam.bench.run_bench`) on each clip through the daemon's default path:
the pipeline centre-crops a frame of another aspect ratio and resizes it (or super-resolves it, ``[upscale]
mode = "auto"``) to the output size; the reference gets the same crop, resized bilinearly. One segmenter is
loaded for all clips (``auto``, the default: the one the daemon's probe picks). Prints one table: clip, camera size, our CPU ms per frame, the reference's, the ratio,
glass-to-glass latency added (p50/p99) and the stage split (thread CPU ms, medians; the segment stage's mean
too, lower than its median where still frames skip the model).
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import time
from pathlib import Path

import cv2

from tools.paths import DATA_ROOT
from vcam.bench import run_bench
from vcam.segmenter import load_segmenter

log = logging.getLogger(__name__)
SPLIT = ("decode", "fit", "segment", "guard", "upscale", "refine", "composite", "i420")
TARGET_RATIO = 0.33


def clip_size(path: Path) -> str:
    cap = cv2.VideoCapture(str(path))
    try:
        return f"{int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))}x{int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))}"
    finally:
        cap.release()


def _overrides(pairs: list[str]) -> dict:
    """``section.field=value`` pairs -> nested dict (values parsed as JSON where they parse)."""
    out: dict = {}
    for pair in pairs:
        key, _, raw = pair.partition("=")
        section, _, name = key.partition(".")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out.setdefault(section, {})[name] = value
    return out


def table(rows: list[dict]) -> str:
    head = ["clip", "camera", "ms/frame", "ref ms", "ratio", "lat p50/p99"] + [f"{s}" for s in SPLIT] + [
        "segment mean"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["clip"], r["camera"], f"{r['cpu_ms_per_frame']:.2f}", f"{r['reference_cpu_ms_per_frame']:.2f}",
                 f"**{r['ratio_to_reference']:.2f}**", f"{r['latency_p50_ms']:.1f}/{r['latency_p99_ms']:.1f}"]
        cells += [f"{r[s + '_ms']:.2f}" for s in SPLIT] + [f"{r.get('segment_mean_ms', float('nan')):.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


OPS = ("resize", "cvtColor", "copyTo", "filter2D", "boxFilter", "multiply", "add", "remap", "dilate",
       "morphologyEx", "GaussianBlur", "divide", "subtract")


def op_costs(path: Path, frames: int, size: tuple[int, int], seg: object, top: int = 15) -> list[str]:
    """Thread CPU ms per frame of each OpenCV call (by function, input shape and output size) in one bench run
    of ``path``, costliest first (the calls are wrapped, so the figures carry a few microseconds each)."""
    cost: dict[tuple, list[float]] = collections.defaultdict(lambda: [0, 0.0])
    originals = {name: getattr(cv2, name) for name in OPS}

    def timed(name: str, fn):  # noqa: ANN001, ANN202 - a thin wrapper
        def call(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            t0 = time.thread_time()
            result = fn(*args, **kwargs)
            arg = args[1] if name in ("resize", "cvtColor") and len(args) > 1 else ""
            entry = cost[(name, getattr(args[0], "shape", None), str(arg))]
            entry[0] += 1
            entry[1] += time.thread_time() - t0
            return result
        return call

    try:
        for name, fn in originals.items():
            setattr(cv2, name, timed(name, fn))
        run_bench(source=str(path), size=size, frames=frames, loaded=seg)
    finally:
        for name, fn in originals.items():
            setattr(cv2, name, fn)
    total = frames + 10  # the bench's warm-up frames are counted too
    ranked = sorted(cost.items(), key=lambda kv: -kv[1][1])[:top]
    return [f"{t / total * 1e3:7.3f} ms/frame {n / total:4.1f} calls  {k}" for k, (n, t) in ranked]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=90)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--preset", default="blur")
    parser.add_argument("--model", default="auto", help="segmenter name or path; auto: the daemon's pick")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE")
    parser.add_argument("--clips", default="*.mp4", help="glob under DATA_ROOT/videos")
    parser.add_argument("--json", help="also write the rows here")
    parser.add_argument("--ops", action="store_true", help="instead: the costliest OpenCV calls on each clip")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    size = tuple(int(v) for v in args.size.split("x"))
    seg = load_segmenter(args.model, threads=1)
    if args.ops:
        for path in sorted((DATA_ROOT / "videos").glob(args.clips)):
            print(path.name, *op_costs(path, args.frames, size, seg), sep="\n")
        return
    rows = []
    for path in sorted((DATA_ROOT / "videos").glob(args.clips)):
        result = run_bench(source=str(path), size=size, frames=args.frames, preset=args.preset,
                           overrides=_overrides(args.set), reference=True, loaded=seg)
        result.update(clip=path.name, camera=clip_size(path))
        rows.append(result)
        print(json.dumps(result), flush=True)
    print(f"\n{args.preset}, {args.size}, {args.frames} frames per clip, segmenter {seg.card.name}")
    print(table(rows))
    met = [r["clip"] for r in rows if r["ratio_to_reference"] <= TARGET_RATIO]
    print(f"\n{len(met)} of {len(rows)} clips at or under {TARGET_RATIO}x the reference")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
