"""The tray under Xvfb with trayer as the tray host: its menu actions drive the real daemon through the control
API (checked in the daemon's state and its output frames), and it shows config errors and a stopped daemon.

Skips cleanly without PySide6, Xvfb or trayer. ``VCAM_TRAY_SCREENSHOT=docs/img/tray.png`` also saves a
screenshot of the open menu.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

QtWidgets = pytest.importorskip("PySide6.QtWidgets", reason="the tray needs PySide6 (extra [tray])")
if shutil.which("Xvfb") is None or shutil.which("trayer") is None:
    pytest.skip("needs Xvfb and trayer (apt-get install xvfb trayer)", allow_module_level=True)

from .support import BLUR_OFF_ABOVE, BLUR_ON_BELOW, NEW_FRAMES, background_detail, running_session, wait_for  # noqa: E402


def _free_display() -> int:
    for n in range(90, 140):
        if not Path(f"/tmp/.X11-unix/X{n}").exists() and not Path(f"/tmp/.X{n}-lock").exists():
            return n
    raise RuntimeError("no free X display number")


@pytest.fixture(scope="module")
def app() -> Iterator[QtWidgets.QApplication]:
    n = _free_display()
    xvfb = subprocess.Popen(["Xvfb", f":{n}", "-screen", "0", "1024x640x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not Path(f"/tmp/.X11-unix/X{n}").exists():
        if xvfb.poll() is not None or time.monotonic() > deadline:
            pytest.skip("Xvfb did not start")
        time.sleep(0.05)
    old = {k: os.environ.get(k) for k in ("DISPLAY", "QT_QPA_PLATFORM")}
    os.environ.update(DISPLAY=f":{n}", QT_QPA_PLATFORM="xcb")
    trayer = subprocess.Popen(["trayer", "--edge", "top", "--align", "right", "--widthtype", "request",
                               "--height", "32", "--margin", "12", "--tint", "0x303030", "--transparent", "true",
                               "--alpha", "0"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        application = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
        deadline = time.monotonic() + 10
        while not QtWidgets.QSystemTrayIcon.isSystemTrayAvailable():
            if time.monotonic() > deadline:
                pytest.skip("trayer did not provide a system tray")
            time.sleep(0.1)
        yield application
    finally:
        trayer.terminate()
        xvfb.terminate()
        trayer.wait(5)
        xvfb.wait(5)
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def pump(app, until: Callable[[], bool] | None = None, timeout: float = 2.0) -> None:
    """Run the Qt event loop for a while (until ``until()`` holds, if given)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        app.processEvents()
        if until is not None and until():
            return
        time.sleep(0.02)
    assert until is None, "tray did not reach the expected state"


def test_tray_menu_drives_the_daemon(app) -> None:
    from vcam.tray import Tray, tray_state

    opened: list[str] = []
    with running_session("blur", more_sinks=("mjpeg:0",), file_text='preset = "blur"\n') as run:
        tray = Tray(client=run.client, poll_ms=200, open_url=opened.append)
        pump(app, lambda: tray.status is not None)
        assert tray.icon.isVisible() and tray.blur.isChecked() and tray_state(tray.status) == "blur"
        assert list(tray.preset_actions) == ["blur", "blur-strong", "office", "green-screen", "off"]
        assert tray.preset_actions["blur"].isChecked()
        run.wait_written(10)

        tray.blur.trigger()  # what a click on "Blur background" does
        start = run.written()
        assert run.session.live.config.background.mode == "passthrough"
        assert not tray.blur.isChecked() and tray_state(tray.status) == "off"
        assert background_detail(run.wait_distinct(start, NEW_FRAMES)[-1]) > BLUR_OFF_ABOVE

        tray.blur.trigger()
        start = run.written()
        assert tray.blur.isChecked()
        assert background_detail(run.wait_distinct(start, NEW_FRAMES)[-1]) < BLUR_ON_BELOW

        tray.preset_actions["green-screen"].trigger()
        assert run.session.live.config.preset == "green-screen" and tray.preset_actions["green-screen"].isChecked()
        assert tray_state(tray.status) == "effect" and not tray.blur.isChecked()

        tray.beauty.trigger()
        assert run.session.live.config.beauty.enabled and tray.beauty.isChecked()

        tray.framing.trigger()
        assert run.session.live.config.framing.mode == "auto" and tray.framing.isChecked()
        tray.framing.trigger()
        assert run.session.live.config.framing.mode == "off" and not tray.framing.isChecked()

        tray.pause.trigger()
        assert run.session.daemon.held == "paused" and tray_state(tray.status) == "paused"
        wait_for(lambda: run.daemon.source._cap is None, timeout=1.0)
        tray.pause.trigger()
        assert run.session.daemon.held is None

        tray.preview.trigger()
        assert opened and opened[0].startswith("http://127.0.0.1:") and "token=" in opened[0]

        # An invalid edit of the config file: the tray shows the error, the daemon keeps the last good config.
        run.session.live.path.write_text("preset = 5\n")
        pump(app, lambda: tray.config_error.isVisible(), timeout=3.0)
        assert "preset" in tray.config_error.text() and "last good kept" in tray.config_error.text()
        assert "config error" in tray.icon.toolTip()
        assert run.session.live.config.preset == "green-screen"

        # Clicking the icon itself flips blur.
        tray.icon.activated.emit(QtWidgets.QSystemTrayIcon.ActivationReason.Trigger)
        assert run.session.live.config.background.mode == "blur"

    # The daemon is gone: the tray says so and disables the switches.
    tray.refresh()
    assert tray.status is None and tray.header.text() == "vcam is not running"
    assert not tray.blur.isEnabled() and tray_state(tray.status) == "down"
    tray.timer.stop()
    tray.icon.hide()


def test_tray_screenshot(app) -> None:
    """Renders the tray with its menu open; saved where ``VCAM_TRAY_SCREENSHOT`` says (the README's picture)."""
    from PySide6.QtCore import QPoint, QRect

    from vcam.tray import Tray

    with running_session("blur", more_sinks=("mjpeg:0",)) as run:
        tray = Tray(client=run.client, poll_ms=200)
        pump(app, lambda: tray.status is not None)
        pump(app, timeout=0.5)
        geometry = tray.icon.geometry()
        assert geometry.width() > 0  # docked in trayer
        tray.menu.popup(QPoint(geometry.right() - tray.menu.sizeHint().width(), geometry.bottom() + 2))
        pump(app, timeout=0.3)
        tray.presets_menu.popup(QPoint(tray.menu.geometry().left() - tray.presets_menu.sizeHint().width(),
                                       tray.menu.geometry().top() + 40))
        pump(app, timeout=0.5)
        shot = app.primaryScreen().grabWindow(0)
        region = QRect(shot.width() - 430, 0, 430, 230)
        out = os.environ.get("VCAM_TRAY_SCREENSHOT")
        if out:
            Path(out).parent.mkdir(parents=True, exist_ok=True)
            assert shot.copy(region).save(out)
        image = shot.copy(region).toImage()
        assert image.pixelColor(region.width() - 100, 60).lightness() > 200  # the menu is drawn there
        tray.presets_menu.hide()
        tray.menu.hide()
        tray.timer.stop()
        tray.icon.hide()
