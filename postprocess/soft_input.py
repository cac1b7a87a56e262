"""Whether a camera's picture is too soft and clean for learned super-resolution.

TinySR learned to restore detail that a webcam's downscaling, blur and compression took away. On a picture
that holds almost no detail finer than two pixels and no noise (a soft lens, heavy in-camera smoothing, a
clean downscale of a soft source) it adds sharpness the scene never had and loses to a plain bicubic resize:
on clean 2x downscales of the held-out clip face-s32 by 0.8-1.0 dB per frame (docs/sr.md).

The measure is the energy of the input's finest band, the mean square of ``Y - gauss(Y, 1 px)`` on the luma.
On frames of the clips TinySR was trained on (clean and webcam-degraded 2x downscales, ``python -m
tools.evaluation.sr --soft-check``), 10 of the 11 frames under 2.5 lost to bicubic (by 0.42-0.56 dB; the other
won by 0.26) and all 10 from 2.5 to 3 won. A camera's picture does not change its nature from one frame to
the next, so the gate measures every ``every`` frames, smooths the figure, and switches with a margin (soft
below 2.5, sharp again above 2.7), so the output does not alternate between two looks.
"""

from __future__ import annotations

import cv2
import numpy as np

SOFT_BELOW = 2.5  # finest-band energy (grey levels squared) under which a picture counts as soft
SHARP_ABOVE = 2.7  # ... and over which a soft camera counts as sharp again


def fine_energy(frame: np.ndarray) -> float:
    """Mean square of the finest band of the frame's luma (BGR uint8 or a grey image)."""
    y = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
    y = y.astype(np.float32)
    fine = y - cv2.GaussianBlur(y, (0, 0), 1.0)
    return float(np.mean(fine * fine))


class SoftInputGate:
    """``check(frame)`` once per frame: True while the camera's picture is too soft for SR.

    A pure state machine apart from the measurement: the decision depends only on the frames seen."""

    def __init__(self, every: int = 15, smoothing: float = 0.5) -> None:
        self.every = every
        self.smoothing = smoothing
        self.energy: float | None = None  # smoothed finest-band energy
        self.soft = False
        self._calls = 0

    def reset(self) -> None:
        """A new camera or resolution: measure afresh on the next frame."""
        self.energy = None
        self.soft = False
        self._calls = 0

    def check(self, frame: np.ndarray) -> bool:
        if self._calls % self.every == 0:
            self.observe(fine_energy(frame))
        self._calls += 1
        return self.soft

    def observe(self, energy: float) -> bool:
        """Take one measurement into the smoothed figure and update the decision."""
        if self.energy is None:
            self.energy = energy
            self.soft = energy < SOFT_BELOW
        else:
            self.energy += self.smoothing * (energy - self.energy)
            if self.soft and self.energy > SHARP_ABOVE:
                self.soft = False
            elif not self.soft and self.energy < SOFT_BELOW:
                self.soft = True
        return self.soft
