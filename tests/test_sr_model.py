"""TinySR training-side pieces: RepVGG folding, the bicubic anchor, the webcam degradation (real frames)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from models.sr.degrade import DegradeParams, degrade, downscale_clean, luma


@pytest.fixture(scope="module")
def luma_crop(demo_frames: list[np.ndarray]) -> np.ndarray:
    """A 200x300 luma crop of a demo frame (face and background), float32 in [0, 1]."""
    return luma(demo_frames[0])[100:300, 500:800].astype(np.float32) / 255


def _trained_like(torch, model):
    """Give the BN layers non-trivial statistics and affine weights, as after training."""
    gen = torch.Generator().manual_seed(0)
    model.train()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen))
        for _ in range(3):
            model(torch.rand(4, 1, 32, 32, generator=gen))
    return model.eval()


def test_folded_equals_unfolded(luma_crop: np.ndarray) -> None:
    torch = pytest.importorskip("torch")
    from models.sr.net import TinySR, to_inference

    model = _trained_like(torch, TinySR(16, 1))
    x = torch.from_numpy(luma_crop)[None, None]
    with torch.no_grad():
        want = model(x)
        got = to_inference(model)(x)
    assert got.shape == (1, 1, 400, 600)
    assert float((got - want).abs().max()) < 1e-5
    bicubic = cv2.resize(luma_crop, (600, 400), interpolation=cv2.INTER_CUBIC)
    assert float(np.abs(want[0, 0].numpy() - bicubic).mean()) > 1e-3  # the learned branches do contribute


def test_ecb_and_learned_anchor_fold_into_the_same_graph(tmp_path, luma_crop: np.ndarray) -> None:
    """Edge-oriented branches and a trained anchor are training-time only: the export is the same three convs
    plus the anchor conv, and equals the unfolded model (borders included)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    import onnx
    from models.sr.export import export_onnx
    from models.sr.net import TinySR, to_inference

    model = _trained_like(torch, TinySR(16, 1, block="ecb", learn_anchor=True))
    x = torch.from_numpy(luma_crop)[None, None]
    with torch.no_grad():
        want = model(x)
        plain = _trained_like(torch, TinySR(16, 1))
        plain.load_state_dict({k: v for k, v in model.state_dict().items() if k in plain.state_dict()})
        assert float((plain(x) - want).abs().max()) > 1e-3  # the extra branches and the anchor do contribute
    import copy

    folded = to_inference(copy.deepcopy(model))
    with torch.no_grad():
        assert float((folded(x) - want).abs().max()) < 1e-5
    assert [tuple(m.weight.shape) for m in (folded.head, *folded.body, folded.tail, folded.anchor)] == [
        (16, 1, 6, 6), (16, 16, 3, 3), (16, 16, 3, 3), (16, 1, 6, 6)]
    path = tmp_path / "ecb.onnx"
    assert export_onnx(model, path) < 1e-4
    ops = [n.op_type for n in onnx.load(str(path)).graph.node]
    assert sorted(ops) == sorted(["Conv", "Relu", "Conv", "Relu", "Conv", "Conv", "Add", "QuantizeLinear"])


def test_plain_checkpoint_starts_an_ecb_model_as_itself(luma_crop: np.ndarray) -> None:
    torch = pytest.importorskip("torch")
    from models.sr.net import TinySR
    from models.sr.train import init_from

    plain = _trained_like(torch, TinySR(16, 1))
    richer = TinySR(16, 1, block="ecb", learn_anchor=True)
    init_from(richer, plain.state_dict())
    richer.eval()
    x = torch.from_numpy(luma_crop)[None, None]
    with torch.no_grad():
        assert float((richer(x) - plain(x)).abs().max()) < 1e-6
    with pytest.raises(ValueError, match="does not fit"):
        init_from(TinySR(16, 2), plain.state_dict())  # a second body block the checkpoint lacks


def test_untrained_net_is_exactly_bicubic(luma_crop: np.ndarray) -> None:
    """The residual starts at zero, so the fixed anchor alone must equal cv2's INTER_CUBIC, borders included."""
    torch = pytest.importorskip("torch")
    from models.sr.net import TinySR

    model = TinySR().eval()
    with torch.no_grad():
        out = model(torch.from_numpy(luma_crop)[None, None])[0, 0].numpy()
    ref = cv2.resize(luma_crop, (600, 400), interpolation=cv2.INTER_CUBIC)
    assert np.abs(out - ref).max() < 1e-5


def test_export_matches_torch(tmp_path, luma_crop: np.ndarray) -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    import onnxruntime as ort
    from models.sr.export import export_onnx
    from models.sr.net import TinySR

    model = _trained_like(torch, TinySR(16, 1))
    path = tmp_path / "sr.onnx"
    assert export_onnx(model, path) < 1e-4
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    xpad = cv2.copyMakeBorder(luma_crop, 2, 2, 2, 2, cv2.BORDER_REPLICATE)[None, None]
    raw = sess.run(None, {"image": xpad})[0]
    assert raw.shape == (1, 16, 100, 150) and raw.dtype == np.uint8  # the 2x luma in levels, before the shuffle
    got = torch.nn.functional.pixel_shuffle(torch.from_numpy(raw.astype(np.float32)), 4).numpy() / 255
    with torch.no_grad():
        want = model(torch.from_numpy(luma_crop)[None, None]).clamp(0, 1).numpy()
    assert np.abs(got - want).max() < 0.5 / 255 + 1e-4  # rounding to whole levels


def test_degradation_is_webcam_like(demo_frames: list[np.ndarray]) -> None:
    hr = demo_frames[0]
    rng = np.random.default_rng(0)
    clean = downscale_clean(hr)
    assert clean.shape == (360, 640, 3)
    noisy = degrade(hr, DegradeParams(0.0, "area", 4.0, None), rng)
    # area downscale + noise: same picture, noise of about the asked sigma on luma
    diff = luma(noisy).astype(float) - luma(clean)
    assert abs(diff.mean()) < 0.5 and 2.5 < diff.std() < 6.0
    blurred = degrade(hr, DegradeParams(0.8, "bicubic", 0.0, 60), rng)
    lap = lambda im: cv2.Laplacian(luma(im), cv2.CV_64F).var()
    assert lap(blurred) < lap(clean)
    # one parameter draw with fresh noise per frame, as one camera
    params = DegradeParams.draw(np.random.default_rng(3))
    a, b = degrade(hr, params, rng), degrade(hr, params, rng)
    assert a.shape == b.shape == (360, 640, 3)


def test_clean_pairs_are_told_from_degraded_ones(demo_frames: list[np.ndarray]) -> None:
    """The training sampler re-weights clean vs webcam-degraded cached pairs; it must recognise them."""
    pytest.importorskip("torch")
    from models.sr.train import clean_pairs

    rng = np.random.default_rng(0)
    hrs, lrs, want = [], [], []
    for k, (y0, x0) in enumerate([(100, 500), (150, 600), (170, 650), (120, 560)]):  # face: textured
        hr = demo_frames[k][y0:y0 + 128, x0:x0 + 128]
        for params, is_clean in ((DegradeParams(0.0, "area", 0.0, None), True),
                                 (DegradeParams(0.0, "bicubic", 0.0, None), True),
                                 (DegradeParams(0.0, "area", 3.0, None), False),
                                 (DegradeParams(0.0, "area", 0.0, 70), False),
                                 (DegradeParams(0.7, "bilinear", 0.0, None), False)):
            hrs.append(luma(hr))
            lrs.append(luma(degrade(hr, params, rng)))
            want.append(is_clean)
    assert clean_pairs(np.stack(hrs), np.stack(lrs)).tolist() == want
