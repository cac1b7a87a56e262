"""Start vcam at login: a systemd user unit (Linux), a launchd agent (macOS), a scheduled task (Windows).

The service runs ``python -m vcam run`` with the interpreter vcam is installed in, so a virtual environment
keeps working. ``install_service``/``uninstall_service`` return what they did as text for the CLI; commands go
through ``runner`` so tests can record them instead of touching the system.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from xml.sax.saxutils import escape

log = logging.getLogger(__name__)

UNIT_NAME = "vcam.service"
LAUNCHD_LABEL = "io.github.vcam"
WINDOWS_TASK = "vcam"

Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


def _run(cmd: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), capture_output=True, text=True, check=False)


def daemon_command(python: str | None = None) -> list[str]:
    return [python or sys.executable, "-m", "vcam", "run"]


# ----- Linux: systemd --user -------------------------------------------------------------------------------
def systemd_unit_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "systemd" / "user" / UNIT_NAME


def systemd_unit(python: str | None = None) -> str:
    exec_start = " ".join(shlex.quote(part) for part in daemon_command(python))
    return f"""[Unit]
Description=vcam virtual camera (background blur and replacement)
# The camera and the loopback device are ready once the user session is.
After=graphical-session.target
# Failures are retried, but a broken setup (bad config: exit 2) gives up after 5 tries in a minute.
StartLimitIntervalSec=60
StartLimitBurst=5

[Service]
Type=simple
ExecStart={exec_start}
ExecReload=/bin/kill -HUP $MAINPID
Restart=on-failure
RestartSec=3

[Install]
WantedBy=default.target
"""


# ----- macOS: launchd ----------------------------------------------------------------------------------------
def launchd_plist_path() -> Path:
    return Path.home() / "Library" / "LaunchAgents" / f"{LAUNCHD_LABEL}.plist"


def launchd_plist(python: str | None = None) -> str:
    args = "\n".join(f"        <string>{escape(a)}</string>" for a in daemon_command(python))
    log_path = escape(str(Path.home() / "Library" / "Logs" / "vcam.log"))
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
    <key>Label</key>
    <string>{LAUNCHD_LABEL}</string>
    <key>ProgramArguments</key>
    <array>
{args}
    </array>
    <key>RunAtLoad</key>
    <true/>
    <key>KeepAlive</key>
    <dict>
        <key>SuccessfulExit</key>
        <false/>
    </dict>
    <key>ProcessType</key>
    <string>Interactive</string>
    <key>StandardErrorPath</key>
    <string>{log_path}</string>
</dict>
</plist>
"""


# ----- Windows: Task Scheduler ------------------------------------------------------------------------------
def windows_task_command(python: str | None = None) -> list[str]:
    exe = python or sys.executable
    if exe.lower().endswith("python.exe"):  # pythonw: no console window at login
        exe = exe[: -len("python.exe")] + "pythonw.exe"
    action = subprocess.list2cmdline(daemon_command(exe))
    return ["schtasks", "/Create", "/TN", WINDOWS_TASK, "/SC", "ONLOGON", "/RL", "LIMITED", "/F", "/TR", action]


# ----- install / uninstall ----------------------------------------------------------------------------------
def install_service(dry_run: bool = False, start: bool = True, platform: str | None = None,
                    runner: Runner = _run, python: str | None = None) -> str:
    platform = platform or sys.platform
    if platform.startswith("linux"):
        return _install_systemd(dry_run, start, runner, python)
    if platform == "darwin":
        path, text = launchd_plist_path(), launchd_plist(python)
        commands = [["launchctl", "load", "-w", str(path)]] if start else []
        return _write_and_run(path, text, commands, dry_run, runner)
    if platform == "win32":
        commands = [windows_task_command(python)] + ([["schtasks", "/Run", "/TN", WINDOWS_TASK]] if start else [])
        return _write_and_run(None, None, commands, dry_run, runner)
    raise RuntimeError(f"no service support for platform {platform!r}; start `vcam run` from your session")


def _install_systemd(dry_run: bool, start: bool, runner: Runner, python: str | None) -> str:
    path = systemd_unit_path()
    commands = [["systemctl", "--user", "daemon-reload"],
                ["systemctl", "--user", "enable", *(["--now"] if start else []), UNIT_NAME]]
    return _write_and_run(path, systemd_unit(python), commands, dry_run, runner,
                          after=f"logs: journalctl --user -u {UNIT_NAME} -f")


def uninstall_service(platform: str | None = None, runner: Runner = _run) -> str:
    platform = platform or sys.platform
    if platform.startswith("linux"):
        path = systemd_unit_path()
        done = _run_all([["systemctl", "--user", "disable", "--now", UNIT_NAME]], runner)
        removed = _remove(path)
        done += _run_all([["systemctl", "--user", "daemon-reload"]], runner)
        return removed + done
    if platform == "darwin":
        path = launchd_plist_path()
        done = _run_all([["launchctl", "unload", "-w", str(path)]], runner)
        return _remove(path) + done
    if platform == "win32":
        return _run_all([["schtasks", "/Delete", "/TN", WINDOWS_TASK, "/F"]], runner)
    raise RuntimeError(f"no service support for platform {platform!r}")


def _remove(path: Path) -> str:
    if path.exists():
        path.unlink()
        return f"removed {path}\n"
    return f"{path} was not installed\n"


def _write_and_run(path: Path | None, text: str | None, commands: list[list[str]], dry_run: bool,
                   runner: Runner, after: str = "") -> str:
    if dry_run:
        out = f"would write {path}:\n{text}\n" if path else ""
        return out + "".join(f"would run: {shlex.join(c)}\n" for c in commands)
    out = ""
    if path is not None and text is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        out += f"wrote {path}\n"
    out += _run_all(commands, runner)
    return out + (after + "\n" if after else "")


def _run_all(commands: list[list[str]], runner: Runner) -> str:
    out = ""
    for cmd in commands:
        try:
            result = runner(cmd)
        except FileNotFoundError:
            out += f"could not run {shlex.join(cmd)} ({cmd[0]} not found): run it yourself in your session\n"
            continue
        if result.returncode == 0:
            out += f"ran: {shlex.join(cmd)}\n"
        else:
            err = (result.stderr or result.stdout or "").strip().splitlines()
            out += (f"FAILED: {shlex.join(cmd)}: {err[-1] if err else 'exit ' + str(result.returncode)}\n"
                    "  run it yourself from your desktop session (a user service manager is needed)\n")
    return out
