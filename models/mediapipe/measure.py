"""Measure converted MediaPipe segmenters: parity with the TFLite original on real frames, and latency.

    python -m models.mediapipe.measure [--model landscape|general ...] [--runs 200]

Prints one JSON object per model. Parity: max abs diff of the ONNX `mask` vs the TFLite output (ai-edge-litert,
default XNNPACK delegate, needed for the custom op) on frames of the bundled demo clip and photos from
../shared/data/portrait-seg, each resized (squashed, INTER_AREA) to the model input. Latency: onnxruntime CPU,
1 intra-op / 1 inter-op thread, spinning off, median over `runs` runs after a warm-up, wall and process CPU time.
Noise floor: the same ONNX file run by onnxruntime with and without graph optimizations, on the same frames.

Training/build tooling: reads ../shared and needs ai-edge-litert; the daemon never imports it.
"""

from __future__ import annotations

from tools.paths import DATA_ROOT
import argparse
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

import vcam

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
TEACHERS = DATA_ROOT / "teachers"
PHOTOS = DATA_ROOT / "portrait-seg" / "images"
DEMO_CLIP = Path(vcam.__file__).resolve().parent / "assets" / "demo.mp4"


@dataclass(frozen=True)
class Variant:
    key: str
    name: str  # card name
    stem: str  # file stem of both the .tflite original and the shipped .onnx
    input_hw: tuple[int, int]
    priority: int


VARIANTS: dict[str, Variant] = {
    "landscape": Variant("landscape", "mediapipe-selfie-landscape", "selfie_segmentation_landscape", (144, 256), 10),
    "general": Variant("general", "mediapipe-selfie", "selfie_segmentation", (256, 256), 5),
}


def demo_frames(size_hw: tuple[int, int], n: int) -> list[np.ndarray]:
    """`n` evenly spaced frames of the bundled demo clip, RGB float32 [H, W, 3] in [0, 1] at `size_hw`."""
    cap = cv2.VideoCapture(str(DEMO_CLIP))
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    frames = []
    for idx in np.linspace(0, count - 1, n).round().astype(int):
        cap.set(cv2.CAP_PROP_POS_FRAMES, int(idx))
        ok, bgr = cap.read()
        if not ok:
            raise RuntimeError(f"cannot read frame {idx} of {DEMO_CLIP}")
        frames.append(_to_input(bgr, size_hw))
    cap.release()
    return frames


def photo_frames(size_hw: tuple[int, int], n: int, folder: Path = PHOTOS) -> list[np.ndarray]:
    """`n` photos spread over the sorted portrait-seg images, same format as `demo_frames`."""
    paths = sorted(folder.glob("*.jpg"))
    picked = [paths[i] for i in np.linspace(0, len(paths) - 1, n).round().astype(int)]
    return [_to_input(cv2.imread(str(p), cv2.IMREAD_COLOR), size_hw) for p in picked]


def _to_input(bgr: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    h, w = size_hw
    rgb = cv2.cvtColor(cv2.resize(bgr, (w, h), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
    return rgb.astype(np.float32) / 255.0


def run_tflite(path: str | Path, frames: list[np.ndarray]) -> np.ndarray:
    """TFLite original on HWC frames -> masks [N, H, W]."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path), num_threads=1)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0]["index"], interp.get_output_details()[0]["index"]
    masks = []
    for f in frames:
        interp.set_tensor(inp, f[None])
        interp.invoke()
        masks.append(interp.get_tensor(out)[0, :, :, 0].copy())
    return np.stack(masks)


def session(model: str | Path | bytes, threads: int = 1, optimize: bool = True) -> ort.InferenceSession:
    """onnxruntime CPU session as the daemon runs it: `threads` intra-op threads, spinning disabled.

    `optimize=False` turns graph optimizations off (a second fp32 implementation of the same graph, for the noise
    floor of the parity figure)."""
    so = ort.SessionOptions()
    if not optimize:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model if isinstance(model, bytes) else str(model), so,
                                providers=["CPUExecutionProvider"])


def run_onnx(sess: ort.InferenceSession, frames: list[np.ndarray]) -> np.ndarray:
    """Converted model on the same HWC frames (fed NCHW per the contract) -> masks [N, H, W]."""
    return np.stack([sess.run(["mask"], {"image": f.transpose(2, 0, 1)[None].copy()})[0][0, 0] for f in frames])


def latency_ms(sess: ort.InferenceSession, frame: np.ndarray, runs: int = 200, warmup: int = 20) -> dict[str, float]:
    x = {"image": frame.transpose(2, 0, 1)[None].copy()}
    for _ in range(warmup):
        sess.run(None, x)
    wall, cpu = [], []
    for _ in range(runs):
        t0, c0 = time.perf_counter(), time.process_time()
        sess.run(None, x)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return {"median_wall_ms": round(float(np.median(wall)) * 1e3, 3),
            "median_cpu_ms": round(float(np.median(cpu)) * 1e3, 3)}


def measure(variant: Variant, onnx_path: Path | None = None, runs: int = 200, n_demo: int = 6,
            n_photos: int = 6) -> dict[str, object]:
    onnx_path = onnx_path or HERE / f"{variant.stem}.onnx"
    frames = demo_frames(variant.input_hw, n_demo) + photo_frames(variant.input_hw, n_photos)
    sess = session(onnx_path)
    masks = run_onnx(sess, frames)
    diff = np.abs(masks - run_tflite(TEACHERS / f"{variant.stem}.tflite", frames))
    noise = np.abs(masks - run_onnx(session(onnx_path, optimize=False), frames))
    return {
        "model": variant.key,
        "max_abs_diff_vs_tflite": float(diff.max()),
        "mean_abs_diff_vs_tflite": float(diff.mean()),
        # The same ONNX graph, ORT optimized vs unoptimized: how far two fp32 implementations drift apart.
        "max_abs_diff_ort_optimized_vs_unoptimized": float(noise.max()),
        "parity_frames": f"{n_demo} demo.mp4 frames + {n_photos} portrait-seg photos",
        "latency": {**latency_ms(sess, frames[0], runs), "runs": runs, "threads": 1,
                    "onnxruntime": ort.__version__},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="parity vs TFLite and 1-thread latency of the shipped ONNX files")
    parser.add_argument("--model", action="append", choices=sorted(VARIANTS), help="default: all")
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for key in args.model or list(VARIANTS):
        print(json.dumps(measure(VARIANTS[key], runs=args.runs)))


if __name__ == "__main__":
    main()
