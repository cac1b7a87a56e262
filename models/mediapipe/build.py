"""Build the shipped MediaPipe baseline segmenters: convert, measure, write the .onnx files and their cards.

    python -m models.mediapipe.build [--runs 200]

Reads the TFLite originals from ../shared/data/teachers (build-time only), writes
models/mediapipe/{selfie_segmentation,selfie_segmentation_landscape}.{onnx,json}.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
from pathlib import Path

import onnx

from .convert import convert
from .graph_opt import commute_resize_conv
from .measure import HERE, TEACHERS, VARIANTS, Variant, measure

log = logging.getLogger(__name__)

MEASURE_CMD = "python -m models.mediapipe.measure --model {key}"


def card(variant: Variant, onnx_bytes: bytes, figures: dict[str, object]) -> dict[str, object]:
    cmd = MEASURE_CMD.format(key=variant.key)
    h, w = variant.input_hw
    return {
        "name": variant.name,
        "task": "segmentation",
        "file": f"{variant.stem}.onnx",
        "input_size": [h, w],
        "tier": "baseline",
        "priority": variant.priority,
        "licence": "Apache-2.0",
        "licence_file": "LICENSE",
        "source": "MediaPipe selfie segmentation (mediapipe==0.10.14, "
                  f"mediapipe/modules/selfie_segmentation/{variant.stem}.tflite), "
                  "converted by models.mediapipe.convert (fp32 weights, NCHW), "
                  "decoder Resize/1x1 Conv pairs commuted by models.mediapipe.graph_opt",
        "sha256": hashlib.sha256(onnx_bytes).hexdigest(),
        "io": {"input": f"image float32 [1,3,{h},{w}] RGB in [0,1]",
               "output": f"mask float32 [1,1,{h},{w}] person probability"},
        "figures": {
            "max_abs_diff_vs_tflite": {
                "value": figures["max_abs_diff_vs_tflite"],
                "mean": figures["mean_abs_diff_vs_tflite"],
                "frames": figures["parity_frames"],
                "reference": "ai-edge-litert Interpreter, XNNPACK delegate",
                "fp32_noise_floor": figures["max_abs_diff_ort_optimized_vs_unoptimized"],
                "fp32_noise_floor_is": "max abs diff of the same .onnx in onnxruntime with vs without graph "
                                       "optimizations, same frames",
                "command": cmd,
            },
            "ms_per_frame_1thread": {
                **figures["latency"],  # type: ignore[dict-item]
                "stat": "median over runs, onnxruntime CPU, intra/inter-op threads 1, spinning off, "
                        "on a shared 2-core machine",
                "command": cmd,
            },
        },
    }


def shipped_graph(tflite: Path) -> onnx.ModelProto:
    """The graph we ship for a TFLite original: its conversion with the decoder's Resize/1x1 Conv pairs commuted
    (exact, 16-18 % cheaper: models.mediapipe.graph_opt)."""
    model = convert(tflite)
    commute_resize_conv(model)
    return model


def build(variant: Variant, runs: int) -> None:
    onnx_bytes = shipped_graph(TEACHERS / f"{variant.stem}.tflite").SerializeToString()
    onnx_path = HERE / f"{variant.stem}.onnx"
    onnx_path.write_bytes(onnx_bytes)
    figures = measure(variant, onnx_path, runs=runs)
    card_path = onnx_path.with_suffix(".json")
    card_path.write_text(json.dumps(card(variant, onnx_bytes, figures), indent=2) + "\n")
    log.info("wrote %s (%d bytes) and %s: %s", onnx_path.name, len(onnx_bytes), card_path.name, figures)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for variant in VARIANTS.values():
        build(variant, args.runs)


if __name__ == "__main__":
    main()
