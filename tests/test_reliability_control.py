"""The control API against a hostile or careless local client of the same user: an overall deadline per
connection (not per read), stalled clients cannot lock out the next one, huge integers and deep JSON get a clean
error, and the accept loop survives running out of file descriptors."""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import vcam.control
from vcam.config import ConfigError, build_config
from vcam.control import ControlClient, ControlServer
from vcam.live_config import LiveConfig


def _handler(live: LiveConfig):
    def handle(request: dict[str, Any]) -> dict[str, Any]:
        try:
            if request.get("cmd") == "set":
                live.set_field(request["field"], request["value"])
        except ConfigError as exc:
            return {"ok": False, "error": str(exc)}
        return {"ok": True, "status": live.summary()}
    return handle


@pytest.fixture
def served(monkeypatch) -> Iterator[tuple[ControlServer, LiveConfig]]:
    monkeypatch.setattr(vcam.control, "CLIENT_TIMEOUT_S", 0.5)
    root = Path(tempfile.mkdtemp(prefix="vc"))
    live = LiveConfig(build_config(), lambda config: None)
    server = ControlServer(_handler(live), address=root / "vcam" / "control.sock")
    server.start()
    yield server, live
    server.stop()


def _raw(server: ControlServer) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(server.address))
    return sock


def test_a_client_that_drips_bytes_is_cut_at_the_overall_deadline(served) -> None:
    server, _ = served
    sock = _raw(server)
    closed = False
    for _ in range(100):  # 100 drips 0.1 s apart: 20 times the 0.5 s deadline, each well inside it
        try:
            sock.sendall(b" ")
        except OSError:
            closed = True
            break
        if select.select([sock], [], [], 0.1)[0]:
            data = sock.recv(65536)
            closed = data == b"" or b"timeout" in data
            break
    sock.close()
    assert closed, "the server kept a dripping client past its deadline"


def test_stalled_clients_cannot_lock_out_the_next_one(served) -> None:
    server, _ = served
    stalled = [_raw(server) for _ in range(3 * vcam.control.MAX_CONNECTIONS)]
    try:
        reply = ControlClient(server.address, timeout=10).request("status")
        assert reply["ok"] is True
    finally:
        for sock in stalled:
            sock.close()


@pytest.mark.parametrize("line, message", [
    (b'{"cmd": "set", "field": "blur.strength", "value": 1' + b"0" * 5000 + b"}\n", "not JSON"),
    (b"[" * 30000 + b"]" * 30000 + b"\n", "nested too deeply"),
    (b'{"cmd": "set", "field": "background.image", "value": ' + b"[" * 900 + b"]" * 900 + b"}\n", "nested"),
    (b'{"cmd": "set", "field": "blur.strength", "value": 1' + b"0" * 4000 + b"}\n", "blur_strength"),
])
def test_huge_numbers_and_deep_json_get_a_clean_error(served, line: bytes, message: str) -> None:
    server, live = served
    before = live.config
    sock = _raw(server)
    sock.settimeout(10)
    sock.sendall(line)
    reply = json.loads(sock.recv(1 << 20).split(b"\n")[0])
    sock.close()
    assert reply["ok"] is False and message in reply["error"], reply
    assert live.config is before
    assert ControlClient(server.address, timeout=10).request("status")["ok"]  # still serving


EMFILE_SCRIPT = textwrap.dedent("""
    import os, resource, sys
    from pathlib import Path
    from vcam.control import ControlServer
    from vcam.sinks import MjpegPreviewSink
    server = ControlServer(lambda request: {"ok": True, "status": {}}, address=Path(sys.argv[1]))
    server.start()
    preview = MjpegPreviewSink(port=0, token="t")
    preview.open(64, 64, 30)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
    hogs = []
    try:
        while True:
            hogs.append(os.open(os.devnull, os.O_RDONLY))
    except OSError:
        pass
    print(preview.port, flush=True)
    sys.stdin.readline()  # the test connects while no descriptor is left, then lets us free them
    for fd in hogs:
        os.close(fd)
    print("freed", flush=True)
    sys.stdin.readline()
""")


def _http_get(port: int, path: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        return sock.recv(65536)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_NOFILE exhaustion as on Linux")
def test_accept_loops_survive_running_out_of_file_descriptors(tmp_path: Path) -> None:
    root = Path(tempfile.mkdtemp(prefix="vc"))
    address = root / "vcam" / "control.sock"
    proc = subprocess.Popen([sys.executable, "-c", EMFILE_SCRIPT, str(address)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline())
        starved = []  # connections the daemon must accept while it has no descriptor left
        for _ in range(3):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(str(address))
            starved.append(sock)
            starved.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        time.sleep(0.5)  # let both accept loops hit EMFILE a few times
        proc.stdin.write("free\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "freed"
        assert ControlClient(address, timeout=10).request("status")["ok"] is True
        assert _http_get(port, "/?token=t").startswith(b"HTTP/1.0 200")
        for sock in starved:
            sock.close()
    finally:
        proc.stdin.close()
        proc.wait(10)
    assert "Traceback" not in proc.stderr.read()
