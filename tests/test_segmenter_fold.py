"""RepVGG folding: the folded segmenter computes the same function as the training-time one (needs torch)."""
from __future__ import annotations

import copy

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from models.common.repvgg import RepConv3x3, fold_model  # noqa: E402
from models.segmenter.model import TIERS, SegNet, SegNetConfig  # noqa: E402


def _batch(frames: list[np.ndarray], size: tuple[int, int]) -> torch.Tensor:
    h, w = size
    rgb = [cv2.cvtColor(cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB) for f in frames]
    return torch.from_numpy(np.stack(rgb).transpose(0, 3, 1, 2).astype(np.float32) / 255.0)


def _train_bn(net: torch.nn.Module, x: torch.Tensor) -> None:
    """Give every BN non-trivial statistics and affine parameters, as after training."""
    gen = torch.Generator().manual_seed(0)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data = torch.rand(m.weight.shape, generator=gen) + 0.5
            m.bias.data = torch.randn(m.bias.shape, generator=gen) * 0.2
            m.momentum = 0.5
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(x)
    net.eval()


@pytest.mark.parametrize("cfg", [SegNetConfig(enc_widths=(4, 8, 8, 12, 12), enc_depths=(1, 2, 2, 1, 2),
                                              dec_extra=1, refine_depth=2, input_size=(72, 128)), TIERS["lite"]])
def test_folded_network_equals_unfolded(demo_frames: list[np.ndarray], cfg: SegNetConfig) -> None:
    torch.manual_seed(0)
    net = SegNet(cfg)
    x = _batch(demo_frames[::10], cfg.input_size)
    _train_bn(net, x)
    with torch.no_grad():
        want = net(x)
        folded = fold_model(copy.deepcopy(net))
        got = folded(x)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert all(m.folded is not None for m in folded.modules() if isinstance(m, RepConv3x3))
    assert want.abs().max() > 0.1  # a non-trivial output, so the comparison means something
    assert torch.allclose(got, want, atol=1e-5, rtol=0), float((got - want).abs().max())


def test_strided_and_depthwise_blocks_fold(demo_frames: list[np.ndarray]) -> None:
    torch.manual_seed(1)
    blocks = torch.nn.Sequential(RepConv3x3(3, 8, stride=2), RepConv3x3(8, 8), RepConv3x3(8, 8, groups=8),
                                 RepConv3x3(8, 4, stride=2, act=False))
    x = _batch(demo_frames[:2], (45, 81))  # odd sizes: stride-2 branches must still line up
    _train_bn(blocks, x)
    with torch.no_grad():
        want = blocks(x)
        got = fold_model(blocks)(x)
    assert torch.allclose(got, want, atol=1e-5, rtol=0), float((got - want).abs().max())


@pytest.mark.parametrize("flip_tta", [False, True])
def test_export_matches_torch(tmp_path, demo_frames: list[np.ndarray], flip_tta: bool) -> None:
    ort = pytest.importorskip("onnxruntime")
    from models.segmenter.export import export_onnx
    from models.segmenter.model import ExportWrapper

    cfg = SegNetConfig(enc_widths=(4, 8, 8, 12, 12), input_size=(72, 128))
    net = SegNet(cfg)
    x = _batch(demo_frames[:1], cfg.input_size)
    _train_bn(net, x)
    path = export_onnx(net, tmp_path / "tiny.onnx", flip_tta=flip_tta)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["image"] and [o.name for o in sess.get_outputs()] == ["mask"]
    got = sess.run(["mask"], {"image": x.numpy()})[0]
    with torch.no_grad():
        want = ExportWrapper(net.eval(), flip_tta=flip_tta)(x).numpy()
    assert got.shape == (1, 1, 72, 128)
    assert np.abs(got - want).max() < 1e-5
    ops = {n.op_type for n in __import__("onnx").load(str(path)).graph.node}
    assert "BatchNormalization" not in ops and "ConvTranspose" not in ops
