"""The daemon's settings while it runs: the config file, the command line's overrides and the changes made
through the control API, layered into one validated ``Config``.

Layering (later wins): config file -> command-line overrides (``vcam run --set``) -> runtime changes
(``vcam set``, ``vcam preset``, the tray). A runtime change or a reload that does not validate changes
nothing: the last good config keeps running and the error is kept for ``vcam status`` and the tray.

Status keeps two errors: ``file_error``, the last rejected reload (cleared by the next good one; the watcher
retries while it stands, so it clears as soon as the cause is gone, e.g. a missing picture put back), and
``change_error``, the last refused ``set``/``preset``/toggle (cleared by the next accepted change or reload).

A preset switch starts from the preset (earlier runtime changes are dropped); an edit of the config file
makes the file the truth again (runtime changes are dropped too), so what the file says is what you get.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .config import Config, ConfigError, all_presets, build_config, check_nesting, deep_merge, read_config_file

log = logging.getLogger(__name__)

# Short names accepted by `vcam set` (and the control API) for the fields people change most.
FIELD_ALIASES = {
    "blur.strength": "background.blur_strength",
    "blur": "background.blur_strength",
    "background": "background.mode",
    "mode": "background.mode",
    "beauty": "beauty.enabled",
    "beauty.strength": "beauty.strength",
    "mirror": "background.mirror",
}
TOGGLES = ("blur", "beauty", "mirror")


def nested(dotted: str, value: Any) -> dict[str, Any]:
    """``"background.blur_strength", 70`` -> {"background": {"blur_strength": 70}}."""
    parts = dotted.split(".")
    if not all(parts):
        raise ConfigError(f"field {dotted!r}: use SECTION.FIELD, e.g. background.blur_strength")
    out: dict[str, Any] = {}
    node = out
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out


def _shallow_enough(change: dict[str, Any]) -> bool:
    """deep_merge recurses: only merge changes that check_nesting would accept (the build then refuses them)."""
    try:
        check_nesting(change, "change")
    except ConfigError:
        return False
    return True


class LiveConfig:
    """Thread-safe holder of the running config; ``apply`` hands each new valid config to the daemon."""

    def __init__(self, config: Config, apply: Callable[[Config], None], path: Path | None = None,
                 file_data: dict[str, Any] | None = None, cli_overrides: dict[str, Any] | None = None) -> None:
        self.config = config
        self.path = path
        self._apply = apply
        self._file_data = copy.deepcopy(file_data or {})
        self._cli = copy.deepcopy(cli_overrides or {})
        self._runtime: dict[str, Any] = {}
        self._lock = threading.RLock()
        self.file_error: str | None = None  # the last rejected reload, until a good one replaces it
        self.error_at: float | None = None
        self.change_error: str | None = None  # the last refused runtime change, until one is accepted
        self.reloads = 0

    @property
    def error(self) -> str | None:
        """Everything that is refused right now, for status and the tray (None when all is well)."""
        errors = [e for e in (self.file_error, self.change_error) if e]
        return "\n".join(errors) or None

    # ----- building --------------------------------------------------------------------------------------
    def _build(self, file_data: dict[str, Any], runtime: dict[str, Any], origin: str, whole: bool = False) -> Config:
        """``whole``: check every file the config names (a reload: the file must be valid as at a start); else
        only the files the change brings into use (one that vanished after the pipeline loaded it stays fine)."""
        try:
            check_nesting(runtime, origin)
            return build_config(file_data, deep_merge(self._cli, runtime), origin=origin,
                                running=None if whole else self.config)
        except ConfigError:
            raise
        except RecursionError:
            raise ConfigError(f"{origin}: values nested too deeply; no setting needs that") from None
        except Exception as exc:  # a bug in a check must refuse the change, never take the caller down
            log.exception("building the config failed")
            raise ConfigError(f"{origin}: cannot be applied: {type(exc).__name__}: {exc}") from None

    def _commit(self, config: Config, file_data: dict[str, Any], runtime: dict[str, Any]) -> Config:
        self._file_data, self._runtime, self.config = file_data, runtime, config
        self._apply(config)
        return config

    def _refuse(self, exc: ConfigError) -> None:
        if str(exc) != self.change_error:
            log.error("change refused, keeping the current settings: %s", exc)
        self.change_error = str(exc)

    def update(self, change: dict[str, Any]) -> Config:
        """Merge ``change`` into the runtime changes; ConfigError (and nothing changed) when invalid."""
        with self._lock:
            try:
                if not isinstance(change, dict) or not change:
                    raise ConfigError("change: expected a non-empty table of fields")
                runtime = deep_merge(self._runtime, change) if _shallow_enough(change) else change
                config = self._build(self._file_data, runtime, origin="change")
            except ConfigError as exc:
                self._refuse(exc)
                raise
            self.change_error = None
            return self._commit(config, self._file_data, runtime)

    def set_field(self, field: str, value: Any) -> Config:
        field = FIELD_ALIASES.get(field, field)
        try:
            if "." not in field:
                raise ConfigError(f"field {field!r}: use SECTION.FIELD (e.g. background.blur_strength) or one of "
                                  + ", ".join(FIELD_ALIASES))
            change = nested(field, value)
        except ConfigError as exc:
            self._refuse(exc)
            raise
        return self.update(change)

    def set_preset(self, name: str) -> Config:
        with self._lock:
            try:
                if not isinstance(name, str) or not name:
                    raise ConfigError("preset: expected a preset name")
                config = self._build(self._file_data, {"preset": name}, origin="preset change")
            except ConfigError as exc:
                self._refuse(exc)
                raise
            self.change_error = None
            return self._commit(config, self._file_data, {"preset": name})

    def set_toggle(self, what: str, on: bool | None = None) -> Config:
        """Switch blur / beauty / mirror on or off (``on`` None: flip)."""
        with self._lock:
            if what == "blur":
                is_on = self.config.background.mode == "blur"
                want = (not is_on) if on is None else bool(on)
                return self.update({"background": {"mode": "blur" if want else "passthrough"}})
            if what == "beauty":
                want = (not self.config.beauty.enabled) if on is None else bool(on)
                return self.update({"beauty": {"enabled": want}})
            if what == "mirror":
                want = (not self.config.background.mirror) if on is None else bool(on)
                return self.update({"background": {"mirror": want}})
        raise ConfigError(f"toggle {what!r}: can toggle {', '.join(TOGGLES)} (and pause)")

    def reload(self) -> Config:
        """Re-read the config file. Invalid: keep the last good config, remember and raise the error."""
        with self._lock:
            if self.path is None:
                raise ConfigError("no config file to reload (the daemon was started without one)")
            try:
                file_data = read_config_file(self.path)
                config = self._build(file_data, {}, origin=str(self.path), whole=True)
            except ConfigError as exc:
                if str(exc) != self.file_error:  # a retry with the same result is not logged again
                    log.error("config reload rejected, keeping the last good settings:\n%s", exc)
                    self.error_at = time.time()
                self.file_error = str(exc)
                raise
            dropped = bool(self._runtime)
            self.file_error = self.error_at = self.change_error = None
            self.reloads += 1
            self._commit(config, file_data, {})
            log.info("config reloaded from %s (preset %s)%s", self.path, config.preset,
                     "; runtime changes dropped" if dropped else "")
            return config

    # ----- reading ---------------------------------------------------------------------------------------
    def presets(self) -> list[str]:
        user = self._file_data.get("presets") if isinstance(self._file_data.get("presets"), dict) else None
        return list(all_presets(user))

    def summary(self) -> dict[str, Any]:
        c = self.config
        return {
            "preset": c.preset, "presets": self.presets(), "background_mode": c.background.mode,
            "blur": c.background.mode == "blur", "blur_strength": c.background.blur_strength,
            "beauty": c.beauty.enabled, "mirror": c.background.mirror, "framing": c.framing.mode == "auto",
            "config_path": str(self.path) if self.path else None, "config_error": self.error,
            "config_file_error": self.file_error, "change_error": self.change_error,
            "runtime_changes": copy.deepcopy(self._runtime), "reloads": self.reloads,
        }
