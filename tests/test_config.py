from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from vcam.config import (BUILTIN_PRESETS, Config, ConfigError, build_config, ensure_config_file, load_config, parse_override)


def test_defaults_are_valid_and_blur() -> None:
    config = build_config()
    assert config.preset == "blur"
    assert config.background.mode == "blur"
    assert config.output.width % 2 == 0


@pytest.mark.parametrize("name", sorted(BUILTIN_PRESETS))
def test_every_builtin_preset_builds(name: str) -> None:
    config = build_config({"preset": name})
    assert config.preset == name


def test_required_presets_exist() -> None:
    assert {"blur", "blur-strong", "office", "green-screen", "off"} <= set(BUILTIN_PRESETS)
    office = build_config({"preset": "office"})
    assert office.background.mode == "image" and Path(office.background.image).is_file()


def test_file_sections_override_preset_and_overrides_override_file() -> None:
    file_data = {"preset": "blur", "background": {"blur_strength": 33}}
    assert build_config(file_data).background.blur_strength == 33
    config = build_config(file_data, parse_override("background.blur_strength=77"))
    assert config.background.blur_strength == 77


def test_user_preset() -> None:
    data = {"preset": "meeting", "presets": {"meeting": {"background": {"mode": "color", "color": "#102030"}}}}
    assert build_config(data).background.mode == "color"


def test_invalid_value_names_field_and_allowed_values() -> None:
    with pytest.raises(ConfigError) as info:
        build_config({"background": {"mode": "blurry"}}, origin="test.toml")
    message = str(info.value)
    assert "test.toml" in message and "background.mode" in message
    assert "'blur'" in message and "'image'" in message and "blurry" in message


def test_unknown_field_and_unknown_preset_rejected() -> None:
    with pytest.raises(ConfigError, match="output.colour"):
        build_config({"output": {"colour": 1}})
    with pytest.raises(ConfigError, match="unknown preset 'nope'.*blur-strong"):
        build_config({"preset": "nope"})


def test_odd_output_width_rejected() -> None:
    with pytest.raises(ConfigError, match="output.width.*even"):
        build_config({"output": {"width": 1281}})


def test_bad_sink_spec_rejected() -> None:
    with pytest.raises(ConfigError, match="unknown sink"):
        build_config({"output": {"sinks": ["ftp:host"]}})
    with pytest.raises(ConfigError, match="needs a path"):
        build_config({"output": {"sinks": ["y4m"]}})


def test_bad_toml_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("preset = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)


def test_first_run_writes_commented_defaults_that_round_trip(tmp_path: Path) -> None:
    path = ensure_config_file(tmp_path / "vcam" / "config.toml")
    text = path.read_text()
    assert load_config(path) == build_config()  # everything commented out: defaults
    # Uncommenting every setting gives exactly the defaults back.
    uncommented = "\n".join(re.sub(r"^# (\[?[a-z_.]+\]?( = .*?)?)(\s+#.*)?$", r"\1", line)
                            if not line.startswith("# [presets") and "background = {" not in line else ""
                            for line in text.splitlines())
    data = tomllib.loads(uncommented)
    assert "background" in data and "mask" in data
    assert build_config(data) == build_config()


def test_config_is_immutable() -> None:
    config = Config()
    with pytest.raises(Exception):
        config.preset = "off"  # type: ignore[misc]
