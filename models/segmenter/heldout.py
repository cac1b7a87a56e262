"""What the webcam-domain segmenter never trains on: one place, read by the validation-set builder and by training.

- ``HELDOUT_CLIPS``: whole scenes of ``videos/`` (both clips of a scene, so no room or person leaks into training);
  their frames, labelled by the teacher ensemble, are the ``clips`` subset of the webcam validation set.
- ``HELDOUT_BACKGROUNDS``: rooms (and a few outdoor scenes) of ``backgrounds/`` with permissive licences
  (Apache-2.0, BSD-3-Clause, Unsplash / CC0 per ``backgrounds/sources.csv``) that the ``composites`` subset puts
  the ``portrait-seg`` ``val.txt`` people on.
- the ``portrait-seg`` ``val.txt`` ids (read from the data folder) are never trained on either.
"""
from __future__ import annotations

from pathlib import Path

HELDOUT_CLIPS: tuple[str, ...] = (
    "webcam-desk-1080p-a.mp4", "webcam-desk-1080p-b.mp4",  # home desk, webcam framing (one scene)
    # a real low-quality webcam: the same man and room in all four clips (two source repositories)
    "webcam-lowres-1.mp4", "webcam-lowres-2.mp4", "webcam-lowres-3.mp4", "webcam-lowres-4.mp4",
    "talking-head-3.mp4",  # news-style upper body
    "office-talk-720p.mp4",  # woman talking indoors, plants (the demo clip)
)

HELDOUT_BACKGROUNDS: tuple[str, ...] = (
    "twilio_Bookshelf.jpg", "twilio_Kitchen.jpg", "twilio_Plant.jpg", "vonage_busy-room.jpg", "vonage_library.jpg",
    "jitsi_background-3.jpg", "openvidu_bg-6.jpg", "workadv_office_2.jpg", "twvp_office.jpg",
    "elementary_Mr._Lee.jpg", "qubes_garrett-parker-DlkF4-dbCOU-unsplash.jpg", "popos_kait-herzog-8242.jpg",
)


def is_heldout_clip(path: Path) -> bool:
    return path.name in HELDOUT_CLIPS


def training_clips(videos: Path) -> list[Path]:
    """Every clip of ``videos/`` (and ``videos/signing/``) that is not held out, sorted."""
    clips = sorted(videos.glob("*.mp4")) + sorted((videos / "signing").glob("*.mkv"))
    return [c for c in clips if not is_heldout_clip(c)]


def training_backgrounds(backgrounds: Path) -> list[Path]:
    return [p for p in sorted(backgrounds.glob("*.jpg")) if p.name not in HELDOUT_BACKGROUNDS]
