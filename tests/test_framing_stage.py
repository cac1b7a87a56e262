"""The framing stage on synthetic clips whose heads are known: the person found in the previous frame's mask
(an ideal segmenter's mask of the framed frame), moving, still, two people, upright and 4:3 cameras."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tests.framing_scenes import Person, draw_people, head_inside, person_mask, room, window_mask
from vcam.postprocess.framing import FramingSettings
from vcam.postprocess.framing_stage import FramingStage, heads_from_mask

DT = 1 / 30
OUT = (1280, 720)


def _clip(stage: FramingStage, size: tuple[int, int], people_at, steps: int) -> tuple[list, list]:
    """Run the stage over a clip (the empty room as the picture: only the mask tells where people are, as
    with the face detector off); returns (window rects, framed frames' shapes)."""
    rects, shapes = [], []
    frame = room(*size)
    for i in range(steps):
        mask = person_mask(*size, people_at(i))
        framed = stage.process(frame, DT)
        rect = stage.window or (0, 0, *size)
        stage.observe(window_mask(mask, rect))
        rects.append(rect)
        shapes.append(framed.shape)
    return rects, shapes


def _score(rects, people_at, size) -> tuple[float, float, float]:
    """(share of frames with every whole head inside, largest face / window height, largest motion px)."""
    inside = [all(head_inside(p.face(), r, size) for p in people_at(i)) for i, r in enumerate(rects)]
    face = max(p.face().h / r[3] for i, r in enumerate(rects) for p in people_at(i))
    motion = max((max(abs(a - b) for a, b in zip(r0, r1)) for r0, r1 in zip(rects, rects[1:])), default=0)
    return float(np.mean(inside)), face, motion


def _stage(mode: str = "auto", fit: str = "auto") -> FramingStage:
    return FramingStage(FramingSettings(mode=mode, faces=False), fit, OUT)


CASES = {
    # name: (camera size, framing mode, people at step i)
    "upright-selfie-still": ((720, 1280), "off", lambda i: [Person(360, 430, 300)]),
    "upright-full-body": ((720, 1080), "off", lambda i: [Person(330, 160, 110)]),
    "4:3-head-high": ((640, 480), "off", lambda i: [Person(320, 95, 110)]),
    "4:3-sway": ((640, 480), "auto", lambda i: [Person(320 + 60 * np.sin(i / 40), 170, 120)]),
    "16:9-walk": ((1280, 720), "auto", lambda i: [Person(400 + 2.0 * min(i, 150), 300, 150)]),
    "16:9-two-people": ((1280, 720), "auto", lambda i: [Person(330, 300, 140), Person(930, 330, 130)]),
    "upright-two-people": ((720, 1280), "auto", lambda i: [Person(220, 500, 150), Person(520, 520, 140)]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_whole_head_in_frame_face_not_too_close(name: str) -> None:
    size, mode, people_at = CASES[name]
    rects, shapes = _clip(_stage(mode), size, people_at, 180)
    inside, face, _ = _score(rects[2:], lambda i: people_at(i + 2), size)  # 2 frames to find the person
    assert inside == 1.0, name
    assert face <= 0.5, name
    assert all(s[1] / s[0] == pytest.approx(16 / 9, rel=0.02) for s in shapes)


@pytest.mark.parametrize("name", ["upright-selfie-still", "16:9-two-people", "4:3-head-high"])
def test_window_is_still_while_the_people_are(name: str) -> None:
    size, mode, people_at = CASES[name]
    rects, _ = _clip(_stage(mode), size, people_at, 150)
    assert _score(rects[60:], people_at, size)[2] < 1  # window motion below 1 px per frame


def test_the_walk_is_followed_with_little_lag() -> None:
    size, mode, people_at = CASES["16:9-walk"]
    rects, _ = _clip(_stage(mode), size, people_at, 240)
    centre = np.array([r[0] + r[2] / 2 for r in rects])
    person = np.array([people_at(i)[0].cx for i in range(240)])
    assert np.abs(centre[1:150] - person[1:150]).max() < 0.15 * rects[1][2]  # never far behind while walking
    assert abs(centre[-1] - person[-1]) < FramingSettings().dead_zone * rects[-1][3] + 2  # arrived
    assert _score(rects[200:], lambda i: people_at(i + 200), size)[2] == 0  # and still


def test_upright_phone_is_pillarboxed_with_a_blurred_fill() -> None:
    stage = _stage("off")
    people = [Person(360, 430, 300)]
    frame, mask = draw_people(720, 1280, people)
    for _ in range(3):
        framed = stage.process(frame, DT)
        stage.observe(window_mask(mask, stage.window))
    assert framed.shape == (720, 1280, 3)
    x0, _, w, h = stage.window
    assert w > 720  # wider than the camera frame: bars at the sides
    bar = round(-x0 * 1280 / w)
    sides = np.concatenate([framed[:, : bar - 4], framed[:, 1280 - bar + 4:]], axis=1).astype(np.float32)
    assert sides.std(axis=(0, 1)).max() < 25  # a soft fill, not a copy of the room's checkerboard
    assert framed[:, bar + 4: 1280 - bar - 4].std() > 25


@pytest.mark.parametrize("part", [(0, 0, 280, 720), (999, 0, 281, 720), (0, 0, 1280, 90), (200, 630, 880, 90)])
def test_stretch_part_is_the_full_stretch_there(part: tuple[int, int, int, int]) -> None:
    from vcam.postprocess.framing_stage import stretch_part

    small = np.random.default_rng(3).integers(0, 256, (18, 32, 3), dtype=np.uint8)
    full = cv2.resize(small, (1280, 720), interpolation=cv2.INTER_LINEAR)
    out = np.zeros((720, 1280, 3), np.uint8)
    stretch_part(small, out, part)
    x, y, w, h = part
    assert np.abs(out[y:y + h, x:x + w].astype(np.int16) - full[y:y + h, x:x + w]).max() <= 1
    untouched = np.ones(out.shape[:2], bool)
    untouched[y:y + h, x:x + w] = False
    assert not out[untouched].any()  # nothing written outside the part


def test_crop_keeps_the_window_inside_and_pad_shows_the_whole_frame() -> None:
    people = [Person(360, 430, 300)]
    frame, _ = draw_people(720, 1280, people)
    crop = _stage("off", fit="crop")
    assert crop.process(frame, DT).shape == (404, 720, 3) and crop.window == (0, 438, 720, 404)
    pad = _stage("off", fit="pad")
    assert pad.process(frame, DT).shape == (720, 1280, 3) and pad.window[3] == 1280
    stretch = _stage("auto", fit="stretch")
    assert stretch.process(frame, DT) is frame and stretch.window is None


def test_same_aspect_camera_passes_untouched_unless_framing_is_on() -> None:
    frame, _ = draw_people(1280, 720, [Person(640, 300, 150)])
    assert _stage("off").process(frame, DT) is frame


def test_heads_from_mask_finds_each_person_near_their_face() -> None:
    people = [Person(330, 300, 140), Person(930, 330, 130)]
    _, mask = draw_people(1280, 720, people)
    heads = sorted(heads_from_mask(window_mask(mask, (0, 0, 1280, 720)), (0, 0, 1280, 720), (1280, 720)),
                   key=lambda hd: hd.x)
    assert len(heads) == 2
    for head, person in zip(heads, people):
        truth = person.face()
        assert abs(head.x + head.w / 2 - person.cx) < 10
        assert abs(head.top - truth.top) < 12
        assert 0.8 < head.h / truth.h < 1.25
