"""End to end through a real client: headless Chromium reads vcam's output like a video-call page would.

1. y4m sink -> Chromium's fake capture device -> getUserMedia on a page served from 127.0.0.1, which draws the
   frames to a canvas and posts back what it sees.
2. The mjpeg preview page itself, opened in Chromium, its stream drawn to a canvas.
Each asserts the frame size, that live frames advance, and that the background is blurred while the person is not.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from .conftest import BACKGROUND_BOX, FACE_BOX, chromium_binary, crop, high_frequency_energy, read_demo_frames

pytestmark = pytest.mark.slow
CHROMIUM = chromium_binary()
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (.ci/run installs it)")
FRAME_BYTES_720P = 1280 * 720 * 3 // 2 + 6


@pytest.fixture(scope="module")
def source_energy() -> tuple[float, float]:
    """Sharpness of the face and background boxes in the raw demo clip (the reference)."""
    frames = read_demo_frames(10, step=25)
    face = np.median([high_frequency_energy(crop(f, FACE_BOX)) for f in frames])
    bg = np.median([high_frequency_energy(crop(f, BACKGROUND_BOX)) for f in frames])
    return float(face), float(bg)


def _start_daemon(tmp: Path, *sinks: str, preset: str = "blur", source: str = "demo",
                  extra: tuple[str, ...] = ()) -> subprocess.Popen:
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp / "config")}
    cmd = [sys.executable, "-m", "vcam", "run", "--source", source, "--preset", preset, "--seconds", "60", *extra]
    for sink in sinks:
        cmd += ["--sink", sink]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _chromium_flags(user_dir: Path) -> list[str]:
    return ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
            f"--user-data-dir={user_dir}"]


class _PageServer:
    """Serves the measuring page on 127.0.0.1 and collects what it posts back."""

    def __init__(self) -> None:
        page = (Path(__file__).parent / "browser_page.html").read_text()
        page = page.replace("__FACE__", json.dumps(FACE_BOX)).replace("__BG__", json.dumps(BACKGROUND_BOX))
        self.results: dict | None = None
        self.done = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                body = page.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                outer.results = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                self.send_response(204)
                self.end_headers()
                outer.done.set()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"

    def close(self) -> None:
        self.server.shutdown()


def _chromium_reads_y4m(tmp_path: Path, daemon: subprocess.Popen, y4m: Path, min_frames: int) -> dict:
    """Once the daemon has written ``min_frames`` frames to ``y4m``, Chromium's fake camera reads that file in a
    getUserMedia page; returns what the page measured. Stops the daemon."""
    server = _PageServer()
    browser = None
    try:
        deadline = time.monotonic() + 60
        while not (y4m.exists() and y4m.stat().st_size > min_frames * FRAME_BYTES_720P):
            assert daemon.poll() is None, daemon.stdout.read()
            assert time.monotonic() < deadline, "daemon produced no frames"
            time.sleep(0.2)
        browser = subprocess.Popen(
            [CHROMIUM, *_chromium_flags(tmp_path / "chrome"), "--use-fake-ui-for-media-stream",
             "--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={y4m}", server.url],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert server.done.wait(60), "the page never posted its measurements"
    finally:
        if browser is not None:
            browser.kill()
        daemon.terminate()
        daemon.wait(10)
        server.close()
    seen = server.results
    assert seen is not None and "error" not in seen, seen
    return seen


def _assert_blurred_background(seen: dict, source_energy: tuple[float, float]) -> None:
    face_src, bg_src = source_energy
    assert (seen["width"], seen["height"]) == (1280, 720)
    assert seen["distinct_frames"] >= 4, "frames are not advancing"
    assert seen["background_energy"] < 0.5 * bg_src, (seen, source_energy)
    assert seen["face_energy"] > 0.6 * face_src, (seen, source_energy)


def _low_res_clip(path: Path, size: tuple[int, int] = (640, 360), frames: int = 90) -> Path:
    """A 640x360 camera stand-in made from the demo clip (like a USB 2 laptop webcam)."""
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, size)
    for frame in read_demo_frames(frames):
        writer.write(cv2.resize(frame, size, interpolation=cv2.INTER_AREA))
    writer.release()
    return path


@needs_chromium
@pytest.mark.parametrize("camera", ["demo-720p", "360p-with-sr", "demo-720p-beauty"])
def test_chromium_getusermedia_sees_live_blurred_output_from_y4m(tmp_path: Path, source_energy, camera) -> None:
    y4m = tmp_path / "out.y4m"
    if camera == "demo-720p":
        daemon = _start_daemon(tmp_path, f"y4m:{y4m}")
    elif camera == "demo-720p-beauty":  # skin smoothing on (it must keep the face's fine texture: checked below)
        daemon = _start_daemon(tmp_path, f"y4m:{y4m}", extra=("--set", "beauty.enabled=true"))
    else:  # super-resolution up to the 1280x720 output
        clip = _low_res_clip(tmp_path / "cam360.avi")
        daemon = _start_daemon(tmp_path, f"y4m:{y4m}", source=str(clip), extra=("--set", 'upscale.mode="on"'))
    seen = _chromium_reads_y4m(tmp_path, daemon, y4m, min_frames=30)
    _assert_blurred_background(seen, source_energy)
    log = daemon.stdout.read()
    if camera == "360p-with-sr":
        assert "super-resolution mode on" in log
    if camera == "demo-720p-beauty":
        assert "beauty stage: smoothing the skin of 1 face(s)" in log, log


@needs_chromium
def test_chromium_preview_page_shows_live_blurred_output(tmp_path: Path, source_energy) -> None:
    playwright = pytest.importorskip("playwright.sync_api")
    daemon = _start_daemon(tmp_path, "mjpeg:0")
    url = None
    try:
        deadline = time.monotonic() + 60
        lines = []
        while url is None:
            line = daemon.stdout.readline()
            assert line or daemon.poll() is None, "".join(lines)
            lines.append(line)
            match = re.search(r"preview page: (http://127\.0\.0\.1:\d+/\?token=\S+)", line)
            url = match.group(1) if match else None
            assert time.monotonic() < deadline, "".join(lines)
        threading.Thread(target=lambda: [None for _ in daemon.stdout], daemon=True).start()  # keep draining
        measure_js = (Path(__file__).parent / "browser_page.html").read_text()
        measure_fn = measure_js[measure_js.index("function checksum"): measure_js.index("async function main")]
        measure_fn = measure_fn.replace("__FACE__", json.dumps(FACE_BOX)).replace("__BG__", json.dumps(BACKGROUND_BOX))
        with playwright.sync_playwright() as p:
            flags = [f for f in _chromium_flags(tmp_path / "chrome") if not f.startswith(("--headless", "--user-data"))]
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=flags)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url)
            page.wait_for_function("document.getElementById('view').naturalWidth > 0", timeout=30000)
            seen = page.evaluate(
                "async () => { const FACE = %s, BG = %s; %s"
                " const img = document.getElementById('view');"
                " return await measure(() => img, img.naturalWidth, img.naturalHeight); }"
                % (json.dumps(FACE_BOX), json.dumps(BACKGROUND_BOX), measure_fn))
            browser.close()
    finally:
        daemon.terminate()
        daemon.wait(10)
    _assert_blurred_background(seen, source_energy)


def _upright_phone_clip(path: Path, frames: int = 90) -> Path:
    """A 720x1280 phone held upright: the demo's person, whole head in view, with a room above and below."""
    import cv2

    from vcam.config import bundled_background

    room = cv2.imread(bundled_background("architecture"))
    room = cv2.resize(room[:, : room.shape[0] * 720 // 1280], (720, 1280), interpolation=cv2.INTER_AREA)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (720, 1280))
    for frame in read_demo_frames(frames):
        canvas = room.copy()
        canvas[420:825] = cv2.resize(frame, (720, 405), interpolation=cv2.INTER_AREA)
        writer.write(canvas)
    writer.release()
    return path


def _y4m_frame(path: Path, index: int, size: tuple[int, int] = (1280, 720)) -> np.ndarray:
    import cv2

    data = path.read_bytes()
    start = data.index(b"\n") + 1 + index * FRAME_BYTES_720P + 6  # header line, then "FRAME\n" + I420 each
    w, h = size
    i420 = np.frombuffer(data[start:start + w * h * 3 // 2], np.uint8).reshape(h * 3 // 2, w)
    return cv2.cvtColor(i420, cv2.COLOR_YUV2BGR_I420)


UPRIGHT_SETTINGS = ("--set", 'framing.mode="auto"')


@needs_chromium
def test_chromium_sees_an_upright_phone_framed_with_the_whole_head(tmp_path: Path) -> None:
    """An upright 720x1280 source on the 1280x720 output (output.fit = auto): Chromium receives live 1280x720
    frames, and in them the whole head (face box plus a third of its height above) is in view."""
    import cv2

    from vcam.registry import verified_model_path

    y4m = tmp_path / "out.y4m"
    clip = _upright_phone_clip(tmp_path / "upright.avi")
    daemon = _start_daemon(tmp_path, f"y4m:{y4m}", source=str(clip), extra=UPRIGHT_SETTINGS)
    seen = _chromium_reads_y4m(tmp_path, daemon, y4m, min_frames=60)
    assert (seen["width"], seen["height"]) == (1280, 720) and seen["distinct_frames"] >= 4, seen
    detector = cv2.FaceDetectorYN.create(str(verified_model_path("yunet", "face-detection")), "", (1280, 720), 0.7)
    for index in (30, 45, 59):  # after the first second: the framing has settled
        _, faces = detector.detect(_y4m_frame(y4m, index))
        assert faces is not None and len(faces), f"no face in output frame {index}"
        x, y, w, h = max(faces, key=lambda f: f[2] * f[3])[:4]
        assert y - h / 3 >= 0 and y + h <= 720, f"head cut in frame {index}: face box {x, y, w, h}"
        assert h <= 0.5 * 720, f"extreme close-up in frame {index}: face {h:.0f} px high"
