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


def register_sink(kind: str, factory: Callable[[str], Sink]) -> None:
    """Make ``KIND:ARG`` specs build a sink with ``factory(ARG)`` (ARG is "" when absent)."""
    SINKS[kind] = factory


register_sink("virtual", lambda arg: VirtualCameraSink(device=arg or None))
register_sink("y4m", Y4MSink)
register_sink("file", FileSink)
register_sink("mjpeg", lambda arg: MjpegPreviewSink(port=int(arg) if arg else 8765))


def make_sink(spec: str) -> Sink:
    kind, _, arg = spec.partition(":")
    if kind not in SINKS:
        raise SinkError(f"unknown sink {spec!r}: use one of " + ", ".join(f"{k}[:ARG]" for k in SINKS))
    if kind in ("y4m", "file") and not arg:
        raise SinkError(f"sink {kind} needs a path: {kind}:PATH")
    return SINKS[kind](arg)


__all__ = ["Sink", "SinkError", "SinkWorker", "make_sink", "register_sink", "SINKS",
           "FileSink", "MjpegPreviewSink", "VirtualCameraSink", "Y4MSink"]
