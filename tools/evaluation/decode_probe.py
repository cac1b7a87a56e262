"""CPU per decoded frame: OpenCV's FFmpeg reader (BGR, what vcam's file source uses) against PyAV's planar
YUV 4:2:0 (what a pipeline working in the virtual camera's own colour space would read).

    pip install av   # not a vcam dependency; this probe is the reason to consider it
    python -m tools.evaluation.decode_probe [--clip vcam/assets/demo.mp4] [--frames 200] [--rounds 3]

One decoder thread each, process CPU time (the decoders may use helper threads), the readers alternated per
round. OpenCV's reader cannot keep the planes: with ``CAP_PROP_CONVERT_RGB = 0`` it returns only the luma plane
of yuv420p video (OpenCV 5.1), so planar YUV from a file needs another decoder.
"""
from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable

import cv2

log = logging.getLogger(__name__)


def opencv_bgr(path: str, frames: int) -> float:
    cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])
    t0 = time.process_time()
    for _ in range(frames):
        ok, _frame = cap.read()
        if not ok:
            raise ValueError(f"{path} has fewer than {frames} frames")
    return (time.process_time() - t0) / frames * 1e3


def pyav_planes(path: str, frames: int, fmt: str = "yuv420p") -> float:
    import av  # noqa: PLC0415 - optional: only this probe needs it

    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "NONE"
        stream.codec_context.thread_count = 1
        t0, n = time.process_time(), 0
        for frame in container.decode(stream):
            frame.to_ndarray(format=fmt)
            n += 1
            if n == frames:
                break
    if n < frames:
        raise ValueError(f"{path} has fewer than {frames} frames")
    return (time.process_time() - t0) / frames * 1e3


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", default="vcam/assets/demo.mp4")
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    readers: dict[str, Callable[[str, int], float]] = {
        "opencv bgr": opencv_bgr,
        "pyav yuv420p": pyav_planes,
        "pyav bgr24": lambda path, n: pyav_planes(path, n, "bgr24"),
    }
    for r in range(args.rounds):
        figures = {name: read(args.clip, args.frames) for name, read in readers.items()}
        log.info("round %d: %s", r + 1, ", ".join(f"{name} {ms:.2f} ms" for name, ms in figures.items()))


if __name__ == "__main__":
    main()
