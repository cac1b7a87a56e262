"""A few training steps on a tiny subset run end to end and give a checkpoint that exports (needs torch)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tests.conftest import SHARED_DATA  # noqa: E402

pytestmark = pytest.mark.skipif(not (SHARED_DATA / "portrait-seg").is_dir(), reason="needs ../shared/data")


def test_few_training_steps_then_resume_and_export(tmp_path: Path) -> None:
    from models.segmenter import train
    from models.segmenter.export import export_onnx, load_checkpoint

    common = ["--tier", "lite", "--out", str(tmp_path / "run"), "--batch", "4", "--limit", "6", "--threads", "1",
              "--no-progress", "--no-teacher"]
    train.main(common + ["--steps", "3"])
    ck = torch.load(tmp_path / "run" / "last.pt", map_location="cpu", weights_only=False)
    assert ck["step"] == 3
    train.main(common + ["--steps", "5", "--resume"])
    ck = torch.load(tmp_path / "run" / "last.pt", map_location="cpu", weights_only=False)
    assert ck["step"] == 5
    assert all(torch.isfinite(v).all() for v in ck["model"].values() if v.dtype.is_floating_point)
    path = export_onnx(load_checkpoint(tmp_path / "run" / "last.pt"), tmp_path / "m.onnx")
    assert path.stat().st_size > 10_000


def test_augmented_batch_is_well_formed() -> None:
    from models.segmenter.data import Augmenter, load_corpus

    items, backgrounds = load_corpus(limit=4)
    assert all(it.image.shape[:2] == it.isnet.shape for it in items)
    images, target, soft, labelled = Augmenter(items, backgrounds, seed=0).batch(8)
    assert images.shape == (8, 3, 144, 256) and target.shape == soft.shape == (8, 1, 144, 256)
    for a in (images, target, soft):
        assert a.dtype == np.float32 and a.min() >= 0 and a.max() <= 1
    assert 0 < target.mean() < 1  # people and background in the crops
    assert set(np.unique(labelled)) <= {0.0, 1.0}
