"""Local preview: an MJPEG stream and a small page, served on 127.0.0.1 only.

Every URL needs the per-run token printed at start (``?token=...``), and requests whose Host header is not
local are refused, so a web page elsewhere cannot read the camera through DNS rebinding. Frames are JPEG-encoded
only while a client is watching.

Other local users can connect to the port, so the server bounds what a connection costs: its request line and
headers must arrive within ``header_timeout`` s of the accept (an overall deadline, not per read), each client
(the connecting user, on Linux; else the address) may hold ``max_per_client`` connections and all together
``max_connections``, and an accept that fails for lack of file descriptors is retried after a pause.
"""

from __future__ import annotations

import errno
import hmac
import logging
import secrets
import socket
import sys
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import parse_qs, urlsplit

import cv2
import numpy as np

from .base import SinkError

log = logging.getLogger(__name__)

LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]"}
BOUNDARY = "vcamframe"
HEADER_TIMEOUT_S = 5.0
MAX_PER_CLIENT = 8
MAX_CONNECTIONS = 32
ACCEPT_BACKOFF_S = 0.1
_OUT_OF_DESCRIPTORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


class _Stream:
    """The newest JPEG of one view, handed to any number of client threads."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.jpeg: bytes | None = None
        self.seq = 0
        self.clients = 0

    def put(self, jpeg: bytes) -> None:
        with self.cond:
            self.jpeg, self.seq = jpeg, self.seq + 1
            self.cond.notify_all()

    def wait_newer(self, seq: int, timeout: float) -> tuple[int, bytes | None]:
        with self.cond:
            self.cond.wait_for(lambda: self.seq != seq, timeout)
            return self.seq, self.jpeg


class MjpegPreviewSink:
    """``mjpeg:PORT`` (PORT 0 picks a free one). ``debug_frame`` optionally supplies the mask debug view."""

    def __init__(self, port: int = 8765, quality: int = 80, token: str | None = None,
                 debug_frame: Callable[[], np.ndarray | None] | None = None) -> None:
        self.port, self.quality = port, quality
        self.token = token or secrets.token_urlsafe(16)
        self.debug_frame = debug_frame
        self.description = f"mjpeg:{port}"
        self.streams = {"main": _Stream(), "debug": _Stream()}
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/?token={self.token}"

    def open(self, width: int, height: int, fps: float) -> None:
        handler = type("Handler", (_PreviewHandler,), {"sink": self})
        try:
            self._server = _PreviewServer(("127.0.0.1", self.port), handler)
        except OSError as exc:
            raise SinkError(f"preview port {self.port} on 127.0.0.1 is unavailable ({exc.strerror}): "
                            "pick another with mjpeg:PORT") from exc
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.description = f"mjpeg:{self.port}"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="preview-http",
                         daemon=True).start()
        log.info("preview at %s", self.url)

    def write(self, frame_bgr: np.ndarray) -> None:
        params = [cv2.IMWRITE_JPEG_QUALITY, self.quality]
        if self.streams["main"].clients:
            self.streams["main"].put(cv2.imencode(".jpg", frame_bgr, params)[1].tobytes())
        if self.streams["debug"].clients and self.debug_frame is not None:
            debug = self.debug_frame()
            if debug is not None:
                self.streams["debug"].put(cv2.imencode(".jpg", debug, params)[1].tobytes())

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def tcp_peer_uid(peer: tuple[str, int], local: tuple[str, int]) -> int | None:
    """The uid owning the client end of a loopback TCP connection (Linux ``/proc/net/tcp``), else None."""
    if not sys.platform.startswith("linux"):
        return None
    want = (f"0100007F:{peer[1]:04X}", f"0100007F:{local[1]:04X}")
    try:
        with open("/proc/net/tcp", encoding="ascii") as table:
            for line in table:
                fields = line.split()
                if len(fields) > 7 and (fields[1], fields[2]) == want:
                    return int(fields[7])
    except (OSError, ValueError):
        return None
    return None


class _PreviewServer(ThreadingHTTPServer):
    """The HTTP server with per-client and total connection caps, a header deadline and EMFILE back-off."""

    daemon_threads = True
    header_timeout = HEADER_TIMEOUT_S
    max_per_client = MAX_PER_CLIENT
    max_connections = MAX_CONNECTIONS

    def __init__(self, address: tuple[str, int], handler: type) -> None:
        super().__init__(address, handler)
        self._lock = threading.Lock()
        self._client_of: dict[socket.socket, object] = {}
        self._per_client: dict[object, int] = {}
        self._deadlines: dict[socket.socket, float] = {}  # connections whose headers have not arrived yet
        self.refused = 0
        self.accept_errors = 0

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        try:
            return super().get_request()
        except OSError as exc:
            if exc.errno in _OUT_OF_DESCRIPTORS:
                self.accept_errors += 1
                if self.accept_errors == 1 or self.accept_errors % 100 == 0:
                    log.error("preview: cannot accept a connection (%s; %d times so far); retrying",
                              exc.strerror, self.accept_errors)
                time.sleep(ACCEPT_BACKOFF_S)  # the listening socket stays readable: do not spin
            raise  # socketserver drops this accept and goes on serving

    def verify_request(self, request: socket.socket, client_address: tuple[str, int]) -> bool:  # type: ignore[override]
        uid = tcp_peer_uid(client_address, self.server_address[:2])
        client = ("uid", uid) if uid is not None else ("addr", client_address[0])
        with self._lock:
            if len(self._client_of) >= self.max_connections or self._per_client.get(client, 0) >= self.max_per_client:
                self.refused += 1
                return False
            self._client_of[request] = client
            self._per_client[client] = self._per_client.get(client, 0) + 1
            self._deadlines[request] = time.monotonic() + self.header_timeout
        return True

    def headers_done(self, request: socket.socket) -> None:
        with self._lock:
            self._deadlines.pop(request, None)

    def service_actions(self) -> None:
        """Called by serve_forever every poll: cut connections whose headers are late."""
        now = time.monotonic()
        with self._lock:
            late = [r for r, deadline in self._deadlines.items() if deadline <= now]
            for request in late:
                del self._deadlines[request]
        for request in late:
            try:
                request.shutdown(socket.SHUT_RDWR)  # the handler's read returns; it closes the connection
            except OSError:
                pass

    def shutdown_request(self, request: socket.socket) -> None:  # type: ignore[override]
        with self._lock:
            self._deadlines.pop(request, None)
            client = self._client_of.pop(request, None)
            if client is not None:
                self._per_client[client] -= 1
                if not self._per_client[client]:
                    del self._per_client[client]
        super().shutdown_request(request)


class _PreviewHandler(BaseHTTPRequestHandler):
    sink: MjpegPreviewSink
    server_version = "vcam-preview"

    def log_message(self, format: str, *args: object) -> None:  # route http.server's stderr noise to logging
        log.debug("preview: " + format, *args)

    def parse_request(self) -> bool:
        ok = super().parse_request()
        if isinstance(self.server, _PreviewServer):
            self.server.headers_done(self.request)
        return ok

    def _token_ok(self) -> bool:
        """Constant-time token check that cannot raise (any query text, any encoding)."""
        try:
            token = parse_qs(urlsplit(self.path).query).get("token", [""])[0]
        except ValueError:
            return False
        return hmac.compare_digest(token.encode("utf-8", "surrogateescape"), self.sink.token.encode())

    def _allowed(self) -> bool:
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0]
        if host not in LOCAL_HOSTS:
            self.send_error(HTTPStatus.FORBIDDEN, "non-local Host header")
            return False
        if not self._token_ok():
            self.send_error(HTTPStatus.FORBIDDEN, "missing or wrong token")
            return False
        return True

    def do_GET(self) -> None:
        if not self._allowed():
            return
        route = urlsplit(self.path).path
        if route == "/":
            page = (resources.files("vcam") / "assets" / "preview.html").read_text()
            self._send(HTTPStatus.OK, "text/html; charset=utf-8", page.replace("{{TOKEN}}", self.sink.token).encode())
        elif route in ("/stream.mjpg", "/debug.mjpg"):
            self._stream(self.sink.streams["main" if route == "/stream.mjpg" else "debug"])
        else:
            self.send_error(HTTPStatus.NOT_FOUND)

    def _send(self, status: HTTPStatus, ctype: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _stream(self, stream: _Stream) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        with stream.cond:
            stream.clients += 1
        seq = -1
        try:
            while self.sink._server is not None:
                seq, jpeg = stream.wait_newer(seq, timeout=1.0)
                if jpeg is None:
                    continue
                self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                                 .encode() + jpeg + b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            with stream.cond:
                stream.clients -= 1
