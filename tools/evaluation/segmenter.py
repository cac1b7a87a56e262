"""Evaluate vcam's segmenter tiers against MediaPipe in one run and print a table.

    python -m tools.evaluation.segmenter                      # all shipped segmenters
    python -m tools.evaluation.segmenter --json out.json      # also write the figures
    python -m tools.evaluation.segmenter --model int8=path/to/model_int8.onnx   # add an unshipped candidate

Accuracy on the ``portrait-seg`` ``val.txt`` split (never trained on), two framings:
- ``full``: the whole photo (portrait, mostly full-body), squashed into the model input like any frame;
- ``h&s``: a 4:3 head-and-shoulders crop of it, the webcam framing. Rule (``head_and_shoulders_box``): take the
  top 25% of the person mask's height (head and shoulders of a standing person), the window is 1.5x that region's
  width, 4:3, centred on it horizontally, its top 10% of the window height above the top of the mask, shifted
  (not shrunk) to stay inside the photo.
Every model sees what the daemon feeds it: the frame resized to the input size with ``cv2.INTER_AREA`` (aspect
not preserved), BGR->RGB, /255; its mask is resized back to the frame (bilinear) and scored against the human
mask at the photo's resolution: IoU at 0.5 and boundary F (3 px band), mean over images.
Latency: ONNX Runtime CPU, one intra-op thread, spinning off (as the daemon), models interleaved round by round
in the same process, median wall ms and median process CPU ms.
Webcam domain (``tools.evaluation.webcam_val``, never trained on): held-out ``val.txt`` people composited at
video-call framing onto held-out rooms, and teacher-ensemble-labelled frames of held-out clips (reported per clip):
IoU and boundary F of the model mask, boundary F and alpha SAD after the product's ``MaskRefiner``.
Flicker: ``metrics.unexplained_change`` (mask change that dense optical flow between consecutive frames does not
explain) on the DAVIS ``temporal`` sequences (the human masks' own value given as reference) and on the
``videos`` clips (first ``--video-frames`` frames each).
"""
from __future__ import annotations

from tools.paths import DATA_ROOT
import argparse
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from tools.evaluation import webcam_val
from tools.evaluation.metrics import boundary_f, iou, unexplained_change
from models.segmenter.data import head_and_shoulders_box, read_ids
from vcam.registry import list_models

log = logging.getLogger(__name__)

DATA = DATA_ROOT


@dataclass
class Model:
    name: str
    path: Path
    session: ort.InferenceSession
    size: tuple[int, int]  # H, W

    def __call__(self, frame_bgr: np.ndarray) -> np.ndarray:
        """Mask float32 [h, w] at the model resolution, preprocessed exactly like the daemon."""
        h, w = self.size
        small = cv2.resize(frame_bgr, (w, h), interpolation=cv2.INTER_AREA)
        x = cv2.cvtColor(small, cv2.COLOR_BGR2RGB).astype(np.float32).transpose(2, 0, 1)[None] / 255.0
        return self.session.run(["mask"], {"image": x})[0][0, 0]

    def at(self, frame_bgr: np.ndarray) -> np.ndarray:
        """Mask resized back to the frame size (bilinear)."""
        return cv2.resize(self(frame_bgr), frame_bgr.shape[1::-1], interpolation=cv2.INTER_LINEAR)


def make_session(path: Path, threads: int = 1) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def load_model(name: str, path: Path) -> Model:
    sess = make_session(path)
    shape = sess.get_inputs()[0].shape
    return Model(name, path, sess, (int(shape[2]), int(shape[3])))


def shipped_models() -> list[Model]:
    """Every shipped segmenter (ours and MediaPipe), highest priority first."""
    return [load_model(c.name, c.path) for c in list_models("segmentation") if c.verify() is None]


def crop_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Integer (x0, y0, x1, y1) head-and-shoulders window inside the photo (see the module doc)."""
    box = head_and_shoulders_box(mask, width_factor=1.5, above=0.1, aspect=4 / 3)
    if box is None:
        return None
    x0, y0, w, h = box
    ih, iw = mask.shape
    w, h = min(w, iw), min(h, ih)
    x0 = min(max(x0, 0.0), iw - w)
    y0 = min(max(y0, 0.0), ih - h)
    return int(round(x0)), int(round(y0)), int(round(x0 + w)), int(round(y0 + h))


def accuracy(models: list[Model], limit: int | None = None) -> dict[str, dict[str, float]]:
    ids = read_ids(DATA / "portrait-seg" / "val.txt")[:limit]
    scores: dict[str, dict[str, list[float]]] = {m.name: {} for m in models}
    for i in ids:
        img = cv2.imread(str(DATA / "portrait-seg" / "images" / f"{i}.jpg"), cv2.IMREAD_COLOR)
        gt = cv2.imread(str(DATA / "portrait-seg" / "masks" / f"{i}.png"), cv2.IMREAD_GRAYSCALE)
        views = {"full": (img, gt)}
        box = crop_box(gt)
        if box is not None:
            x0, y0, x1, y1 = box
            views["hs"] = (img[y0:y1, x0:x1], gt[y0:y1, x0:x1])
        for m in models:
            for view, (frame, mask) in views.items():
                pred = m.at(np.ascontiguousarray(frame))
                scores[m.name].setdefault(f"{view}_iou", []).append(iou(pred, mask))
                scores[m.name].setdefault(f"{view}_bf", []).append(boundary_f(pred, mask, band_px=3))
    return {name: {k: float(np.mean(v)) for k, v in s.items()} | {"n_images": len(ids)} for name, s in scores.items()}


def latency(models: list[Model], rounds: int = 20, per_round: int = 20) -> dict[str, dict[str, float]]:
    wall: dict[str, list[float]] = {m.name: [] for m in models}
    cpu: dict[str, list[float]] = {m.name: [] for m in models}
    inputs = {m.name: np.random.default_rng(0).random((1, 3, *m.size), dtype=np.float32) for m in models}
    for m in models:
        for _ in range(10):
            m.session.run(None, {"image": inputs[m.name]})
    for _ in range(rounds):  # interleaved so that load changes hit every model alike
        for m in models:
            x = {"image": inputs[m.name]}
            for _ in range(per_round):
                t0, c0 = time.perf_counter(), time.process_time()
                m.session.run(None, x)
                wall[m.name].append(time.perf_counter() - t0)
                cpu[m.name].append(time.process_time() - c0)
    return {n: {"ms": float(np.median(wall[n]) * 1e3), "cpu_ms": float(np.median(cpu[n]) * 1e3)} for n in wall}


def read_video(path: Path, max_frames: int, long_side: int = 640) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while len(frames) < max_frames:
        ok, f = cap.read()
        if not ok:
            break
        s = long_side / max(f.shape[:2])
        if s < 1:
            f = cv2.resize(f, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        frames.append(f)
    cap.release()
    return frames


def flicker(models: list[Model], video_frames: int = 90) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {m.name: {} for m in models}
    davis_gt = []
    for m in models:
        out[m.name]["davis"] = []
        out[m.name]["davis_iou"] = []
    for seq in sorted(p for p in (DATA / "temporal").iterdir() if p.is_dir()):
        frames = [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in sorted((seq / "images").glob("*.jpg"))]
        gts = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in sorted((seq / "masks").glob("*.png"))]
        davis_gt.append(unexplained_change(frames, gts))
        for m in models:
            masks = [m.at(f) for f in frames]
            out[m.name]["davis"].append(unexplained_change(frames, masks))
            out[m.name]["davis_iou"].append(float(np.mean([iou(p, g) for p, g in zip(masks, gts)])))
    for m in models:
        out[m.name]["videos"] = []
    for clip in sorted((DATA / "videos").glob("*.mp4")):
        frames = read_video(clip, video_frames)
        if len(frames) < 2:
            continue
        for m in models:
            out[m.name]["videos"].append(unexplained_change(frames, [m.at(f) for f in frames]))
    result = {n: {k: float(np.mean(v)) for k, v in d.items()} for n, d in out.items()}
    result["human-masks"] = {"davis": float(np.mean(davis_gt))}
    return result


def webcam(models: list[Model], limit: int | None = None) -> dict[str, dict[str, dict[str, float]]]:
    """Webcam-domain validation scores per model, keyed by subset / ``clip:NAME`` / ``all``."""
    frames = webcam_val.build(limit=limit)
    return {m.name: webcam_val.evaluate(m, frames) for m in models}


def webcam_table(scores: dict, reference: str) -> str:
    """Composites and clips side by side, then IoU / BF per held-out clip."""
    rows = ["| model | composites IoU | BF | BF refined | SAD refined | x ref SAD | clips IoU | BF | SAD refined |",
            "|---|---|---|---|---|---|---|---|---|"]
    ref_sad = scores.get(reference, {}).get("composites", {}).get("sad_refined", np.nan)
    for name, s in scores.items():
        c, v = s["composites"], s["clips"]
        ratio = c["sad_refined"] / ref_sad if ref_sad else float("nan")
        rows.append(f"| {name} | {100 * c['iou']:.2f} | {100 * c['bf']:.2f} | {100 * c['bf_refined']:.2f} "
                    f"| {c['sad_refined']:.2f} | {ratio:.2f} | {100 * v['iou']:.2f} "
                    f"| {100 * v['bf']:.2f} | {v['sad_refined']:.2f} |")
    clips = sorted(k for k in next(iter(scores.values())) if k.startswith("clip:"))
    rows += ["", "| model | " + " | ".join(c[5:] for c in clips) + " |", "|---|" + "---|" * len(clips)]
    for name, s in scores.items():
        rows.append(f"| {name} | " + " | ".join(f"{100 * s[c]['iou']:.1f} / {100 * s[c]['bf']:.1f}" for c in clips)
                    + " |")
    rows.append("(per clip: IoU / boundary F against the teacher ensemble's labels)")
    return "\n".join(rows)


def table(acc: dict, lat: dict, flick: dict, reference: str) -> str:
    ref_ms = lat[reference]["ms"] if reference in lat else float("nan")
    ref_fl = flick.get(reference, {})
    rows = ["| model | h&s IoU | h&s BF | full IoU | full BF | ms (1 thr) | x ref | CPU ms | DAVIS flicker "
            "| DAVIS IoU | video flicker |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name in acc:
        a, l, f = acc[name], lat[name], flick.get(name, {})
        rows.append(f"| {name} | {100 * a.get('hs_iou', np.nan):.2f} | {100 * a.get('hs_bf', np.nan):.2f} "
                    f"| {100 * a['full_iou']:.2f} | {100 * a['full_bf']:.2f} | {l['ms']:.3f} | {l['ms'] / ref_ms:.2f} "
                    f"| {l['cpu_ms']:.3f} | {f.get('davis', np.nan):.4f} | {100 * f.get('davis_iou', np.nan):.2f} "
                    f"| {f.get('videos', np.nan):.4f} |")
    if "human-masks" in flick:
        rows.append(f"| human masks (DAVIS) | | | | | | | | {flick['human-masks']['davis']:.4f} | | |")
    notes = [f"x ref: latency relative to {reference} in the same run."]
    if ref_fl:
        for name in acc:
            f = flick.get(name, {})
            if "davis" in f and name != reference:
                notes.append(f"{name}: flicker / {reference}'s = {f['davis'] / ref_fl['davis']:.2f} (DAVIS), "
                             f"{f['videos'] / ref_fl['videos']:.2f} (videos)")
    return "\n".join(rows + [""] + notes)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", action="append", default=[], metavar="NAME=PATH", help="extra ONNX to evaluate")
    p.add_argument("--only", action="append", default=[], help="evaluate only these names (repeatable)")
    p.add_argument("--reference", default="mediapipe-selfie-landscape")
    p.add_argument("--limit", type=int, default=None, help="val images (default: all 86)")
    p.add_argument("--video-frames", type=int, default=90)
    p.add_argument("--no-flicker", action="store_true")
    p.add_argument("--no-webcam", action="store_true", help="skip the webcam-domain validation set")
    p.add_argument("--webcam-limit", type=int, default=None, help="webcam val: first N composites, N/8 per clip")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cv2.setNumThreads(1)
    models = shipped_models()
    for spec in args.model:
        name, path = spec.split("=", 1)
        models.append(load_model(name, Path(path)))
    if args.only:
        models = [m for m in models if m.name in args.only or m.name == args.reference]
    log.info("models: %s", ", ".join(f"{m.name} ({m.path.name})" for m in models))
    acc = accuracy(models, args.limit)
    lat = latency(models)
    flick = {} if args.no_flicker else flicker(models, args.video_frames)
    cam = {} if args.no_webcam else webcam(models, args.webcam_limit)
    print(table(acc, lat, flick, args.reference))
    if cam:
        print("\nWebcam domain (held-out people, rooms and clips):\n" + webcam_table(cam, args.reference))
    if args.json:
        command = "python -m tools.evaluation.segmenter " + " ".join(sys.argv[1:] if argv is None else argv)
        args.json.write_text(json.dumps({"accuracy": acc, "latency": lat, "flicker": flick, "webcam": cam,
                                         "reference": args.reference, "command": command}, indent=1))


if __name__ == "__main__":
    main()
