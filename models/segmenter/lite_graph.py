"""Cheaper `lite` candidate graphs: `full`'s graph with a pooled encoder and a cheaper last stage.

    python -m models.segmenter.lite_graph --time                  # time candidates (untrained) vs MediaPipe
    python -m models.segmenter.lite_graph --size 192x288 --no-se --fuse --dw-sum --out runs/lite_192x288.onnx

At one thread the cost of MediaPipe's graph sits largely at stride 2 (README.md), so these keep its output
resolution and cut there. (Measured since: boundary F follows the input size, what the network sees; the output
grid does not limit it, ``python -m tools.evaluation.webcam_val --through-grid``.) ``build`` takes the `full` ONNX
graph (``vcam_seg_full.onnx``, or ``--src``: its weights are the start) and:

- puts a 2x2 average pool after the stem (``probe_lite_graph.pooled_stem_graph``): the encoder and the other
  decoder stages run at half the resolution, the stem's features and the last decoder stage stay at stride 2,
  and the last upsample becomes 4x (``--no-pool``: no pool, the graph at a smaller input, its encoder seeing all
  of it);
- ``--no-se``: replaces the last stage's squeeze-excitation gate by its mean over training photos, folded
  exactly into the neighbouring 1x1 convs (``drop_last_se``);
- ``--fuse`` (with ``--no-se``): moves the last stage's 1x1 conv before the skip sum, exactly, so ONNX Runtime
  fuses the sum into that conv (``fuse_last_add``);
- ``--no-dw``: drops the last stage's depthwise residual branch (not exact: training recovers it);
- ``--stem`` / ``--last`` < 16 keep fewer channels at stride 2 (chosen by the L1 norm of the weights that read
  them). On an AVX-512 CPU ONNX Runtime's NCHWc blocks are 16 channels wide, so 8 channels cost what 16 do.

The result is an ordinary ONNX graph of the ops ``OnnxNet`` interprets: ``finetune.py --graph`` trains it and
``export_mp --graph`` writes the trained weights back into it. A written candidate keeps the command that built it
and its start weights in its metadata, for the model card (``ship_mp --graph``).
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from ..mediapipe.measure import HERE as MEDIAPIPE_DIR
from .probe_lite_graph import cpu_ms, declare_size, pooled_stem_graph
from .ship import HERE

log = logging.getLogger(__name__)

BUILD_COMMAND, START_WEIGHTS = "vcam_build_command", "vcam_start_weights"  # metadata of a written candidate
FULL = HERE / "vcam_seg_full.onnx"
# stride-2 skip (the stem's output): who writes it, who reads it
SKIP_WRITERS = ("conv2d", "conv2d_39")  # stem conv; last decoder 1x1 conv (before its upsample)
SKIP_SE = ("conv2d_40", "conv2d_41")  # squeeze-excitation of the last decoder stage: reads / writes the skip
SKIP_READERS = ("conv2d_1", "conv2d_42")  # encoder's first 1x1 conv; last stage's 1x1 conv
LAST_CONV, LAST_DW, LAST_UP = "conv2d_42", "depthwise_conv2d_10", "conv2d_transpose"


def _weights(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t).astype(np.float32) for t in model.graph.initializer}


def _top(score: np.ndarray, keep: int) -> np.ndarray:
    return np.sort(np.argsort(-score, kind="stable")[:keep])


def pick_channels(w: dict[str, np.ndarray], stem: int, last: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the skip channels and the last stage's channels to keep (L1 importance of their readers)."""
    skip_score = sum(np.abs(w[f"{r}/W"]).sum(axis=(0, 2, 3)) / np.abs(w[f"{r}/W"]).sum() for r in SKIP_READERS)
    last_score = np.abs(w[f"{LAST_UP}/W"]).sum(axis=(1, 2, 3))
    last_score = last_score / last_score.sum() + np.abs(w[f"{LAST_DW}/W"]).sum(axis=(1, 2, 3)) / np.abs(
        w[f"{LAST_DW}/W"]).sum()
    return _top(skip_score, stem), _top(last_score, last)


def _sliced(w: dict[str, np.ndarray], skip: np.ndarray, last: np.ndarray) -> dict[str, np.ndarray]:
    out = {}
    for name in SKIP_WRITERS + SKIP_SE[1:]:  # output channels = skip channels
        out[f"{name}/W"], out[f"{name}/B"] = w[f"{name}/W"][skip], w[f"{name}/B"][skip]
    out[f"{SKIP_SE[0]}/W"] = w[f"{SKIP_SE[0]}/W"][:, skip]
    out[f"{SKIP_READERS[0]}/W"] = w[f"{SKIP_READERS[0]}/W"][:, skip]
    out[f"{LAST_CONV}/W"], out[f"{LAST_CONV}/B"] = w[f"{LAST_CONV}/W"][last][:, skip], w[f"{LAST_CONV}/B"][last]
    out[f"{LAST_DW}/W"], out[f"{LAST_DW}/B"] = w[f"{LAST_DW}/W"][last], w[f"{LAST_DW}/B"][last]
    out[f"{LAST_UP}/W"] = w[f"{LAST_UP}/W"][last]
    return out


def resized_graph(src: onnx.ModelProto, height: int, width: int) -> onnx.ModelProto:
    """``src`` unchanged but declared at ``height`` x ``width`` (the graph is fully convolutional)."""
    model = onnx.ModelProto()
    model.CopyFrom(src)
    declare_size(model, height, width)
    return model


def slim_graph(src: onnx.ModelProto, height: int, width: int, stem: int = 16, last: int = 16,
               pool: bool = True) -> onnx.ModelProto:
    """The pooled-stem graph of ``src`` (or with ``pool=False`` ``src`` itself) at ``height`` x ``width``
    (multiples of 32, or 16 unpooled) with ``stem`` skip channels and ``last`` channels in the last decoder stage
    (module doc)."""
    step = 32 if pool else 16
    if height % step or width % step:
        raise ValueError(f"{height}x{width}: the {'pooled ' if pool else ''}encoder needs multiples of {step}")
    model = pooled_stem_graph(src, height, width) if pool else resized_graph(src, height, width)
    w = _weights(model)
    new = _sliced(w, *pick_channels(w, stem, last))
    for tensor in model.graph.initializer:
        if tensor.name in new:
            tensor.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(new[tensor.name]), tensor.name))
    for node in model.graph.node:
        if node.name == LAST_DW:
            for attr in node.attribute:
                if attr.name == "group":
                    attr.i = last
    model.doc_string = (f"vcam lite candidate: full graph, {'pooled' if pool else 'full-resolution'} encoder, "
                        f"stem {stem} ch, last stage {last} ch")
    onnx.checker.check_model(model)
    return model


SE_GATE, SKIP, SE_NODES = "activation_9", "h_swish", ("add_11__xeno_compat__1", "global_average_pooling2d_9",
                                                        "conv2d_40", "re_lu_19", "conv2d_41", "activation_9",
                                                        "multiply_9")
SKIP_ADD, DW_NODES, DW_ADD = "add_12__xeno_compat__1", (LAST_DW, "re_lu_21"), "add_13__xeno_compat__1"


def mean_gate(model: onnx.ModelProto, frames: list[np.ndarray]) -> np.ndarray:
    """The last stage's squeeze-excitation gate averaged over ``frames`` (RGB float [3,H,W] at the model size)."""
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.graph.output.append(onnx.helper.make_tensor_value_info(SE_GATE, onnx.TensorProto.FLOAT, None))
    sess = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    gates = [sess.run([SE_GATE], {"image": f[None]})[0].reshape(-1) for f in frames]
    return np.mean(gates, axis=0)


def training_frames(height: int, width: int, count: int = 24) -> list[np.ndarray]:
    """The first ``count`` portrait-seg training photos (never a val.txt id), squashed like a frame."""
    import cv2

    from tools.paths import DATA_ROOT

    from .data import read_ids

    held = set(read_ids(DATA_ROOT / "portrait-seg" / "val.txt"))
    paths = [p for p in sorted((DATA_ROOT / "portrait-seg" / "images").glob("*.jpg")) if p.stem not in held]
    out = []
    for path in paths[:count]:
        small = cv2.resize(cv2.imread(str(path)), (width, height), interpolation=cv2.INTER_AREA)
        out.append(cv2.cvtColor(small, cv2.COLOR_BGR2RGB).astype(np.float32).transpose(2, 0, 1) / 255.0)
    return out


def drop_last_se(model: onnx.ModelProto, gate: np.ndarray) -> None:
    """Replace the last stage's input-dependent gate ``g`` by its mean ``s``, folded exactly into the weights:
    ``conv42(h * s + up) == (conv42 * s)(h + up / s)`` and ``up / s`` is the decoder's 1x1 conv (before its
    bilinear upsample, whose weights sum to one) scaled by ``1/s``. Removes a pooling, two element-wise ops and
    the gate's convs at stride 2."""
    s = np.clip(gate.astype(np.float32), 0.05, 1.0)
    w = _weights(model)
    new = {"conv2d_39/W": w["conv2d_39/W"] / s[:, None, None, None], "conv2d_39/B": w["conv2d_39/B"] / s,
           f"{LAST_CONV}/W": w[f"{LAST_CONV}/W"] * s[None, :, None, None]}
    _replace(model, new)
    kept = [n for n in model.graph.node if n.name not in SE_NODES]
    for node in kept:
        if node.name == SKIP_ADD:
            node.input[0] = SKIP
    _set_nodes(model, kept)


def drop_last_dw(model: onnx.ModelProto) -> None:
    """Drop the last stage's depthwise residual branch (``x + relu(dw(x))`` -> ``x``): two full passes fewer."""
    add = next(n for n in model.graph.node if n.name == DW_ADD)
    source, out = add.input[0], add.output[0]
    kept = [n for n in model.graph.node if n.name not in DW_NODES + (DW_ADD,)]
    for node in kept:
        for i, name in enumerate(node.input):
            if name == out:
                node.input[i] = source
    _set_nodes(model, kept)
    used = {i for n in kept for i in n.input}
    keep_init = [t for t in model.graph.initializer if t.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep_init)


def fuse_last_add(model: onnx.ModelProto) -> None:
    """After ``drop_last_se``: ``conv42(h + up(conv39(x)))`` -> ``conv42(h) + up((W42 W39) x + W42 b39)``, exact
    (bilinear weights sum to one), so the stride-2 sum becomes the conv's fused accumulate in ONNX Runtime's
    NCHWc kernels instead of a separate pass over the feature map."""
    w = _weights(model)
    w42 = w[f"{LAST_CONV}/W"][:, :, 0, 0]
    new = {"conv2d_39/W": np.einsum("om,mi->oi", w42, w["conv2d_39/W"][:, :, 0, 0])[:, :, None, None],
           "conv2d_39/B": w42 @ w["conv2d_39/B"]}
    if new["conv2d_39/W"].shape[0] != w["conv2d_39/W"].shape[0]:
        raise ValueError("fuse_last_add needs as many last-stage channels as skip channels")
    _replace(model, new)
    nodes = []
    for node in model.graph.node:
        if node.name == SKIP_ADD:
            continue
        if node.name == LAST_CONV:
            node.input[0], conv_out = SKIP, node.output[0]
            node.output[0] = f"{LAST_CONV}_skip"
            nodes += [node, onnx.helper.make_node("Add", [node.output[0], "conv2d_39"], [conv_out],
                                                  name="last_sum")]
            continue
        nodes.append(node)
    _set_nodes(model, nodes)


def sum_before_relu(model: onnx.ModelProto) -> None:
    """The last stage's residual ``x + relu(dw(x))`` -> ``relu(dw(x) + x)`` (not exact; ``x`` >= 0 as a ReLU's
    output, so they differ only where ``dw(x)`` < 0): ONNX Runtime then runs the sum and the ReLU inside the
    depthwise conv instead of as a separate pass over the feature map."""
    nodes = []
    for node in model.graph.node:
        if node.name == "re_lu_21":
            continue
        if node.name == DW_ADD:
            out = node.output[0]
            nodes.append(onnx.helper.make_node("Add", [LAST_DW, node.input[0]], [f"{out}_pre"], name=DW_ADD))
            nodes.append(onnx.helper.make_node("Relu", [f"{out}_pre"], [out], name=f"{DW_ADD}_relu"))
            continue
        nodes.append(node)
    _set_nodes(model, nodes)


def _replace(model: onnx.ModelProto, new: dict[str, np.ndarray]) -> None:
    for tensor in model.graph.initializer:
        if tensor.name in new:
            tensor.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(new[tensor.name]), tensor.name))


def _set_nodes(model: onnx.ModelProto, nodes: list[onnx.NodeProto]) -> None:
    copies = []
    for node in nodes:
        c = onnx.NodeProto()
        c.CopyFrom(node)
        copies.append(c)
    del model.graph.node[:]
    model.graph.node.extend(copies)
    used = {i for n in copies for i in n.input}
    keep_init = [t for t in model.graph.initializer if t.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep_init)


def build(src: onnx.ModelProto, height: int, width: int, stem: int = 16, last: int = 16, no_se: bool = False,
          no_dw: bool = False, fuse: bool = False, gate: np.ndarray | None = None, dw_sum: bool = False,
          pool: bool = True) -> onnx.ModelProto:
    """A candidate: ``slim_graph`` plus the optional structural cuts of the last stage (``fuse`` needs
    ``no_se``; ``gate``: the squeeze-excitation's stand-in, default its mean over ``training_frames``)."""
    model = slim_graph(src, height, width, stem, last, pool)
    if no_se:
        drop_last_se(model, mean_gate(model, training_frames(height, width)) if gate is None else gate)
        if fuse:
            fuse_last_add(model)
    if no_dw:
        drop_last_dw(model)
    elif dw_sum:
        sum_before_relu(model)
    tags = [f"stem {stem} ch, last stage {last} ch"] + ["no SE"] * no_se + ["no depthwise residual"] * no_dw + ["sum before ReLU"] * (dw_sum and not no_dw)
    encoder = "pooled encoder" if pool else "full-resolution encoder"
    model.doc_string = f"vcam lite candidate: full graph at {height}x{width}, {encoder}, " + ", ".join(tags)
    onnx.checker.check_model(model)
    return model


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="192x320", help="HxW, multiples of 32")
    p.add_argument("--stem", type=int, default=16)
    p.add_argument("--last", type=int, default=16)
    p.add_argument("--no-se", action="store_true", help="fold the last stage's squeeze-excitation to its mean")
    p.add_argument("--no-dw", action="store_true", help="drop the last stage's depthwise residual")
    p.add_argument("--fuse", action="store_true", help="with --no-se: fold the stride-2 sum into the 1x1 conv")
    p.add_argument("--src", type=Path, default=FULL, help="the MediaPipe-graph ONNX whose weights start the "
                   "candidate (default vcam_seg_full.onnx; e.g. an export_mp export of the 112x208 fine-tune)")
    p.add_argument("--dw-sum", action="store_true", help="the last stage's residual as relu(dw(x) + x)")
    p.add_argument("--no-pool", action="store_true", help="keep the encoder at full resolution (no 2x2 pool "
                   "after the stem): `full`'s graph at a smaller input with the last stage's cuts")
    p.add_argument("--out", type=Path, help="write this candidate")
    p.add_argument("--time", action="store_true", help="time a grid of candidates against MediaPipe landscape")
    p.add_argument("--variants", default="192x320,192x320:se,192x320:se:dw,160x288,160x288:se,160x288:se:dw",
                   help="comma list of HxW[:se][:dw][:fuse][:dwsum][:nopool] for --time (se: --no-se, "
                   "dw: --no-dw, fuse: --fuse, dwsum: --dw-sum, nopool: --no-pool)")
    p.add_argument("--rounds", type=int, default=12)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    h, w = (int(v) for v in args.size.split("x"))
    full = onnx.load(str(args.src))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        model = build(full, h, w, args.stem, args.last, args.no_se, args.no_dw, args.fuse, dw_sum=args.dw_sum,
                      pool=not args.no_pool)
        # how to rebuild it, for the model card of what is trained from it (models.segmenter.ship_mp --graph)
        onnx.helper.set_model_props(model, {
            BUILD_COMMAND: "python -m models.segmenter.lite_graph " + " ".join(sys.argv[1:] if argv is None else argv),
            START_WEIGHTS: args.src.name})
        onnx.save(model, str(args.out))
        log.info("wrote %s", args.out)
    if not args.time:
        return
    models = {"mediapipe-landscape": (MEDIAPIPE_DIR / "selfie_segmentation_landscape.onnx").read_bytes()}
    for spec in args.variants.split(","):
        size, *cuts = spec.split(":")
        vh, vw = (int(v) for v in size.split("x"))
        models[spec] = build(full, vh, vw, args.stem, args.last, "se" in cuts, "dw" in cuts,
                             "fuse" in cuts, dw_sum="dwsum" in cuts, pool="nopool" not in cuts).SerializeToString()
    results = cpu_ms(models, args.rounds)
    ref = np.array(results["mediapipe-landscape"])
    for name, values in results.items():
        ratios = np.array(values) / ref  # per round, so a load change hits both sides of each ratio
        log.info("%-26s CPU ms median %.3f  x MediaPipe: median %.2f (rounds %.2f-%.2f)", name,
                 np.median(values), np.median(ratios), ratios.min(), ratios.max())


if __name__ == "__main__":
    main()
