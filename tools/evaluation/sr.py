"""Evaluate the shipped super-resolution stage against bicubic and bilinear upscaling.

    python -m tools.evaluation.sr                  # prints the table
    python -m tools.evaluation.sr --write-card     # ...and stores the figures in models/sr/tinysr_x2.json
    python -m tools.evaluation.sr --soft-check     # the soft-picture gate's figure against SR's gain, per frame

Held-out frames: every 10th frame of the clips in ``models.sr.data.HELD_OUT_CLIPS`` (1280x720, never
trained on), downscaled 2x to 640x360 in two ways: ``webcam`` (the training degradation: blur, area/bicubic/
bilinear downscale, noise, JPEG; one seeded draw per frame) and ``clean`` (area downscale only). Each is
upscaled back to 1280x720 by the stage (SR, whole frame), cv2 bicubic and cv2 bilinear; PSNR and SSIM are on
the BT.601 luma of the BGR outputs against the original frame. ``auto`` is the stage as the daemon runs it in
auto mode with its cost budget left out: SR, or bicubic while the soft-picture gate (``soft_input``) finds the
picture too soft; one stage per clip and protocol, fed that clip's frames in turn, measuring each one.

Temporal stability: 60 consecutive frames per held-out clip, one degradation draw per clip with fresh noise
per frame (like one camera). "Still" pixels are those whose original luma changes by less than 1 level
(after a 5x5 blur) between consecutive frames; the figure is the mean absolute frame-to-frame change of the
output luma over still pixels (8-bit levels). SR must not exceed bicubic's.

Sharp content: per-trait gains also on the 86 ``portrait-seg/val.txt`` photos (sharp street photos, never
trained on), since the held-out clips are very soft.

Speed: CPU time of the calling thread (``time.thread_time``, robust to the shared machine's load; ORT runs on
that thread) per 640x360 -> 1280x720 frame at one thread, round-robin: the ONNX model alone (the stage's
fixed-shape session on the demo frame's luma), the whole stage on the whole frame, and the whole stage
person-only with the shipped segmenter's mask of a demo frame.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from models.sr import shipped_card_path, shipped_model_path
from models.sr.data import DATA_ROOT, HELD_OUT_CLIPS, read_frames
from tools.splits import SR_EVAL_CLIPS, is_held_out_clip
from models.sr.degrade import DegradeParams, degrade, downscale_clean, luma
from vcam.postprocess.upscale import Upscaler, UpscaleSettings

log = logging.getLogger(__name__)

OUT_SIZE = (1280, 720)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255.0**2 / max(mse, 1e-10))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of two uint8 greyscale images (Gaussian window 11, sigma 1.5, as Wang et al. 2004)."""
    x, y = a.astype(np.float64), b.astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    blur = lambda im: cv2.GaussianBlur(im, (11, 11), 1.5)
    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return float(s.mean())


def methods(upscaler: Upscaler, chroma: Upscaler | None = None) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    def size(lr: np.ndarray) -> tuple[int, int]:
        return 2 * lr.shape[1], 2 * lr.shape[0]

    fns = {
        "sr": lambda lr: upscaler.process(lr, None, out_size=size(lr)).copy(),
        "bicubic": lambda lr: cv2.resize(lr, size(lr), interpolation=cv2.INTER_CUBIC),
        "lanczos": lambda lr: cv2.resize(lr, size(lr), interpolation=cv2.INTER_LANCZOS4),
        "bilinear": lambda lr: cv2.resize(lr, size(lr), interpolation=cv2.INTER_LINEAR),
    }
    if chroma is not None:
        fns["sr, bicubic chroma"] = lambda lr: chroma.process(lr, None, out_size=size(lr)).copy()
    return fns


def clip_frames(root: Path, clip: str, step: int, limit: int) -> list[np.ndarray]:
    """High-resolution originals: every ``step``-th frame (at most ``limit``), larger than 720p area-shrunk to
    1280x720, sizes cropped to multiples of 4 (the 2x downscale and the stage want even sizes)."""
    frames = []
    for hr in read_frames(root / "videos" / clip, step=step, limit=limit):
        if hr.shape[0] > 720:
            hr = cv2.resize(hr, (1280, 720), interpolation=cv2.INTER_AREA)
        h, w = hr.shape[:2]
        frames.append(np.ascontiguousarray(hr[: h // 4 * 4, : w // 4 * 4]))
    return frames


def chroma_psnr(out: np.ndarray, hr: np.ndarray) -> float:
    a = cv2.cvtColor(out, cv2.COLOR_BGR2YCrCb)[..., 1:]
    b = cv2.cvtColor(hr, cv2.COLOR_BGR2YCrCb)[..., 1:]
    return psnr(a, b)


def quality(root: Path, upscaler: Upscaler, chroma: Upscaler | None = None, step: int = 10, limit: int = 12,
            seed: int = 1234, model: Path | None = None) -> dict:
    """PSNR-Y, SSIM-Y and chroma PSNR per clip, condition and method (means over the clip's frames).

    ``clean``: a 2x area downscale; ``webcam``: one seeded draw of the training degradation per frame."""
    rng = np.random.default_rng(seed)
    fns = methods(upscaler, chroma)
    result: dict = {}
    for clip in SR_EVAL_CLIPS:
        scores: dict[str, dict[str, list[tuple[float, float, float]]]] = {"clean": {}, "webcam": {}}
        frames = clip_frames(root, clip, step, limit)
        autos = {cond: auto_stage(model or shipped_model_path()) for cond in scores}
        for hr in frames:
            hr_y = luma(hr)
            lows = {"clean": downscale_clean(hr), "webcam": degrade(hr, DegradeParams.draw(rng), rng)}
            for cond, lr in lows.items():
                outs = {name: fn(lr) for name, fn in fns.items()}
                outs["auto"] = autos[cond].process(lr, None, out_size=(2 * lr.shape[1], 2 * lr.shape[0])).copy()
                for name, out in outs.items():
                    out_y = luma(out)
                    scores[cond].setdefault(name, []).append((psnr(out_y, hr_y), ssim(out_y, hr_y), chroma_psnr(out, hr)))
        result[clip] = {"frames": len(frames), "held_out": is_held_out_clip(clip), "size": list(frames[0].shape[1::-1])}
        for cond, per in scores.items():
            result[clip][cond] = {name: {"psnr_y": float(np.mean([v[0] for v in vals])),
                                         "ssim_y": float(np.mean([v[1] for v in vals])),
                                         "psnr_crcb": float(np.mean([v[2] for v in vals]))}
                                  for name, vals in per.items()}
    return result


def auto_stage(model: Path) -> Upscaler:
    """The stage in auto mode with ``model``, its cost budget out of the way, the soft-picture gate measuring
    every frame (the evaluation's frames are 10 camera frames apart)."""
    stage = Upscaler(UpscaleSettings(mode="auto", person_only=False, frame_budget_ms=1e6),
                     model_path=model, cost_probe=lambda w, h: 0.0)
    stage.soft_gate.every = 1
    return stage


def soft_check(root: Path, upscaler: Upscaler, step: int = 10, limit: int = 8, seed: int = 1234) -> str:
    """Per frame of every clip whose short side is at least 480 px (clean and webcam-degraded 2x downscales):
    the soft-picture gate's finest-band energy of the low-resolution frame against SR's PSNR-Y gain over bicubic;
    the frames under 3, and counts by the gate's thresholds, for the clips SR was trained on and the held-out ones."""
    from vcam.postprocess.soft_input import SOFT_BELOW, fine_energy

    rng = np.random.default_rng(seed)
    fns = methods(upscaler)
    rows = []
    for path in sorted((root / "videos").glob("*.mp4")):
        frames = clip_frames(root, path.name, step, limit)
        if not frames or min(frames[0].shape[:2]) < 480:
            continue
        for hr in frames:
            hr_y = luma(hr)
            for cond, lr in (("clean", downscale_clean(hr)), ("webcam", degrade(hr, DegradeParams.draw(rng), rng))):
                gain = psnr(luma(fns["sr"](lr)), hr_y) - psnr(luma(fns["bicubic"](lr)), hr_y)
                rows.append((is_held_out_clip(path.name), path.stem, cond, fine_energy(lr), gain))
    lines = ["| set | clip | protocol | finest-band energy | SR - bicubic (dB) |", "|---|---|---|---|---|"]
    for held, clip, cond, energy, gain in sorted(rows, key=lambda r: (r[0], r[3])):
        if energy < 3.0:
            lines.append(f"| {'held-out' if held else 'trained on'} | {clip} | {cond} | {energy:.2f} | {gain:+.2f} |")
    lines += ["", "| set | frames | under the gate's threshold: frames, SR lost | from it to 3: frames, SR lost |",
              "|---|---|---|---|"]
    for held in (False, True):
        sel = [r for r in rows if r[0] == held]
        low = [r for r in sel if r[3] < SOFT_BELOW]
        mid = [r for r in sel if SOFT_BELOW <= r[3] < 3.0]
        name = "held-out" if held else "trained on"
        lines.append(f"| {name} | {len(sel)} | {len(low)}, {sum(r[4] < 0 for r in low)} | "
                     f"{len(mid)}, {sum(r[4] < 0 for r in mid)} |")
    return "\n".join(lines)


def quality_table(q: dict) -> str:
    lines = ["| condition | clip (size) | frames | method | PSNR Y (dB) | gain vs bicubic (dB) | SSIM Y | PSNR CrCb (dB) |",
             "|---|---|---|---|---|---|---|---|"]
    for cond in ("clean", "webcam"):
        for clip, r in q.items():
            bic = r[cond]["bicubic"]["psnr_y"]
            for name, m in r[cond].items():
                lines.append(f"| {cond} | {clip} ({r['size'][0]}x{r['size'][1]}) | {r['frames']} | {name} | "
                             f"{m['psnr_y']:.2f} | {m['psnr_y'] - bic:+.2f} | {m['ssim_y']:.4f} | {m['psnr_crcb']:.2f} |")
        names = next(iter(q.values()))[cond].keys()
        for name in names:
            gain = np.mean([r[cond][name]["psnr_y"] - r[cond]["bicubic"]["psnr_y"] for r in q.values()])
            ssim_d = np.mean([r[cond][name]["ssim_y"] - r[cond]["bicubic"]["ssim_y"] for r in q.values()])
            lines.append(f"| {cond} | **mean over clips** | | {name} | | **{gain:+.2f}** | {ssim_d:+.4f} vs bicubic | |")
    return "\n".join(lines)


# single webcam traits, to see where SR gains and where it loses (sigma in 8-bit levels, JPEG quality;
# a 2x bilinear downscale equals the area one, so it is not listed)
TRAITS = {
    "area only": DegradeParams(0.0, "area", 0.0, None),
    "noise 2": DegradeParams(0.0, "area", 2.0, None),
    "noise 4": DegradeParams(0.0, "area", 4.0, None),
    "jpeg 85": DegradeParams(0.0, "area", 0.0, 85),
    "noise 2 + jpeg 85": DegradeParams(0.0, "area", 2.0, 85),
    "blur 0.6 + area": DegradeParams(0.6, "area", 0.0, None),
    "bicubic downscale": DegradeParams(0.0, "bicubic", 0.0, None),
}


def per_trait(root: Path, upscaler: Upscaler, step: int = 30, seed: int = 7) -> dict:
    """SR's PSNR-Y gain over bicubic for each single degradation trait (every ``step``-th held-out frame)."""
    rng = np.random.default_rng(seed)
    gains: dict[str, list[float]] = {name: [] for name in TRAITS}
    for clip in SR_EVAL_CLIPS:
        for hr in clip_frames(root, clip, step, 4):
            hr_y = luma(hr)
            size = (hr.shape[1], hr.shape[0])
            for name, params in TRAITS.items():
                lr = degrade(hr, params, rng)
                sr = luma(upscaler.process(lr, None, out_size=size))
                bic = luma(cv2.resize(lr, size, interpolation=cv2.INTER_CUBIC))
                gains[name].append(psnr(sr, hr_y) - psnr(bic, hr_y))
    return {name: round(float(np.mean(g)), 3) for name, g in gains.items()}


def photo_traits(root: Path, upscaler: Upscaler, seed: int = 7) -> dict:
    """Per-trait gains on sharp photos: the 86 ``portrait-seg/val.txt`` images (never trained on), cropped
    to multiples of 4, upscaled back to their own size."""
    rng = np.random.default_rng(seed)
    folder = root / "portrait-seg"
    gains: dict[str, list[float]] = {name: [] for name in TRAITS}
    for stem in (folder / "val.txt").read_text().split():
        img = cv2.imread(str(folder / "images" / f"{stem}.jpg"))
        h, w = img.shape[:2]
        hr = np.ascontiguousarray(img[: h // 4 * 4, : w // 4 * 4])
        size = (hr.shape[1], hr.shape[0])
        hr_y = luma(hr)
        for name, params in TRAITS.items():
            lr = degrade(hr, params, rng)
            sr = luma(upscaler.process(lr, None, out_size=size))
            bic = luma(cv2.resize(lr, size, interpolation=cv2.INTER_CUBIC))
            gains[name].append(psnr(sr, hr_y) - psnr(bic, hr_y))
    return {name: round(float(np.mean(g)), 3) for name, g in gains.items()} | {"images": len(gains["area only"])}


def temporal(root: Path, upscaler: Upscaler, frames: int = 60, seed: int = 99, clean: bool = False) -> dict:
    """Mean |frame-to-frame change| of the output luma over still pixels, per method (and the original's).

    ``clean``: area downscale only; else one webcam degradation draw per clip with fresh noise per frame."""
    rng = np.random.default_rng(seed)
    fns = methods(upscaler)
    sums = dict.fromkeys([*fns, "original"], 0.0)
    count = 0
    for clip in SR_EVAL_CLIPS:
        params = DegradeParams.draw(rng)
        prev: dict[str, np.ndarray] | None = None
        for hr in clip_frames(root, clip, 1, frames):
            lr = downscale_clean(hr) if clean else degrade(hr, params, rng)
            cur = {name: luma(fn(lr)).astype(np.float32) for name, fn in fns.items()}
            cur["original"] = luma(hr).astype(np.float32)
            if prev is not None:
                still = np.abs(cv2.blur(cur["original"], (5, 5)) - cv2.blur(prev["original"], (5, 5))) < 1.0
                count += int(still.sum())
                for name in sums:
                    sums[name] += float(np.abs(cur[name] - prev[name])[still].sum())
            prev = cur
    return {name: s / max(count, 1) for name, s in sums.items()} | {"still_pixels": count}


def _cpu_ms(fns: dict[str, Callable[[], object]], runs: int = 100, block: int = 1) -> dict[str, dict]:
    """CPU ms per call of each function, measured round-robin so load changes hit all of them alike.

    ``block`` > 1: each turn runs one function ``block`` times in a row (after 3 untimed calls), so its caches
    are warm, as in a loop over that stage alone; ``block`` = 1: one call per turn, each starting with caches
    the other functions used (closer to the stage between the pipeline's other stages)."""
    for fn in fns.values():
        for _ in range(3):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(max(1, runs // block)):
        for name, fn in fns.items():
            if block > 1:
                for _ in range(3):
                    fn()
            for _ in range(block):
                t0 = time.thread_time()
                fn()
                times[name].append((time.thread_time() - t0) * 1e3)
    return {name: {"median_cpu_ms": round(float(np.median(t)), 2), "min_cpu_ms": round(float(np.min(t)), 2)}
            for name, t in times.items()}


def demo_frame_360p() -> np.ndarray:
    path = Path(__file__).resolve().parents[2] / "vcam" / "assets" / "demo.mp4"
    frame = next(read_frames(path, step=1, limit=1))
    return cv2.resize(frame, (640, 360), interpolation=cv2.INTER_AREA)


def person_mask(frame: np.ndarray) -> np.ndarray | None:
    """The shipped default segmenter's mask of ``frame`` (None when no segmenter loads)."""
    try:
        from vcam.registry import list_models
        from vcam.segmenter import Segmenter

        card = next(c for c in list_models("segmentation") if c.verify() is None)
        return Segmenter(card).process(frame)
    except Exception as exc:  # noqa: BLE001 - evaluation goes on without the person-only figure
        log.warning("no segmenter for the person-only timing: %s", exc)
        return None


def speed(model: Path, baseline: str | None = None, block: int = 1) -> dict:
    """CPU ms of the model alone, the stage whole-frame and person-only (and a plain bilinear resize).

    ``baseline``: a git revision whose ``postprocess/upscale.py`` and shipped model are timed in the same
    round-robin (``baseline_*`` keys), for an old-vs-new ratio that the shared machine's load cancels out of."""
    import onnxruntime as ort

    frame = demo_frame_360p()
    whole = Upscaler(UpscaleSettings(mode="on", person_only=False), model_path=model)
    person = Upscaler(UpscaleSettings(mode="on", person_only=True), model_path=model)
    whole.process(frame, None, OUT_SIZE)  # fills the model's bound input with the frame's padded luma
    fns: dict[str, Callable[[], object]] = {
        "model_640x360": whole.model_run(360, 640).run,
        "stage_whole_frame": lambda: whole.process(frame, None, OUT_SIZE),
        "plain_bilinear_resize": lambda: cv2.resize(frame, OUT_SIZE, interpolation=cv2.INTER_LINEAR),
    }
    mask = person_mask(frame)
    if mask is not None:
        fns["stage_person_only"] = lambda: person.process(frame, mask, OUT_SIZE)
    if baseline:
        fns.update(_baseline_fns(baseline, frame, mask))
    res: dict = _cpu_ms(fns, block=block)
    res["calls_in_a_row"] = block
    res["onnxruntime"] = ort.__version__
    res["load_average_1min"] = round(os.getloadavg()[0], 2)
    if mask is not None and person.last_box is not None:
        box = person.last_box
        res["person_box_fraction_of_frame"] = round((box[2] - box[0]) * (box[3] - box[1]) / (640 * 360), 3)
    if baseline:
        res["baseline"] = baseline
        for key in ("model_640x360", "stage_whole_frame", "stage_person_only"):
            if f"baseline_{key}" in res:
                res[f"ratio_{key}"] = round(res[key]["median_cpu_ms"] / res[f"baseline_{key}"]["median_cpu_ms"], 3)
    return res


def _baseline_fns(rev: str, frame: np.ndarray, mask: np.ndarray | None) -> dict[str, Callable[[], object]]:
    """Timing functions of the stage and model at git revision ``rev``."""
    import importlib.util
    import subprocess
    import tempfile

    repo = Path(__file__).resolve().parents[2]
    tmp = Path(tempfile.mkdtemp(prefix="sr-baseline-"))
    for src, dst in (("postprocess/upscale.py", "upscale_baseline.py"), ("models/sr/tinysr_x2.onnx", "model.onnx")):
        (tmp / dst).write_bytes(subprocess.run(["git", "-C", str(repo), "show", f"{rev}:{src}"], check=True,
                                               capture_output=True).stdout)
    spec = importlib.util.spec_from_file_location("upscale_baseline", tmp / "upscale_baseline.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["upscale_baseline"] = mod  # pydantic resolves the settings' annotations through it
    spec.loader.exec_module(mod)
    whole = mod.Upscaler(mod.UpscaleSettings(mode="on", person_only=False), model_path=tmp / "model.onnx")
    person = mod.Upscaler(mod.UpscaleSettings(mode="on", person_only=True), model_path=tmp / "model.onnx")
    if hasattr(whole, "model_run"):  # fixed-shape sessions with bound buffers, as this stage
        whole.process(frame, None, OUT_SIZE)
        model_fn = whole.model_run(360, 640).run
    else:  # one dynamic-shape session on the unpadded luma
        sess = whole.session
        name = sess.get_inputs()[0].name
        x = (cv2.cvtColor(frame, cv2.COLOR_BGR2YCrCb)[..., 0].astype(np.float32) / 255)[None, None]
        model_fn = lambda: sess.run(None, {name: x})  # noqa: E731
    fns: dict[str, Callable[[], object]] = {
        "baseline_model_640x360": model_fn,
        "baseline_stage_whole_frame": lambda: whole.process(frame, None, OUT_SIZE),
    }
    if mask is not None:
        fns["baseline_stage_person_only"] = lambda: person.process(frame, mask, OUT_SIZE)
    return fns


def complexity(model: Path, h: int = 360, w: int = 640) -> dict:
    """FLOPs (2 x multiply-adds of the convolutions) for an h x w input, and parameter counts.

    Conv output shapes come from running the graph once with every conv output exposed."""
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    m = onnx.load(str(model))
    inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    convs = [n for n in m.graph.node if n.op_type == "Conv"]
    outputs = {o.name for o in m.graph.output}
    for n in convs:
        if n.output[0] not in outputs:
            m.graph.output.append(onnx.helper.make_empty_tensor_value_info(n.output[0]))
    pad = 0 if any(n.op_type == "Pad" for n in m.graph.node) else 4  # newer graphs take the input edge-padded
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.zeros((1, 1, h + pad, w + pad), np.float32)
    outs = sess.run([n.output[0] for n in convs], {sess.get_inputs()[0].name: x})
    macs = sum(int(o.size) * int(np.prod(inits[n.input[1]].shape[1:])) for n, o in zip(convs, outs))
    anchor_params = sum(inits[n.input[1]].size for n in convs if "anchor" in n.input[1])
    total = int(sum(inits[name].size for n in convs for name in n.input[1:] if name in inits))  # weights, biases
    return {"gflops_640x360_to_1280x720": round(2 * macs / 1e9, 3), "params_total": total,
            "params_anchor": int(anchor_params)}


def table(q: dict, t: dict, s: dict, c: dict, traits: dict, photos: dict) -> str:
    lines = [quality_table(q)]
    lines += ["",
              ("| single trait: SR gain vs bicubic, PSNR Y (dB) | held-out clips (every 30th frame) | "
               f"val photos ({photos['images']}) |"), "|---|---|---|"]
    lines += [f"| {name} | {g:+.2f} | {photos[name]:+.2f} |" for name, g in traits.items()]
    lines += ["", "| temporal (still pixels), mean abs frame-to-frame change (levels) | webcam | clean |",
              "|---|---|---|"]
    for name in ("sr", "bicubic", "bilinear", "original"):
        lines.append(f"| {name} | {t['webcam'][name]:.3f} | {t['clean'][name]:.3f} |")
    lines += ["", "| complexity / speed (one thread, CPU time) | value |", "|---|---|",
              f"| GFLOPs 640x360 -> 1280x720 | {c['gflops_640x360_to_1280x720']:.2f} |",
              f"| params (all / of them the linear anchor conv) | {c['params_total']} / {c['params_anchor']} |",
              (f"| model ms per 640x360 frame (median / min) | {s['model_640x360']['median_cpu_ms']:.2f} / "
               f"{s['model_640x360']['min_cpu_ms']:.2f} |"),
              (f"| stage ms, whole frame (median / min) | {s['stage_whole_frame']['median_cpu_ms']:.2f} / "
               f"{s['stage_whole_frame']['min_cpu_ms']:.2f} |")]
    if "stage_person_only" in s:
        lines.append(f"| stage ms, person only, box {s.get('person_box_fraction_of_frame', 0):.0%} of frame "
                     f"(median / min) | {s['stage_person_only']['median_cpu_ms']:.2f} / "
                     f"{s['stage_person_only']['min_cpu_ms']:.2f} |")
    lines.append(f"| plain bilinear resize ms (median) | {s['plain_bilinear_resize']['median_cpu_ms']:.2f} |")
    for key in ("model_640x360", "stage_whole_frame", "stage_person_only"):
        if f"baseline_{key}" in s:
            b = s[f"baseline_{key}"]
            lines.append(f"| {s['baseline']}: {key} ms (median / min), new / old median | {b['median_cpu_ms']:.2f} / "
                         f"{b['min_cpu_ms']:.2f}, {s[f'ratio_{key}']:.3f} |")
    lines.append(f"| machine load average while timing (2 cores) | {s['load_average_1min']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=shipped_model_path())
    p.add_argument("--data", type=Path, default=DATA_ROOT)
    p.add_argument("--step", type=int, default=10, help="every n-th frame of the held-out clips")
    p.add_argument("--write-card", action="store_true", help="store the figures in the shipped model's card")
    p.add_argument("--json", type=Path, help="also write the figures here")
    p.add_argument("--speed-only", action="store_true",
                   help="only re-measure speed (e.g. when the shared machine is quieter); updates that card entry")
    p.add_argument("--block", type=int, default=1, metavar="N",
                   help="time each function N calls in a row per turn (warm caches) instead of 1 (default)")
    p.add_argument("--quality-only", action="store_true", help="only the per-clip PSNR/SSIM table (both protocols)")
    p.add_argument("--frames", type=int, default=12, help="frames per clip for the per-clip table")
    p.add_argument("--soft-check", action="store_true",
                   help="print the soft-picture gate's figure against SR's gain over bicubic, per frame")
    p.add_argument("--baseline", metavar="REV",
                   help="also time the stage and model of this git revision in the same round-robin (old vs new)")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cv2.setNumThreads(1)
    cmd = "python -m tools.evaluation.sr"
    if args.speed_only:
        s = speed(args.model, args.baseline, args.block)
        print(json.dumps(s, indent=2))
        if args.write_card:
            key = "speed_one_thread" if args.block == 1 else "speed_one_thread_warm"
            _update_card(args.model, {key: {**s, "stat": SPEED_STAT, "command": _command(args)}})
        return
    upscaler = Upscaler(UpscaleSettings(mode="on", person_only=False), model_path=args.model)
    if args.soft_check:
        print(soft_check(args.data, upscaler))
        return
    chroma = Upscaler(UpscaleSettings(mode="on", person_only=False), model_path=args.model)
    chroma.chroma_interpolation = cv2.INTER_CUBIC
    q = quality(args.data, upscaler, chroma, step=args.step, limit=args.frames, model=args.model)
    if args.quality_only:
        print(quality_table(q))
        if args.json:
            args.json.write_text(json.dumps(q, indent=2) + "\n")
        if args.write_card:
            _update_card(args.model, {"psnr_ssim_y_per_clip": {**q, "command": _command(args)},
                                      "complexity": {**complexity(args.model), "command": _command(args)}})
        return
    traits = per_trait(args.data, upscaler)
    photos = photo_traits(args.data, upscaler)
    t = {"webcam": temporal(args.data, upscaler), "clean": temporal(args.data, upscaler, clean=True)}
    s = speed(args.model, args.baseline, args.block)
    c = complexity(args.model)
    print(table(q, t, s, c, traits, photos))
    figures = {
        "psnr_ssim_y": {**q, "command": cmd},
        "gain_per_trait_db": {**traits, "command": cmd},
        "gain_per_trait_db_val_photos": {**photos, "command": cmd},
        "temporal_still_change": {**{cond: {k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()}
                                     for cond, r in t.items()}, "command": cmd},
        "speed_one_thread" if args.block == 1 else "speed_one_thread_warm": {**s, "stat": SPEED_STAT,
                                                                           "command": _command(args)},
        "complexity": {**c, "command": cmd},
    }
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    if args.write_card:
        _update_card(args.model, figures)


SPEED_STAT = "CPU time (thread_time) per call, round-robin, on a shared 2-core machine (see load_average_1min)"


def _command(args: argparse.Namespace) -> str:
    """The command line that produced the figures (without output-only options)."""
    parts = ["python -m tools.evaluation.sr"]
    if args.speed_only:
        parts.append("--speed-only")
    if getattr(args, "quality_only", False):
        parts.append("--quality-only")
    if args.model != shipped_model_path():
        parts += ["--model", str(args.model)]
    if args.step != 10 and not args.speed_only:
        parts += ["--step", str(args.step)]
    if args.baseline:
        parts += ["--baseline", args.baseline]
    if args.block != 1:
        parts += ["--block", str(args.block)]
    return " ".join(parts)


def _update_card(model: Path, figures: dict) -> None:
    card_path = shipped_card_path() if model == shipped_model_path() else model.with_suffix(".json")
    card = json.loads(card_path.read_text())
    card["figures"] = {**card.get("figures", {}), **figures}
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    log.info("figures written to %s", card_path)


if __name__ == "__main__":
    main()
