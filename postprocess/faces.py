"""Face tracking for the beauty stage: YuNet detections, few and cheap, smoothed into steady boxes.

YuNet (on ONNX Runtime, :mod:`.yunet`) runs
- on the whole frame, downscaled to ``full_long_side`` pixels, every ``full_interval`` frames (more often while
  no face is tracked) to pick up faces, and
- on a small square crop around each tracked face every ``detect_interval`` frames to follow it (every other
  frame while the face moves fast); a crop that misses the face brings the next whole-frame detection forward.
Between detections the box moves with the image where the head moves by 2 pixels or more from one frame to the
next (phase correlation of a small grey patch around the face), and the face state (box + five landmarks)
glides towards the latest detection; detections
that moved less than a dead band are ignored, so a still face gets a box that does not move at all. A
detection that hardly overlaps the face's box still follows it if it is about the face's size and less than a
face width away: a fast head moves that far between two detections.
Each track also carries a ``presence`` in [0, 1] that fades in and out over a few frames, so the effect never
pops on or off when a face appears or is lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .yunet import YuNet

# YuNet row: x, y, w, h, right eye (x, y), left eye, nose tip, right mouth corner, left mouth corner, score.
_STATE = 14  # box (4) + landmarks (10)
MOTION_MIN_RESPONSE = 0.2  # phase-correlation peak under which a measured motion is not trusted
# Frame pixels: a smaller motion between detections is left to them (following 1-pixel motions too moved the box
# of slowly swaying heads often enough to raise their shimmer figure, docs/beauty.md)
MOTION_MIN_SHIFT = 2.0


@dataclass
class Face:
    """A tracked face in frame pixel coordinates (smoothed)."""

    box: np.ndarray  # float32 [4]: x, y, w, h
    landmarks: np.ndarray  # float32 [5, 2]: right eye, left eye, nose tip, right / left mouth corner
    presence: float  # 0..1, fades in when found and out when lost
    track_id: int  # stable while the face is tracked


class PatchMotion:
    """Frame-to-frame translation of the image around one face: phase correlation of a small grey patch (1.25x
    the face box) against the same place in the last frame. ``shift(frame)`` then ``keep(frame, box)`` per frame."""

    size = 64  # side of the grey patch the motion is measured on
    _window: np.ndarray | None = None  # Hanning window, shared

    def __init__(self) -> None:
        self.patch: np.ndarray | None = None
        self.rect: tuple[int, int, int, int] | None = None  # where the patch was taken (x0, y0, x1, y1)
        self._current: np.ndarray | None = None  # this frame's patch at ``rect``, from ``shift``

    def keep(self, frame: np.ndarray, box: np.ndarray) -> None:
        """Take this frame's patch around ``box`` (x, y, w, h) for the next frame's measurement."""
        h, w = frame.shape[:2]
        side = 1.25 * float(max(box[2], box[3]))
        cx, cy = float(box[0] + box[2] / 2), float(box[1] + box[3] / 2)
        x0, y0 = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
        x1, y1 = int(min(w, cx + side / 2)), int(min(h, cy + side / 2))
        rect = None if x1 - x0 < 16 or y1 - y0 < 16 else (x0, y0, x1, y1)
        if rect is not None and rect == self.rect and self._current is not None:
            self.patch = self._current  # the box stayed put: the patch ``shift`` took is the one to keep
        else:
            self.patch = None if rect is None else self._grey(frame, rect)
        self.rect, self._current = rect, None

    def shift(self, frame: np.ndarray) -> tuple[float, float] | None:
        """(dx, dy) in frame pixels from the kept patch to ``frame``; None without a patch or a clear peak."""
        if self.patch is None or self.rect is None:
            return None
        if PatchMotion._window is None:
            PatchMotion._window = cv2.createHanningWindow((self.size, self.size), cv2.CV_32F)
        self._current = self._grey(frame, self.rect)
        (dx, dy), response = cv2.phaseCorrelate(self.patch, self._current, PatchMotion._window)
        if not response >= MOTION_MIN_RESPONSE or not np.isfinite(dx + dy):  # (a flat patch has no peak)
            return None
        x0, y0, x1, y1 = self.rect
        return dx * (x1 - x0) / self.size, dy * (y1 - y0) / self.size

    def _grey(self, frame: np.ndarray, rect: tuple[int, int, int, int]) -> np.ndarray:
        x0, y0, x1, y1 = rect
        patch = _shrink(frame[y0:y1, x0:x1], (self.size, self.size))
        return cv2.cvtColor(patch, cv2.COLOR_BGR2GRAY).astype(np.float32)


@dataclass
class _Track:
    track_id: int
    state: np.ndarray  # smoothed [14]
    target: np.ndarray  # latest accepted detection [14]
    last_detect: int  # frame index of the last detection attempt
    misses: int = 0
    presence: float = 0.0
    lost: bool = False
    moving: int = 0  # detections left in the quick-follow mode (the face moved far since the last one)
    previous: np.ndarray | None = None  # the target before the current one
    motion: PatchMotion = field(default_factory=PatchMotion)  # the image's motion between detections
    scratch: np.ndarray = field(default_factory=lambda: np.zeros(_STATE, np.float32))

    def face(self) -> Face:
        return Face(self.state[:4].copy(), self.state[4:].reshape(5, 2).copy(), self.presence, self.track_id)

    def follow(self, frame: np.ndarray) -> None:
        """Move the face's box with the image between two detections, so a moving head's box does not lag by the
        frames since its last detection. Small shifts are left to the detections (a still face's box stays put)."""
        found = self.motion.shift(frame)
        if found is None:
            return
        dx, dy = found
        shift = float(np.hypot(dx, dy))
        if shift < MOTION_MIN_SHIFT or shift > 0.5 * self.target[2]:
            return
        for arr in (self.state, self.target) + ((self.previous,) if self.previous is not None else ()):
            arr[0::2] += dx
            arr[1::2] += dy
            arr[2] -= dx  # width and height are sizes, not positions
            arr[3] -= dy


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = a[2] * a[3] + b[2] * b[3] - inter
    return float(inter / union) if union > 0 else 0.0


def _centre_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Distance between the centres of two (x, y, w, h, ...) boxes."""
    return float(np.hypot(a[0] + a[2] / 2 - b[0] - b[2] / 2, a[1] + a[3] / 2 - b[1] - b[3] / 2))


def _moved_face(det: np.ndarray, box: np.ndarray) -> bool:
    """Whether a detection that hardly overlaps ``box`` is still the same face, moved: about its size and its
    centre less than a face width away (a fast head moves that far between two detections)."""
    return _centre_distance(det, box) < box[2] and 0.67 < det[2] / max(box[2], 1.0) < 1.5


def _shrink(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Downscale without aliasing, cheaply: bilinear to twice the size, then INTER_AREA's fast 2:1 path.

    (INTER_AREA at a non-integer factor costs as much as the detection itself.)
    """
    w, h = size
    if image.shape[1] <= 2 * w or image.shape[0] <= 2 * h:
        return cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    twice = cv2.resize(image, (2 * w, 2 * h), interpolation=cv2.INTER_LINEAR)
    return cv2.resize(twice, size, interpolation=cv2.INTER_AREA)


class FaceTracker:
    """Finds and follows up to ``max_faces`` faces; ``update(frame)`` once per frame returns them."""

    def __init__(
        self,
        model_path: str | Path,
        *,
        detect_interval: int = 4,
        full_interval: int = 90,
        search_interval: int = 10,
        max_faces: int = 2,
        score_threshold: float = 0.6,
        full_long_side: int = 320,
        crop_size: int = 96,
        glide: float = 0.35,
        dead_band: float = 0.04,
        max_misses: int = 2,
        fade_step: float = 0.2,
        follow_motion: bool = True,
    ) -> None:
        self.detect_interval = detect_interval
        self.full_interval = full_interval
        self.search_interval = search_interval
        self.max_faces = max_faces
        self.full_long_side = full_long_side
        self.crop_size = crop_size
        self.glide = glide
        self.dead_band = dead_band
        self.max_misses = max_misses
        self.fade_step = fade_step
        self.follow_motion = follow_motion
        path = str(model_path)
        self._full = YuNet(path, (full_long_side, full_long_side), score_threshold)
        self._crop = YuNet(path, (crop_size, crop_size), score_threshold)
        self._canvas = np.zeros((crop_size, crop_size, 3), np.uint8)
        self._full_size: tuple[int, int] | None = None
        self._small: np.ndarray | None = None
        self._tracks: list[_Track] = []
        self._next_id = 0
        self._frame = 0
        self._last_full = -(10**9)
        self._search_now = False

    def reset(self) -> None:
        self._tracks.clear()
        self._frame = 0
        self._last_full = -(10**9)
        self._search_now = False

    @property
    def frame_index(self) -> int:
        return self._frame

    def update(self, frame: np.ndarray) -> list[Face]:
        """Detect where due, glide every track towards its detection, return the faces to treat."""
        i = self._frame
        live = [t for t in self._tracks if not t.lost]
        since_full = i - self._last_full
        if self._search_now or (not live and since_full >= self.search_interval) or (
            len(live) < self.max_faces and since_full >= self.full_interval
        ):
            self._detect_full(frame)
        for k, track in enumerate(self._tracks):
            if track.lost:
                continue
            # Stagger the tracks so two faces do not both pay for a detection in the same frame.
            interval = 2 if track.moving else self.detect_interval + (k % 2)
            if i - track.last_detect >= interval:
                self._detect_crop(frame, track)
            elif self.follow_motion:
                track.follow(frame)
            if self.follow_motion:
                track.motion.keep(frame, track.target)
        faces = []
        for track in self._tracks:
            gap = track.target - track.state
            if np.abs(gap).max() < 0.5:
                track.state[:] = track.target  # arrived: a still face gets a box that does not move at all
            else:
                track.state += (0.5 if track.moving else self.glide) * gap
            step = -self.fade_step if track.lost else self.fade_step
            track.presence = float(min(1.0, max(0.0, track.presence + step)))
            if track.presence > 0.0:
                faces.append(track.face())
        self._tracks = [t for t in self._tracks if t.presence > 0.0 or not t.lost]
        self._frame += 1
        return faces

    # -- detection -------------------------------------------------------------------------------------------

    def _accept(self, track: _Track, det: np.ndarray) -> None:
        """Take a detection as the new target unless it is within the dead band of the current one."""
        track.misses = 0
        track.lost = False
        size = max(float(track.target[2]), 1.0)
        shift = float(np.abs(det - track.target).max())
        # A face that moved far is followed closely for a few detections (every other frame, faster glide),
        # so its box, and the region the stage may change, keep up with it.
        track.moving = 3 if shift > 0.1 * size else max(0, track.moving - 1)
        # Not back to the target before either: on a still face the crop (placed from the target) and YuNet's
        # box can alternate between two detections; switching between them would make the region pulse.
        back = track.previous is not None and float(np.abs(det - track.previous).max()) <= self.dead_band * size
        if shift > self.dead_band * size and not back:
            track.previous = track.target.copy()
            track.target[:] = det

    def _miss(self, track: _Track) -> None:
        track.misses += 1
        self._search_now = True  # the face left its crop (or turned away): look in the whole frame next frame
        if track.misses > self.max_misses:
            track.lost = True

    def _detect_full(self, frame: np.ndarray) -> None:
        h, w = frame.shape[:2]
        scale = self.full_long_side / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        if self._full_size != size:
            self._full.set_input_size(size)
            self._full_size = size
            self._small = np.empty((size[1], size[0], 3), np.uint8)
        self._small[:] = _shrink(frame, size)
        _, rows = self._full.detect(self._small)
        self._last_full = self._frame
        self._search_now = False
        dets = [] if rows is None else [r for r in rows]
        dets.sort(key=lambda r: -r[14])
        boxes = [r[:4] / scale for r in dets]
        used: set[int] = set()
        matches: dict[int, int] = {}  # track index -> detection index
        for k, track in enumerate(self._tracks):
            best, best_iou = None, 0.3
            for j, box in enumerate(boxes):
                iou = _iou(track.target[:4], box)
                if j not in used and iou > best_iou:
                    best, best_iou = j, iou
            if best is not None:
                matches[k] = best
                used.add(best)
        # Then the faces that moved far since their last detection (they left their crop): the nearest detection
        # of about their size that no other face has taken.
        for k, track in enumerate(self._tracks):
            if k in matches:
                continue
            moved = [j for j, box in enumerate(boxes) if j not in used and _moved_face(box, track.target)]
            if moved:
                matches[k] = min(moved, key=lambda j: _centre_distance(boxes[j], track.target))
                used.add(matches[k])
        for k, track in enumerate(self._tracks):
            if k not in matches:
                if not track.lost:
                    self._miss(track)
            else:
                track.last_detect = self._frame
                self._accept(track, (dets[matches[k]][:_STATE] / scale).astype(np.float32))
        for j, r in enumerate(dets):
            if j in used or sum(not t.lost for t in self._tracks) >= self.max_faces:
                continue
            s = (r[:_STATE] / scale).astype(np.float32)
            # The first crop detection on the next frame: crop and full-frame detections differ by a few pixels,
            # so the box settles on the crop detector's (which then repeats for a still face) within a few frames.
            self._tracks.append(_Track(self._next_id, state=s.copy(), target=s.copy(),
                                       last_detect=self._frame - self.detect_interval))
            self._next_id += 1

    def _detect_crop(self, frame: np.ndarray, track: _Track) -> None:
        h, w = frame.shape[:2]
        x, y, bw, bh = track.target[:4]
        # Crop geometry snapped to a coarse grid: a still face gets the very same crop, hence the same detection
        # (YuNet's box moves by a few pixels with the crop's alignment).
        side = 32.0 * np.ceil(2.0 * max(bw, bh) / 32.0)
        cx, cy = 16.0 * round((x + bw / 2) / 16.0), 16.0 * round((y + bh / 2) / 16.0)
        x0, y0 = int(max(0, round(cx - side / 2))), int(max(0, round(cy - side / 2)))
        x1, y1 = int(min(w, round(cx + side / 2))), int(min(h, round(cy + side / 2)))
        track.last_detect = self._frame
        if x1 - x0 < 8 or y1 - y0 < 8:
            self._miss(track)
            return
        scale = self.crop_size / side
        cw, ch = min(self.crop_size, round((x1 - x0) * scale)), min(self.crop_size, round((y1 - y0) * scale))
        self._canvas[:] = 0
        self._canvas[:ch, :cw] = _shrink(frame[y0:y1, x0:x1], (cw, ch))
        _, rows = self._crop.detect(self._canvas)
        if rows is None:
            self._miss(track)
            return
        # The face nearest the crop centre, not merely the most confident one (another face may be in the crop).
        centre = np.array([(cx - x0) * scale, (cy - y0) * scale])
        best = min(rows, key=lambda r: float(np.hypot(*(r[:2] + r[2:4] / 2 - centre))))
        det = track.scratch
        det[:] = best[:_STATE] / scale
        det[0::2] += x0
        det[1::2] += y0
        det[2] -= x0  # width / height are sizes, not positions
        det[3] -= y0
        if _iou(det[:4], track.target[:4]) < 0.2 and not _moved_face(det, track.target):
            self._miss(track)
            return
        self._accept(track, det.copy())
