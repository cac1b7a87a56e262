"""Autostart: the systemd user unit (checked by systemd itself where available), install/uninstall commands,
and the macOS/Windows equivalents."""

from __future__ import annotations

import configparser
import plistlib
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vcam import service


class Recorder:
    def __init__(self, returncode: int = 0) -> None:
        self.commands: list[list[str]] = []
        self.returncode = returncode

    def __call__(self, cmd):
        self.commands.append(list(cmd))
        return subprocess.CompletedProcess(cmd, self.returncode, "", "Failed to connect to bus")


@pytest.fixture
def config_home(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path


def test_linux_unit_runs_this_interpreter_and_is_enabled(config_home: Path) -> None:
    run = Recorder()
    out = service.install_service(platform="linux", runner=run, python="/opt/venvs/my vcam/bin/python")
    path = config_home / "cfg" / "systemd" / "user" / "vcam.service"
    assert f"wrote {path}" in out
    unit = configparser.ConfigParser(interpolation=None, strict=True)
    unit.optionxform = str  # systemd keys are case-sensitive
    unit.read_string(path.read_text())
    assert shlex.split(unit["Service"]["ExecStart"]) == ["/opt/venvs/my vcam/bin/python", "-m", "vcam", "run"]
    assert unit["Service"]["Restart"] == "on-failure"
    assert unit["Service"]["ExecReload"] == "/bin/kill -HUP $MAINPID"  # `systemctl --user reload vcam`: SIGHUP
    assert unit["Install"]["WantedBy"] == "default.target"
    assert unit["Unit"]["StartLimitBurst"] == "5"  # a [Unit] key since systemd 230
    assert run.commands == [["systemctl", "--user", "daemon-reload"],
                            ["systemctl", "--user", "enable", "--now", "vcam.service"]]

    run = Recorder()
    out = service.uninstall_service(platform="linux", runner=run)
    assert not path.exists() and f"removed {path}" in out
    assert run.commands == [["systemctl", "--user", "disable", "--now", "vcam.service"],
                            ["systemctl", "--user", "daemon-reload"]]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    unit = tmp_path / "vcam.service"
    unit.write_text(service.systemd_unit(sys.executable))
    proc = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    complaints = [line for line in proc.stderr.splitlines() if "vcam.service" in line]
    assert proc.returncode == 0 and complaints == [], proc.stderr
    # The check catches mistakes: a misspelt key is reported.
    unit.write_text(service.systemd_unit(sys.executable).replace("RestartSec", "RestartSecs"))
    proc = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert "Unknown key" in proc.stderr


def test_dry_run_changes_nothing(config_home: Path) -> None:
    run = Recorder()
    out = service.install_service(dry_run=True, platform="linux", runner=run)
    assert run.commands == [] and not (config_home / "cfg" / "systemd").exists()
    assert "would run: systemctl --user enable --now vcam.service" in out and "[Service]" in out


def test_failed_systemctl_is_reported_with_what_to_do(config_home: Path) -> None:
    out = service.install_service(platform="linux", runner=Recorder(returncode=1))
    assert "FAILED: systemctl --user daemon-reload: Failed to connect to bus" in out
    assert "run it yourself" in out


def test_macos_launch_agent(config_home: Path) -> None:
    run = Recorder()
    service.install_service(platform="darwin", runner=run, python="/usr/local/bin/python3")
    path = config_home / "home" / "Library" / "LaunchAgents" / "io.github.vcam.plist"
    plist = plistlib.loads(path.read_bytes())
    assert plist["ProgramArguments"] == ["/usr/local/bin/python3", "-m", "vcam", "run"]
    assert plist["RunAtLoad"] is True and plist["KeepAlive"] == {"SuccessfulExit": False}
    assert run.commands == [["launchctl", "load", "-w", str(path)]]
    service.uninstall_service(platform="darwin", runner=run)
    assert not path.exists() and run.commands[-1] == ["launchctl", "unload", "-w", str(path)]


def test_windows_scheduled_task(config_home: Path) -> None:
    run = Recorder()
    service.install_service(platform="win32", runner=run, python=r"C:\Program Files\Python312\python.exe")
    create = run.commands[0]
    assert create[:5] == ["schtasks", "/Create", "/TN", "vcam", "/SC"] and "ONLOGON" in create
    assert create[-1] == r'"C:\Program Files\Python312\pythonw.exe" -m vcam run'
    assert run.commands[1] == ["schtasks", "/Run", "/TN", "vcam"]
    service.uninstall_service(platform="win32", runner=run)
    assert run.commands[-1] == ["schtasks", "/Delete", "/TN", "vcam", "/F"]
