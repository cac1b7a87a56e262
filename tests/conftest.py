"""Shared fixtures: real frames from the bundled demo clip, and helpers for subprocess/browser tests."""

from __future__ import annotations

from tools.paths import DATA_ROOT
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import pyvirtualcam

from vcam.sources import demo_clip_path

from .fakes import FakeLoopback

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = DATA_ROOT  # $VCAM_DATA or ../shared/data (tools.paths)

# Where the person is in the demo clip (fractions of width/height): her face, and a background patch of plants.
FACE_BOX = (0.47, 0.15, 0.68, 0.50)
BACKGROUND_BOX = (0.02, 0.25, 0.25, 0.85)


def read_demo_frames(count: int, step: int = 1, start: int = 0) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(demo_clip_path()))
    frames = []
    index = 0
    while len(frames) < count:
        ok, frame = cap.read()
        if not ok:
            break
        if index >= start and (index - start) % step == 0:
            frames.append(frame)
        index += 1
    cap.release()
    assert len(frames) == count, "demo clip shorter than expected"
    return frames


@pytest.fixture(scope="session")
def demo_frames() -> list[np.ndarray]:
    """30 consecutive 1280x720 BGR frames of the demo clip (frames 30..59)."""
    return read_demo_frames(30, start=30)


@pytest.fixture
def fake_backend():
    """Registers FakeLoopback as pyvirtualcam backend "fake"; yields the class (its ``instances`` are the cameras)."""
    FakeLoopback.instances.clear()
    pyvirtualcam.register_backend("fake", FakeLoopback)
    yield FakeLoopback
    pyvirtualcam.camera.BACKENDS.pop("fake", None)


@pytest.fixture(scope="session")
def demo_frame(demo_frames: list[np.ndarray]) -> np.ndarray:
    return demo_frames[0]


def crop(frame: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    h, w = frame.shape[:2]
    x0, y0, x1, y1 = box
    return frame[int(y0 * h): int(y1 * h), int(x0 * w): int(x1 * w)]


def high_frequency_energy(img: np.ndarray) -> float:
    """Mean |grey - 9x9 box blur of grey|: the detail a background blur removes (robust to 8-bit rounding,
    unlike a 3x3 Laplacian). ``tests/browser_page.html`` computes the same in the browser."""
    grey = (cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) if img.ndim == 3 else img).astype(np.float32)
    return float(np.mean(np.abs(grey - cv2.blur(grey, (9, 9), borderType=cv2.BORDER_REFLECT))))


def chromium_binary() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


# ----- the closing summary: which groups of tests were skipped, and what enables them -------------------------------
# (group, words that identify its skip reasons, what it needs, the command that enables it)
INSTALL_SYSTEM = "sudo .ci/install-test-deps, then rerun the test command"
SKIP_GROUPS = (
    ("training and evaluation data", ("shared/data", "data root", "vcam_data"),
     "the data folder ../shared/data beside the repository", "VCAM_DATA=/path/to/data python -m pytest -q"),
    ("browser end-to-end", ("chromium", "playwright"), "chromium (apt) and the [dev] extra", INSTALL_SYSTEM),
    ("tray", ("xvfb", "trayer", "pyside6", "system tray"), "Xvfb, trayer, Qt's xcb libraries (apt) and the [tray] extra",
     INSTALL_SYSTEM),
    ("training and model conversion", ("torch", "tflite", "onnx", "ai_edge_litert"),
     "PyTorch and the [dev] extra", "pip install torch==2.13.0 && pip install -e '.[dev]'"),
    ("root only", ("root", "another user"), "running the suite as root", "sudo python -m pytest -q"),
)


def _skip_group(reason: str) -> str:
    lowered = reason.lower()
    for name, words, _, _ in SKIP_GROUPS:
        if any(word in lowered for word in words):
            return name
    return "other"


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: ARG001 - pytest's hook signature
    """End the run by naming the skipped test groups, what each needs and the command that enables it."""
    skipped = terminalreporter.stats.get("skipped", [])
    if not skipped:
        return
    groups: dict[str, list[str]] = {}
    for report in skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        groups.setdefault(_skip_group(reason), []).append(reason.removeprefix("Skipped: "))
    known = {name: (need, command) for name, _, need, command in SKIP_GROUPS}
    terminalreporter.section("skipped test groups")
    for name, reasons in groups.items():
        need, command = known.get(name, ("; ".join(sorted(set(reasons)))[:200], "see the skip reasons (pytest -rs)"))
        terminalreporter.write_line(f"{name}: {len(reasons)} skipped; needs {need}; enable with: {command}")
