"""``vcam soak`` itself: a few seconds of the real pipeline through the chosen sinks."""

from __future__ import annotations

import pytest

from vcam.soak import run_soak

pytestmark = pytest.mark.slow


def test_short_soak_without_the_file_sink_reports_every_other_sink() -> None:
    result = run_soak(0.1, warmup_s=1.0, sample_s=0.5, file_sink=False)
    kinds = sorted(s["sink"].split(":")[0] for s in result["sinks"])
    assert kinds == ["mjpeg", "virtual", "y4m"]
    assert all(s["written"] > 0 and not s["failed"] for s in result["sinks"])
    assert result["frames_delivered"] > 0
