"""The ``vcam`` subcommands that talk to a running daemon (status, toggle, preset, set, pause, resume, reload)
and the ones around it (doctor, install-service, uninstall-service, tray).

Exit codes: 0 done, 1 the daemon refused the request (it changed nothing), 3 the daemon is not running.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

EXIT_REFUSED = 1
EXIT_NOT_RUNNING = 3


def _request(cmd: str, **args: Any) -> dict[str, Any] | int:
    from .control import ControlClient, ControlError, DaemonNotRunning

    try:
        return ControlClient().request(cmd, **args)
    except DaemonNotRunning as exc:
        print(f"vcam: {exc}", file=sys.stderr)
        return EXIT_NOT_RUNNING
    except ControlError as exc:
        print(f"vcam: {exc}", file=sys.stderr)
        return EXIT_REFUSED


def refusal_lines(s: dict[str, Any]) -> list[tuple[str, str]]:
    """What the daemon refuses right now, as (label, message) pairs for `vcam status` and the tray: a config file
    that did not reload, and a live change that was refused (the config path prefix is left out)."""
    file_error, change_error = s.get("config_file_error"), s.get("change_error")
    if not (file_error or change_error) and s.get("config_error"):  # a daemon that reports only the joined text
        file_error = s["config_error"]
    path = s.get("config_path")
    out = []
    for label, text in (("config file not applied, last good kept", file_error),
                        ("change refused, nothing changed", change_error)):
        if text:
            text = str(text)
            if path and text.startswith(f"{path}: "):
                text = text[len(path) + 2:]
            out.append((label, text))
    return out


def format_status(s: dict[str, Any]) -> str:
    camera = {"on": f"on ({s.get('source_state')})", "paused": "PAUSED (camera released)",
              "idle": "idle: no app is reading the virtual camera (camera released)"}.get(s.get("camera"),
                                                                                             str(s.get("camera")))
    effect = s.get("background_mode")
    blur = f"on, strength {s.get('blur_strength')}" if s.get("blur") else f"off (background: {effect})"
    lines = [
        f"vcam running for {s.get('uptime_s')} s: camera {camera}",
        f"  preset {s.get('preset')}   blur {blur}   beauty {'on' if s.get('beauty') else 'off'}",
        f"  source {s.get('source')}   segmenter {s.get('segmenter')}",
        f"  frames sent {s.get('frames_sent')}, processed {s.get('frames_processed')}, "
        f"placeholders {s.get('placeholder_frames')}, processing {s.get('process_ms')} ms/frame",
    ]
    if s.get("on_demand"):
        lines.append(f"  readers of the virtual camera: {s.get('readers')}")
    for sink in s.get("sinks", []):
        lines.append(f"  sink {sink['sink']}: {sink['written']} written" +
                     (f", FAILED: {sink['failed']}" if sink.get("failed") else ""))
    if s.get("config_path"):
        lines.append(f"  config {s['config_path']} (presets: {', '.join(s.get('presets', []))})")
    if s.get("runtime_changes"):
        lines.append(f"  changed since start: {json.dumps(s['runtime_changes'])}")
    for label, text in refusal_lines(s):
        lines.append(f"  CONFIG ERROR: {label}:")
        lines += [f"    {line}" for line in text.splitlines()]
    if s.get("last_error"):
        lines.append(f"  last error: {s['last_error']}")
    if s.get("fail_closed"):
        lines.append(f"  FAILING CLOSED (whole frame blurred): {s['fail_closed']}")
    if s.get("processing_stalled_s"):
        lines.append(f"  PROCESSING STALLED for {s['processing_stalled_s']} s while the camera is live")
    if s.get("processing_errors"):
        lines.append(f"  processing errors: {s['processing_errors']} (last: {s.get('last_processing_error')})")
    return "\n".join(lines)


def _done(reply: dict[str, Any] | int, args: argparse.Namespace, message: str | None = None) -> int:
    if isinstance(reply, int):
        return reply
    status = reply.get("status", {})
    if getattr(args, "json", False):
        print(json.dumps(status, indent=2))
    elif message is None:
        print(format_status(status))
    else:
        print(message.format(**status))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    return _done(_request("status"), args)


def cmd_toggle(args: argparse.Namespace) -> int:
    reply = _request("toggle", what=args.what)
    if isinstance(reply, int) or args.json:
        return _done(reply, args)
    s = reply["status"]
    state = s["camera"] if args.what == "pause" else ("on" if s[args.what] else "off")
    print(f"{'camera' if args.what == 'pause' else args.what} {state}")
    return 0


def cmd_preset(args: argparse.Namespace) -> int:
    if not args.name:
        reply = _request("status")
        if isinstance(reply, int):
            return reply
        current = reply["status"]["preset"]
        for name in reply["status"]["presets"]:
            print(("* " if name == current else "  ") + name)
        return 0
    return _done(_request("preset", name=args.name), args, "preset {preset} (background {background_mode})")


def cmd_set(args: argparse.Namespace) -> int:
    from .config import ConfigError, parse_override

    try:
        value = parse_override(f"v={args.value}")["v"]
    except ConfigError as exc:
        print(f"vcam: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    return _done(_request("set", field=args.field, value=value), args, f"{args.field} = {value!r}")


def cmd_simple(args: argparse.Namespace) -> int:
    messages = {"pause": "camera {camera}", "resume": "camera {camera}", "reload": "config reloaded: preset "
                "{preset}"}
    return _done(_request(args.command), args, messages[args.command])


def cmd_doctor(args: argparse.Namespace) -> int:
    from .doctor import format_report, run_checks

    checks = run_checks(config_path=args.config)
    if args.json:
        print(json.dumps([c.as_dict() for c in checks], indent=2))
    else:
        print(format_report(checks))
    return 1 if any(c.level == "error" for c in checks) else 0


def cmd_install_service(args: argparse.Namespace) -> int:
    from .service import install_service

    print(install_service(dry_run=args.dry_run, start=not args.no_start))
    return 0


def cmd_uninstall_service(args: argparse.Namespace) -> int:
    from .service import uninstall_service

    print(uninstall_service())
    return 0


def cmd_tray(args: argparse.Namespace) -> int:
    try:
        from .tray import run_tray
    except ImportError as exc:
        print(f"vcam: the tray needs PySide6: pip install 'vcam[tray]' ({exc})", file=sys.stderr)
        return 2
    return run_tray()


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register the daily-use subcommands on ``vcam``'s parser."""

    def json_flag(p: argparse.ArgumentParser) -> None:
        p.add_argument("--json", action="store_true", help="print the daemon's status as JSON")

    p = sub.add_parser("status", help="show what the running daemon is doing")
    json_flag(p)
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("toggle", help="switch blur, beauty, mirror or pause on/off in the running daemon")
    p.add_argument("what", choices=("blur", "beauty", "mirror", "pause"))
    json_flag(p)
    p.set_defaults(func=cmd_toggle)

    p = sub.add_parser("preset", help="switch the running daemon to a preset (no name: list presets)")
    p.add_argument("name", nargs="?")
    json_flag(p)
    p.set_defaults(func=cmd_preset)

    p = sub.add_parser("set", help="change one setting of the running daemon, e.g. `vcam set blur.strength 70`")
    p.add_argument("field", help="SECTION.FIELD (e.g. background.blur_strength) or a short name (blur.strength)")
    p.add_argument("value", help="the value, as in the config file (70, true, \"#00ff00\")")
    json_flag(p)
    p.set_defaults(func=cmd_set)

    for name, text in (("pause", "release the camera and show the pause picture"),
                       ("resume", "reopen the camera after a pause"),
                       ("reload", "re-read the config file now")):
        p = sub.add_parser(name, help=text)
        json_flag(p)
        p.set_defaults(func=cmd_simple)

    p = sub.add_parser("doctor", help="check the setup (loopback module, permissions, cameras, models, config)")
    p.add_argument("--config", help="config file to check (default ~/.config/vcam/config.toml)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("install-service", help="start vcam at login (systemd user unit, launchd agent, or a "
                                               "Windows scheduled task)")
    p.add_argument("--dry-run", action="store_true", help="print what would be written, change nothing")
    p.add_argument("--no-start", action="store_true", help="install and enable, but do not start it now")
    p.set_defaults(func=cmd_install_service)

    p = sub.add_parser("uninstall-service", help="stop vcam starting at login")
    p.set_defaults(func=cmd_uninstall_service)

    p = sub.add_parser("tray", help="tray icon: blur, presets, beauty, pause (needs the [tray] extra)")
    p.set_defaults(func=cmd_tray)
