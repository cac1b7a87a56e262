"""The ``vcam`` command line: run the daemon, the demo, list devices and models, benchmark."""

from __future__ import annotations

import argparse
import faulthandler
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger("vcam")
STOP_WATCHDOG_S = 20.0  # seconds a stop may take before the process dumps its threads and exits


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    from .config import deep_merge, parse_override

    out: dict[str, Any] = {}
    for assignment in args.set or []:
        out = deep_merge(out, parse_override(assignment))
    flag_map = {"preset": ("preset",), "source": ("source", "device"), "model": ("model", "segmenter")}
    for flag, path in flag_map.items():
        value = getattr(args, flag, None)
        if value is not None:
            node = out
            for part in path[:-1]:
                node = node.setdefault(part, {})
            node[path[-1]] = value
    if getattr(args, "sink", None):
        out.setdefault("output", {})["sinks"] = list(args.sink)
    if getattr(args, "size", None):
        w, h = _parse_size(args.size)
        out.setdefault("output", {}).update(width=w, height=h)
    if getattr(args, "fps", None):
        out.setdefault("output", {})["fps"] = args.fps
    return out


def _checked_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The command line's overrides; a clear exit (no traceback) when one is invalid."""
    from .config import ConfigError

    try:
        return _overrides(args)
    except ConfigError as exc:
        raise SystemExit(f"invalid configuration:\n{exc}") from None


def _parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise SystemExit(f"size {text!r}: use WIDTHxHEIGHT, e.g. 1280x720") from None
    return w, h


def _load(args: argparse.Namespace):
    from .config import ConfigError, default_config_path, ensure_config_file, load_config

    path = Path(args.config).expanduser() if args.config else default_config_path()
    if not args.config:
        ensure_config_file(path)
    elif not path.exists():
        raise SystemExit(f"config file {path} does not exist (--config names a file to read; without --config "
                         f"vcam uses {default_config_path()} and creates it when missing)")
    try:
        return path, load_config(path, _overrides(args))
    except ConfigError as exc:
        raise SystemExit(f"invalid configuration:\n{exc}") from None


def _run_daemon(config, banner: str | None = None, seconds: float | None = None, path: Path | None = None,
                cli_overrides: dict[str, Any] | None = None, on_demand: bool = True) -> int:
    """Run the daemon with its services (control API, config watcher on ``path``, on-demand camera)."""
    from .config import read_config_file
    from .daemon import Daemon
    from .segmenter import ModelError
    from .session import build_session
    from .sinks import SinkError

    try:
        daemon = Daemon(config)
        session = build_session(config, path, read_config_file(path) if path else None, cli_overrides,
                                daemon=daemon, on_demand=on_demand)
        # Before anything can be seen running: a signal sent as soon as the control socket answers is handled.
        signal.signal(signal.SIGTERM, lambda *_: daemon.request_stop())
        if hasattr(signal, "SIGHUP"):  # the daemon convention: SIGHUP re-reads the config
            signal.signal(signal.SIGHUP, lambda *_: _reload_in_background(session))
        session.start()
    except (SinkError, ModelError, LookupError) as exc:
        log.error("%s", exc)
        return 2
    for worker in daemon.sink_workers:
        url = getattr(worker.sink, "url", None)
        if url:
            log.info("preview page: %s", url)
    if banner:
        log.info("%s", banner)
    try:
        daemon.wait(seconds)
    except KeyboardInterrupt:
        pass
    # A stop must end the process: should a thread never let go, every thread's stack goes to stderr and the
    # process exits with status 1 instead of hanging (the watchdog stays armed through interpreter exit).
    faulthandler.dump_traceback_later(STOP_WATCHDOG_S, exit=True)
    session.stop()
    status = daemon.status()
    log.info("stopped: %d frames sent, %d processed", status["frames_sent"], status["frames_processed"])
    return 1 if daemon.stats.source_gave_up else 0  # a stop asked for (signal, --seconds) is a success


def _reload_in_background(session) -> None:
    """SIGHUP: reload on a thread of its own (the signal arrives on the main thread, which may hold no lock)."""
    from .config import ConfigError

    def reload() -> None:
        if session.live.path is None:
            log.warning("SIGHUP: no config file to reload (started without one)")
            return
        try:
            session.live.reload()
        except ConfigError:
            pass  # logged and shown in `vcam status` by reload()

    log.info("SIGHUP: reloading the config")
    threading.Thread(target=reload, name="sighup-reload", daemon=True).start()


def demo_output_path() -> Path:
    """Where ``vcam demo`` writes its y4m: the user's own runtime dir (``$XDG_RUNTIME_DIR/vcam``), else
    ``~/.cache/vcam`` (``$XDG_CACHE_HOME``), created 0700 and checked to be ours; never the shared temp dir."""
    from .control import private_dir

    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_dir():
        folder = Path(runtime) / "vcam"
    else:
        folder = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vcam"
    private_dir(folder)
    return folder / "demo.y4m"


def cmd_run(args: argparse.Namespace) -> int:
    path, config = _load(args)
    return _run_daemon(config, seconds=args.seconds, path=path, cli_overrides=_overrides(args))


def cmd_demo(args: argparse.Namespace) -> int:
    from .config import ConfigError, build_config, deep_merge
    from .sinks.virtual import VirtualCameraSink

    try:
        y4m = args.y4m or demo_output_path()
    except OSError as exc:
        log.error("cannot prepare the demo output folder: %s (pass --y4m PATH)", exc)
        return 2
    sinks = [f"mjpeg:{args.port}", f"y4m:{y4m}"]
    try:  # add the virtual device only where one exists, so the demo works everywhere
        probe = VirtualCameraSink()
        probe.open(args.width, args.height, 30)
        probe.close()
        sinks.append("virtual")
    except Exception as exc:
        log.info("no virtual camera device (%s); showing preview and y4m only", str(exc).splitlines()[0])
    data = deep_merge({"source": {"device": "demo"}, "output": {"sinks": sinks, "width": args.width,
                                                                 "height": args.height}}, _checked_overrides(args))
    try:
        config = build_config(data, origin="demo")
    except ConfigError as exc:
        raise SystemExit(f"invalid configuration:\n{exc}") from None
    banner = (f"demo: playing the bundled clip through preset '{config.preset}'. Open the preview page above; "
              f"Chromium can read {sinks[1][4:]} with --use-file-for-fake-video-capture. Ctrl+C stops.")
    # The demo clip is no camera to save: keep it playing whether or not an app reads the virtual camera.
    return _run_daemon(config, banner, seconds=args.seconds, on_demand=False)


def cmd_devices(args: argparse.Namespace) -> int:
    from .sources import list_cameras

    cams = list_cameras()
    loopbacks = [c for c in cams if "loopback" in c.lower() or "vcam" in c.lower() or "dummy" in c.lower()]
    print("cameras:", *(cams or ["(none found)"]), sep="\n  ")
    print("virtual (loopback) devices:", *(loopbacks or ["(none: sudo modprobe v4l2loopback exclusive_caps=1 "
                                                          "card_label=vcam)"]), sep="\n  ")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from .registry import list_models
    from .segmenter import pick_tier

    picked, reason = pick_tier()
    default = picked.name if picked else None
    rows = []
    for card in list_models():
        problem = card.verify()
        if default is None and card.task == "segmentation" and problem is None:
            default = card.name
            reason = f"{reason}; highest-priority working segmenter"
        rows.append({"name": card.name, "task": card.task, "path": str(card.path),
                     "input_size": list(card.input_size) if card.input_size else None, "tier": card.tier,
                     "licence": card.licence, "ok": problem is None, "problem": problem})
    for row in rows:
        row["default"] = row["name"] == default
    if args.json:
        print(json.dumps({"models": rows, "default_segmenter": default, "why": reason}, indent=2))
    else:
        for r in rows:
            flag = "*" if r["default"] else " "
            size = "x".join(map(str, r["input_size"])) if r["input_size"] else "-"
            print(f"{flag} {r['name']:<34} {r['task']:<16} {r['tier']:<9} {size:<9} {r['path']}"
                  + ("" if r["ok"] else f"  PROBLEM: {r['problem']}"))
        print(f"* = default segmenter ({reason})")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import run_bench
    from .config import ConfigError
    from .segmenter import ModelError
    from .sources import SourceError

    w, h = _parse_size(args.size)
    camera_size = _parse_size(args.camera_size) if args.camera_size else None
    try:
        result = run_bench(source=args.source, size=(w, h), frames=args.frames, preset=args.preset,
                           segmenter=args.model or "auto", overrides=_checked_overrides(args), camera_size=camera_size,
                           reference=args.reference)
    except (ConfigError, ModelError, SourceError, LookupError) as exc:  # bad --model, --set, --source: one line
        raise SystemExit(f"vcam bench: {exc}") from None
    if not args.json:
        for key, value in result.items():
            print(f"{key:>22}: {value}")
    print(json.dumps(result))
    return 0


def cmd_soak(args: argparse.Namespace) -> int:
    from .soak import run_soak

    result = run_soak(args.minutes, load=args.load, file_sink=not args.no_file)
    if not args.json:
        for key, value in result.items():
            print(f"{key:>24}: {value}")
    print(json.dumps(result))
    return 0 if result["ok"] else 1


def _add_measurement_commands(sub) -> None:
    """``vcam bench`` and ``vcam soak``: the commands behind the performance and reliability figures."""
    p = sub.add_parser("bench", help="measure per-stage and whole-frame cost at one thread")
    p.add_argument("--source", default="demo", help="video file or demo")
    p.add_argument("--size", default="1280x720", help="output WIDTHxHEIGHT")
    p.add_argument("--camera-size", help="downscale source frames to WIDTHxHEIGHT first (a low-res camera)")
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--preset", default="blur")
    p.add_argument("--model", help="segmenter to use (default: auto)")
    p.add_argument("--set", action="append", metavar="SECTION.FIELD=VALUE")
    p.add_argument("--reference", action="store_true",
                   help="also time Linux-Fake-Background-Webcam's blur mode on the same frames and print the ratio")
    p.add_argument("--json", action="store_true", help="print only the JSON line")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("soak", help="run the demo through every sink for N minutes; report drops, timing, RSS")
    p.add_argument("--minutes", type=float, default=2.0)
    p.add_argument("--load", type=int, default=0, help="extra busy processes loading other cores")
    p.add_argument("--no-file", action="store_true",
                   help="leave out the mp4 file sink (its muxer's index grows with every frame until it is closed)")
    p.add_argument("--json", action="store_true", help="print only the JSON line")
    p.set_defaults(func=cmd_soak)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vcam", description="real-time virtual camera with background effects")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", help="config file (default ~/.config/vcam/config.toml)")
        p.add_argument("--preset", help="preset name (blur, blur-strong, office, green-screen, off, or yours)")
        p.add_argument("--model", help="segmenter: auto, a tier, a model name or an .onnx path")
        p.add_argument("--set", action="append", metavar="SECTION.FIELD=VALUE", help="override a config field")

    p = sub.add_parser("run", help="run the daemon (camera -> effects -> virtual camera)")
    common(p)
    p.add_argument("--source", help="camera index, /dev/videoN, video file, or demo")
    p.add_argument("--sink", action="append", help="output sink (repeatable): virtual[:DEV], y4m:PATH, "
                                                   "mjpeg:PORT, file:PATH")
    p.add_argument("--size", help="output WIDTHxHEIGHT")
    p.add_argument("--fps", type=float, help="output frame rate")
    p.add_argument("--seconds", type=float, help="stop after this many seconds")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("demo", help="play the bundled demo clip through the effects to a preview page")
    common(p)
    p.add_argument("--port", type=int, default=8765, help="preview port on 127.0.0.1")
    p.add_argument("--y4m", help="also write the output here (default: $XDG_RUNTIME_DIR or ~/.cache, vcam/demo.y4m)")
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=720)
    p.add_argument("--seconds", type=float, help="stop after this many seconds")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("devices", help="list cameras and virtual camera devices")
    p.set_defaults(func=cmd_devices)

    p = sub.add_parser("models", help="list installed models")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_models)

    from .cli_control import add_commands  # status, toggle, preset, set, pause, resume, reload, doctor, ...

    add_commands(sub)

    _add_measurement_commands(sub)
    return parser


EXIT_BROKEN_PIPE = 141  # what a shell reports for a command stopped by SIGPIPE (`vcam status | head -1`)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    try:
        code = args.func(args)
        sys.stdout.flush()
    except BrokenPipeError:  # the reader of our output went away (`| head`): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so that the interpreter's final flush does not fail again
        return EXIT_BROKEN_PIPE
    return code


if __name__ == "__main__":
    sys.exit(main())
