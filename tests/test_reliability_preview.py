"""The preview server against other local users: a deadline for the request headers, a connection cap per
client (the connecting user), and a token check that answers 403 to any query text instead of raising."""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from vcam.sinks import MjpegPreviewSink

from .reliability_support import wait_until


@pytest.fixture
def preview() -> Iterator[MjpegPreviewSink]:
    sink = MjpegPreviewSink(port=0, token="secret-token")
    sink.open(64, 64, 30)
    yield sink
    sink.close()


def _closed_by_server(sock: socket.socket) -> bool:
    if not select.select([sock], [], [], 0)[0]:
        return False
    try:
        return sock.recv(65536) == b""
    except OSError:
        return True


def test_headers_that_never_finish_are_cut_at_the_deadline(preview: MjpegPreviewSink) -> None:
    preview._server.header_timeout = 0.5
    sock = socket.create_connection(("127.0.0.1", preview.port), timeout=10)
    sock.sendall(b"GET /?token=secret-token HTTP/1.1\r\n")
    closed = False
    for _ in range(100):  # a header byte every 0.1 s for up to 10 s: each read is quick, the whole is not
        try:
            sock.sendall(b"X")
        except OSError:
            closed = True
            break
        if select.select([sock], [], [], 0.1)[0]:
            closed = True
            break
    sock.close()
    assert closed, "a client dripping header bytes kept its connection"


def test_each_client_has_a_connection_cap(preview: MjpegPreviewSink) -> None:
    server = preview._server
    server.header_timeout, server.max_per_client = 600.0, 4
    socks = [socket.create_connection(("127.0.0.1", preview.port), timeout=10) for _ in range(12)]
    try:
        closed: set[int] = set()

        def refused() -> int:
            closed.update(i for i, s in enumerate(socks) if i not in closed and _closed_by_server(s))
            return len(closed)

        wait_until(lambda: refused() >= 8)
        assert refused() == 8  # the first 4 stay open, waiting for their headers
        if os.getuid() == 0 and sys.platform.startswith("linux"):  # another user is not held by our cap
            code = ("import socket; s = socket.create_connection(('127.0.0.1', %d), timeout=10); "
                    "s.sendall(b'GET /?token=secret-token HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\n\\r\\n'); "
                    "print(s.recv(100)[:12].decode())" % preview.port)
            other = subprocess.run(["/usr/bin/python3", "-I", "-c", code], capture_output=True, text=True,
                                   timeout=60, preexec_fn=lambda: (os.setgid(65534), os.setuid(65534)))
            assert other.stdout.strip() == "HTTP/1.0 200", other.stderr
    finally:
        for sock in socks:
            sock.close()


@pytest.mark.parametrize("query", ["token=%C3%A9", "token=%ff%fe", "token=\u00e9".encode().decode("latin-1"),
                                   "token=a&token=b", "token", "token=" + "x" * 5000])
def test_any_token_text_gets_a_403_not_a_traceback(preview: MjpegPreviewSink, query: str) -> None:
    with socket.create_connection(("127.0.0.1", preview.port), timeout=10) as sock:
        sock.sendall(f"GET /?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode("latin-1"))
        reply = sock.recv(65536)
    assert reply.startswith(b"HTTP/1.0 403"), reply[:80]
