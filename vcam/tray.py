"""The tray icon (optional extra ``[tray]``: PySide6): blur, presets, beauty, pause, preview, quit.

It talks to the daemon only through the control API (``vcam.control``): the daemon never needs a GUI, and the
tray can come and go. The icon shows blur on (blue), another background effect (green), effect off (grey),
camera paused (red), and a config error (orange dot) or no daemon (crossed out).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QTimer, QUrl
from PySide6.QtGui import QAction, QActionGroup, QColor, QDesktopServices, QIcon, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QApplication, QMenu, QSystemTrayIcon

from .cli_control import refusal_lines
from .control import ControlClient, ControlError, DaemonNotRunning

log = logging.getLogger(__name__)

POLL_MS = 1000
COLORS = {"blur": "#2f7fe0", "effect": "#2fa860", "off": "#8a8f98", "paused": "#d0402f", "down": "#4a4d52"}


def tray_state(status: dict[str, Any] | None) -> str:
    """Which icon: down | paused | blur | effect | off."""
    if status is None:
        return "down"
    if status.get("paused"):
        return "paused"
    if status.get("blur"):
        return "blur"
    return "off" if status.get("background_mode") == "passthrough" else "effect"


def make_icon(state: str, error: bool = False, size: int = 64) -> QIcon:
    pixmap = QPixmap(size, size)
    pixmap.fill(QColor(0, 0, 0, 0))
    p = QPainter(pixmap)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    color = QColor(COLORS[state])
    p.setPen(QPen(color.darker(140), size / 16))
    p.setBrush(color)
    m = size // 8
    p.drawRoundedRect(m // 2, size // 4, size - 4 * m, size // 2, m, m)  # a camera body
    p.drawPolygon([_pt(size - 3 * m, size // 2), _pt(size - m, size // 4 + m // 2),
                   _pt(size - m, 3 * size // 4 - m // 2)])  # its lens hood
    if state in ("down", "paused"):
        p.setPen(QPen(QColor("#ffffff"), size / 12))
        p.drawLine(m * 2, size // 4 + m, size - 5 * m, 3 * size // 4 - m)
    if error:
        p.setPen(QPen(QColor("#000000"), 1))
        p.setBrush(QColor("#f0a020"))
        p.drawEllipse(size - size // 3, 0, size // 3, size // 3)
    p.end()
    return QIcon(pixmap)


def _pt(x: float, y: float):
    from PySide6.QtCore import QPointF

    return QPointF(x, y)


class Tray:
    """The tray icon and its menu; every action is one control request, then a refresh."""

    def __init__(self, client: ControlClient | None = None, poll_ms: int = POLL_MS,
                 open_url: Callable[[str], object] | None = None) -> None:
        self.client = client or ControlClient(timeout=2.0)
        self.open_url = open_url or (lambda url: QDesktopServices.openUrl(QUrl(url)))
        self.status: dict[str, Any] | None = None
        self.last_error: str | None = None  # the last refused request or connection problem
        self.icon = QSystemTrayIcon()
        self.menu = QMenu()
        self.header = self.menu.addAction("vcam")
        self.header.setEnabled(False)
        self.config_error = self.menu.addAction("")
        self.config_error.setEnabled(False)
        self.config_error.setVisible(False)
        self.menu.addSeparator()
        self.blur = self._check("Blur background", lambda on: self._request("blur", on=on))
        self.presets_menu = self.menu.addMenu("Preset")
        self.preset_group = QActionGroup(self.presets_menu)
        self.preset_group.setExclusive(True)
        self.preset_actions: dict[str, QAction] = {}
        self.beauty = self._check("Beauty", lambda on: self._request("beauty", on=on))
        self.framing = self._check("Auto-framing", lambda on: self._request(
            "set", field="framing.mode", value="auto" if on else "off"))
        self.pause = self._check("Pause camera", lambda on: self._request("pause" if on else "resume"))
        self.menu.addSeparator()
        self.preview = self.menu.addAction("Open preview")
        self.preview.triggered.connect(self._open_preview)
        self.quit = self.menu.addAction("Quit tray")
        self.quit.triggered.connect(QApplication.quit)
        self.icon.setContextMenu(self.menu)
        self.icon.activated.connect(self._activated)
        self.timer = QTimer()
        self.timer.timeout.connect(self.refresh)
        self.timer.start(poll_ms)
        self.refresh()
        self.icon.show()

    def _check(self, text: str, on_toggle: Callable[[bool], None]) -> QAction:
        action = self.menu.addAction(text)
        action.setCheckable(True)
        action.triggered.connect(on_toggle)
        return action

    def _activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason == QSystemTrayIcon.ActivationReason.Trigger:  # left click: the most used switch
            self.blur.trigger()

    def _request(self, cmd: str, **args: Any) -> None:
        try:
            self._show(self.client.request(cmd, **args).get("status"))
            self.last_error = None
        except (DaemonNotRunning, ControlError) as exc:
            self.last_error = str(exc)
            self.icon.showMessage("vcam", str(exc), QSystemTrayIcon.MessageIcon.Warning, 5000)
            self.refresh()

    def _open_preview(self) -> None:
        if self.status and self.status.get("preview_url"):
            self.open_url(self.status["preview_url"])

    def select_preset(self, name: str) -> None:
        self._request("preset", name=name)

    def refresh(self) -> None:
        try:
            status = self.client.request("status").get("status")
        except (DaemonNotRunning, ControlError) as exc:
            self.last_error = str(exc)
            status = None
        self._show(status)

    def _show(self, status: dict[str, Any] | None) -> None:
        self.status = status
        up = status is not None
        for action in (self.blur, self.beauty, self.framing, self.pause, self.presets_menu.menuAction()):
            action.setEnabled(up)
        self.preview.setEnabled(bool(up and status.get("preview_url")))
        error = status.get("config_error") if up else None
        self.icon.setIcon(make_icon(tray_state(status), bool(error)))
        if not up:
            self.header.setText("vcam is not running")
            self.icon.setToolTip(f"vcam: not running\n{self.last_error or ''}".strip())
            self.config_error.setVisible(False)
            return
        self.blur.setChecked(bool(status.get("blur")))
        self.beauty.setChecked(bool(status.get("beauty")))
        self.framing.setChecked(bool(status.get("framing")))
        self.pause.setChecked(bool(status.get("paused")))
        self._sync_presets(status.get("presets", []), status.get("preset"))
        camera = status.get("camera")
        self.header.setText(f"vcam: preset {status.get('preset')}, camera {camera}")
        tip = f"vcam: {status.get('preset')}, blur {'on' if status.get('blur') else 'off'}, camera {camera}"
        self.config_error.setVisible(bool(error))
        if error:
            label, text = (refusal_lines(status) or [("last good kept", str(error))])[0]
            self.config_error.setText(f"Config error ({label}): {text.splitlines()[0][:100]}")
            tip += "".join(f"\nconfig error, {label}:\n{text}" for label, text in refusal_lines(status))
        self.icon.setToolTip(tip)

    def _sync_presets(self, names: list[str], current: str | None) -> None:
        if list(self.preset_actions) != names:
            for action in self.preset_actions.values():
                self.preset_group.removeAction(action)
                self.presets_menu.removeAction(action)
            self.preset_actions = {}
            for name in names:
                action = self.presets_menu.addAction(name)
                action.setCheckable(True)
                self.preset_group.addAction(action)
                action.triggered.connect(lambda _=False, n=name: self.select_preset(n))
                self.preset_actions[name] = action
        for name, action in self.preset_actions.items():
            action.setChecked(name == current)


def run_tray() -> int:
    import os

    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) \
            and not os.environ.get("QT_QPA_PLATFORM"):
        log.error("no graphical session (DISPLAY / WAYLAND_DISPLAY unset): the tray needs a desktop")
        return 2
    app = QApplication.instance() or QApplication(sys.argv)
    app.setQuitOnLastWindowClosed(False)
    if not QSystemTrayIcon.isSystemTrayAvailable():
        log.error("no system tray on this desktop (GNOME needs the AppIndicator extension)")
        return 2
    tray = Tray()
    app._vcam_tray = tray  # keep it alive
    return app.exec()
