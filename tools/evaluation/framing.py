"""Measure framing on real clips: is the whole head in the 1280x720 output, how big is the face, is the window
still while the person is?

    python -m tools.evaluation.framing                 # every clip, framing.mode off and auto
    python -m tools.evaluation.framing --frames 120 --json out.json

Each clip (upright phones, 4:3 webcams, and crops / rotations of wider clips into those shapes, listed in
``CLIPS``) runs through the real ``vcam.pipeline.Pipeline`` (the shipped segmenter chosen as ``vcam run`` does,
YuNet face tracking in the framing stage, default settings but the ``framing.mode`` under test, blur background),
frame by frame as a camera would deliver it. The window each frame was shown through is
``pipeline.framing_window`` (source pixels, the 1280x720 output's aspect ratio, may reach outside the source
where the output is padded).

Reference heads come from a separate full-frame YuNet detection of every source frame (640 px long side, score
>= 0.7), independent of the stage's tracker: the *whole head* is the face box plus a third of its height above it.
Per clip:
- ``head_in``: share of frames with a reference face in which every whole head lies inside the window and the
  source (the part of the output that shows the camera); ``head_in_camera``: share in which every whole head is
  inside the camera frame at all (the most any window can show); ``head_in_of_possible``: ``head_in`` counted
  over those frames only;
- ``max_face``: largest face height / window height (= face height in the output / 720); ``max_face_whole``:
  the same for a window showing the whole camera frame (the smallest the face can be without shrinking the
  camera's picture inside a padded frame);
- ``still``: frames in which the person is still (every reference face centre within 4% of the face height of
  where it was 10 and 20 frames before, and its height within 4% of what it was), and the window's motion in
  those frames in output pixels per frame (largest change of any window edge, scaled to the output): mean, 95th
  percentile, and share of still frames in which the window did not move at all.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from tools.paths import DATA_ROOT
from vcam.config import build_config
from vcam.pipeline import Pipeline
from vcam.registry import verified_model_path
from vcam.segmenter import load_segmenter

log = logging.getLogger(__name__)
VIDEOS = DATA_ROOT / "videos"
DEMO = Path(__file__).resolve().parents[2] / "vcam" / "assets" / "demo.mp4"
OUT_W, OUT_H = 1280, 720


def _resize(size: tuple[int, int]) -> Callable[[np.ndarray], np.ndarray]:
    return lambda f: cv2.resize(f, size, interpolation=cv2.INTER_AREA)


def _crop(w: int, h: int, x0: int | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """A w x h crop: centred, or from column ``x0``."""
    def crop(f: np.ndarray) -> np.ndarray:
        fx = (f.shape[1] - w) // 2 if x0 is None else x0
        fy = (f.shape[0] - h) // 2
        return f[fy:fy + h, fx:fx + w]
    return crop



@dataclass(frozen=True)
class Clip:
    name: str
    path: Path
    shape: Callable[[np.ndarray], np.ndarray]  # source frame -> the camera frame under test
    what: str


def _as_is(f: np.ndarray) -> np.ndarray:
    return f


CLIPS = [
    Clip("upright-kitchen", VIDEOS / "upright-kitchen-1080x1920.mp4", _resize((720, 1280)), "phone 720x1280"),
    Clip("upright-porch", VIDEOS / "upright-porch-1080x1920.mp4", _resize((720, 1280)), "phone 720x1280"),
    Clip("face-s29", VIDEOS / "face-s29.mp4", _crop(720, 1280), "720x1364 centre 720x1280"),
    Clip("face-s20", VIDEOS / "face-s20.mp4", _as_is, "upright 480x908 as is"),
    Clip("desk-a-upright", VIDEOS / "webcam-desk-1080p-a.mp4", _crop(720, 1080), "1080p centre 720x1080"),
    Clip("desk-b-upright", VIDEOS / "webcam-desk-1080p-b.mp4", _crop(720, 1080), "1080p centre 720x1080"),
    Clip("desk-a-4:3", VIDEOS / "webcam-desk-1080p-a.mp4", _crop(1440, 1080), "1080p centre 1440x1080"),
    Clip("s32-4:3", VIDEOS / "face-s32.mp4", _crop(960, 720), "720p centre 960x720"),
    Clip("lowres-1", VIDEOS / "webcam-lowres-1.mp4", _as_is, "4:3 webcam 400x300"),
    Clip("lowres-2", VIDEOS / "webcam-lowres-2.mp4", _as_is, "4:3 webcam 400x300"),
    Clip("lowres-3", VIDEOS / "webcam-lowres-3.mp4", _as_is, "4:3 webcam 320x240"),
    Clip("lowres-4", VIDEOS / "webcam-lowres-4.mp4", _as_is, "4:3 webcam 320x240"),
    Clip("asl-1", VIDEOS / "signing", _as_is, "4:3 640x480, first signing clip"),
    Clip("demo-4:3", DEMO, _crop(960, 720), "demo centre 960x720"),
    Clip("demo-upright", DEMO, _crop(406, 720), "demo centre 406x720"),
    Clip("demo", DEMO, _as_is, "demo 1280x720 as is"),
]


class ReferenceFaces:
    """Full-frame YuNet on every source frame: face boxes (x, y, w, h) independent of the pipeline."""

    def __init__(self, long_side: int = 640) -> None:
        self.long_side = long_side
        self.net = cv2.FaceDetectorYN.create(str(verified_model_path("yunet", "face-detection")), "",
                                             (long_side, long_side), 0.7)

    def __call__(self, frame: np.ndarray) -> list[np.ndarray]:
        h, w = frame.shape[:2]
        scale = min(1.0, self.long_side / max(h, w))
        size = (round(w * scale), round(h * scale))
        self.net.setInputSize(size)
        _, rows = self.net.detect(cv2.resize(frame, size, interpolation=cv2.INTER_AREA))
        if rows is None:
            return []
        boxes = [r[:4] / scale for r in rows]
        return [b for b in boxes if b[3] >= 0.03 * h]


def _clip_file(path: Path) -> Path:
    return sorted(path.glob("*.mkv"))[0] if path.is_dir() else path


def _frames(path: Path, limit: int):
    if not path.exists():
        raise SystemExit(f"{path} is missing: set VCAM_DATA to the data folder (now {DATA_ROOT})")
    cap = cv2.VideoCapture(str(_clip_file(path)))
    try:
        for _ in range(limit):
            ok, frame = cap.read()
            if not ok:
                return
            yield frame
    finally:
        cap.release()


def _head_inside(box: np.ndarray, rect: tuple[int, int, int, int], src: tuple[int, int]) -> bool:
    x, y, w, h = box
    x0, y0, ww, wh = rect
    left, right, top, bottom = max(x0, 0), min(x0 + ww, src[0]), max(y0, 0), min(y0 + wh, src[1])
    return x >= left and x + w <= right and y - h / 3 >= top and y + h <= bottom


def _is_still(history: list[list[np.ndarray]]) -> bool:
    """Every face now within 4% of its height of where the nearest face was 10 and 20 frames ago, and of the
    same height within 4% (not leaning in or back)."""
    if len(history) < 21 or not history[-1]:
        return False
    for box in history[-1]:
        centre = box[:2] + box[2:] / 2
        for past in (history[-11], history[-21]):
            if not past:
                return False
            near = min(past, key=lambda b: float(np.hypot(*(centre - (b[:2] + b[2:] / 2)))))
            moved = float(np.hypot(*(centre - (near[:2] + near[2:] / 2))))
            if moved > 0.04 * box[3] or abs(near[3] - box[3]) > 0.04 * box[3]:
                return False
    return True


def run_clip(clip: Clip, mode: str, frames: int, segmenter_choice: str) -> dict[str, object]:
    config = build_config({"output": {"width": OUT_W, "height": OUT_H, "sinks": []},
                           "model": {"segmenter": segmenter_choice, "threads": 1}, "framing": {"mode": mode}})
    pipeline = Pipeline(config, load_segmenter(config.model.segmenter, threads=1))
    reference = ReferenceFaces()
    inside, possible, faces, whole, motion, history = [], [], [], [], [], []
    prev_rect = None
    size = None
    for raw in _frames(clip.path, frames):
        frame = np.ascontiguousarray(clip.shape(raw))
        size = (frame.shape[1], frame.shape[0])
        pipeline.process(frame)
        rect = pipeline.framing_window or (0, 0, *size)
        boxes = reference(frame)
        history.append(boxes)
        if boxes:
            inside.append(all(_head_inside(b, rect, size) for b in boxes))
            possible.append(all(_head_inside(b, (0, 0, *size), size) for b in boxes))
            faces.append(max(b[3] for b in boxes) / rect[3])
            whole.append(max(b[3] for b in boxes) / max(size[1], size[0] * OUT_H / OUT_W))
        if prev_rect is not None and _is_still(history):
            scale = OUT_H / rect[3]
            motion.append(max(abs(a - b) for a, b in zip(rect, prev_rect)) * scale)
        prev_rect = rect
    return {"clip": clip.name, "mode": mode, "source": f"{size[0]}x{size[1]}" if size else "-",
            "frames": len(history), "with_face": len(inside),
            "head_in": round(100 * float(np.mean(inside)), 1) if inside else None,
            "head_in_camera": round(100 * float(np.mean(possible)), 1) if possible else None,
            "head_in_of_possible": round(100 * float(np.mean(np.array(inside)[np.array(possible)])), 1)
            if any(possible) else None,
            "max_face": round(float(max(faces)), 3) if faces else None,
            "max_face_whole": round(float(max(whole)), 3) if whole else None,
            "still": len(motion),
            "still_motion_mean": round(float(np.mean(motion)), 3) if motion else None,
            "still_motion_p95": round(float(np.percentile(motion, 95)), 2) if motion else None,
            "still_zero": round(100 * float(np.mean(np.array(motion) == 0)), 1) if motion else None}


def _table(rows: list[dict[str, object]]) -> str:
    keys = ["clip", "mode", "source", "frames", "with_face", "head_in", "head_in_camera", "head_in_of_possible",
            "max_face", "max_face_whole", "still", "still_motion_mean", "still_motion_p95", "still_zero"]
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join("-" if r[k] is None else str(r[k]) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=300, help="frames per clip at most")
    ap.add_argument("--modes", default="off,auto", help="framing.mode values to run")
    ap.add_argument("--clips", default="", help="comma-separated clip names (default: all)")
    ap.add_argument("--segmenter", default="auto", help="model.segmenter (default: as vcam run picks)")
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    cv2.setNumThreads(1)
    wanted = set(filter(None, args.clips.split(",")))
    rows = []
    for clip in CLIPS:
        if wanted and clip.name not in wanted:
            continue
        for mode in args.modes.split(","):
            rows.append(run_clip(clip, mode, args.frames, args.segmenter))
            print(json.dumps(rows[-1]), flush=True)
    print(_table(rows))
    head_rows = [r for r in rows if r["head_in"] is not None]
    for mode in args.modes.split(","):
        mine = [r for r in head_rows if r["mode"] == mode]
        if mine:
            worst = min(mine, key=lambda r: r["head_in"])
            print(f"mode {mode}: lowest head_in {worst['head_in']}% ({worst['clip']}), largest face "
                  f"{max(r['max_face'] for r in mine)}, clips {len(mine)}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
