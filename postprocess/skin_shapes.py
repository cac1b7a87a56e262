"""Shapes drawn from the five YuNet landmarks for the skin filter (``skin.py``): the eyes with brows, the lips and
the nostrils, which the skin mask leaves out."""

from __future__ import annotations

import cv2
import numpy as np

_EXCLUSION_SCALE = 0.7  # size of the eye, brow, lip and nostril exclusions relative to the landmark geometry
_NOSTRIL_SCALE = 8 / 7  # the nostrils keep a wider margin (shallow nostrils would otherwise be lightened)


def exclusions(landmarks: np.ndarray, canvas: np.ndarray) -> None:
    """Eyes with brows, lips and nostrils from the five landmarks, as 255 on a uint8 canvas (not feathered)."""
    re, le, nose, rm, lm = landmarks
    ed = float(np.hypot(*(le - re)))
    angle = float(np.degrees(np.arctan2(le[1] - re[1], le[0] - re[0])))
    up = np.array([np.sin(np.radians(angle)), -np.cos(np.radians(angle))], np.float32)  # towards the forehead
    canvas[:] = 0
    if ed < 2:
        return

    def ellipse(centre: np.ndarray, ax: float, ay: float) -> None:
        c = (round(centre[0] * 16), round(centre[1] * 16))
        ax, ay = ax * _EXCLUSION_SCALE, ay * _EXCLUSION_SCALE
        cv2.ellipse(canvas, c, (int(ax * 16), int(ay * 16)), angle, 0, 360, 255, -1, cv2.LINE_AA, 4)

    across = (le - re) / ed  # from the subject's right eye to the left one
    for eye, out in ((re, -across), (le, across)):
        ellipse(eye + up * 0.02 * ed, 0.38 * ed, 0.30 * ed)  # eye and lashes
        ellipse(eye + up * 0.40 * ed + out * 0.06 * ed, 0.50 * ed, 0.22 * ed)  # brow
    mouth = (rm + lm) / 2 - up * 0.03 * ed
    ellipse(mouth, 0.5 * float(np.hypot(*(lm - rm))) + 0.14 * ed, 0.26 * ed)
    n = _NOSTRIL_SCALE  # nostrils, below the nose-tip landmark ...
    ellipse(nose - up * 0.18 * ed, 0.38 * n * ed, 0.24 * n * ed)
    eyes = (re + le) / 2
    ellipse(eyes + 0.6 * ((rm + lm) / 2 - eyes), 0.34 * n * ed, 0.18 * n * ed)  # ... and where faces have them (the
    # nose landmark drifts towards the lip on raised or turned heads)
