"""``vcam doctor``: check everything a working virtual camera needs, and print the exact fix for each problem.

Each check returns ``Check`` rows; the filesystem roots are parameters so tests can run them on a fake
``/sys`` and ``/dev``.
"""

from __future__ import annotations

import grp
import logging
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

log = logging.getLogger(__name__)

LOOPBACK_OPTIONS = "exclusive_caps=1 card_label=vcam"
MODPROBE_FIX = (f"sudo modprobe v4l2loopback {LOOPBACK_OPTIONS}\n"
                "to load it at every boot:\n"
                "  echo v4l2loopback | sudo tee /etc/modules-load.d/v4l2loopback.conf\n"
                f"  echo 'options v4l2loopback {LOOPBACK_OPTIONS}' | sudo tee /etc/modprobe.d/v4l2loopback.conf")


@dataclass
class Check:
    name: str
    level: str  # ok | info | warn | error
    message: str
    fix: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return asdict(self)


@dataclass
class VideoNode:
    path: Path
    name: str
    loopback: bool


def video_nodes(sys_root: Path = Path("/sys"), dev_root: Path = Path("/dev")) -> list[VideoNode]:
    """The /dev/videoN nodes with their V4L2 names; loopback nodes are the ones under /sys/devices/virtual."""
    nodes = []
    class_dir = sys_root / "class" / "video4linux"
    for entry in sorted(class_dir.glob("video*"), key=lambda p: int(p.name[5:]) if p.name[5:].isdigit() else 0):
        name_file = entry / "name"
        name = name_file.read_text().strip() if name_file.is_file() else "?"
        real = os.path.realpath(entry)
        loopback = "/virtual/" in real or "loopback" in name.lower() or (entry / "device" / "driver").is_symlink() \
            and "v4l2loopback" in os.path.realpath(entry / "device" / "driver")
        nodes.append(VideoNode(dev_root / entry.name, name, loopback))
    return nodes


def check_loopback(sys_root: Path = Path("/sys"), dev_root: Path = Path("/dev")) -> list[Check]:
    module = sys_root / "module" / "v4l2loopback"
    if not module.is_dir():
        return [Check("loopback module", "error", "the v4l2loopback kernel module is not loaded, so there is no "
                      "virtual camera for apps to pick",
                      "install it (Debian/Ubuntu: sudo apt install v4l2loopback-dkms; Fedora: sudo dnf install "
                      "v4l2loopback; Arch: sudo pacman -S v4l2loopback-dkms), then:\n" + MODPROBE_FIX)]
    checks = [Check("loopback module", "ok", "v4l2loopback is loaded")]
    caps_file = module / "parameters" / "exclusive_caps"
    caps = caps_file.read_text().strip() if caps_file.is_file() else ""
    first = caps.split(",")[0].strip().upper() if caps else ""
    if first in ("Y", "1"):
        checks.append(Check("exclusive_caps", "ok", "exclusive_caps=1 (Chrome and WebRTC apps can see the camera)"))
    else:
        checks.append(Check("exclusive_caps", "error", f"v4l2loopback was loaded without exclusive_caps=1 "
                            f"(exclusive_caps={caps or 'unknown'}): Chrome, Meet, Teams and other WebRTC apps will "
                            "not list the virtual camera",
                            "reload the module (close apps using it first):\n  sudo modprobe -r v4l2loopback\n  "
                            + MODPROBE_FIX.replace("\n", "\n  ")))
    loopbacks = [n for n in video_nodes(sys_root, dev_root) if n.loopback]
    if not loopbacks:
        checks.append(Check("loopback device", "error", "the module is loaded but no loopback /dev/video node "
                            "exists", "sudo modprobe -r v4l2loopback && " + MODPROBE_FIX))
    for node in loopbacks:
        checks.extend(check_permissions(node))
    return checks


def check_permissions(node: VideoNode) -> list[Check]:
    path = node.path
    if not path.exists():
        return [Check(f"{path}", "error", f"{path} ({node.name}) is listed by the kernel but the node is missing",
                      "sudo udevadm trigger --subsystem-match=video4linux")]
    if os.access(path, os.R_OK | os.W_OK):
        return [Check(f"{path}", "ok", f"{path} ({node.name}) is readable and writable")]
    try:
        group = grp.getgrgid(path.stat().st_gid).gr_name
    except KeyError:
        group = "video"
    return [Check(f"{path}", "error", f"you cannot open {path} ({node.name}): it belongs to group '{group}'",
                  f"sudo usermod -aG {group} $USER   (then log out and back in)")]


def check_cameras(sys_root: Path = Path("/sys"), dev_root: Path = Path("/dev"), device: str | None = None
                  ) -> list[Check]:
    cameras = [n for n in video_nodes(sys_root, dev_root) if not n.loopback]
    checks = []
    if device and device.startswith(("/dev/", f"{dev_root}/")) and not Path(device).exists():
        checks.append(Check("camera", "error", f"the configured camera {device} does not exist",
                            "plug it in, or set [source] device to one of: "
                            + (", ".join(str(c.path) for c in cameras) or "(no camera found)")))
    if not cameras:
        checks.append(Check("cameras", "warn", "no physical camera found (/dev/video*)",
                            "plug a camera in; check `dmesg | tail` and `lsusb`; `vcam demo` works without one"))
        return checks
    for cam in cameras:
        checks.extend(c if c.level != "ok" else Check(c.name, "ok", f"camera {cam.path} ({cam.name}) is usable")
                      for c in check_permissions(cam))
    return checks


def check_sizes(config: object) -> list[Check]:
    """Chrome rejects odd widths for YUV 4:2:0; the output is always even, the camera request should be too."""
    checks = []
    for section in ("output", "source"):
        part = getattr(config, section)
        w, h = part.width, part.height
        if w % 2 or h % 2:
            checks.append(Check(f"{section} size", "error", f"{section} size {w}x{h} is odd: Chrome rejects odd "
                                "widths for YUV 4:2:0", f"set [{section}] width = {w - w % 2}, height = {h - h % 2}"))
        else:
            checks.append(Check(f"{section} size", "ok", f"{section} size {w}x{h} is even"))
    return checks


def check_models() -> list[Check]:
    from .registry import list_models

    cards = list_models()
    if not cards:
        return [Check("models", "error", "no model is installed (no segmenter: no background effect)",
                      "reinstall vcam: pip install --force-reinstall vcam")]
    checks = []
    for card in cards:
        problem = card.verify()
        if problem is None:
            checks.append(Check(f"model {card.name}", "ok", f"{card.path.name} matches its card's sha256"
                                if card.sha256 else f"{card.path.name} present (its card has no hash)"))
        else:
            checks.append(Check(f"model {card.name}", "error", problem,
                                f"restore {card.path} from the package: pip install --force-reinstall vcam "
                                "(or remove the file and its card to stop using that model)"))
    return checks


def check_onnxruntime() -> list[Check]:
    try:
        import onnxruntime as ort
    except ImportError as exc:
        return [Check("onnxruntime", "error", f"ONNX Runtime cannot be imported: {exc}",
                      "pip install --force-reinstall onnxruntime")]
    providers = ort.get_available_providers()
    check = Check("onnxruntime", "ok", f"ONNX Runtime {ort.__version__}, providers: {', '.join(providers)}")
    if "CPUExecutionProvider" not in providers:
        check.level, check.fix = "error", "pip install --force-reinstall onnxruntime"
    return [check]


def check_config(path: Path | None) -> tuple[list[Check], object | None]:
    from .config import Config, ConfigError, default_config_path, load_config

    named = path is not None
    path = path.expanduser() if path else default_config_path()
    if not path.exists():
        if named:  # `vcam run --config` refuses a missing file too
            return [Check("config", "error", f"{path} does not exist",
                          "check the path given to --config")], None
        return [Check("config", "info", f"{path} does not exist: built-in defaults are used",
                      None)], Config()
    try:
        config = load_config(path)
    except ConfigError as exc:
        return [Check("config", "error", f"{path} is invalid:\n{exc}",
                      f"edit {path} and fix the field(s) named above (a running daemon keeps its last good "
                      "settings meanwhile); `vcam doctor` again to confirm")], None
    return [Check("config", "ok", f"{path} is valid (preset {config.preset})")], config


def check_daemon() -> list[Check]:
    from .control import ControlClient, ControlError, DaemonNotRunning

    try:
        status = ControlClient(timeout=2.0).request("status")["status"]
    except DaemonNotRunning:
        return [Check("daemon", "info", "vcam is not running", "start it: `vcam run`, or at login: "
                      "`vcam install-service`")]
    except ControlError as exc:
        return [Check("daemon", "warn", str(exc), None)]
    if status.get("config_error"):
        return [Check("daemon", "warn", "the running daemon refused a config edit or change and runs on the last "
                      f"good settings:\n{status['config_error']}", "fix what is named above; the config file "
                      "reloads on save")]
    return [Check("daemon", "ok", f"vcam is running (camera {status.get('camera')}, preset {status.get('preset')})")]


def run_checks(config_path: str | Path | None = None, sys_root: Path = Path("/sys"), dev_root: Path = Path("/dev"),
               include_daemon: bool = True) -> list[Check]:
    config_checks, config = check_config(Path(config_path) if config_path else None)
    checks: list[Check] = []
    if sys.platform.startswith("linux"):
        checks += check_loopback(sys_root, dev_root)
        checks += check_cameras(sys_root, dev_root, getattr(getattr(config, "source", None), "device", None))
    else:
        from .sinks.virtual import fix_hint

        checks.append(Check("virtual camera", "info", "on this system the virtual camera is OBS's (or Unity "
                            "Capture on Windows)", fix_hint()))
    checks += config_checks
    if config is not None:
        checks += check_sizes(config)
    checks += check_models()
    checks += check_onnxruntime()
    if include_daemon:
        checks += check_daemon()
    return checks


MARKS = {"ok": "ok  ", "info": "info", "warn": "WARN", "error": "FAIL"}


def format_report(checks: list[Check]) -> str:
    lines = []
    for c in checks:
        first, *rest = c.message.splitlines() or [""]
        lines.append(f"[{MARKS.get(c.level, c.level)}] {c.name}: {first}")
        lines += [f"         {line}" for line in rest]
        if c.fix and c.level in ("warn", "error", "info"):
            fix_first, *fix_rest = c.fix.splitlines()
            lines.append(f"         fix: {fix_first}")
            lines += [f"              {line}" for line in fix_rest]
    problems = sum(c.level == "error" for c in checks)
    warnings = sum(c.level == "warn" for c in checks)
    lines.append(f"{problems} problem(s), {warnings} warning(s)" if problems or warnings else "all good")
    return "\n".join(lines)
