"""Exact rewrites of the MediaPipe-graph segmenters that make them cheaper to run (build/export-time only).

    python -m models.mediapipe.graph_opt models/segmenter/vcam_seg_full.onnx [more.onnx ...]

The decoder of MediaPipe's selfie graph upsamples a feature map 2x (bilinear ``Resize``) and then mixes its
channels with a 1x1 ``Conv``. Both are linear and the bilinear weights of every output pixel sum to one, so
``Conv1x1(Resize(x)) == Resize(Conv1x1(x))`` (the bias included): doing the 1x1 conv first runs it on a quarter
of the pixels, and the resize then moves 24 or 16 channels instead of 128 or 24. Same output up to float
rounding (the CLI checks it, max abs difference <= 1e-4 on random and flat inputs), 16-18 % less CPU per
inference at one thread (``vcam-seg-full`` 3.06 -> 2.52 ms, MediaPipe general 3.30 -> 2.77 ms, timed alternating
in one process). The tensor names of the original graph keep their values
(a new ``<conv>_lowres`` tensor is added), so checkpoints, ``OnnxNet`` and exposed teacher features are
unaffected.

The CLI rewrites each file in place and, where a model card (``.json`` beside it) exists, updates its
``sha256`` and records the rewrite under ``graph_rewrite``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import onnx

log = logging.getLogger(__name__)

REWRITE_NOTE = ("decoder Resize -> 1x1 Conv pairs commuted to Conv -> Resize by models.mediapipe.graph_opt "
                "(exact up to float rounding)")


def _is_pointwise_conv(node: onnx.NodeProto, weights: dict[str, onnx.TensorProto]) -> bool:
    if node.op_type != "Conv" or node.input[1] not in weights:
        return False
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    return (tuple(weights[node.input[1]].dims[2:]) == (1, 1) and attrs.get("group", 1) == 1
            and list(attrs.get("strides", [1, 1])) == [1, 1] and not any(attrs.get("pads", [0, 0, 0, 0])))


def _is_bilinear_resize(node: onnx.NodeProto) -> bool:
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    # every output pixel is a weighted sum of input pixels with weights summing to 1 (no extrapolated constant)
    return (node.op_type == "Resize" and attrs.get("mode", b"nearest") in (b"linear", b"nearest")
            and attrs.get("coordinate_transformation_mode", b"half_pixel") != b"tf_crop_and_resize")


def commute_resize_conv(model: onnx.ModelProto) -> int:
    """Rewrite every ``Resize -> Conv1x1`` pair (the Resize feeding only that conv) as ``Conv1x1 -> Resize``,
    in place. Returns how many pairs were rewritten (0 on an already rewritten graph)."""
    graph = model.graph
    nodes = [onnx.NodeProto() for _ in graph.node]
    for copy, node in zip(nodes, graph.node):
        copy.CopyFrom(node)
    weights = {t.name: t for t in graph.initializer}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in nodes:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    graph_outputs = {o.name for o in graph.output}
    order = list(nodes)
    rewritten = 0
    for resize in nodes:
        if not _is_bilinear_resize(resize) or resize.output[0] in graph_outputs:
            continue
        users = consumers.get(resize.output[0], [])
        if len(users) != 1 or not _is_pointwise_conv(users[0], weights):
            continue
        conv = users[0]
        low = f"{conv.output[0]}_lowres"
        conv.input[0], resize.input[0] = resize.input[0], low
        conv.output[0], resize.output[0] = low, conv.output[0]
        order.remove(conv)
        order.insert(order.index(resize), conv)  # the conv now runs first
        rewritten += 1
    del graph.node[:]
    graph.node.extend(order)
    return rewritten


def max_output_difference(a: onnx.ModelProto, b: onnx.ModelProto) -> float:
    """Largest absolute difference of the two models' first outputs on a random and a flat input."""
    import onnxruntime as ort

    def session(model: onnx.ModelProto) -> ort.InferenceSession:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])

    sa, sb = session(a), session(b)
    inp = sa.get_inputs()[0]
    shape = [d if isinstance(d, int) else 1 for d in inp.shape]
    rng = np.random.default_rng(0)
    worst = 0.0
    for x in (rng.random(shape, dtype=np.float32), np.full(shape, 0.5, np.float32)):
        worst = max(worst, float(np.abs(sa.run(None, {inp.name: x})[0] - sb.run(None, {inp.name: x})[0]).max()))
    return worst


def optimize_file(path: Path, tolerance: float = 1e-4) -> int:
    """Rewrite ``path`` in place (and its card's sha256); raises if the outputs move by more than tolerance."""
    original = onnx.load(str(path))
    model = onnx.ModelProto()
    model.CopyFrom(original)
    n = commute_resize_conv(model)
    if n == 0:
        log.info("%s: nothing to rewrite", path)
        return 0
    onnx.checker.check_model(model)
    diff = max_output_difference(original, model)
    if diff > tolerance:
        raise ValueError(f"{path}: rewritten graph differs by {diff:.2e} (> {tolerance})")
    data = model.SerializeToString()
    path.write_bytes(data)
    card = path.with_suffix(".json")
    if card.is_file():
        meta = json.loads(card.read_text())
        meta["sha256"] = hashlib.sha256(data).hexdigest()
        meta["graph_rewrite"] = {"what": REWRITE_NOTE, "pairs": n, "max_abs_diff": diff}
        card.write_text(json.dumps(meta, indent=2) + "\n")
    log.info("%s: %d Resize/Conv pairs commuted, max abs output difference %.2e", path, n, diff)
    return n


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+", type=Path)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for path in args.models:
        optimize_file(path)


if __name__ == "__main__":
    main()
