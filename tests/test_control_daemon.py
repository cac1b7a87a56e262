"""The real daemon (demo clip, real segmenter, y4m sink) driven through the control API: blur off/on, blur
strength, presets and pause show up in the output frames within 5 new frames; rejected requests change
nothing and the output keeps running."""

from __future__ import annotations

import time

import numpy as np
import pytest

from vcam.control import ControlError
from vcam.pipeline import placeholder_frame

from .conftest import BACKGROUND_BOX, crop
from .support import (BLUR_OFF_ABOVE, BLUR_ON_BELOW, NEW_FRAMES, H, W, background_detail, running_session,
                      wait_for)


def _last(frames: list[np.ndarray]) -> np.ndarray:
    assert len(frames) == NEW_FRAMES, f"only {len(frames)} new frames"
    return frames[-1]


def test_blur_toggle_preset_and_strength_reach_the_output() -> None:
    with running_session("blur") as run:
        run.wait_written(10)
        start = run.written()
        assert background_detail(_last(run.wait_distinct(start, NEW_FRAMES))) < BLUR_ON_BELOW

        reply, start = run.request("toggle", what="blur")
        assert reply["status"]["blur"] is False and reply["status"]["background_mode"] == "passthrough"
        frames = run.wait_distinct(start, NEW_FRAMES)
        assert background_detail(_last(frames)) > BLUR_OFF_ABOVE

        reply, start = run.request("blur", on=True)
        assert reply["status"]["blur"] is True
        assert background_detail(_last(run.wait_distinct(start, NEW_FRAMES))) < BLUR_ON_BELOW

        # Strength 20 leaves visibly more background detail than 60 (0.52-0.56 vs 0.39-0.40 on demo frames).
        reply, start = run.request("set", field="blur.strength", value=20)
        assert reply["status"]["blur_strength"] == 20
        detail = background_detail(_last(run.wait_distinct(start, NEW_FRAMES)))
        assert 0.47 < detail < BLUR_ON_BELOW

        reply, start = run.request("preset", name="green-screen")
        assert reply["status"]["preset"] == "green-screen" and reply["status"]["runtime_changes"] == {
            "preset": "green-screen"}
        background = crop(_last(run.wait_distinct(start, NEW_FRAMES)), BACKGROUND_BOX).reshape(-1, 3).mean(0)
        assert background[1] > 200 and background[0] < 40 and background[2] < 40  # BGR green

        reply, start = run.request("preset", name="off")
        assert background_detail(_last(run.wait_distinct(start, NEW_FRAMES))) > BLUR_OFF_ABOVE


def test_rejected_requests_change_nothing_and_the_output_keeps_running() -> None:
    with running_session("blur") as run:
        run.wait_written(10)
        before = run.client.request("status")["status"]
        config_before = run.daemon.config
        for cmd, args, message in [
            ("set", {"field": "blur.strength", "value": 700}, "less than or equal to 100"),
            ("set", {"field": "background.mode", "value": "sepia"}, "background.mode"),
            ("set", {"field": "background.nonsense", "value": 1}, "nonsense"),
            ("set", {"field": "output.width", "value": 641}, "even"),
            ("set", {"field": "blur.strength"}, "needs 'field' and 'value'"),
            ("preset", {"name": "no-such-preset"}, "unknown preset"),
            ("preset", {"name": 5}, "non-empty string"),
            ("toggle", {"what": "volume"}, "can toggle"),
            ("blur", {"on": "yes"}, "true or false"),
            ("explode", {}, "unknown command"),
            ("reload", {}, "no config file"),
        ]:
            with pytest.raises(ControlError, match=message):
                run.client.request(cmd, **args)
        assert run.daemon.config is config_before
        after = run.client.request("status")["status"]
        for key in ("preset", "background_mode", "blur_strength", "beauty", "runtime_changes"):
            assert after[key] == before[key], key
        written = run.written()
        wait_for(lambda: run.written() > written + 10, timeout=10)  # still delivering frames


def test_pause_shows_the_still_frame_and_releases_the_camera() -> None:
    with running_session("blur") as run:
        run.wait_written(10)
        reply, start = run.request("pause")
        assert reply["status"]["paused"] is True and reply["status"]["camera"] == "paused"
        wait_for(lambda: run.daemon.source._cap is None, timeout=1.0)  # the camera is closed
        sent = run.written()
        wait_for(lambda: run.written() > sent + 15, timeout=10)  # the device keeps receiving frames
        # Within NEW_FRAMES new frames the output is the pause frame, and stays that one still frame.
        frames = run.wait_distinct(start, NEW_FRAMES + 1, timeout=0.5)
        assert 1 <= len(frames) <= NEW_FRAMES
        expected = placeholder_frame(W, H, "vcam: camera paused").astype(np.int16)
        assert np.abs(frames[-1].astype(np.int16) - expected).mean() < 3
        reply, start = run.request("resume")
        assert reply["status"]["paused"] is False
        wait_for(lambda: run.daemon.source._cap is not None, timeout=1.0)
        frames = run.wait_distinct(start, 6)
        assert background_detail(frames[-1]) < BLUR_ON_BELOW and frames[-1].std() > 30  # live and blurred again


def test_control_round_trip_on_the_running_daemon() -> None:
    with running_session("blur") as run:
        run.wait_written(5)
        times = []
        for _ in range(30):
            t0 = time.perf_counter()
            run.client.request("status")
            times.append((time.perf_counter() - t0) * 1e3)
        times.sort()
        print(f"status round trip on the running daemon: median {times[15]:.2f} ms, p90 {times[27]:.2f} ms")
        assert times[15] < 100


def test_pause_shows_the_configured_picture() -> None:
    from vcam.config import bundled_background
    from vcam.daily_settings import DaemonSettings
    from vcam.session import load_pause_image

    picture = bundled_background("architecture")
    settings = DaemonSettings(on_demand=False, watch_config=False, pause_image=picture)
    with running_session("blur", settings=settings) as run:
        run.wait_written(5)
        _, start = run.request("pause")
        frames = run.wait_distinct(start, NEW_FRAMES + 1, timeout=1.0)
        expected = load_pause_image(picture, W, H)
        assert expected is not None and expected.shape == (H, W, 3)
        assert np.abs(frames[-1].astype(np.int16) - expected).mean() < 3  # the picture, up to I420 rounding
