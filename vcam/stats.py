"""The daemon's counters. Each field is written by one part only (capture, processing or output); status reads
them all."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass
class DaemonStats:
    frames_captured: int = 0  # capture
    source_state: str = "starting"  # capture: starting | live | reconnecting | paused | idle | stopped
    last_error: str | None = None  # capture (camera) and start-up (sinks)
    source_gave_up: bool = False  # capture: the camera was missing at start and source.on_missing = 'exit'
    frames_processed: int = 0  # processing
    process_ms: float = 0.0  # processing: wall ms of the last frame
    stage_ms: dict[str, float] = field(default_factory=dict)  # processing: CPU ms per stage of the last frame
    fail_closed: str | None = None  # processing: why the last frame is the fail-closed picture (None: it is not)
    mask_problem: str | None = None  # processing: why the last frame had no usable mask of its own
    frames_fail_closed: int = 0  # processing
    frames_sent: int = 0  # output
    frames_repeated: int = 0  # output
    placeholder_frames: int = 0  # output
    # Recent history for soak tests and status: processing time per frame, and the output clock's intervals.
    recent_process_ms: deque = field(default_factory=lambda: deque(maxlen=4096))
    recent_output_interval_ms: deque = field(default_factory=lambda: deque(maxlen=4096))
