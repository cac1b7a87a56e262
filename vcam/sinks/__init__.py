"""Output sinks, registered by name and chosen with specs like ``virtual``, ``y4m:/tmp/out.y4m``,
``mjpeg:8765`` or ``file:out.mp4``."""

from __future__ import annotations

from collections.abc import Callable

from .base import Sink, SinkError, SinkWorker
from .file import FileSink
from .mjpeg import MjpegPreviewSink
from .virtual import VirtualCameraSink
from .y4m import Y4MSink

SINKS: dict[str, Callable[[str], Sink]] = {}
# How each kind is written in a spec ("y4m:PATH") and what its argument must be: (usage, check(ARG) -> problem)
SINK_ARGS: dict[str, tuple[str, Callable[[str], str | None]]] = {}


def _any(arg: str) -> str | None:
    return None


MAX_PATH = 4096  # Linux's PATH_MAX: a longer path cannot be opened


def _path(arg: str) -> str | None:
    if not arg:
        return "needs a path"
    return f"path is too long ({len(arg)} characters, at most {MAX_PATH})" if len(arg) > MAX_PATH else None


def _port(arg: str) -> str | None:
    return None if not arg or (arg.isdigit() and int(arg) < 65536) else f"port must be 0-65535, got {arg!r}"


def register_sink(kind: str, factory: Callable[[str], Sink], usage: str = "",
                  check_arg: Callable[[str], str | None] = _any) -> None:
    """Make ``KIND:ARG`` specs build a sink with ``factory(ARG)`` (ARG is "" when absent). ``usage`` shows how
    to write the spec (default ``KIND[:ARG]``); ``check_arg`` says what is wrong with an ARG (None: fine); config
    validation uses both, so a registered sink is accepted wherever sinks are named."""
    SINKS[kind] = factory
    SINK_ARGS[kind] = (usage or f"{kind}[:ARG]", check_arg)


register_sink("virtual", lambda arg: VirtualCameraSink(device=arg or None), "virtual[:DEV]")
register_sink("y4m", Y4MSink, "y4m:PATH", _path)
register_sink("mjpeg", lambda arg: MjpegPreviewSink(port=int(arg) if arg else 8765), "mjpeg:PORT", _port)
register_sink("file", FileSink, "file:PATH", _path)


def sink_spec_problem(spec: str) -> str | None:
    """What is wrong with a sink spec, or None when a registered sink accepts it."""
    kind, _, arg = spec.partition(":")
    if kind not in SINKS:
        return f"unknown sink {spec!r}; allowed: " + ", ".join(usage for usage, _ in SINK_ARGS.values())
    usage, check = SINK_ARGS[kind]
    problem = check(arg)
    return None if problem is None else f"sink {kind!r} {problem}: {usage}"


def make_sink(spec: str) -> Sink:
    problem = sink_spec_problem(spec)
    if problem is not None:
        raise SinkError(problem)
    kind, _, arg = spec.partition(":")
    return SINKS[kind](arg)


__all__ = ["Sink", "SinkError", "SinkWorker", "make_sink", "register_sink", "sink_spec_problem", "SINKS",
           "FileSink", "MjpegPreviewSink", "VirtualCameraSink", "Y4MSink"]
