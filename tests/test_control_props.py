"""Property tests of the control API: arbitrary requests (wrong types, unknown fields, out-of-range values,
garbage bytes) never crash the daemon's handler, always get a clear reply, and a rejected one changes nothing."""

from __future__ import annotations

import json
import time

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vcam.config import build_config
from vcam.control import COMMANDS, ControlServer
from vcam.daemon import Daemon
from vcam.live_config import FIELD_ALIASES, LiveConfig
from vcam.session import DaemonSession

from .conftest import read_demo_frames


class StillCamera:
    description = "still camera"
    fps = 30.0

    def __init__(self, frame: np.ndarray) -> None:
        self.frame = frame

    def open(self) -> None:
        pass

    def read(self) -> np.ndarray:
        time.sleep(1 / 30)
        return self.frame

    def close(self) -> None:
        pass


def _session() -> DaemonSession:
    config = build_config({"output": {"sinks": ["virtual"]}})
    daemon = Daemon(config, source=StillCamera(read_demo_frames(1)[0]), sinks=[])  # not started: state only
    return DaemonSession(daemon, LiveConfig(config, daemon.apply_config))


SESSION = _session()
FIELDS = [*FIELD_ALIASES, "background.blur_strength", "background.mode", "background.color", "beauty.enabled",
          "output.width", "output.sinks", "source.device", "mask.nonexistent", "preset", "presets.x", "", ".", "a..b"]
json_values = st.recursive(st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=True)
                           | st.text(max_size=30),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                        max_size=4),
                           max_leaves=12)
requests = st.fixed_dictionaries(
    {"cmd": st.sampled_from([*COMMANDS, "", "STATUS", "rm -rf"]) | json_values},
    optional={"what": json_values | st.sampled_from(["blur", "beauty", "mirror", "pause"]),
              "on": json_values, "name": json_values | st.sampled_from(["office", "off", "nope"]),
              "field": st.sampled_from(FIELDS) | json_values, "value": json_values,
              "extra": json_values})


def _state(session: DaemonSession) -> tuple:
    return session.live.config, session.live.summary()["runtime_changes"], session.daemon.capture.holds


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests)
def test_any_request_gets_a_reply_and_a_rejection_changes_nothing(request: dict) -> None:
    before = _state(SESSION)
    reply = SESSION.handle(dict(request))
    assert isinstance(reply, dict) and isinstance(reply.get("ok"), bool)
    json.dumps(reply, default=str)  # the reply is sendable
    if not reply["ok"]:
        assert isinstance(reply["error"], str) and reply["error"]
        assert _state(SESSION) == before


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_on_the_wire_get_an_error_or_a_reply(raw: bytes) -> None:
    server = ControlServer(SESSION.handle, address=None)  # not started: only its request parser is used
    reply = server.answer(raw)
    assert isinstance(reply.get("ok"), bool)
    if not reply["ok"]:
        assert reply["error"]
