from __future__ import annotations

import http.client
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import pyvirtualcam

from vcam.sinks import FileSink, MjpegPreviewSink, SinkError, SinkWorker, VirtualCameraSink, Y4MSink, make_sink

from .support import wait_for


def read_y4m(path: Path) -> tuple[str, list[np.ndarray]]:
    data = path.read_bytes()
    header, _, rest = data.partition(b"\n")
    fields = dict((f[0], f[1:]) for f in header.decode().split()[1:])
    w, h = int(fields["W"]), int(fields["H"])
    size = w * h * 3 // 2
    frames = []
    while rest.startswith(b"FRAME\n") and len(rest) >= 6 + size:
        i420 = np.frombuffer(rest[6:6 + size], np.uint8).reshape(h * 3 // 2, w)
        frames.append(cv2.cvtColor(i420, cv2.COLOR_YUV2BGR_I420))
        rest = rest[6 + size:]
    return header.decode(), frames


def test_y4m_sink_writes_a_stream_readable_while_growing(tmp_path: Path, demo_frames) -> None:
    path = tmp_path / "out.y4m"
    sink = Y4MSink(str(path))
    sink.open(1280, 720, 30)
    sink.write(demo_frames[0])
    header, frames = read_y4m(path)  # readable before close: flushed per frame
    assert header == "YUV4MPEG2 W1280 H720 F30:1 Ip A1:1 C420jpeg"
    assert len(frames) == 1
    sink.write(demo_frames[1])
    sink.close()
    _, frames = read_y4m(path)
    assert len(frames) == 2
    assert np.abs(frames[1].astype(int) - demo_frames[1]).mean() < 3  # I420 round trip is near lossless


def test_y4m_sink_stops_growing_at_its_cap(tmp_path: Path, demo_frames, caplog) -> None:
    """A forgotten demo must not fill the disk: past max_bytes frames are dropped for this sink, with one warning,
    and the file stays a valid stream of whole frames."""
    path = tmp_path / "capped.y4m"
    frame_bytes = 6 + 1280 * 720 * 3 // 2
    sink = Y4MSink(str(path), max_bytes=100 + 3 * frame_bytes)
    sink.open(1280, 720, 30)
    with caplog.at_level("WARNING"):
        for i in range(6):
            sink.write(demo_frames[i % len(demo_frames)])
    sink.close()
    _, frames = read_y4m(path)
    assert len(frames) == 3 and sink.full
    assert path.stat().st_size <= 100 + 3 * frame_bytes
    assert sum("size cap" in r.getMessage() for r in caplog.records) == 1


def test_file_sink_writes_playable_mp4(tmp_path: Path, demo_frames) -> None:
    path = tmp_path / "out.mp4"
    sink = FileSink(str(path))
    sink.open(1280, 720, 30)
    for frame in demo_frames[:10]:
        sink.write(frame)
    sink.close()
    cap = cv2.VideoCapture(str(path))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 10
    with pytest.raises(SinkError, match="mp4"):
        FileSink(str(tmp_path / "out.gif")).open(64, 64, 30)


def test_virtual_sink_sends_i420_through_pyvirtualcam(fake_backend, demo_frame) -> None:
    sink = VirtualCameraSink(backend="fake")
    sink.open(1280, 720, 30)
    sink.write(demo_frame)
    sink.close()
    cam = fake_backend.instances[0]
    assert cam.fourcc == pyvirtualcam.util.encode_fourcc("I420")
    assert cam.frames[0].size == 1280 * 720 * 3 // 2
    back = cv2.cvtColor(cam.frames[0].reshape(1080, 1280), cv2.COLOR_YUV2BGR_I420)
    assert np.abs(back.astype(int) - demo_frame).mean() < 3


def test_missing_virtual_device_says_how_to_fix() -> None:
    with pytest.raises(SinkError) as info:
        VirtualCameraSink(device="/dev/video77", backend="v4l2loopback").open(1280, 720, 30)
    assert "modprobe v4l2loopback" in str(info.value) and "exclusive_caps=1" in str(info.value)


def test_slow_sink_never_blocks_submit(demo_frame) -> None:
    release = threading.Event()
    writes: list[int] = []

    class StuckSink:
        description = "stuck"

        def open(self, w, h, fps): pass

        def write(self, frame):
            writes.append(1)
            release.wait()  # a write that never returns (a full pipe, a consumer that stopped reading)

        def close(self): pass

    worker = SinkWorker(StuckSink())
    worker.start(1280, 720, 30)
    submitter = threading.Thread(target=lambda: [worker.submit(demo_frame) for _ in range(30)])
    submitter.start()
    submitter.join(timeout=20)
    try:
        assert not submitter.is_alive(), "submit blocked behind a stuck sink"
        wait_for(lambda: bool(writes), timeout=10)
        assert len(writes) == 1  # the sink is still stuck in its first write; the other frames were dropped
    finally:
        release.set()
        worker.stop(timeout=2)


def _get(port: int, path: str, host: str = "127.0.0.1") -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", path, headers={"Host": f"{host}:{port}"})
    return conn.getresponse()


def test_preview_requires_token_and_local_host(demo_frame) -> None:
    sink = MjpegPreviewSink(port=0)
    sink.open(1280, 720, 30)
    try:
        port, token = sink.port, sink.token
        assert _get(port, "/").status == 403
        assert _get(port, f"/?token={token}x").status == 403
        assert _get(port, f"/?token={token}", host="evil.example.com").status == 403
        page = _get(port, f"/?token={token}")
        assert page.status == 200 and b"stream.mjpg" in page.read()
    finally:
        sink.close()


def test_make_sink_specs() -> None:
    assert isinstance(make_sink("y4m:/tmp/x.y4m"), Y4MSink)
    assert isinstance(make_sink("mjpeg:0"), MjpegPreviewSink)
    with pytest.raises(SinkError, match="unknown sink"):
        make_sink("ndi:foo")


def test_preview_debug_view_streams_the_mask_overlay(demo_frame) -> None:
    debug = demo_frame.copy()
    debug[:, :, 2] = 255  # stand-in overlay: the daemon feeds each finished frame's debug view
    sink = MjpegPreviewSink(port=0, debug_frame=lambda: debug)
    sink.open(1280, 720, 30)
    try:
        response = _get(sink.port, f"/debug.mjpg?token={sink.token}")
        assert response.status == 200
        time.sleep(0.2)
        sink.write(demo_frame)
        head = response.read(4096)
        assert b"Content-Type: image/jpeg" in head
    finally:
        sink.close()
