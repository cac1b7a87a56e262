"""Cost probe for a cheaper `lite` graph, without training: is a pooled-stem variant of `full` under 0.8x?

    python -m models.segmenter.probe_lite_graph [--size 192x320] [--rounds 12] [--extra NAME=PATH ...]

Builds the `full` graph (``vcam_seg_full.onnx``) with a 2x2 average pool after its stem, so the encoder and the
decoder run at half the resolution while the stem's features and the last decoder stage stay at full (the last
upsample becomes 4x), at an input size divisible by 64; then prints CPU ms per inference at one thread for it,
`full`, MediaPipe landscape and any ``--extra`` ONNX (e.g. an int8 export), interleaved round by round in one
process, and the ratios to MediaPipe.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

from ..mediapipe.measure import HERE as MEDIAPIPE_DIR
from .ship import HERE

STEM_OUTPUT, FIRST_ENCODER_CONV, LAST_UPSAMPLE_SCALES = "h_swish", "conv2d_1", "up_sampling2d_2/scales"


def pooled_stem_graph(src: onnx.ModelProto, height: int, width: int) -> onnx.ModelProto:
    model = onnx.ModelProto()
    model.CopyFrom(src)
    nodes = []
    for node in model.graph.node:
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        if copy.name == FIRST_ENCODER_CONV:
            nodes.append(helper.make_node("AveragePool", [STEM_OUTPUT], ["stem_pooled"], name="stem_pool",
                                          kernel_shape=[2, 2], strides=[2, 2]))
            copy.input[0] = "stem_pooled"
        nodes.append(copy)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    for tensor in model.graph.initializer:
        if tensor.name == LAST_UPSAMPLE_SCALES:
            tensor.CopyFrom(numpy_helper.from_array(np.array([1, 1, 4, 4], np.float32), tensor.name))
    declare_size(model, height, width)
    onnx.checker.check_model(model)
    return model


def declare_size(model: onnx.ModelProto, height: int, width: int) -> None:
    """Declare the graph's input and output at ``height`` x ``width`` (the graph is fully convolutional)."""
    for value in (model.graph.input[0], model.graph.output[0]):
        dims = value.type.tensor_type.shape.dim
        dims[2].dim_value, dims[3].dim_value = height, width


def cpu_ms(models: dict[str, bytes], rounds: int, per_round: int = 50) -> dict[str, list[float]]:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    sessions = {k: ort.InferenceSession(v, opts, providers=["CPUExecutionProvider"]) for k, v in models.items()}
    inputs = {k: np.random.default_rng(0).random(s.get_inputs()[0].shape, dtype=np.float32)
              for k, s in sessions.items()}
    out: dict[str, list[float]] = {k: [] for k in sessions}
    for _ in range(rounds):
        for k, s in sessions.items():
            times = []
            for _ in range(per_round):
                t0 = time.thread_time()
                s.run(None, {"image": inputs[k]})
                times.append(time.thread_time() - t0)
            out[k].append(float(np.median(times) * 1e3))
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="192x320", help="HxW, both divisible by 64")
    p.add_argument("--rounds", type=int, default=12)
    p.add_argument("--extra", action="append", default=[], metavar="NAME=PATH", help="another ONNX to time")
    args = p.parse_args(argv)
    h, w = (int(v) for v in args.size.split("x"))
    full = onnx.load(str(HERE / "vcam_seg_full.onnx"))
    models = {"mediapipe-landscape": (MEDIAPIPE_DIR / "selfie_segmentation_landscape.onnx").read_bytes(),
              f"pooled-stem {h}x{w}": pooled_stem_graph(full, h, w).SerializeToString(),
              "vcam-seg-full": full.SerializeToString()}
    for spec in args.extra:
        name, _, path = spec.partition("=")
        models[name] = Path(path).read_bytes()
    results = cpu_ms(models, args.rounds)
    ref = np.array(results["mediapipe-landscape"])
    for name, values in results.items():
        ratios = np.array(values) / ref  # per round, so a load change hits both sides of each ratio
        print(f"{name:24s} CPU ms median {np.median(values):.3f} (rounds {min(values):.3f}-{max(values):.3f})  "
              f"x MediaPipe: median {np.median(ratios):.2f} (rounds {ratios.min():.2f}-{ratios.max():.2f})")


if __name__ == "__main__":
    main()
