"""The `lite` candidate graph (``models.segmenter.lite_graph``): its exact rewrites, its torch twin and its
training segment from its own weights."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import numpy_helper

from models.mediapipe.torch_net import OnnxNet
from models.segmenter import finetune, lite_graph
from models.segmenter.export_mp import write_onnx
from models.segmenter.probe_lite_graph import pooled_stem_graph

H, W = 96, 160


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(["mask"], {"image": x})[0]


def _frame() -> np.ndarray:
    return np.random.default_rng(3).random((1, 3, H, W), dtype=np.float32)


def _fixed_gate_reference(gate: np.ndarray) -> onnx.ModelProto:
    """The pooled graph with the last stage's squeeze-excitation output replaced by the constant ``gate``."""
    model = pooled_stem_graph(onnx.load(str(lite_graph.FULL)), H, W)
    model.graph.initializer.append(numpy_helper.from_array(gate.reshape(1, -1, 1, 1), "fixed_gate"))
    for node in model.graph.node:
        if node.name == "multiply_9":
            node.input[1] = "fixed_gate"
    return model


def test_folding_the_squeeze_excitation_and_the_fused_sum_are_exact() -> None:
    gate = np.linspace(0.2, 0.9, 16).astype(np.float32)
    full = onnx.load(str(lite_graph.FULL))
    x = _frame()
    reference = _run(_fixed_gate_reference(gate), x)
    folded = lite_graph.build(full, H, W, no_se=True, gate=gate)
    fused = lite_graph.build(full, H, W, no_se=True, fuse=True, gate=gate)
    assert len(folded.graph.node) < len(pooled_stem_graph(full, H, W).graph.node) - 5
    assert np.abs(_run(folded, x) - reference).max() < 1e-4
    assert np.abs(_run(fused, x) - reference).max() < 1e-4
    assert np.abs(_run(pooled_stem_graph(full, H, W), x) - reference).max() > 1e-4  # the gate did matter


def test_fewer_channels_and_no_depthwise_branch_still_run_at_full_output_size() -> None:
    model = lite_graph.build(onnx.load(str(lite_graph.FULL)), H, W, stem=8, last=8, no_se=True, no_dw=True,
                             gate=np.full(8, 0.5, np.float32))
    out = _run(model, _frame())
    assert out.shape == (1, 1, H, W) and 0 <= out.min() and out.max() <= 1
    assert not any(n.name == lite_graph.LAST_DW for n in model.graph.node)


def test_the_candidate_trains_from_its_own_weights_and_exports_into_its_graph(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    graph = tmp_path / "lite.onnx"
    onnx.save(lite_graph.build(onnx.load(str(lite_graph.FULL)), H, W, no_se=True, no_dw=True, fuse=True,
                               gate=np.full(16, 0.5, np.float32)), str(graph))
    net = OnnxNet.from_onnx(graph).eval()
    x = _frame()
    with torch.no_grad():  # the torch twin (AveragePool included) follows ONNX Runtime
        assert np.abs(net(torch.from_numpy(x)).numpy() - _run(onnx.load(str(graph)), x)).max() < 1e-5
    from tests.test_segmenter_webcam import _fake_sampler

    argv = ["--graph", str(graph), "--max-steps", "2", "--batch", "2", "--target-scale", "2",
            "--ckpt", str(tmp_path / "lite.ckpt"), "--ledger", str(tmp_path / "ledger.jsonl")]
    args = finetune.parse_args(argv)
    assert args.input_hw == (H, W) and args.work == Path("runs/seg-lite")
    args.work = tmp_path / "work"
    row = finetune.run_segment(args, _fake_sampler(), lambda net, limit: {"hw": net.input_hw})
    assert row["val"] == {"hw": (H, W)} and row["model"].startswith("lite: vcam lite candidate")
    trained, meta = finetune.load_start(args.ckpt, input_hw=args.input_hw, graph=graph)
    assert meta["steps_total"] == 2
    out = write_onnx(trained.eval(), tmp_path / "trained.onnx", graph)
    with torch.no_grad():
        assert np.abs(_run(onnx.load(str(out)), x) - trained(torch.from_numpy(x)).numpy()).max() < 1e-4
    assert np.abs(_run(onnx.load(str(out)), x) - _run(onnx.load(str(graph)), x)).max() > 1e-6


def test_the_residual_sum_moves_inside_the_relu() -> None:
    full, gate = onnx.load(str(lite_graph.FULL)), np.full(16, 0.5, np.float32)
    plain = lite_graph.build(full, H, W, no_se=True, fuse=True, gate=gate)
    summed = lite_graph.build(full, H, W, no_se=True, fuse=True, gate=gate, dw_sum=True)
    ops = [n.op_type for n in summed.graph.node]
    assert ops[-4:] == ["Add", "Relu", "ConvTranspose", "Sigmoid"]  # relu(dw(x) + x), then the output
    x = _frame()
    a, b = _run(plain, x), _run(summed, x)
    assert a.shape == b.shape and 1e-6 < np.abs(a - b).max() < 0.5  # not exact, but close to the original


def test_a_graph_model_card_names_its_graph_checkpoint_and_own_ledger_rows(tmp_path: Path) -> None:
    import json

    from models.segmenter import ship_mp

    ledger = tmp_path / "ledger.jsonl"
    rows = [{"model": "mediapipe-landscape", "segment": 1, "input_size": [96, 160]},
            {"model": "lite: vcam lite candidate", "segment": 1, "steps": 5, "input_size": [96, 160]},
            {"model": "other: vcam lite candidate", "segment": 1, "steps": 7, "input_size": [96, 160]}]
    ledger.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert [r["steps"] for r in ship_mp.ledger_rows((96, 160), ledger, ckpt=Path("x/lite.ckpt"))] == [5]
    graph = tmp_path / "lite.onnx"
    onnx.save(lite_graph.build(onnx.load(str(lite_graph.FULL)), H, W, no_se=True, gate=np.full(16, 0.5, np.float32)),
              str(graph))
    card = {"input_size": [H, W], "training": {"data": ship_mp.TRAIN_DATA}}
    ship_mp._graph_card(card, graph, graph, Path("checkpoints/lite.ckpt"))
    assert "pooled encoder" in card["source"] and card["training"]["checkpoint"] == "lite.ckpt"
    assert f"--graph {graph}" in card["training"]["command"] and card["training"]["data"][0].startswith("start: vcam")


def test_distillation_fits_the_teacher_s_mask_resized_to_the_target(tmp_path: Path, demo_frames) -> None:
    import cv2

    from models.segmenter.ensemble import LANDSCAPE
    from tests.test_segmenter_webcam import _fake_sampler

    teacher = finetune.Teacher(LANDSCAPE)
    small = [cv2.resize(f, (160, 96), interpolation=cv2.INTER_AREA) for f in demo_frames[:2]]
    x, _ = finetune.to_batch([(f, np.zeros((96, 160), np.float32)) for f in small])
    soft = teacher(x, (192, 320))
    assert soft.shape == (2, 1, 192, 320) and 0 <= float(soft.min()) and float(soft.max()) <= 1
    assert float(soft.max()) > 0.9 and float(soft.min()) < 0.1  # the demo's person: a real mask, not a constant
    argv = ["--max-steps", "2", "--batch", "2", "--work", str(tmp_path / "work"), "--ckpt", str(tmp_path / "c.ckpt"),
            "--ledger", str(tmp_path / "ledger.jsonl"), "--distill", str(LANDSCAPE), "--distill-weight", "0.3"]
    row = finetune.run_segment(finetune.parse_args(argv), _fake_sampler(), lambda net, limit: {})
    assert row["distill"] == str(LANDSCAPE) and row["distill_weight"] == 0.3


def test_an_unpooled_candidate_is_full_at_a_smaller_input_and_its_card_can_rebuild_it(tmp_path: Path) -> None:
    from models.segmenter import ship_mp

    full = onnx.load(str(lite_graph.FULL))
    plain = lite_graph.build(full, 96, 176, pool=False)
    assert "AveragePool" not in {n.op_type for n in plain.graph.node}
    resized = lite_graph.resized_graph(full, 96, 176)
    x = np.random.default_rng(1).random((1, 3, 96, 176), dtype=np.float32)
    assert np.abs(_run(plain, x) - _run(resized, x)).max() == 0.0  # no cut asked: the same network
    with pytest.raises(ValueError, match="multiples of 16"):
        lite_graph.build(full, 100, 176, pool=False)
    graph = tmp_path / "cand.onnx"
    argv = ["--size", "96x176", "--no-pool", "--out", str(graph)]
    lite_graph.main(argv)
    card = {"input_size": [96, 176], "training": {"data": ship_mp.TRAIN_DATA}}
    ship_mp._graph_card(card, graph, graph, Path("checkpoints/cand.ckpt"))
    assert card["training"]["graph_command"] == "python -m models.segmenter.lite_graph " + " ".join(argv)
    assert "full-resolution encoder" in card["source"]
    assert card["training"]["data"][0].startswith("start: vcam_seg_full.onnx's weights")


def test_a_tier_trained_at_another_size_exports_and_ships_at_that_size(tmp_path: Path) -> None:
    """``--graph`` with a shipped tier's own graph and ``--input-size``: the weights go into that graph, declared at
    the trained size, and the card says the graph is used as it is."""
    from models.segmenter import export_mp, ship_mp

    net, _ = finetune.load_start(tmp_path / "none.ckpt", input_hw=(96, 176), graph=lite_graph.FULL)
    ckpt = tmp_path / "full_96x176.ckpt"
    finetune.save_repo_ckpt(ckpt, net.state_dict(), {"segments": 1})
    out = tmp_path / "out.onnx"
    export_mp.main(["--graph", str(lite_graph.FULL), "--ckpt", str(ckpt), "--input-size", "96x176", "--out", str(out)])
    assert finetune.graph_size(out) == (96, 176)
    x = np.random.default_rng(2).random((1, 3, 96, 176), dtype=np.float32)
    assert _run(onnx.load(str(out)), x).shape == (1, 1, 96, 176)
    card = {"input_size": [96, 176], "training": {"data": ship_mp.TRAIN_DATA}}
    ship_mp._graph_card(card, out, lite_graph.FULL, ckpt, origin="the shipped full")
    assert card["training"]["graph_command"] == f"none: {lite_graph.FULL} as it is (the shipped full)"
    assert "--input-size 96x176 " in card["training"]["command"]
    assert card["training"]["data"][0].startswith(f"start: {lite_graph.FULL.name}'s weights")
    assert "restructured" not in card["training"]["data"][0] and "lite_graph)" not in card["source"]
