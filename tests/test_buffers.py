from __future__ import annotations

import threading

import numpy as np

from vcam.buffers import TripleBuffer


def test_reader_gets_newest_and_never_a_queue() -> None:
    tb = TripleBuffer()
    for value in range(5):
        tb.publish_copy(np.full((4, 6, 3), value, np.uint8))
    frame = tb.take(timeout=0)
    assert frame is not None and frame[0, 0, 0] == 4  # the newest, the rest were overwritten
    assert tb.take(timeout=0) is None  # nothing newer
    assert tb.published == 5


def test_buffers_are_reused() -> None:
    tb = TripleBuffer()
    seen = set()
    for value in range(10):
        tb.publish_copy(np.full((4, 6, 3), value, np.uint8))
        frame = tb.take(timeout=0)
        seen.add(id(frame))
    assert len(seen) <= 3


def test_reader_owned_frame_is_not_overwritten_by_writer() -> None:
    tb = TripleBuffer()
    tb.publish_copy(np.full((2, 2, 3), 1, np.uint8))
    held = tb.take(timeout=0)
    for value in range(2, 6):
        tb.publish_copy(np.full((2, 2, 3), value, np.uint8))
    assert held is not None and held[0, 0, 0] == 1


def test_take_waits_for_a_writer_thread() -> None:
    tb = TripleBuffer()
    timer = threading.Timer(0.05, lambda: tb.publish_copy(np.ones((2, 2, 3), np.uint8)))
    timer.start()
    assert tb.take(timeout=2.0) is not None
    timer.join()


def test_shape_change_reallocates() -> None:
    tb = TripleBuffer()
    tb.publish_copy(np.zeros((2, 2, 3), np.uint8))
    tb.publish_copy(np.zeros((4, 8, 3), np.uint8))
    frame = tb.take(timeout=0)
    assert frame is not None and frame.shape == (4, 8, 3)
