"""The framing stage: camera frame -> the window of it to show, as the frame the rest of the pipeline works on.

    stage = FramingStage(FramingSettings(mode="auto"), fit="auto", out_size=(1280, 720), face_model=yunet_path)
    framed = stage.process(camera_frame, dt=1 / 30)   # a view of the window, or a padded output-size frame
    stage.observe(segmenter_mask_of(framed))          # where the people are, for the next frame's window

Which frames are framed (``output.fit`` x ``framing.mode``):
- ``stretch``: none; the camera frame passes as it is (later stages stretch it to the output).
- ``framing.mode = "auto"``: every camera frame, following the people (``framing.compose`` / ``framing.step``);
  ``fit = "crop"`` keeps the window inside the camera frame, ``"auto"`` and ``"pad"`` pad where it is too narrow.
- ``framing.mode = "off"``: only frames of another aspect ratio than the output: ``crop`` takes the centre,
  ``pad`` shows the whole frame pillarboxed / letterboxed, ``auto`` frames the head and shoulders (the widest
  crop that keeps the head and a face of at most ``max_face``; padded where the frame is too narrow for that).

The people are found in the previous frame's person mask (the segmenter runs on the framed frame; the window
starts as the whole camera frame, so the first masks see everyone) and, with ``framing.faces``, by YuNet on the
camera frame. Padded frames get a blurred, darkened copy of the picture as fill (as phones look in meetings).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from .faces import Face, FaceTracker
from .framing import CameraState, Fit, FramingSettings, Geometry, Head, compose, head_bounds, step, window_rect

Rect = tuple[int, int, int, int]
MASK_WIDTH = 256  # people are looked for in the mask at most this wide
FACE_WARMUP_FRAMES = 3  # a new face track reaches presence 0.6 on its third frame


def same_aspect(width: int, height: int, out_width: int, out_height: int) -> bool:
    """Within 1% of the output's aspect ratio."""
    target = out_width / out_height
    return abs(width / height - target) <= 0.01 * target


def centre_window(width: int, height: int, out_width: int, out_height: int) -> Rect:
    """The largest centred window of the output's aspect ratio inside the frame, even-sized and even-placed."""
    geom = Geometry(width, height, out_width, out_height, pad=False)
    return window_rect(width / 2, height / 2, geom.h_cover, geom)


def head_from_face(face: Face) -> Head:
    x, y, w, h = (float(v) for v in face.box)
    return Head(x, y, w, h, eye_y=float(face.landmarks[:2, 1].mean()))


def heads_from_mask(mask: np.ndarray, rect: Rect, src_size: tuple[int, int], min_area: float = 0.01,
                    max_people: int = 3) -> list[Head]:
    """People in a person mask (any resolution, float 0..1) of the window ``rect`` of a ``src_size`` frame, as
    head estimates in source pixels: the top of each large blob and the widest row of its top part (the head
    is about 1.2 times as tall as wide; a row much wider than that, further down, is the shoulders)."""
    mh, mw = mask.shape[:2]
    x0, y0, w, h = rect
    sx, sy = w / mw, h / mh
    binary = (mask > (0.5 if mask.dtype != np.uint8 else 127)).astype(np.uint8)
    # Only the part of the window that shows the camera frame (the padding is a blurred copy of it).
    u0, u1 = max(0, math.ceil(-x0 / sx)), min(mw, int((src_size[0] - x0) / sx))
    v0, v1 = max(0, math.ceil(-y0 / sy)), min(mh, int((src_size[1] - y0) / sy))
    binary[:, :u0], binary[:, u1:], binary[:v0], binary[v1:] = 0, 0, 0, 0
    n, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    blobs = sorted(range(1, n), key=lambda k: -stats[k, cv2.CC_STAT_AREA])[:max_people]
    heads = []
    for k in blobs:
        if stats[k, cv2.CC_STAT_AREA] < min_area * mh * mw:
            break
        top = int(stats[k, cv2.CC_STAT_TOP])
        found = _head_in_blob(labels[top:top + mh // 2] == k)
        if found is None:
            continue
        cu, width, height = found
        # A face box is about 0.8 head widths wide and 0.95 tall; the head's top is a third of it above.
        fw, fh = 0.8 * width * sx, 0.95 * width * sx
        fy = y0 + top * sy + fh / 3
        heads.append(Head(x0 + cu * sx - fw / 2, fy, fw, fh, eye_y=fy + 0.4 * fh))
    return heads


def _head_in_blob(rows: np.ndarray) -> tuple[float, float, int] | None:
    """(centre column, width, rows) of the head at the top of a blob's boolean rows."""
    widest, centres, height = 0.0, [], 0
    for row in rows:
        cols = np.flatnonzero(row)
        if cols.size == 0:
            break
        width = float(cols[-1] - cols[0] + 1)
        if height > 0.8 * widest and width > 1.5 * widest and widest >= 2:
            break  # the shoulders
        widest = max(widest, width)
        centres.append((cols[0] + cols[-1]) / 2)
        height += 1
        if height > 1.2 * widest and widest >= 2:
            break
    if widest < 2:
        return None
    return float(np.mean(centres)), widest, height


def stretch_part(small: np.ndarray, out: np.ndarray, part: Rect) -> None:
    """Write into ``out[y:y+h, x:x+w]`` that part of ``small`` stretched bilinearly to ``out``'s size: what
    ``cv2.resize(small, out size)`` gives there (within one level), without computing the rest."""
    x, y, w, h = part
    sx, sy = small.shape[1] / out.shape[1], small.shape[0] / out.shape[0]
    src_of_dst = np.float32([[sx, 0, (x + 0.5) * sx - 0.5], [0, sy, (y + 0.5) * sy - 0.5]])
    cv2.warpAffine(small, src_of_dst, (w, h), dst=out[y:y + h, x:x + w],
                   flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)


class FramingStage:
    """Camera frame -> framed frame, following the people; ``observe`` takes the mask of what it returned."""

    def __init__(self, settings: FramingSettings, fit: Fit, out_size: tuple[int, int],
                 face_model: Path | Callable[[], Path] | None = None) -> None:
        self.settings, self.fit, self.out_size = settings, fit, out_size
        self._face_model = face_model
        self._tracker: FaceTracker | None = None
        self.state: CameraState | None = None
        self.window: Rect | None = None  # the window of the last frame returned (source px), None: whole frame
        self.heads: list[Head] = []  # who the last window was composed around
        self._mask_heads: list[Head] = []
        self._src: tuple[int, int] | None = None
        self._crop_buf: np.ndarray | None = None
        self._pad_buf: np.ndarray | None = None

    def configure(self, settings: FramingSettings, fit: Fit) -> None:
        """Swap settings between frames; the window moves on from where it is."""
        if settings.faces != self.settings.faces:
            self._tracker = None
        self.settings, self.fit = settings, fit

    def reset(self) -> None:
        self.state, self.window, self.heads, self._mask_heads = None, None, [], []
        if self._tracker is not None:
            self._tracker.reset()

    def plan(self, width: int, height: int) -> str:
        """What this stage does with frames of this size: 'none', 'centre', 'whole' (padded) or 'follow'."""
        if self.fit == "stretch":
            return "none"
        if self.settings.mode == "auto":
            return "follow"
        if same_aspect(width, height, *self.out_size):
            return "none"
        return {"crop": "centre", "pad": "whole", "auto": "follow"}[self.fit]

    def process(self, frame: np.ndarray, dt: float) -> np.ndarray:
        """Camera frame (BGR uint8) -> the framed frame: the frame itself, a view of its window, or the stage's
        own output-size buffer (padded windows, and windows of exactly the output size)."""
        height, width = frame.shape[:2]
        if self._src != (width, height):
            self.reset()
            self._src = (width, height)
        plan = self.plan(width, height)
        geom = Geometry(width, height, *self.out_size, pad=self.fit != "crop")
        if plan == "none":
            self.window = None
            return frame
        if plan == "centre":
            self.window = centre_window(width, height, *self.out_size)
        elif plan == "whole":
            self.window = window_rect(*geom.wide(), geom)
        else:
            self.heads = self._find_heads(frame)
            target = compose(self.heads, geom, self.settings, follow=self.settings.mode == "auto")
            self.state = step(self.state, target, geom, self.settings, dt, keep=head_bounds(self.heads))
            self.window = window_rect(*self.state.window, geom)
        return self._render(frame, self.window)

    def observe(self, mask: np.ndarray | None) -> None:
        """The person mask or alpha (any size, float 0..1 or uint8) of the frame ``process`` returned last
        (None: no mask that frame)."""
        if mask is None or self.window is None or self._src is None:
            self._mask_heads = []
            return
        if mask.shape[1] > MASK_WIDTH:  # a full-size alpha: people are found as well at a fraction of the cost
            height = max(2, round(mask.shape[0] * MASK_WIDTH / mask.shape[1]))
            mask = cv2.resize(mask, (MASK_WIDTH, height), interpolation=cv2.INTER_NEAREST)
        self._mask_heads = heads_from_mask(mask, self.window, self._src)

    # -- internals -------------------------------------------------------------------------------------------

    def _find_heads(self, frame: np.ndarray) -> list[Head]:
        """Faces where YuNet sees them, plus mask people with no face over them (turned away, too small).
        Nobody during the face tracker's first frames (its faces fade in): the first framing is a cut, so it
        should come from the faces, not from the mask's rougher head estimate."""
        tracked = self._faces(frame)
        if self._tracker is not None and self._tracker.frame_index <= FACE_WARMUP_FRAMES:
            return []
        faces = [head_from_face(f) for f in tracked if f.presence >= 0.5]
        extra = [m for m in self._mask_heads
                 if not any(m.x < f.x + 1.5 * f.w and f.x - 0.5 * f.w < m.x + m.w for f in faces)]
        return faces + extra

    def _faces(self, frame: np.ndarray) -> list[Face]:
        if not self.settings.faces or self._face_model is None:
            return []
        if self._tracker is None:
            path = self._face_model() if callable(self._face_model) else self._face_model
            self._tracker = FaceTracker(path, max_faces=3, full_interval=30)
        return self._tracker.update(frame)

    def _render(self, frame: np.ndarray, rect: Rect) -> np.ndarray:
        height, width = frame.shape[:2]
        x0, y0, w, h = rect
        if x0 >= 0 and y0 >= 0 and x0 + w <= width and y0 + h <= height:
            crop = frame[y0:y0 + h, x0:x0 + w]
            if (w, h) != self.out_size:
                return crop  # the resize stage reads the view and makes a new frame
            # no resize follows: later stages want a contiguous frame of their own
            if self._crop_buf is None or self._crop_buf.shape != crop.shape:
                self._crop_buf = np.empty(crop.shape, np.uint8)
            np.copyto(self._crop_buf, crop)
            return self._crop_buf
        return self._render_padded(frame, rect)

    def _render_padded(self, frame: np.ndarray, rect: Rect) -> np.ndarray:
        """The window at the output size: the camera frame's part of it scaled in, a blurred copy around it."""
        height, width = frame.shape[:2]
        out_w, out_h = self.out_size
        x0, y0, w, h = rect
        sx, sy = out_w / w, out_h / h
        cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x0 + w, width), min(y0 + h, height)
        dx0, dy0 = round((cx0 - x0) * sx), round((cy0 - y0) * sy)
        dw, dh = min(out_w - dx0, round((cx1 - cx0) * sx)), min(out_h - dy0, round((cy1 - cy0) * sy))
        if self._pad_buf is None or self._pad_buf.shape[:2] != (out_h, out_w):
            self._pad_buf = np.empty((out_h, out_w, 3), np.uint8)
        content = self._pad_buf[dy0:dy0 + dh, dx0:dx0 + dw]
        # Area averaging only for a strong shrink: at factors under 2 OpenCV's area path costs ~5 ms at 720p,
        # bilinear under 1 ms (the resize stage makes the same choice). Written straight into its place.
        scaled = cv2.resize(frame[cy0:cy1, cx0:cx1], (dw, dh), dst=content,
                            interpolation=cv2.INTER_AREA if sx <= 0.5 else cv2.INTER_LINEAR)
        if scaled is not content:  # OpenCV made its own array instead of writing into the view
            content[:] = scaled
        # Fill: the picture squeezed to 32x18 (from every 8th pixel: it is blurred right after), blurred and
        # darkened, stretched over the output where the picture does not cover it.
        tiny = cv2.resize(content[::8, ::8], (32, 18), interpolation=cv2.INTER_AREA)
        tiny = cv2.convertScaleAbs(cv2.GaussianBlur(tiny, (0, 0), 2.0), alpha=0.6)
        for bx, by, bw, bh in ((0, 0, out_w, dy0), (0, dy0 + dh, out_w, out_h - dy0 - dh),
                               (0, dy0, dx0, dh), (dx0 + dw, dy0, out_w - dx0 - dw, dh)):
            if bw > 0 and bh > 0:
                stretch_part(tiny, self._pad_buf, (bx, by, bw, bh))
        return self._pad_buf
