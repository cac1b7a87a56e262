"""One sink registry: config validation accepts exactly the sinks that are registered, with their own rules."""

from __future__ import annotations

import pytest

from vcam.config import ConfigError, build_config
from vcam.sinks import SINK_ARGS, SINKS, make_sink, register_sink


class NullSink:
    description = "null"

    def open(self, width: int, height: int, fps: float) -> None: ...

    def write(self, frame_bgr) -> None: ...

    def close(self) -> None: ...


@pytest.fixture
def null_sink():
    register_sink("null", lambda arg: NullSink(), "null:LEVEL",
                  lambda arg: None if arg in ("", "quiet") else f"level must be quiet, got {arg!r}")
    yield
    SINKS.pop("null")
    SINK_ARGS.pop("null")


def test_a_registered_sink_is_accepted_by_the_config(null_sink) -> None:
    config = build_config({"output": {"sinks": ["null:quiet", "y4m:/tmp/x.y4m"]}})
    assert config.output.sinks == ("null:quiet", "y4m:/tmp/x.y4m")
    assert isinstance(make_sink("null"), NullSink)


def test_its_argument_rule_applies_and_the_error_shows_its_usage(null_sink) -> None:
    with pytest.raises(ConfigError, match=r"level must be quiet.*null:LEVEL"):
        build_config({"output": {"sinks": ["null:loud"]}})


def test_an_unregistered_sink_is_refused_with_the_registered_ones_listed() -> None:
    with pytest.raises(ConfigError, match=r"unknown sink 'null'.*virtual\[:DEV\], y4m:PATH, mjpeg:PORT, file:PATH"):
        build_config({"output": {"sinks": ["null"]}})
    with pytest.raises(ConfigError, match=r"port must be 0-65535"):
        build_config({"output": {"sinks": ["mjpeg:99999"]}})
