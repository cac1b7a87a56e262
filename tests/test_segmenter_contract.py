"""The shipped vcam segmenter tiers follow the segmenter contract on real frames (no torch needed)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from tests.conftest import BACKGROUND_BOX, FACE_BOX
from vcam.registry import find_model, list_models

SEG_DIR = Path(__file__).resolve().parent.parent / "models" / "segmenter"
CARDS = sorted(SEG_DIR.glob("vcam_seg_*.json"))


def _session(path: Path) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _input(frame: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """The daemon's preprocessing: whole frame resized (INTER_AREA), BGR->RGB, /255, NCHW."""
    small = cv2.resize(frame, (hw[1], hw[0]), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small, cv2.COLOR_BGR2RGB).astype(np.float32).transpose(2, 0, 1)[None] / 255.0


def _box_mean(mask: np.ndarray, box: tuple[float, float, float, float]) -> float:
    h, w = mask.shape
    x0, y0, x1, y1 = box
    return float(mask[int(y0 * h): int(y1 * h), int(x0 * w): int(x1 * w)].mean())


def test_both_tiers_are_shipped() -> None:
    tiers = {json.loads(c.read_text())["tier"] for c in CARDS}
    assert {"lite", "full"} <= tiers


def test_only_the_tier_that_met_its_targets_ranks_above_the_mediapipe_fallback() -> None:
    # full beat MediaPipe landscape on every target (its card's figures): auto probes it first, then MediaPipe.
    # lite missed two of its targets, so it ranks below MediaPipe: selectable, never auto's pick.
    ranked = [c.name for c in list_models("segmentation")]
    assert ranked[:3] == ["vcam-seg-full", "mediapipe-selfie-landscape", "vcam-seg-lite"]
    assert find_model("lite", "segmentation").name == "vcam-seg-lite"
    full = find_model("full", "segmentation").figures
    webcam = full["webcam_val"]["versus_reference_composites"]
    assert webcam["iou_points"] >= 1 and webcam["boundary_f_points"] >= 5
    assert full["versus_reference"]["hs_iou_points"] >= -0.5 and full["versus_reference"]["flicker_ratio_davis"] <= 1
    assert full["versus_reference"]["latency_ratio_cpu"] <= 2.5


@pytest.mark.parametrize("card_path", CARDS, ids=lambda p: p.stem)
def test_card_matches_file(card_path: Path) -> None:
    card = json.loads(card_path.read_text())
    onnx_path = card_path.parent / card["file"]
    assert card["task"] == "segmentation" and card["licence"] == "Apache-2.0"  # fine-tunes of MediaPipe's weights
    assert (card_path.parent / card["licence_file"]).read_text().count("Apache License") >= 1
    assert hashlib.sha256(onnx_path.read_bytes()).hexdigest() == card["sha256"]
    assert onnx_path.stat().st_size < 2_000_000


@pytest.mark.parametrize("card_path", CARDS, ids=lambda p: p.stem)
def test_contract_on_demo_frames(card_path: Path, demo_frames: list[np.ndarray]) -> None:
    card = json.loads(card_path.read_text())
    h, w = card["input_size"]
    sess = _session(card_path.parent / card["file"])
    (inp,), (out,) = sess.get_inputs(), sess.get_outputs()
    assert (inp.name, inp.type, list(inp.shape)) == ("image", "tensor(float)", [1, 3, h, w])
    assert (out.name, out.type, list(out.shape)) == ("mask", "tensor(float)", [1, 1, h, w])
    for frame in demo_frames[::10]:
        mask = sess.run(["mask"], {"image": _input(frame, (h, w))})[0]
        assert mask.shape == (1, 1, h, w) and mask.dtype == np.float32
        assert np.isfinite(mask).all() and mask.min() >= 0.0 and mask.max() <= 1.0
        # the woman's face is person, the plants behind her are not
        assert _box_mean(mask[0, 0], FACE_BOX) > 0.9
        assert _box_mean(mask[0, 0], BACKGROUND_BOX) < 0.1


@pytest.mark.parametrize("card_path", CARDS, ids=lambda p: p.stem)
def test_agrees_with_mediapipe_on_demo_clip(card_path: Path, demo_frames: list[np.ndarray]) -> None:
    """On a plain webcam scene our mask and MediaPipe's mostly agree (IoU at 0.5 above 0.85)."""
    mp = next(c for c in list_models("segmentation") if c.name == "mediapipe-selfie-landscape")
    ours = json.loads(card_path.read_text())
    s_ours, s_mp = _session(card_path.parent / ours["file"]), _session(mp.path)
    for frame in demo_frames[::15]:
        a = s_ours.run(["mask"], {"image": _input(frame, tuple(ours["input_size"]))})[0][0, 0]
        b = s_mp.run(["mask"], {"image": _input(frame, tuple(mp.input_size))})[0][0, 0]
        a = cv2.resize(a, (b.shape[1], b.shape[0]), interpolation=cv2.INTER_LINEAR) > 0.5
        b = b > 0.5
        assert (a & b).sum() / (a | b).sum() > 0.85


def _cards(tmp_path: Path, spec: list[tuple[str, str, int]]) -> list:
    from vcam.registry import ModelCard

    cards = []
    for name, tier, priority in spec:
        (tmp_path / f"{name}.onnx").write_bytes(b"x")
        cards.append(ModelCard(name=name, task="segmentation", file=f"{name}.onnx", tier=tier, priority=priority,
                               card_path=tmp_path / f"{name}.json"))
    return sorted(cards, key=lambda c: -c.priority)


@pytest.mark.parametrize("latency, picked", [
    ({"full": 2.0, "lite": 1.0, "mp": 1.5}, "full"),  # the best tier that fits
    ({"full": 5.0, "lite": 3.0, "mp": 1.5}, "lite"),
    ({"full": 5.0, "lite": 4.0, "mp": 3.0}, "mp"),  # no tier fits: MediaPipe, the fallback, does
    ({"full": 9.0, "lite": 6.0, "mp": 7.0}, "lite"),  # nothing fits: the fastest
])
def test_auto_picks_the_best_model_within_the_probe_budget(tmp_path: Path, monkeypatch, latency, picked) -> None:
    from vcam import segmenter

    cards = _cards(tmp_path, [("full", "full", 12), ("lite", "lite", 11), ("mp", "baseline", 10),
                              ("general", "baseline", 5)])
    monkeypatch.setattr(segmenter, "list_models", lambda task: cards)
    probed: list[str] = []

    def measure(card) -> float:
        probed.append(card.name)
        return latency[card.name]

    card, reason = segmenter.pick_tier(budget_ms=3.3, measure=measure)
    assert card.name == picked and f"'{picked}'" in reason
    assert "general" not in probed  # only the best model without a tier is a fallback


def test_a_tier_ranked_below_the_fallback_is_not_probed(tmp_path: Path, monkeypatch) -> None:
    from vcam import segmenter

    cards = _cards(tmp_path, [("full", "full", 12), ("mp", "baseline", 10), ("lite", "lite", 9)])
    monkeypatch.setattr(segmenter, "list_models", lambda task: cards)
    probed: list[str] = []
    latency = {"full": 6.0, "mp": 2.0, "lite": 1.0}
    card, _ = segmenter.pick_tier(budget_ms=4.8, measure=lambda c: probed.append(c.name) or latency[c.name])
    assert card.name == "mp" and probed == ["full", "mp"]


def test_tiers_are_not_probed_when_a_model_without_a_tier_ranks_first(tmp_path: Path, monkeypatch) -> None:
    from vcam import segmenter

    cards = _cards(tmp_path, [("mp", "baseline", 10), ("lite", "lite", 8)])
    monkeypatch.setattr(segmenter, "list_models", lambda task: cards)
    card, reason = segmenter.pick_tier(measure=lambda c: pytest.fail("probed"))
    assert card is None and "'mp' ranks first" in reason
