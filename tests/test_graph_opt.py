"""The exact graph rewrite of MediaPipe-graph segmenters: same outputs, conv before resize, idempotent."""
from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from models.mediapipe.graph_opt import commute_resize_conv, max_output_difference, optimize_file  # noqa: E402


def _resize_then_conv(mode: bytes = b"half_pixel", cin: int = 8, cout: int = 3) -> onnx.ModelProto:
    rng = np.random.default_rng(1)
    inits = [numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales"),
             numpy_helper.from_array(rng.normal(size=(cout, cin, 1, 1)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.normal(size=(cout,)).astype(np.float32), "b")]
    nodes = [helper.make_node("Resize", ["x", "", "scales"], ["up"], name="up", mode="linear",
                              coordinate_transformation_mode=mode),
             helper.make_node("Conv", ["up", "w", "b"], ["y"], name="conv", kernel_shape=[1, 1])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, cin, 5, 7])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, cout, 10, 14])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_rewrite_puts_the_conv_first_and_keeps_the_output() -> None:
    original = _resize_then_conv()
    model = onnx.ModelProto()
    model.CopyFrom(original)
    assert commute_resize_conv(model) == 1
    onnx.checker.check_model(model)
    assert [n.op_type for n in model.graph.node] == ["Conv", "Resize"]
    assert model.graph.node[1].output[0] == "y"  # the original tensor name keeps its value
    assert max_output_difference(original, model) < 1e-5
    assert commute_resize_conv(model) == 0  # idempotent


def test_extrapolating_resize_is_left_alone() -> None:
    model = _resize_then_conv(mode=b"tf_crop_and_resize")
    assert commute_resize_conv(model) == 0


def test_shipped_mediapipe_graph_segmenters_are_rewritten(tmp_path) -> None:
    from models.mediapipe.measure import HERE
    from models.segmenter.ship import HERE as TIERS

    for path in [HERE / "selfie_segmentation_landscape.onnx", HERE / "selfie_segmentation.onnx",
                 TIERS / "vcam_seg_full.onnx", TIERS / "vcam_seg_lite.onnx"]:
        copy = tmp_path / path.name
        copy.write_bytes(path.read_bytes())
        assert optimize_file(copy) == 0, f"{path.name} still has a Resize feeding a 1x1 Conv"
