"""Property-based tests: malformed config and odd frames get clean errors, never crashes."""

from __future__ import annotations

import tomllib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vcam.config import Config, ConfigError, build_config, parse_override
from vcam.sources import normalize_frame

SECTIONS = ["source", "output", "model", "mask", "background", "beauty", "upscale", "presets", "preset", "bogus"]
FIELDS = ["device", "width", "height", "fps", "sinks", "mode", "blur_strength", "color", "image", "strength",
          "enabled", "segmenter", "threads", "temporal_strength", "dilate_px", "unknown_field"]
values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=True) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.sampled_from(FIELDS), children, max_size=4),
    max_leaves=12)
configs = st.dictionaries(st.sampled_from(SECTIONS),
                          st.dictionaries(st.sampled_from(FIELDS), values, max_size=5) | values, max_size=5)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs)
def test_any_config_data_builds_or_raises_config_error(data: dict) -> None:
    try:
        config = build_config(data, origin="fuzz")
    except ConfigError as exc:
        assert str(exc).startswith("fuzz"), exc
    else:
        assert isinstance(config, Config)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_any_toml_text_parses_or_is_rejected_cleanly(text: str) -> None:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return
    try:
        build_config(data)
    except ConfigError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_any_override_string_is_handled(text: str) -> None:
    try:
        build_config(None, parse_override(text))
    except ConfigError:
        pass


def test_huge_payload_rejected_cleanly() -> None:
    with pytest.raises(ConfigError, match=r"output.sinks.*path is too long \(1000000 characters, at most 4096\)") as err:
        build_config({"output": {"sinks": ["y4m:" + "x" * 10**6] * 100}})
    assert len(str(err.value)) < 1000  # the error echoes a short cut of the value, not 100 MB


@settings(max_examples=150, deadline=None)
@given(h=st.integers(0, 40), w=st.integers(0, 40), c=st.sampled_from([None, 1, 2, 3, 4, 5]),
       dtype=st.sampled_from([np.uint8, np.uint16, np.float32]))
def test_any_frame_is_normalised_or_rejected(h: int, w: int, c: int | None, dtype) -> None:
    shape = (h, w) if c is None else (h, w, c)
    frame = np.zeros(shape, dtype)
    try:
        out = normalize_frame(frame)
    except ValueError:
        return
    assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
    assert out.shape[0] % 2 == 0 and out.shape[1] % 2 == 0 and out.flags.c_contiguous
