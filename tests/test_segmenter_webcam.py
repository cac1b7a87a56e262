"""The webcam-domain segmenter pieces: MediaPipe as a torch module, its export, the validation set's builder and
held-out lists, the training data's exclusions and the resumable training segments with their ledger."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest
import torch

from models.mediapipe.torch_net import OnnxNet
from models.segmenter import finetune
from models.segmenter.ensemble import GENERAL, LANDSCAPE
from models.segmenter.export_mp import write_onnx
from models.segmenter.heldout import HELDOUT_BACKGROUNDS, HELDOUT_CLIPS, training_backgrounds, training_clips
from models.segmenter.webcam_data import edge_sharpened, load_people
from tools.evaluation import webcam_val
from tools.paths import DATA_ROOT

needs_data = pytest.mark.skipif(not (DATA_ROOT / "portrait-seg" / "val.txt").exists(), reason="no ../shared/data")


def _ort(path: Path, x: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(["mask"], {"image": x})[0]


@pytest.mark.parametrize("path", [LANDSCAPE, GENERAL])
def test_torch_module_matches_onnx_runtime(path: Path) -> None:
    torch.set_num_threads(1)
    net = OnnxNet.from_onnx(path).eval()
    h, w = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_inputs()[0].shape[2:]
    x = np.random.default_rng(1).random((1, 3, h, w), dtype=np.float32)
    with torch.no_grad():
        ours = net(torch.from_numpy(x)).numpy()
        batched = net(torch.from_numpy(np.concatenate([x, x[:, :, ::-1].copy()])))[:1].numpy()
    assert np.abs(ours - _ort(path, x)).max() < 1e-5
    assert np.abs(batched - ours).max() < 1e-5
    assert sum(p.numel() for p in net.parameters()) > 100_000  # every Conv weight is trainable


def test_export_writes_trained_weights_into_the_graph(tmp_path: Path) -> None:
    net = OnnxNet.from_onnx(LANDSCAPE).eval()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(1 + 0.05 * torch.randn(p.shape, generator=gen))
    out = write_onnx(net, tmp_path / "m.onnx")
    x = np.random.default_rng(2).random((1, 3, 144, 256), dtype=np.float32)
    with torch.no_grad():
        ours = net(torch.from_numpy(x)).numpy()
    exported = _ort(out, x)
    # perturbed weights make logits of tens: float32 summation order alone then moves a probability by ~1e-5
    assert np.abs(exported - ours).max() < 1e-4
    assert np.abs(exported - _ort(LANDSCAPE, x)).max() > 1e-3  # the weights really changed
    net.input_hw = (96, 176)  # a fine-tune at another size: the graph declares that size and matches torch
    sized = write_onnx(net, tmp_path / "m96.onnx")
    sess = ort.InferenceSession(str(sized), providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].shape == [1, 3, 96, 176] and sess.get_outputs()[0].shape == [1, 1, 96, 176]
    x = np.random.default_rng(3).random((1, 3, 96, 176), dtype=np.float32)
    with torch.no_grad():
        assert np.abs(_ort(sized, x) - net(torch.from_numpy(x)).numpy()).max() < 1e-4


def test_edge_sharpened_takes_isnet_only_in_the_band() -> None:
    human = np.zeros((40, 40), np.uint8)
    human[10:30, 10:30] = 255
    isnet = np.full((40, 40), 77, np.uint8)
    alpha = edge_sharpened(human, isnet, band_px=2)
    assert alpha[20, 20] == 1.0 and alpha[0, 0] == 0.0
    assert alpha[10, 20] == pytest.approx(77 / 255)


def test_held_out_lists_are_disjoint_from_training(tmp_path: Path) -> None:
    (tmp_path / "signing").mkdir()
    for name in (*HELDOUT_CLIPS, "train-a.mp4"):
        (tmp_path / name).touch()
    (tmp_path / "signing" / "asl-x.mkv").touch()
    assert [p.name for p in training_clips(tmp_path)] == ["train-a.mp4", "asl-x.mkv"]
    for name in (*HELDOUT_BACKGROUNDS, "room.jpg"):
        (tmp_path / name).touch()
    assert [p.name for p in training_backgrounds(tmp_path)] == ["room.jpg"]


def test_training_people_exclude_validation_ids(tmp_path: Path) -> None:
    for sub in ("portrait-seg/images", "portrait-seg/masks", "teacher-labels/isnet/portrait-seg"):
        (tmp_path / sub).mkdir(parents=True)
    mask = np.zeros((32, 24), np.uint8)
    mask[4:30, 6:18] = 255
    for i in ("0001", "0002", "0003"):
        cv2.imwrite(str(tmp_path / "portrait-seg/images" / f"{i}.jpg"), np.full((32, 24, 3), int(i) * 40, np.uint8))
        cv2.imwrite(str(tmp_path / "portrait-seg/masks" / f"{i}.png"), mask)
        cv2.imwrite(str(tmp_path / "teacher-labels/isnet/portrait-seg" / f"{i}.png"), mask)
    (tmp_path / "portrait-seg" / "val.txt").write_text("0002\n")
    people = load_people(tmp_path)
    assert sorted(int(p.image[0, 0, 0]) for p in people) == [40, 120]


@needs_data
def test_webcam_val_composites_are_deterministic_and_framed() -> None:
    a, b = webcam_val.composites(limit=3), webcam_val.composites(limit=3)
    assert [f.name for f in a] == [f.name for f in b]
    for fa, fb in zip(a, b):
        assert np.array_equal(fa.image, fb.image) and np.array_equal(fa.truth, fb.truth)
        assert fa.image.shape == (360, 640, 3)
        rows = np.nonzero((fa.truth >= 0.5).any(axis=1))[0]
        assert rows.min() < 360 / 3  # the head starts in the upper third
        assert (fa.truth[-1] >= 0.5).any()  # the bottom edge cuts the person
    val_ids = set((DATA_ROOT / "portrait-seg" / "val.txt").read_text().split())
    assert {f.name for f in a} <= val_ids


def _fake_sampler(fail_after: int | None = None):
    class Fake:
        calls = 0

        def __init__(self, seed: int, input_hw: tuple[int, int] = (144, 256)) -> None:
            self.rng = np.random.default_rng(seed)
            self.hw = input_hw

        def sample(self):
            Fake.calls += 1
            if fail_after is not None and Fake.calls > fail_after:
                raise KeyboardInterrupt  # the process is stopped part-way through a segment
            k, (h, w) = getattr(self, "image_scale", 1), self.hw
            img = self.rng.integers(0, 255, (h * k, w * k, 3), dtype=np.uint8)
            target = np.zeros((h, w), np.float32)
            target[h // 4:, w // 3:2 * w // 3] = 1.0
            size = (w * self.target_scale, h * self.target_scale)
            return img, cv2.resize(target, size, interpolation=cv2.INTER_NEAREST)
    return Fake


def test_segments_resume_and_append_to_the_ledger(tmp_path: Path) -> None:
    argv = ["--max-steps", "3", "--batch", "2", "--ckpt-minutes", "0", "--work", str(tmp_path / "work"),
            "--ckpt", str(tmp_path / "c.ckpt"), "--ledger", str(tmp_path / "ledger.jsonl")]
    scorer = lambda net, limit: {"all": {"iou": 0.5}}  # noqa: E731
    with pytest.raises(KeyboardInterrupt):  # killed during step 3: steps 1-2 are saved
        finetune.run_segment(finetune.parse_args(argv), _fake_sampler(fail_after=5), scorer)
    assert torch.load(tmp_path / "work" / "last.pt", weights_only=False)["step"] == 2
    row = finetune.run_segment(finetune.parse_args(argv), _fake_sampler(), scorer)
    assert (row["segment"], row["steps"], row["steps_total"]) == (1, 3, 3)
    assert not (tmp_path / "work" / "last.pt").exists()
    assert (tmp_path / "c.ckpt").stat().st_size < 400_000  # fp16 weights, small enough to commit
    row2 = finetune.run_segment(finetune.parse_args(argv + ["--target-scale", "2"]), _fake_sampler(), scorer)
    assert (row2["segment"], row2["steps_total"], row2["target_scale"]) == (2, 6, 2)
    ledger = [json.loads(line) for line in (tmp_path / "ledger.jsonl").read_text().splitlines()]
    assert [r["segment"] for r in ledger] == [1, 2] and ledger[1]["val"] == {"all": {"iou": 0.5}}
    start, _ = finetune.load_start(tmp_path / "c.ckpt")  # the next segment starts from the trained weights
    mp = OnnxNet.from_onnx(LANDSCAPE)
    assert any(not torch.equal(a, b) for a, b in zip(start.state_dict().values(), mp.state_dict().values()))


def test_untrained_refine_head_returns_the_upsampled_coarse_mask(tmp_path: Path) -> None:
    from models.segmenter.export_mp import export_refined
    from models.segmenter.refine_head import RefinedNet

    torch.set_num_threads(1)
    net = RefinedNet(OnnxNet.from_onnx(LANDSCAPE)).eval()
    x = torch.rand(1, 3, 288, 512)
    with torch.no_grad():
        refined, coarse = net(x, logits=True, with_coarse=True)
        up = torch.nn.functional.interpolate(coarse, size=(288, 512), mode="bilinear", align_corners=False)
    assert torch.equal(refined, up)
    with torch.no_grad():  # a trained head changes the mask; the exported graph follows torch
        net.head.out.weight.normal_(0, 0.5)
    out = export_refined(net, tmp_path / "r.onnx")
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].shape == [1, 3, 288, 512] and sess.get_outputs()[0].name == "mask"


def _committed_fine_tune(path: Path, steps_total: int, monkeypatch) -> OnnxNet:
    """MediaPipe with one weight changed, saved at ``path`` as the committed 144x256 checkpoint (REPO_CKPT)."""
    net = OnnxNet.from_onnx(LANDSCAPE)
    with torch.no_grad():
        net.weights[next(iter(net.weights))].add_(0.25)
    finetune.save_repo_ckpt(path, net.state_dict(), {"segments": 1, "steps_total": steps_total, "minutes_total": 1.0})
    monkeypatch.setattr(finetune, "REPO_CKPT", path)
    return net


def test_refine_segment_starts_from_the_committed_coarse_weights(tmp_path: Path, monkeypatch) -> None:
    coarse = _committed_fine_tune(tmp_path / "coarse.ckpt", 9, monkeypatch)
    start, meta = finetune.load_start(tmp_path / "refine.ckpt", refine=True)
    assert meta["coarse_from"]["steps_total"] == 9
    assert all(torch.equal(a.half().float(), b) for a, b in zip(coarse.state_dict().values(),
                                                                 start.coarse.state_dict().values()))
    argv = ["--refine-head", "--max-steps", "2", "--batch", "2", "--work", str(tmp_path / "work"),
            "--ckpt", str(tmp_path / "refine.ckpt"), "--ledger", str(tmp_path / "ledger.jsonl")]
    row = finetune.run_segment(finetune.parse_args(argv), _fake_sampler(), lambda net, limit: {"hw": net.input_hw})
    assert row["model"].endswith("refine-head") and row["target_scale"] == 2 and row["val"] == {"hw": (288, 512)}


def test_a_segment_at_another_input_size_starts_from_the_committed_fine_tune(tmp_path: Path, monkeypatch) -> None:
    base = _committed_fine_tune(tmp_path / "webcam_mp.ckpt", 7, monkeypatch)
    args = finetune.parse_args(["--input-size", "96x160", "--max-steps", "2", "--batch", "2",
                                "--work", str(tmp_path / "work"), "--ledger", str(tmp_path / "ledger.jsonl")])
    assert args.ckpt == tmp_path / "webcam_mp_96x160.ckpt" and args.input_hw == (96, 160)
    start, meta = finetune.load_start(args.ckpt, input_hw=args.input_hw)
    assert meta["coarse_from"]["steps_total"] == 7 and start.input_hw == (96, 160)
    assert all(torch.equal(a.half().float(), b) for a, b in zip(base.state_dict().values(),
                                                                 start.state_dict().values()))
    row = finetune.run_segment(args, _fake_sampler(), lambda net, limit: {"hw": net.input_hw})
    assert row["val"] == {"hw": (96, 160)} and row["input_size"] == [96, 160] and args.ckpt.exists()
    with pytest.raises(SystemExit):
        finetune.parse_args(["--input-size", "100x160"])


def test_webcam_scores_per_subset_and_clip_and_the_table() -> None:
    from tools.evaluation.segmenter import webcam_table

    truth = np.zeros((180, 320), np.float32)
    truth[40:, 100:220] = 1.0
    frame = np.full((180, 320, 3), 40, np.uint8)
    frame[truth > 0] = 220
    frames = [webcam_val.ValFrame("composites", "composites", "1", frame, truth),
              webcam_val.ValFrame("clips", "clip-a", "clip-a#0", frame, truth)]
    small = cv2.resize(truth, (256, 144), interpolation=cv2.INTER_AREA)
    perfect = webcam_val.evaluate(lambda f: small, frames)
    empty = webcam_val.evaluate(lambda f: np.zeros_like(small), frames)
    assert set(perfect) == {"composites", "clips", "clip:clip-a", "all"} and perfect["all"]["n"] == 2
    assert perfect["composites"]["iou"] > 0.97 and perfect["composites"]["sad_refined"] < 1.0
    assert empty["composites"]["iou"] == 0.0 and empty["composites"]["sad_refined"] > 10.0
    text = webcam_table({"ref": perfect, "bad": empty}, "ref")
    assert "| bad | 0.00 |" in text and "clip-a" in text


def test_ship_card_carries_the_sizes_ledger_and_figures(tmp_path: Path) -> None:
    from models.segmenter import ship_mp

    ledger = tmp_path / "ledger.jsonl"
    ledger.write_text("\n".join(json.dumps(r) for r in [
        {"model": "mediapipe-landscape", "segment": 1, "steps": 10},
        {"model": "mediapipe-landscape", "segment": 1, "steps": 20, "input_size": [192, 336]},
        {"model": "mediapipe-landscape+refine-head", "segment": 1, "steps": 30}]) + "\n")
    assert [r["steps"] for r in ship_mp.ledger_rows((192, 336), ledger)] == [20]
    assert [r["steps"] for r in ship_mp.ledger_rows((144, 256), ledger)] == [10]
    sub = {"iou": 0.9, "bf": 0.8, "bf_refined": 0.82, "sad_refined": 3.0}
    ref = {"iou": 0.88, "bf": 0.75, "bf_refined": 0.76, "sad_refined": 4.0}
    eval_json = tmp_path / "eval.json"
    eval_json.write_text(json.dumps({"reference": "mp", "webcam": {
        "full": {"composites": sub, "clips": sub, "all": sub}, "mp": {"composites": ref, "clips": ref, "all": ref}}}))
    versus = ship_mp.webcam_figures(eval_json, "full")["versus_reference_composites"]
    assert versus == {"iou_points": 2.0, "boundary_f_points": 5.0, "boundary_f_refined_points": 6.0,
                      "sad_refined_ratio": 0.75}
    onnx_file = tmp_path / "vcam_seg_full.onnx"
    onnx_file.write_bytes(b"model")
    card = json.loads(ship_mp.write_card(onnx_file, "full", (192, 336), {"segments": 1}, {"x": 1}, 12).read_text())
    assert card["input_size"] == [192, 336] and card["tier"] == "full" and card["priority"] == 12
    assert card["io"]["input"] == "image float32 [1,3,192,336] RGB in [0,1]" and card["figures"] == {"x": 1}
    # --refresh: new figures and sha256 for the same file, the training record kept
    onnx_file.write_bytes(b"rewritten model")
    refreshed = json.loads(ship_mp.refresh_card(onnx_file, {"y": 2}).read_text())
    assert refreshed["figures"] == {"y": 2} and refreshed["training"] == card["training"]
    assert refreshed["sha256"] != card["sha256"] and refreshed["sha256"] == ship_mp.sha256(onnx_file)


def test_true_masks_through_a_model_grid_lose_only_where_the_grid_is_too_coarse() -> None:
    from tools.evaluation.webcam_val import ValFrame, through_grid

    truth = np.zeros((360, 640), np.float32)
    cv2.ellipse(truth, (320, 250), (120, 160), 0, 0, 360, 1.0, -1)
    cv2.rectangle(truth, (300, 40), (304, 120), 1.0, -1)  # a 5 px wide strand: lost on a coarse grid
    frames = [ValFrame("composites", "composites", "x", np.zeros((360, 640, 3), np.uint8), truth)]
    fine, coarse = through_grid(frames, (360, 640)), through_grid(frames, (9, 16))
    assert fine == {"iou": 1.0, "bf": 1.0}
    assert coarse["bf"] < 0.9 and coarse["iou"] < fine["iou"]


def test_teacher_agreement_places_labels_with_the_composites_transform(tmp_path: Path) -> None:
    """A teacher whose label is the human mask agrees perfectly; one whose label is shifted does not."""
    for sub in ("portrait-seg/images", "portrait-seg/masks", "teacher-labels/same/portrait-seg",
                "teacher-labels/shifted/portrait-seg"):
        (tmp_path / sub).mkdir(parents=True)
    mask = np.zeros((200, 120), np.uint8)
    cv2.ellipse(mask, (60, 30), (14, 18), 0, 0, 360, 255, -1)  # head
    mask[45:, 25:95] = 255  # body down to the bottom edge
    cv2.imwrite(str(tmp_path / "portrait-seg/masks/0007.png"), mask)
    cv2.imwrite(str(tmp_path / "teacher-labels/same/portrait-seg/0007.png"), mask)
    cv2.imwrite(str(tmp_path / "teacher-labels/shifted/portrait-seg/0007.png"), np.roll(mask, 6, axis=1))
    (tmp_path / "portrait-seg" / "val.txt").write_text("0007\n")
    scores = webcam_val.teacher_agreement(tmp_path, ("same", "shifted"))
    assert scores["same"] == {"iou": 1.0, "bf": 1.0}
    assert scores["shifted"]["iou"] < 0.95 and scores["shifted"]["bf"] < 0.5
