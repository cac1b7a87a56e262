"""The virtual camera operator (postprocess/framing.py): composition, limits and motion, step by step."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings as hyp_settings, strategies as st

from tests.framing_scenes import Person, head_inside
from vcam.postprocess.framing import FramingSettings, Geometry, Head, compose, head_bounds, step, window_rect

DT = 1 / 30
FOLLOW = FramingSettings(mode="auto")


def _run(geom: Geometry, people_at, steps: int, settings: FramingSettings = FOLLOW, follow: bool = True,
         noise: float = 0.0, seed: int = 0) -> list[tuple[int, int, int, int]]:
    """Windows over ``steps`` steps; ``people_at(i)`` gives the people at step i (their faces, optionally with
    detection noise of ``noise`` px)."""
    rng = np.random.default_rng(seed)
    state, rects = None, []
    for i in range(steps):
        heads = []
        for p in people_at(i):
            f = p.face()
            dx, dy, dw = rng.normal(0, noise, 3) if noise else (0.0, 0.0, 0.0)
            heads.append(Head(f.x + dx, f.y + dy, f.w + dw, f.h + dw, f.eye_y + dy))
        target = compose(heads, geom, settings, follow)
        state = step(state, target, geom, settings, DT, keep=head_bounds(heads))
        rects.append(window_rect(*state.window, geom))
    return rects


def _motion(rects: list[tuple[int, int, int, int]]) -> float:
    """Largest per-step change of any window coordinate (px)."""
    return max((max(abs(a - b) for a, b in zip(r0, r1)) for r0, r1 in zip(rects, rects[1:])), default=0.0)


def test_composition_puts_the_eyes_on_the_upper_third_at_the_chosen_face_size() -> None:
    geom = Geometry(1920, 1080, 1280, 720)
    person = Person(900, 500, 200)
    cx, cy, h = compose([person.face()], geom, FOLLOW, follow=True)
    face = person.face()
    assert math.isclose(face.h / h, FOLLOW.zoom, rel_tol=0.01)
    assert math.isclose((face.eye_y - (cy - h / 2)) / h, 1 / 3, abs_tol=0.01)
    assert math.isclose(cx, person.cx, abs_tol=1)
    assert head_inside(face, window_rect(cx, cy, h, geom), (1920, 1080))


def test_two_people_far_apart_are_both_in_the_window() -> None:
    geom = Geometry(1920, 1080, 1280, 720)
    people = [Person(400, 450, 180), Person(1500, 520, 170)]
    rect = window_rect(*compose([p.face() for p in people], geom, FOLLOW, follow=True), geom)
    assert all(head_inside(p.face(), rect, (1920, 1080)) for p in people)


def test_a_distant_face_is_never_enlarged_beyond_max_upscale() -> None:
    geom = Geometry(1280, 720, 1280, 720)
    _, _, h = compose([Person(640, 300, 40).face()], geom, FOLLOW, follow=True)
    assert 720 / h <= FOLLOW.max_upscale + 1e-9
    small = Geometry(640, 360, 1280, 720)  # already enlarged 2x: no zoom in at all
    assert compose([Person(320, 150, 30).face()], small, FOLLOW, follow=True)[2] == 360


def test_upright_phone_is_pillarboxed_around_the_head_not_cut() -> None:
    geom = Geometry(720, 1280, 1280, 720)
    person = Person(360, 420, 300)  # a selfie: the head fills most of the frame's width
    cx, cy, h = compose([person.face()], geom, FramingSettings(), follow=False)
    rect = window_rect(cx, cy, h, geom)
    assert rect[2] > 720 and cx == 360  # wider than the source: padded evenly on both sides
    assert head_inside(person.face(), rect, (720, 1280))
    assert person.face().h / rect[3] <= FramingSettings().max_face + 0.01


def test_four_by_three_webcam_crop_moves_up_to_keep_a_high_head() -> None:
    geom = Geometry(640, 480, 1280, 720)
    person = Person(320, 90, 110)  # head near the top: the centre crop (rows 60-420) cuts it
    face = person.face()
    assert not head_inside(face, (0, 60, 640, 360), (640, 480))
    rect = window_rect(*compose([face], geom, FramingSettings(), follow=False), geom)
    assert rect == (0, 0, 640, 360)  # the widest crop, at the top, no padding needed
    assert head_inside(face, rect, (640, 480))


def test_a_still_person_gets_a_window_that_does_not_move_even_with_noisy_detections() -> None:
    geom = Geometry(1280, 720, 1280, 720)
    rects = _run(geom, lambda i: [Person(600, 330, 170)], 240, noise=2.0)
    assert _motion(rects[60:]) < 1.0  # settled within 2 s; then still
    assert len(set(rects[60:])) == 1


def test_a_slow_walk_is_followed_smoothly_within_the_speed_limit() -> None:
    geom = Geometry(1920, 1080, 1280, 720)
    speed = 60.0  # px/s, a slow sideways walk for 4 s, then still

    def at(i: int) -> list[Person]:
        return [Person(600 + speed * min(i, 120) * DT, 500, 170)]

    rects = _run(geom, at, 240)
    inside = [head_inside(at(i)[0].face(), r, (1920, 1080)) for i, r in enumerate(rects)]
    assert all(inside)
    h = rects[0][3]
    assert _motion(rects) <= FOLLOW.max_speed * h * DT + 2  # + the even-pixel rounding
    # lag: the window centre reaches the person within 1.5 s of the stop and then stays
    centre = [r[0] + r[2] / 2 for r in rects]
    assert abs(centre[165] - at(165)[0].cx) < FOLLOW.dead_zone * h + 2
    assert _motion(rects[170:]) == 0


def test_the_dead_zone_never_holds_a_head_out_of_the_window() -> None:
    geom = Geometry(720, 1280, 1280, 720)  # an upright phone, framed tightly (fit only: max_face, little headroom)
    settings = FramingSettings(headroom=0.02)

    def at(i: int) -> list[Person]:
        return [Person(360, 420 - min(i, 40), 300)]  # the head rises 40 px, less than the dead zone, and stays

    rects = _run(geom, at, 120, settings=settings, follow=False)
    h = rects[0][3]
    assert 40 < settings.dead_zone * h  # a move the dead zone alone would ignore ...
    assert not head_inside(at(119)[0].face(), rects[0], (720, 1280))  # ... that cuts the head in the first window
    assert head_inside(at(119)[0].face(), rects[-1], (720, 1280))


def test_zoom_does_not_pump_when_the_face_size_wobbles() -> None:
    geom = Geometry(1920, 1080, 1280, 720)
    rects = _run(geom, lambda i: [Person(900, 500, 170 * (1 + 0.08 * math.sin(i / 7)))], 300)
    sizes = [r[3] for r in rects]
    assert sizes == sorted(sizes)  # out once, to the largest wobble, never back in
    assert len(set(sizes[120:])) == 1


def test_losing_everyone_widens_to_the_whole_frame_after_lost_after_s() -> None:
    geom = Geometry(720, 1280, 1280, 720)
    cut = 30
    rects = _run(geom, lambda i: [Person(360, 400, 260)] if i < cut else [], 300)
    lost_steps = round(FOLLOW.lost_after_s / DT)
    assert rects[cut + lost_steps - 2] == rects[cut - 1]  # holds the last framing a while
    assert rects[-1] == window_rect(*geom.wide(), geom)  # then shows the whole (pillarboxed) frame


def test_first_person_found_is_a_cut_not_a_zoom() -> None:
    geom = Geometry(1280, 720, 1280, 720)
    person = Person(500, 300, 160)
    target = compose([person.face()], geom, FOLLOW, follow=True)
    assert step(None, target, geom, FOLLOW, DT).window == target


@hyp_settings(max_examples=200, deadline=None)
@given(src_w=st.integers(80, 2000), src_h=st.integers(80, 2000), pad=st.booleans(),
       fx=st.floats(-0.2, 1.2), fy=st.floats(-0.2, 1.2), fs=st.floats(0.02, 0.9))
def test_windows_are_even_allowed_and_inside_the_source_where_they_fit(src_w: int, src_h: int, pad: bool,
                                                                       fx: float, fy: float, fs: float) -> None:
    src_w, src_h = src_w & ~1, src_h & ~1
    geom = Geometry(src_w, src_h, 1280, 720, pad=pad)
    size = fs * min(src_w, src_h)
    head = Head(fx * src_w, fy * src_h, size, size, fy * src_h + 0.4 * size)
    state = step(None, compose([head], geom, FOLLOW, follow=True), geom, FOLLOW, DT)
    x0, y0, w, h = window_rect(*state.window, geom)
    assert w % 4 == 0 and h % 4 == 0 and x0 % 2 == 0 and y0 % 2 == 0
    assert abs(w / h - 16 / 9) < 8 / h + 0.01
    lo, hi = geom.h_range(FOLLOW.max_upscale)
    assert lo - 4 <= h <= hi + 4
    if w <= src_w:
        assert 0 <= x0 and x0 + w <= src_w
    if h <= src_h:
        assert 0 <= y0 and y0 + h <= src_h
    if not pad:
        assert w <= src_w and h <= src_h
