"""Tuning and held-out data: the one place that says which clips and photos the beauty and SR work never sees.

Held-out clips are never used to tune the beauty stage's parameters nor to train TinySR
(``models.sr.data`` skips them); the evaluations (``tools.evaluation.beauty``, ``tools.evaluation.sr``) report
their figures separately. Held-out photos of ``unlabelled-people`` are one in four, picked by a hash of the
file name (stable when photos are added); ``portrait-seg/val.txt`` is held out as well.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

# Clips of ../shared/data/videos. 1280x720 office clips, a 1080p home-desk webcam and two kinds of close-up.
HELD_OUT_CLIPS = (
    "office-talk-720p.mp4",  # the demo clip
    "face-s32.mp4",
    "webcam-desk-1080p-b.mp4",
    "talking-head-7.mp4",
    "face-d20.mp4",
)

# Clips with faces for the beauty evaluation: close-ups, news-style, 1080p desk webcams, real low-resolution webcams
# (faces 50-100 px), office clips and upright phones.
BEAUTY_CLIP_PATTERNS = ("face-*.mp4", "talking-head-*.mp4", "office-talk-720p.mp4", "webcam-desk-1080p-*.mp4",
                        "webcam-lowres-*.mp4", "outdoor-sitting-360p.mp4", "office-headpose-*.mp4", "upright-*.mp4")

# Held out from the beauty stage's tuning besides HELD_OUT_CLIPS. The low-resolution, office and upright clips were
# split here before any beauty setting was tried on them: webcam-lowres-1 and -3, outdoor-sitting-360p and
# office-headpose-male are tuning clips; the others are held out (webcam-lowres-2 and -4 come from the same
# cameras and people as -1 and -3, the way webcam-desk-1080p-b is the twin of -a). Not used by TinySR's split.
BEAUTY_HELD_OUT_CLIPS = HELD_OUT_CLIPS + (
    "webcam-lowres-2.mp4",
    "webcam-lowres-4.mp4",
    "office-headpose-female.mp4",
    "upright-porch-1080x1920.mp4",
    "upright-kitchen-1080x1920.mp4",
)

# Clips the SR evaluation measures (high-resolution originals; the held-out ones are its reported figures).
SR_EVAL_CLIPS = ("office-talk-720p.mp4", "face-s32.mp4", "webcam-desk-1080p-b.mp4", "talking-head-7.mp4")


def is_held_out_clip(path: Path | str) -> bool:
    return Path(path).name in HELD_OUT_CLIPS


def is_beauty_held_out_clip(path: Path | str) -> bool:
    return Path(path).name in BEAUTY_HELD_OUT_CLIPS


def is_held_out_photo(path: Path | str) -> bool:
    """One photo in four, by a hash of its file name."""
    digest = hashlib.sha1(Path(path).name.encode()).digest()
    return digest[0] % 4 == 0


def beauty_clips(root: Path) -> tuple[list[Path], list[Path]]:
    """(tuning, held-out) clips of ``root/videos`` with faces for the beauty evaluation."""
    found: list[Path] = []
    for pattern in BEAUTY_CLIP_PATTERNS:
        found += sorted((root / "videos").glob(pattern))
    unique = sorted(set(found), key=lambda p: p.name)
    return ([p for p in unique if not is_beauty_held_out_clip(p)],
            [p for p in unique if is_beauty_held_out_clip(p)])
