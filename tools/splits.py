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

# Clips with faces the beauty stage is tuned on (close-ups, news-style, a 1080p desk webcam).
BEAUTY_CLIP_PATTERNS = ("face-*.mp4", "talking-head-*.mp4", "office-talk-720p.mp4", "webcam-desk-1080p-*.mp4")

# Clips the SR evaluation measures (high-resolution originals; the held-out ones are its reported figures).
SR_EVAL_CLIPS = ("office-talk-720p.mp4", "face-s32.mp4", "webcam-desk-1080p-b.mp4", "talking-head-7.mp4")


def is_held_out_clip(path: Path | str) -> bool:
    return Path(path).name in HELD_OUT_CLIPS


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
    return [p for p in unique if not is_held_out_clip(p)], [p for p in unique if is_held_out_clip(p)]
