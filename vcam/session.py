"""A running daemon with its everyday services: live settings, the control API, the config watcher and the
on-demand camera. ``vcam run`` builds one; tests build one around a fake camera and fake sinks.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .config import Config, ConfigError
from .control import COMMANDS, ControlServer
from .daemon import Daemon
from .daily_settings import DaemonSettings, daemon_settings
from .live_config import LiveConfig
from .ondemand import (
    DeviceReaderMonitor,
    ReaderTracker,
    count_open_handles,
    inotify_available,
)
from .postprocess.composite import cover_fit
from .watcher import ConfigWatcher

log = logging.getLogger(__name__)

NO_READER = "no-reader"


def load_pause_image(path: str | None, width: int, height: int) -> np.ndarray | None:
    """The configured pause picture, cover-fitted to the output size (None when unset or unreadable)."""
    if not path:
        return None
    image = cv2.imread(str(Path(path).expanduser()), cv2.IMREAD_COLOR)
    if image is None:
        log.error("pause image %s cannot be read; using the default pause frame", path)
        return None
    return cover_fit(image, width, height)


def virtual_device_path(daemon: Daemon) -> str | None:
    """The loopback node the daemon writes to (``/dev/videoN``), if it has a virtual-camera sink."""
    for worker in daemon.sink_workers:
        desc = worker.description
        if desc.startswith("virtual:/dev/"):
            return desc.split(":", 1)[1]
    return None


class DaemonSession:
    """Owns a ``Daemon`` and the services around it; ``handle`` answers control requests."""

    def __init__(self, daemon: Daemon, live: LiveConfig, control_address: Path | None = None,
                 reader_device: str | None = None, settings: DaemonSettings | None = None) -> None:
        """``reader_device``: the node whose readers drive the on-demand camera (default: the virtual sink's)."""
        self.daemon = daemon
        self.live = live
        self.settings = settings or daemon_settings(daemon.config)
        self.control_address = control_address
        self.reader_device = reader_device
        self.control: ControlServer | None = None
        self.watcher: ConfigWatcher | None = None
        self.monitor: DeviceReaderMonitor | None = None
        self.tracker: ReaderTracker | None = None
        self.started_at = time.time()

    # ----- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> None:
        s, daemon = self.settings, self.daemon
        out = daemon.config.output
        daemon.pause_frame = load_pause_image(s.pause_image, out.width, out.height)
        daemon.idle_fps = s.idle_fps
        if s.on_demand:
            daemon.hold_camera(NO_READER)  # no camera light before we know someone reads
        try:
            daemon.start()
        except Exception:
            daemon.release_hold(NO_READER)
            raise
        self._start_on_demand()
        if s.watch_config and self.live.path is not None:
            self.watcher = ConfigWatcher(self.live.path, self._reload_from_watcher,
                                         failing=lambda: self.live.file_error is not None)
            self.watcher.start()
        if s.control:
            self.control = ControlServer(self.handle, self.control_address)
            try:
                self.control.start()
            except (OSError, RuntimeError) as exc:
                log.error("control API unavailable (%s); `vcam status` and the tray will not reach this daemon",
                          exc)
                self.control = None

    def _start_on_demand(self) -> None:
        daemon = self.daemon
        if not self.settings.on_demand:
            return
        device = self.reader_device or virtual_device_path(daemon)
        if device is None or not inotify_available():
            daemon.release_hold(NO_READER)
            if device is None:
                log.info("on-demand camera off: no virtual camera sink to watch")
            else:
                log.info("on-demand camera off: needs inotify (Linux)")
            return
        initial = count_open_handles(device, exclude_pids=(os.getpid(),)) if sys.platform.startswith("linux") else 0
        self.tracker = ReaderTracker(self._on_readers, self.settings.attach_after_s, self.settings.release_after_s,
                                     initial_readers=initial)
        try:
            self.monitor = DeviceReaderMonitor(device, self.tracker)
        except OSError as exc:
            log.warning("on-demand camera off: cannot watch %s (%s)", device, exc)
            daemon.release_hold(NO_READER)
            self.tracker = None
            return
        self.monitor.start()
        if initial:
            daemon.release_hold(NO_READER)
        log.info("on-demand camera: watching readers of %s (%d now)", device, initial)

    def _on_readers(self, present: bool) -> None:
        if present:
            self.daemon.release_hold(NO_READER)
        else:
            self.daemon.hold_camera(NO_READER)

    def _reload_from_watcher(self) -> None:
        self.live.reload()  # logs and keeps the error on failure

    def stop(self) -> None:
        for service in (self.control, self.watcher, self.monitor):
            if service is not None:
                service.stop()
        self.daemon.stop()

    # ----- control API -----------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        status = self.daemon.status()
        status.update(self.live.summary())
        status["paused"] = "paused" in status.get("holds", [])
        status["readers"] = self.tracker.readers if self.tracker else None
        status["on_demand"] = self.tracker is not None
        status["uptime_s"] = round(time.time() - self.started_at, 1)
        urls = [getattr(w.sink, "url", None) for w in self.daemon.sink_workers]
        status["preview_url"] = next((u for u in urls if isinstance(u, str)), None)
        return status

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        """One control request -> reply. Invalid requests change nothing and say why."""
        cmd = request.get("cmd")
        if cmd not in COMMANDS:
            return {"ok": False, "error": f"unknown command {cmd!r}; commands: {', '.join(COMMANDS)}"}
        try:
            if cmd == "ping":
                return {"ok": True}
            if cmd in ("pause", "resume") or (cmd == "toggle" and request.get("what") == "pause"):
                pause = cmd == "pause" or (cmd == "toggle" and self.daemon.held != "paused")
                (self.daemon.hold_camera if pause else self.daemon.release_hold)("paused")
                log.info("camera %s from the control API", "paused" if pause else "resumed")
            elif cmd == "toggle":
                self.live.set_toggle(_text(request, "what"))
            elif cmd in ("blur", "beauty"):
                on = request.get("on")
                if not isinstance(on, bool):
                    raise ConfigError(f"{cmd}: 'on' must be true or false")
                self.live.set_toggle(cmd, on)
            elif cmd == "preset":
                self.live.set_preset(_text(request, "name"))
            elif cmd == "set":
                if "value" not in request:
                    raise ConfigError("set: needs 'field' and 'value'")
                self.live.set_field(_text(request, "field"), request["value"])
            elif cmd == "reload":
                self.live.reload()
        except ConfigError as exc:
            return {"ok": False, "error": str(exc)}
        return {"ok": True, "status": self.status()}


def _text(request: dict[str, Any], key: str) -> str:
    value = request.get(key)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{request.get('cmd')}: '{key}' must be a non-empty string")
    return value


def build_session(config: Config, path: Path | None, file_data: dict[str, Any] | None,
                  cli_overrides: dict[str, Any] | None, daemon: Daemon | None = None,
                  control_address: Path | None = None, reader_device: str | None = None,
                  on_demand: bool | None = None) -> DaemonSession:
    """A session for ``config`` (loaded from ``path`` + ``cli_overrides``); ``daemon`` defaults to a real one.
    ``on_demand`` False keeps the camera open whether or not anyone reads (None: as the config says)."""
    daemon = daemon or Daemon(config)
    live = LiveConfig(config, daemon.apply_config, path=path, file_data=file_data, cli_overrides=cli_overrides)
    settings = daemon_settings(config)
    if on_demand is not None:
        settings = settings.model_copy(update={"on_demand": on_demand and settings.on_demand})
    return DaemonSession(daemon, live, control_address=control_address, reader_device=reader_device,
                         settings=settings)
