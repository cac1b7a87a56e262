"""Chaos: a running daemon (a person from the demo clip on a high-contrast checkerboard, real segmenter, a fake
virtual camera at the pyvirtualcam boundary, a y4m sink) receives a few hundred generated bad live changes:
config file edits and reloads, `set`, `preset`, model swaps, and files that vanish, shrink or change type.

It must keep processing frames (``frames_processed`` rises across every stretch of changes) and never send a
frame whose background shows the raw room while a background mode is on. Every frame that reaches the virtual
camera is checked as it is sent: in a background box far from the person, the share of pixels that match the
raw checkerboard (within a few levels) must stay low. The detector is calibrated first on a pass-through
output, where it must fire; so the check can fail.

Two variants. ``settled``: accepted changes are let through to the pipeline (3 processed frames) before the next
action, and the config watcher is off (edits are delivered by ``reload``). ``racing``: the next action follows at
once, the watcher reloads edits too, and a new picture is switched to and broken before the pipeline loads it;
the processing thread must then survive an error while applying settings (the supervised processing loop's job).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import pyvirtualcam
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from vcam.config import bundled_background
from vcam.control import ControlError
from vcam.registry import list_models
from vcam.segmenter import load_segmenter
from vcam.sinks import VirtualCameraSink, Y4MSink

from .conftest import read_demo_frames
from .fakes import FakeCamera, FakeLoopback
from .reliability_support import live_session, png_header_only, wait_until

W, H = 384, 216
ACTIONS = 300
CHECKPOINT_EVERY = 25  # frames_processed must have risen across each stretch of this many changes
BOX = (int(0.02 * W), int(0.25 * H), int(0.25 * W), int(0.85 * H))  # x0, y0, x1, y1: background, left of her
RAW_PIXEL_LEVELS = 20  # a pixel within this many levels (every channel) of the raw room matches it
RAW_SHARE = 0.25  # a frame with more matching pixels than this in the box shows the room
SIDE = 6  # checkerboard square, pixels


def _checkerboard() -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W]
    on = ((yy // SIDE + xx // SIDE) % 2).astype(np.uint8) * 255
    return np.dstack([on, 255 - on, on // 2 + 60])


def _person_on_checkerboard() -> tuple[list[np.ndarray], np.ndarray]:
    """Demo-clip frames with everything but the person (cut out with the segmenter) replaced by the board."""
    board = _checkerboard()
    segmenter = load_segmenter("auto")
    frames = []
    for frame in read_demo_frames(15, step=4):
        frame = cv2.resize(frame, (W, H), interpolation=cv2.INTER_AREA)
        mask = cv2.resize(segmenter.process(frame), (W, H))
        mask[:, : int(0.3 * W)] = 0  # she stands right of 0.47 W: the box is pure board
        alpha = (mask > 0.5).astype(np.float32)[..., None]
        frames.append((frame * alpha + board * (1 - alpha)).astype(np.uint8))
    return frames, board


class RoomDetector(FakeLoopback):
    """The fake loopback device; checks every frame it receives instead of keeping it."""

    raw_box: np.ndarray

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.received = 0
        self.worst = 0.0
        self.lock = threading.Lock()
        self.room_frames: list[tuple[int, float]] = []  # (index, share) of every frame that showed the room

    def send(self, frame: np.ndarray) -> None:
        bgr = cv2.cvtColor(frame.reshape(self.height * 3 // 2, self.width), cv2.COLOR_YUV2BGR_I420)
        x0, y0, x1, y1 = BOX
        diff = np.abs(bgr[y0:y1, x0:x1].astype(np.int16) - self.raw_box).max(axis=2)
        share = float((diff <= RAW_PIXEL_LEVELS).mean())
        with self.lock:
            self.received += 1
            if share > RAW_SHARE:
                self.room_frames.append((self.received, share))
            self.worst = max(self.worst, share)

    def worst_of_next(self, count: int) -> float:
        """The worst share over the next ``count`` frames received."""
        with self.lock:
            self.worst = 0.0
        start = self.received
        wait_until(lambda: self.received >= start + count)
        return self.worst


class Files:
    """The files the chaos points settings at, and the mutations it applies to them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.picture = root / "picture.jpg"  # good at first; mutated at random
        self.model = root / "model.onnx"  # a copy of an installed segmenter with its card; mutated too
        card = next(c for c in list_models("segmentation") if c.sha256)
        self.model_bytes = card.path.read_bytes()
        self.card_text = json.dumps({**json.loads(card.card_path.read_text()), "file": self.model.name})
        self.restore("picture")
        self.restore("model")
        self.restore("card")
        self.huge = root / "huge.png"
        self.huge.write_bytes(png_header_only(30000, 30000))
        self.fresh = 0
        (root / "folder").mkdir()
        os.mkfifo(root / "fifo.jpg")

    def fresh_picture(self) -> Path:
        """A good picture at a new path (so the pipeline must load it when it is switched to)."""
        self.fresh += 1
        path = self.root / f"fresh-{self.fresh}.jpg"
        shutil.copy(bundled_background("architecture"), path)
        return path

    def restore(self, what: str) -> None:
        self._clear({"picture": self.picture, "model": self.model, "card": self.model.with_suffix(".json")}[what])
        if what == "picture":
            shutil.copy(bundled_background("architecture"), self.picture)
        elif what == "model":
            self.model.write_bytes(self.model_bytes)
        else:
            self.model.with_suffix(".json").write_text(self.card_text)

    @staticmethod
    def _clear(path: Path) -> None:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()

    def mutate(self, target: str, how: str) -> None:
        path = self.root / target
        self._clear(path)
        if how == "one byte":
            path.write_bytes(b"x")
        elif how == "directory":
            path.mkdir()
        elif how == "fifo":
            os.mkfifo(path)
        elif how == "flipped byte" and target == "model.onnx":
            data = bytearray(self.model_bytes)
            data[len(data) // 2] ^= 0xFF
            path.write_bytes(bytes(data))
        elif how == "text":
            path.write_text("{ not json, not a picture")
        elif how == "symlink to huge":
            path.symlink_to(self.huge)
        # "vanish": cleared above


FILES = "@FILES@"  # stands for the chaos files' folder in generated actions


def _rooted(value, root: Path):
    """``value`` with the FILES placeholder replaced by ``root`` (in strings, tuples and lists)."""
    if isinstance(value, str):
        return value.replace(FILES, str(root))
    if isinstance(value, (tuple, list)):
        return type(value)(_rooted(v, root) for v in value)
    return value


def _actions():
    paths = st.sampled_from(["picture.jpg", "model.onnx", "huge.png", "gone.jpg", "folder", "fifo.jpg",
                             "model.json"]).map(lambda name: f"{FILES}/{name}")
    junk = st.one_of(paths, st.integers(-10**30, 10**30), st.text(max_size=30), st.booleans(),
                     st.recursive(st.integers(), lambda inner: st.lists(inner, max_size=2), max_leaves=40),
                     st.just(10**4000), st.just(json.loads("[" * 40 + "1" + "]" * 40)))
    fields = st.sampled_from(["background.image", "background.video", "model.segmenter", "daemon.pause_image",
                              "background.blur_strength", "background.mode", "blur", "mask.threshold",
                              "background.nonsense", "background", "upscale.mode"])
    file_text = st.one_of(
        st.builds(lambda p: f'[background]\nmode = "image"\nimage = "{p}"\n', paths),
        st.builds(lambda p: f'[model]\nsegmenter = "{p}"\n', paths),
        st.builds(lambda p: f'preset = "mine"\n[presets.mine]\nbackground = {{ mode = "image", image = "{p}" }}\n',
                  paths),
        st.just("a = " + "[" * 2000 + "]" * 2000 + "\n"), st.just('[background]\nmode = "sparkles"\n'),
        st.just('preset = "office"\n'), st.just('[background]\nblur_strength = 75\n'),
        st.text(max_size=60), st.binary(max_size=60).map(lambda b: b.decode("latin-1")))
    return st.one_of(
        st.tuples(st.just("set"), fields, junk),
        st.tuples(st.just("set-model"), st.sampled_from(["vcam-seg-lite", "vcam-seg-full", "mediapipe-selfie",
                                                          "nope", f"{FILES}/model.onnx", "lite"])),
        st.tuples(st.just("preset"), st.sampled_from(["office", "blur", "green-screen", "mine", "nope", "",
                                                       "x" * 300])),
        st.tuples(st.just("edit"), file_text),
        st.tuples(st.just("mutate"), st.sampled_from(["picture.jpg", "model.onnx", "model.json"]),
                  st.sampled_from(["vanish", "one byte", "directory", "fifo", "flipped byte", "text",
                                   "symlink to huge"])),
        st.tuples(st.just("restore"), st.sampled_from(["picture", "model", "card"])),
        st.tuples(st.just("config-file"), st.sampled_from(["vanish", "directory", "fifo", "restore"])),
        st.tuples(st.just("strength"), st.integers(20, 100)),
        st.tuples(st.just("switch-then-break"), st.sampled_from(["vanish", "one byte", "directory", "fifo", "text",
                                                                  "symlink to huge"])),
    )


class Chaos:
    """The running daemon under test and what the examples have seen so far."""

    def __init__(self, run, device: RoomDetector, files: Files, y4m: Y4MSink, racing: bool) -> None:
        self.run, self.device, self.files, self.y4m, self.racing = run, device, files, y4m, racing
        self.examples = self.accepted = 0
        self.calibrated = device.received
        self.allowed: list[tuple[int, int]] = []  # frame index windows in which an accepted change asked for the room
        self.checkpoint = run.daemon.stats.frames_processed
        self.started = time.monotonic()

    def room_frames(self) -> list[tuple[int, float]]:
        return [(i, share) for i, share in list(self.device.room_frames)
                if i > self.calibrated and not any(a < i <= b for a, b in self.allowed)]


@pytest.fixture(scope="module", params=["settled", "racing"])
def chaos(request):
    """``settled``: accepted changes reach the pipeline before the next action, the watcher is off. ``racing``:
    the next action follows at once and the watcher also reloads the edited file."""
    racing = request.param == "racing"
    RoomDetector.instances.clear()
    pyvirtualcam.register_backend("room-detector", RoomDetector)
    frames, board = _person_on_checkerboard()
    x0, y0, x1, y1 = BOX
    RoomDetector.raw_box = board[y0:y1, x0:x1].astype(np.int16)
    root = Path(tempfile.mkdtemp(prefix="vchaos"))
    files = Files(root)
    y4m = Y4MSink(str(root / "out.y4m"), max_bytes=20 << 20)
    sinks = [VirtualCameraSink(backend="room-detector"), y4m]
    try:
        with live_session(file_text='preset = "blur"\n', source=FakeCamera(frames), watch=racing,
                          extra={"output": {"width": W, "height": H}}, sinks=sinks) as run:
            device = RoomDetector.instances[-1]
            _calibrate(run, device)
            state = Chaos(run, device, files, y4m, racing)
            yield state
            if racing and state.examples < ACTIONS:
                return  # an example failed (reported by the test itself)
            # after every change: still answering, still processing, and the y4m sink still written
            assert run.client.request("status")["ok"]
            processed = run.daemon.stats.frames_processed
            wait_until(lambda: run.daemon.stats.frames_processed > processed + 10)
            assert y4m.path.stat().st_size > 0
            print(f"{request.param}: {state.examples} changes ({state.accepted} accepted, {len(state.allowed)} switched the effect "
                  f"off) in {time.monotonic() - state.started:.0f} s; {device.received} frames sent, "
                  f"{run.daemon.stats.frames_processed} processed; frames showing the room outside the asked-for "
                  f"windows: {len(state.room_frames())}")
    finally:
        pyvirtualcam.camera.BACKENDS.pop("room-detector", None)
        shutil.rmtree(root, ignore_errors=True)


def _calibrate(run, device: RoomDetector) -> None:
    """The detector must see the room in a pass-through output and not in a blurred one."""
    run.client.request("preset", name="off")
    _settle(run)
    device.worst_of_next(5)  # frames already in flight
    raw = device.worst_of_next(10)
    _back_to_blur(run, device)
    blurred = device.worst_of_next(10)
    print(f"raw-room share in the background box: pass-through {raw:.2f}, blur {blurred:.2f}")
    assert raw > 0.9 and blurred < RAW_SHARE, (raw, blurred)


def _back_to_blur(run, device: RoomDetector) -> None:
    """After a valid change that switched the effect off (the room is then expected): back to the blur preset,
    until the frames in flight have passed."""
    run.client.request("preset", name="blur")
    _settle(run)
    start = device.received
    wait_until(lambda: device.received >= start + 5)


def _settle(run) -> None:
    """Let an accepted change reach the pipeline: 3 more processed frames."""
    done = run.daemon.stats.frames_processed + 3
    wait_until(lambda: run.daemon.stats.frames_processed >= done, timeout=10)  # 3 frames take 0.1 s at 30 fps


def _apply(run, files: Files, action: tuple, racing: bool) -> bool:
    """Carry out one action; True when the daemon accepted a change."""
    kind, *args = action
    request = {"set": lambda: run.client.request("set", field=args[0], value=args[1]),
               "set-model": lambda: run.client.request("set", field="model.segmenter", value=args[0]),
               "preset": lambda: run.client.request("preset", name=args[0]),
               "strength": lambda: run.client.request("set", field="background.blur_strength", value=args[0]),
               "edit": lambda: (Files._clear(run.config_path),
                                run.config_path.write_text(args[0], encoding="utf-8", errors="replace"),
                                run.client.request("reload"))[-1]}.get(kind)
    if kind == "mutate":
        files.mutate(*args)
        return False
    if kind == "switch-then-break":  # a good new picture, switched to, then broken at once
        picture = files.fresh_picture()
        run.client.request("set", field="background.image", value=str(picture))
        run.client.request("set", field="background.mode", value="image")
        if not racing:
            _settle(run)
        files.mutate(picture.name, args[0])
        if racing:  # the pipeline now applies settings whose picture broke after its check
            _settle(run)
        return True
    if kind == "restore":
        files.restore(args[0])
        return False
    if kind == "config-file":
        Files._clear(run.config_path)
        if args[0] == "directory":
            run.config_path.mkdir()
        elif args[0] == "fifo":
            os.mkfifo(run.config_path)
        elif args[0] == "restore":
            run.config_path.write_text('preset = "blur"\n')
        request = lambda: run.client.request("reload")  # noqa: E731
    try:
        reply = request()
    except ControlError:
        return False
    return True


def _effect_off(status: dict) -> bool:
    """A valid change may switch the background effect off (pass-through, or a blur too weak to hide it)."""
    mode = status["background_mode"]
    return mode == "passthrough" or (mode == "blur" and status["blur_strength"] < 20)


@settings(max_examples=ACTIONS, deadline=None, phases=[Phase.generate], database=None,
          suppress_health_check=list(HealthCheck))
@given(action=_actions())
def test_bad_live_changes_never_stop_frames_nor_show_the_room(chaos: Chaos, action: tuple) -> None:
    """One generated change per example, all against the same running daemon."""
    run, device = chaos.run, chaos.device
    action = _rooted(action, chaos.files.root)
    first = device.received
    chaos.examples += 1
    if _apply(run, chaos.files, action, chaos.racing):
        chaos.accepted += 1
        if _effect_off(run.client.request("status")["status"]):
            _back_to_blur(run, device)
            chaos.allowed.append((first, device.received))  # the room was asked for in between
        elif not chaos.racing:
            _settle(run)
    room = chaos.room_frames()
    assert room == [], f"after {action!r}: {len(room)} frames showed the room: {room[:5]}"
    if chaos.examples % CHECKPOINT_EVERY == 0:
        wait_until(lambda: run.daemon.stats.frames_processed > chaos.checkpoint)  # frames keep coming
        chaos.checkpoint = run.daemon.stats.frames_processed
