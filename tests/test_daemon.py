"""The daemon's parts: capture, processing and output, stepped on fake clocks (no threads, no sleeps), and one
end-to-end run of the real threads with a fake camera and a fake pyvirtualcam backend."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest

from vcam.buffers import TripleBuffer
from vcam.capture import CAMERA_STALL_S, Capture
from vcam.config import build_config
from vcam.daemon import Daemon
from vcam.output import OutputClock
from vcam.pipeline import Pipeline, placeholder_frame
from vcam.processing import Processor
from vcam.segmenter import load_segmenter
from vcam.sinks import VirtualCameraSink
from vcam.stats import DaemonStats

from .conftest import BACKGROUND_BOX, crop, high_frequency_energy, read_demo_frames
from .fakes import FakeCamera
from .support import wait_for


class FakeClock:
    def __init__(self, start: float = 100.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class RecordingSink:
    """A sink worker stand-in: keeps what the output clock submitted."""

    description = "recording"

    def __init__(self) -> None:
        self.frames: list[np.ndarray] = []

    def submit(self, frame: np.ndarray) -> None:
        self.frames.append(frame.copy())


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return read_demo_frames(6, step=10)


@pytest.fixture(scope="module")
def segmenter():
    return load_segmenter("auto")


def _config(preset: str = "blur", **extra):
    return build_config({"preset": preset, "output": {"sinks": []}, **extra})


def _output(clock: FakeClock, camera: FakeCamera | None = None):
    stats, stop = DaemonStats(), threading.Event()
    capture = Capture(camera or FakeCamera([]), _config().source, 30.0, stats, stop, clock)
    finished, sink = TripleBuffer(), RecordingSink()
    out = OutputClock(_config().output, finished, capture, [sink], stats, stop, clock)
    return out, capture, finished, sink, stats


def _frame(value: int) -> np.ndarray:
    return np.full((720, 1280, 3), value, np.uint8)


def _is_placeholder(frame: np.ndarray, text: str) -> bool:
    return np.array_equal(frame, placeholder_frame(1280, 720, text))


# ----- output: the frame clock ---------------------------------------------------------------------------------
def test_output_repeats_the_last_finished_frame_while_processing_is_late() -> None:
    clock = FakeClock()
    out, capture, finished, sink, stats = _output(clock)
    stats.source_state = "live"
    capture.last_frame_at = clock()
    finished.publish_copy(_frame(7))
    for _ in range(10):
        out.tick()
        clock.advance(1 / 30)
        capture.last_frame_at = clock()  # the camera goes on; processing has stalled
    assert len(sink.frames) == 10 and all(np.array_equal(f, _frame(7)) for f in sink.frames)
    assert stats.frames_repeated == 9 and stats.frames_sent == 10


def test_output_shows_the_reconnecting_placeholder_once_the_camera_stalls() -> None:
    clock = FakeClock()
    out, capture, finished, sink, stats = _output(clock)
    stats.source_state = "live"
    capture.last_frame_at = clock()
    finished.publish_copy(_frame(7))
    assert np.array_equal(out.tick(), _frame(7))
    clock.advance(CAMERA_STALL_S * 0.9)
    assert np.array_equal(out.tick(), _frame(7))  # a late camera frame is not yet a stall
    clock.advance(CAMERA_STALL_S * 0.2)
    assert _is_placeholder(out.tick(), "vcam: camera reconnecting...")
    assert stats.placeholder_frames == 1


def test_frames_from_before_a_camera_release_are_never_shown_after_it() -> None:
    clock = FakeClock()
    out, capture, finished, sink, stats = _output(clock)
    stats.source_state = "live"
    capture.last_frame_at = clock()
    finished.publish_copy(_frame(7), tag=capture.session)
    assert np.array_equal(out.tick(), _frame(7))
    capture.hold("paused")
    assert _is_placeholder(out.tick(), "vcam: camera paused")
    capture.session += 1  # what the capture thread does when it releases the camera
    finished.publish_copy(_frame(8), tag=capture.session - 1)  # processed before the release, published after
    capture.release("paused")
    assert _is_placeholder(out.tick(), "vcam: starting camera")
    finished.publish_copy(_frame(9), tag=capture.session)
    assert np.array_equal(out.tick(), _frame(9))
    capture.session += 1  # a reconnect: the last frame is not repeated into the new session
    stats.source_state = "live"
    assert _is_placeholder(out.tick(), "vcam: starting camera")


def test_the_debug_view_travels_with_its_finished_frame() -> None:
    clock = FakeClock()
    out, capture, finished, sink, stats = _output(clock)
    feed = TripleBuffer()
    out.debug_sinks = [feed]
    stats.source_state = "live"
    capture.last_frame_at = clock()
    finished.publish_copy(_frame(7), extra=_frame(70))
    out.tick()
    debug = feed.take(timeout=0)
    assert debug is not None and debug[0, 0, 0] == 70
    finished.publish_copy(_frame(8))  # nobody watched the debug view for this one
    out.tick()
    assert feed.take(timeout=0) is None


@pytest.mark.parametrize("hold, fps", [(None, 30), ("no-reader", 2)])
def test_output_clock_paces_live_frames_and_idles_at_idle_fps(hold, fps) -> None:
    clock = FakeClock(100.0)
    out, capture, finished, sink, stats = _output(clock)
    if hold:
        capture.hold(hold)

    def wait(seconds: float) -> bool:  # the clock's sleep: fake time passes; stop after 10 s of it
        clock.advance(seconds)
        if clock() >= 110.0:
            out._stop.set()
        return out._stop.is_set()

    out._wait = wait
    out.run()
    assert abs(len(sink.frames) - 10 * fps) <= 1


def test_watchdog_reports_processing_that_stops_while_the_camera_is_live() -> None:
    clock = FakeClock()
    out, capture, finished, sink, stats = _output(clock)
    stats.source_state = "live"
    for _ in range(20):  # 0.66 s: frames keep being processed
        capture.last_frame_at = clock()
        stats.frames_processed += 1
        out.tick()
        clock.advance(1 / 30)
    assert out.watchdog.stalled_s is None
    for _ in range(40):  # 1.33 s: the camera delivers, processing does not
        capture.last_frame_at = clock()
        out.tick()
        clock.advance(1 / 30)
    assert out.watchdog.stalled_s is not None and out.watchdog.stalled_s > 1.0
    stats.frames_processed += 1
    out.tick()
    assert out.watchdog.stalled_s is None


def test_watchdog_stays_quiet_while_the_camera_is_away() -> None:
    clock = FakeClock()
    out, capture, finished, sink, stats = _output(clock)
    stats.source_state = "reconnecting"
    for _ in range(90):
        out.tick()
        clock.advance(1 / 30)
    assert out.watchdog.stalled_s is None


# ----- capture ---------------------------------------------------------------------------------------------------
def test_capture_tags_frames_with_the_camera_session(frames) -> None:
    clock = FakeClock()
    camera = FakeCamera(frames, fps=1e9)
    capture = Capture(camera, _config().source, 30.0, DaemonStats(), threading.Event(), clock)
    assert capture.read_once()
    slot = capture.frames.take_slot(timeout=0)
    assert slot is not None and slot.tag == 0 and capture.stats.source_state == "live"
    camera.mode = "none"
    clock.advance(0.1)
    assert not capture.read_once() and capture.stats.source_state == "reconnecting"
    capture.hold("paused")
    capture._release_camera = lambda: setattr(capture, "session", capture.session + 1)  # no waiting here
    capture._release_camera()
    camera.mode = "ok"
    assert capture.read_once() and capture.frames.take_slot(timeout=0).tag == 1


# ----- processing: supervised, fail closed ------------------------------------------------------------------------
def _processor(config, segmenter, clock: FakeClock) -> tuple[Processor, TripleBuffer]:
    captured = TripleBuffer()
    proc = Processor(Pipeline(config, segmenter, clock), captured, DaemonStats(), threading.Event())
    return proc, captured


def _step(proc: Processor, captured: TripleBuffer, frame: np.ndarray, tag: int = 0) -> np.ndarray:
    captured.publish_copy(frame, tag=tag)
    assert proc.step(timeout=0)
    slot = proc.finished.take_slot(timeout=0)
    assert slot is not None and slot.image is not None and slot.image.shape == (720, 1280, 3)
    return slot.image.copy()


def _background_detail(frame: np.ndarray) -> float:
    return high_frequency_energy(crop(frame, BACKGROUND_BOX))


def _background_hidden(out: np.ndarray, camera: np.ndarray) -> bool:
    """The background patch is blurred (under half the camera's detail) or replaced (far from the camera's)."""
    patch, raw = crop(out, BACKGROUND_BOX).astype(int), crop(camera, BACKGROUND_BOX).astype(int)
    return _background_detail(out) < 0.5 * _background_detail(camera) or np.abs(patch - raw).mean() > 30


def _coarse_detail(frame: np.ndarray) -> float:
    return high_frequency_energy(cv2.resize(frame, (160, 90), interpolation=cv2.INTER_AREA))


def _shows_no_room(out: np.ndarray, camera: np.ndarray) -> bool:
    """No shape of the scene is left: the whole frame keeps under a tenth of the camera's detail at 160x90
    (measured on demo frames: camera 11.2, the fail-closed picture 0.7, the blur preset 6.3 with its sharp
    person)."""
    return _coarse_detail(out) < 0.1 * _coarse_detail(camera)


def test_the_blur_preset_blurs_the_background(frames, segmenter) -> None:
    proc, captured = _processor(_config("blur"), segmenter, FakeClock())
    for frame in frames[:3]:
        out = _step(proc, captured, frame)
    # measured on demo frames: the raw background patch ~1.2, blurred ~0.4
    assert _background_detail(out) < 0.5 * _background_detail(frames[2])
    assert proc.stats.fail_closed is None


class BadSegmenter:
    """Returns a broken mask of the given kind (or raises) from the ``after``-th call on; good masks before."""

    def __init__(self, good, kind: str, after: int = 0) -> None:
        self.good, self.kind, self.after, self.calls = good, kind, after, 0

    def segment(self, frame, gate=None):  # no still-scene reuse: every call shows its kind
        self.calls += 1
        mask, levels = self.good.segment(frame)
        if self.calls <= self.after:
            return mask, levels
        if self.kind == "nan":
            return np.full_like(mask, np.nan), levels
        if self.kind == "inf":
            return np.where(mask > 0.5, np.inf, mask), levels
        if self.kind == "rank":
            return mask[None, None], levels
        if self.kind == "shape":
            return mask[:1], levels
        raise RuntimeError("the model failed")


@pytest.mark.parametrize("kind", ["nan", "inf", "rank", "shape", "raise"])
@pytest.mark.parametrize("preset", ["blur", "office"])
def test_a_bad_mask_holds_the_last_good_one_then_fails_closed(frames, segmenter, kind, preset) -> None:
    clock = FakeClock()
    proc, captured = _processor(_config(preset), BadSegmenter(segmenter, kind, after=2), clock)
    _step(proc, captured, frames[0])
    _step(proc, captured, frames[1])
    clock.advance(0.2)
    held = _step(proc, captured, frames[2])  # within the hold: the last good mask, the effect stays on
    assert proc.stats.fail_closed is None and proc.stats.mask_problem
    assert _background_hidden(held, frames[2])
    clock.advance(0.5)
    for frame in frames[3:]:
        out = _step(proc, captured, frame)
        assert _shows_no_room(out, frame)
    assert proc.stats.fail_closed and proc.stats.frames_fail_closed == len(frames) - 3


def test_no_segmenter_fails_closed_from_the_first_frame(frames) -> None:
    proc, captured = _processor(_config("blur"), None, FakeClock())
    out = _step(proc, captured, frames[0])
    assert _shows_no_room(out, frames[0])
    assert "no segmenter" in proc.stats.fail_closed


def test_passthrough_without_a_segmenter_shows_the_camera(frames) -> None:
    proc, captured = _processor(_config("off"), None, FakeClock())
    out = _step(proc, captured, frames[0])
    assert np.array_equal(out, frames[0]) and proc.stats.fail_closed is None


@pytest.mark.parametrize("stage", ["refine", "composite", "upscale"])
def test_an_exception_in_a_stage_never_stops_frames(frames, segmenter, stage, caplog) -> None:
    clock = FakeClock()
    proc, captured = _processor(_config("blur"), segmenter, clock)
    broken = next(s for s in proc.pipeline.stages if s.name == stage)

    def boom(ctx):
        raise ZeroDivisionError("injected")

    broken.run = boom
    frame = cv2.resize(frames[0], (640, 360)) if stage == "upscale" else frames[0]
    for i in range(30):
        out = _step(proc, captured, frame)
        assert _shows_no_room(out, cv2.resize(frame, (1280, 720)))
        clock.advance(1 / 30)
    errors = proc.pipeline.errors
    assert proc.stats.frames_processed == 30 and errors.total == 30 and errors.by_stage == {stage: 30}
    assert "injected" in errors.last and stage in proc.stats.fail_closed
    # rate-limited: the first failure with its traceback, the rest within 10 s not logged; the switch to the
    # fail-closed picture is logged once
    assert sum("injected" in r.getMessage() for r in caplog.records) == 2
    clock.advance(10)
    _step(proc, captured, frame)
    assert "29 more not logged" in caplog.records[-1].getMessage()


def test_a_beauty_failure_keeps_the_background_effect(frames, segmenter) -> None:
    proc, captured = _processor(_config("blur", beauty={"enabled": True}), segmenter, FakeClock())
    beauty = next(s for s in proc.pipeline.stages if s.name == "beauty")
    beauty.run = lambda ctx: 1 / 0
    out = _step(proc, captured, frames[0])
    assert proc.stats.fail_closed is None and proc.pipeline.errors.by_stage == {"beauty": 1}
    assert _background_detail(out) < 0.5 * _background_detail(frames[0])


def test_an_unusable_background_fails_closed_and_recovers(frames, segmenter, tmp_path) -> None:
    proc, captured = _processor(_config("blur"), segmenter, FakeClock())
    _step(proc, captured, frames[0])
    # A picture that vanishes after its config was checked (building the config refuses a missing one).
    missing = build_config({"output": {"sinks": []}, "background": {"mode": "image",
                                                                    "image": str(tmp_path / "gone.jpg")}},
                           check_files=False)
    proc.apply_config(missing)
    out = _step(proc, captured, frames[1])
    assert _shows_no_room(out, frames[1]) and "background" in proc.stats.fail_closed
    proc.apply_config(_config("blur"))
    _step(proc, captured, frames[2])
    assert proc.stats.fail_closed is None


def test_settings_swap_between_frames(frames, segmenter) -> None:
    proc, captured = _processor(_config("blur"), segmenter, FakeClock())
    _step(proc, captured, frames[0])
    proc.apply_config(_config("off"))
    out = _step(proc, captured, frames[1])
    assert proc.config.preset == "off" and np.array_equal(out, frames[1])


def test_a_new_camera_session_resets_temporal_state(frames, segmenter) -> None:
    proc, captured = _processor(_config("blur"), segmenter, FakeClock())
    resets = []
    proc.pipeline.reset = lambda: resets.append(1)
    _step(proc, captured, frames[0], tag=0)
    _step(proc, captured, frames[1], tag=0)
    _step(proc, captured, frames[2], tag=1)
    assert resets == [1]


# ----- the real threads ------------------------------------------------------------------------------------------
def test_frames_reach_the_virtual_camera_processed(fake_backend, frames) -> None:
    config = build_config({"preset": "blur", "output": {"sinks": ["virtual"]}})
    daemon = Daemon(config, source=FakeCamera(frames), sinks=[VirtualCameraSink(backend="fake")])
    daemon.start()
    try:
        wait_for(lambda: daemon.stats.frames_processed >= 5 and daemon.stats.frames_sent >= 10, timeout=30)
    finally:
        daemon.stop()
    cam = fake_backend.instances[0]
    assert (cam.width, cam.height) == (1280, 720)
    assert all(f.dtype == np.uint8 and f.size == 1280 * 720 * 3 // 2 for f in cam.frames)
    out = cv2.cvtColor(cam.frames[-1].reshape(1080, 1280), cv2.COLOR_YUV2BGR_I420)
    assert _background_detail(out) < 0.5 * min(_background_detail(f) for f in frames)  # blurred, not raw
    status = daemon.status()
    assert status["processing_errors"] == 0 and status["fail_closed"] is None
    assert status["source_state"] == "stopped"


def test_vcam_status_shows_failing_closed_errors_and_a_stall() -> None:
    from vcam.cli_control import format_status

    text = format_status({"camera": "on", "source_state": "live", "fail_closed": "the mask holds NaN",
                          "processing_stalled_s": 1.4, "processing_errors": 3,
                          "last_processing_error": "refine: ValueError: x"})
    assert "FAILING CLOSED (whole frame blurred): the mask holds NaN" in text
    assert "PROCESSING STALLED for 1.4 s" in text and "processing errors: 3 (last: refine: ValueError: x)" in text


def test_the_processing_loop_outlives_an_error_outside_the_pipeline(frames, segmenter) -> None:
    proc, captured = _processor(_config("blur"), segmenter, FakeClock())
    calls = []

    def flaky_record(ctx, wall_ms):  # bookkeeping after the pipeline fails once, then works
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("bookkeeping failed")

    proc._record = flaky_record
    thread = threading.Thread(target=proc.run)
    thread.start()
    try:
        for frame in frames[:3]:
            captured.publish_copy(frame)
            wait_for(lambda n=len(calls): len(calls) > n, timeout=20)
        wait_for(lambda: proc.stats.frames_processed >= 2, timeout=20)
    finally:
        proc._stop.set()
        thread.join(timeout=10)
    assert proc.pipeline.errors.by_stage == {"processing loop": 1}


def test_the_debug_view_is_made_only_while_watched_and_published_with_its_frame(frames, segmenter) -> None:
    proc, captured = _processor(_config("blur"), segmenter, FakeClock())
    watched = [False]
    proc.want_debug = lambda: watched[0]
    captured.publish_copy(frames[0])
    proc.step(timeout=0)
    assert proc.finished.take_slot(timeout=0).extra is None
    watched[0] = True
    captured.publish_copy(frames[1])
    proc.step(timeout=0)
    slot = proc.finished.take_slot(timeout=0)
    assert slot.extra is not None and slot.extra.shape == slot.image.shape
    # the debug view tints the background red: more red than the finished (blurred) frame there
    red = lambda img: crop(img, BACKGROUND_BOX)[:, :, 2].astype(int) - crop(img, BACKGROUND_BOX)[:, :, 1]  # noqa: E731
    assert red(slot.extra).mean() > red(slot.image).mean() + 20


@pytest.mark.parametrize("on_missing", ["wait", "exit"])
def test_capture_retries_a_missing_camera_with_backoff_or_stops(frames, on_missing) -> None:
    clock, waits, stop = FakeClock(), [], threading.Event()
    camera = FakeCamera(frames, fps=1e9, mode="unplugged")

    def wait(seconds: float) -> bool:
        waits.append(seconds)
        clock.advance(seconds)
        if len(waits) == 7:
            camera.mode = "ok"  # plugged in after seven tries
        return stop.is_set()

    settings = build_config({"source": {"on_missing": on_missing}, "output": {"sinks": []}}).source
    capture = Capture(camera, settings, 30.0, DaemonStats(), stop, clock, wait)
    opened = capture._open_with_retry()
    assert capture.stats.source_gave_up == (on_missing == "exit")  # what makes `vcam run` exit 1
    if on_missing == "exit":
        assert not opened and stop.is_set() and waits == []
    else:
        assert opened and waits == [0.25, 0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
        assert capture.stats.source_state == "live" and camera.opens == 1
