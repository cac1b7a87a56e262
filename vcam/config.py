"""vcam's settings: one immutable pydantic model, loaded from TOML, shaped by presets, overridden by the CLI.

Layering (later wins): built-in defaults -> the chosen preset -> the config file's own sections -> overrides
(CLI flags, ``vcam set``). Every change builds a new, validated ``Config``; an invalid change never reaches the
pipeline.
"""

from __future__ import annotations

import copy
import logging
import os
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .daily_settings import DaemonSettings
from .postprocess.beauty import BeautySettings
from .postprocess.composite import BackgroundSettings
from .postprocess.framing import FramingSettings
from .postprocess.mask import MaskSettings
from .postprocess.upscale import UpscaleSettings

log = logging.getLogger(__name__)


class ConfigError(ValueError):
    """The configuration is invalid; the message names the field and what is allowed."""


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SourceSettings(_Section):
    device: str = Field("0", description="camera index (0), device path (/dev/video0), video file, or 'demo'")
    width: int = Field(1280, ge=16, le=7680, description="requested camera width")
    height: int = Field(720, ge=16, le=4320, description="requested camera height")
    fps: float = Field(30.0, gt=0, le=240, description="requested camera frame rate")
    fourcc: str = Field("MJPG", pattern=r"^[A-Z0-9 ]{4}$|^$", description="camera pixel format (MJPG avoids USB limits)")
    on_missing: Literal["wait", "exit"] = Field("wait", description="camera absent at start: wait for it or exit")


class OutputSettings(_Section):
    width: int = Field(1280, ge=16, le=7680, description="output width (even)")
    height: int = Field(720, ge=16, le=4320, description="output height (even)")
    fps: float = Field(30.0, gt=0, le=120, description="output frame rate (the pacing clock)")
    sinks: tuple[str, ...] = Field(("virtual",), description="virtual[:DEV], y4m:PATH, mjpeg:PORT, file:PATH")
    fit: Literal["auto", "crop", "pad", "stretch"] = Field(
        "auto", description="camera frames of another aspect ratio than the output (an upright phone, a 4:3 webcam): "
        "'auto' frames the head and shoulders (cropped where the frame has room, else pillarboxed / letterboxed "
        "with a blurred fill), 'crop' takes the centre, 'pad' shows the whole frame padded, 'stretch' stretches it")

    @field_validator("width", "height")
    @classmethod
    def _even(cls, v: int) -> int:
        if v % 2:
            raise ValueError("must be even (YUV 4:2:0 needs even sizes; Chrome rejects odd widths)")
        return v

    @field_validator("sinks")
    @classmethod
    def _known_sinks(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        from .sinks import sink_spec_problem  # the sink registry is the one list of sinks and their rules

        for spec in v:
            problem = sink_spec_problem(spec)
            if problem is not None:
                raise ValueError(problem)
        return v


class ModelSettings(_Section):
    segmenter: str = Field("auto", description="'auto' (probe tiers), a tier, a model name, or a path to .onnx")
    threads: int = Field(1, ge=1, le=16, description="ONNX Runtime intra-op threads")
    still_threshold: float = Field(6.0, ge=0.0, le=64.0, description="reuse the last mask instead of running "
                                   "the model while every 8x8 block of its input picture differs from the one it "
                                   "last ran on by less than this many grey levels on average (0 = run on every "
                                   "frame)")
    max_reused_frames: int = Field(2, ge=0, le=8, description="at most this many frames in a row reuse a mask "
                                   "(0 = run on every frame)")


class Config(_Section):
    preset: str = Field("blur", description="named preset applied under the file's own sections")
    source: SourceSettings = SourceSettings()
    output: OutputSettings = OutputSettings()
    model: ModelSettings = ModelSettings()
    mask: MaskSettings = MaskSettings()
    background: BackgroundSettings = BackgroundSettings()
    beauty: BeautySettings = BeautySettings()
    upscale: UpscaleSettings = UpscaleSettings()
    framing: FramingSettings = FramingSettings()
    daemon: DaemonSettings = DaemonSettings()
    presets: dict[str, dict[str, Any]] = Field(default_factory=dict, description="user presets")


def bundled_background(name: str) -> str:
    return str(resources.files("vcam") / "assets" / "backgrounds" / f"{name}.jpg")


BUILTIN_PRESETS: dict[str, dict[str, Any]] = {
    "blur": {"background": {"mode": "blur", "blur_strength": 60}},
    "blur-strong": {"background": {"mode": "blur", "blur_strength": 95}},
    "office": {"background": {"mode": "image", "image": bundled_background("architecture")}},
    "green-screen": {"background": {"mode": "color", "color": "#00ff00"}},
    "off": {"background": {"mode": "passthrough"}},
}


def all_presets(user_presets: dict[str, dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    return {**BUILTIN_PRESETS, **(user_presets or {})}


def default_config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "vcam" / "config.toml"


def deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


MAX_NESTING = 16  # deeper tables or arrays than any setting needs are refused before anything recurses into them
MAX_CONFIG_BYTES = 1 << 20


def _short_repr(value: Any, limit: int = 120) -> str:
    """repr() for an error message: shortened, and safe for values whose repr fails (a 5000-digit int)."""
    try:
        text = repr(value)
    except (ValueError, RecursionError):
        text = f"<{type(value).__name__} too large to show>"
    return text if len(text) <= limit else text[:limit] + "..."


def check_nesting(data: Any, origin: str, limit: int = MAX_NESTING) -> None:
    """ConfigError when ``data`` nests tables/arrays deeper than ``limit`` (walked without recursion)."""
    stack = [(data, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list, tuple)):
            if depth >= limit:
                raise ConfigError(f"{origin}: values nested more than {limit} levels deep; no setting needs that")
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, depth + 1) for child in children)


def _format_errors(exc: ValidationError, origin: str) -> str:
    lines = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "(top level)"
        got = err.get("input")
        got_text = "" if isinstance(got, dict) else f" (got {_short_repr(got)})"
        lines.append(f"{origin}: {field}: {err['msg']}{got_text}")
    return "\n".join(lines)


def build_config(file_data: dict[str, Any] | None = None, overrides: dict[str, Any] | None = None,
                 origin: str = "config", check_files: bool = True, running: Config | None = None) -> Config:
    """Layer defaults, preset, file sections and overrides into a validated ``Config``. With ``check_files``
    the files that settings name are resolved (``~``, ``$VAR``) and checked (``vcam.file_checks``; files the
    ``running`` config already holds are not checked again)."""
    file_data = file_data or {}
    overrides = overrides or {}
    check_nesting(file_data, origin)
    check_nesting(overrides, origin)
    layered = deep_merge(file_data, overrides)
    preset_name = layered.get("preset", "blur")
    user_presets = layered.get("presets", {})
    if not isinstance(user_presets, dict) or not all(isinstance(v, dict) for v in user_presets.values()):
        raise ConfigError(f"{origin}: presets: each preset must be a table, e.g. [presets.meeting]")
    presets = all_presets(user_presets)
    if not isinstance(preset_name, str) or preset_name not in presets:
        raise ConfigError(f"{origin}: preset: unknown preset {preset_name!r}; allowed: {', '.join(presets)}")
    data = deep_merge(presets[preset_name], layered)
    try:
        config = Config(**data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, origin)) from None
    except TypeError as exc:  # e.g. a section given as a scalar
        raise ConfigError(f"{origin}: {exc}") from None
    return _checked_files(config, origin, running) if check_files else config


def _checked_files(config: Config, origin: str, running: Config | None) -> Config:
    from .file_checks import FileCheckError, check_config_files

    try:
        return check_config_files(config, running)
    except FileCheckError as exc:
        raise ConfigError(f"{origin}: {getattr(exc, 'field', 'file')}: {exc}") from None


def read_config_file(path: Path) -> dict[str, Any]:
    """Parse the TOML file (no validation yet); a missing file is an empty one. The file is read without
    blocking (a FIFO is refused) and at most 1 MiB of it."""
    from .file_checks import FileCheckError, read_regular_file

    if not path.exists() and not path.is_symlink():
        return {}
    try:
        return tomllib.loads(read_regular_file(path, MAX_CONFIG_BYTES, allow_empty=True).decode("utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path}: values nested too deeply; no setting needs that") from None
    except FileCheckError as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: cannot read: not UTF-8 text ({exc.reason})") from None


def load_config(path: Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    path = path or default_config_path()
    return build_config(read_config_file(path), overrides, origin=str(path))


def parse_override(assignment: str) -> dict[str, Any]:
    """``background.blur_strength=70`` -> {"background": {"blur_strength": 70}} (value parsed as TOML)."""
    key, sep, raw = assignment.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {assignment!r}: use SECTION.FIELD=VALUE")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()  # bare words are strings: mode=blur
    except RecursionError:
        raise ConfigError(f"override {key.strip()}: value nested too deeply; no setting needs that") from None
    out: dict[str, Any] = {}
    node = out
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out


def default_config_text() -> str:
    """The commented config written on first run: every section with its defaults, all commented out."""
    lines = ["# vcam configuration. Uncomment and edit; the daemon reloads this file when it changes.",
             "# Presets: " + ", ".join(BUILTIN_PRESETS) + " (define your own under [presets.NAME]).",
             '# preset = "blur"', ""]
    defaults = Config()
    for name, field in Config.model_fields.items():
        section = getattr(defaults, name)
        if not isinstance(section, BaseModel):
            continue
        lines.append(f"# [{name}]")
        for key, sub in type(section).model_fields.items():
            value = getattr(section, key)
            if value is None:  # TOML has no null: show the field without a value
                lines.append(f"#   {key}: unset by default. {sub.description or ''}".rstrip())
                continue
            lines.append(f"# {key} = {_toml_value(value)}    # {sub.description or ''}".rstrip())
        lines.append("")
    lines += ["# [presets.meeting]", "# background = { mode = \"blur\", blur_strength = 80 }", ""]
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return str(value)


def ensure_config_file(path: Path | None = None) -> Path:
    """Create the commented default config at ``path`` if there is none yet."""
    path = path or default_config_path()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(default_config_text(), encoding="utf-8")
        log.info("wrote default config to %s", path)
    return path
