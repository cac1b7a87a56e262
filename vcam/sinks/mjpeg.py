"""Local preview: an MJPEG stream and a small page, served on 127.0.0.1 only.

Every URL needs the per-run token printed at start (``?token=...``), and requests whose Host header is not
local are refused, so a web page elsewhere cannot read the camera through DNS rebinding. Frames are JPEG-encoded
only while a client is watching.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import threading
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
            self._server = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        except OSError as exc:
            raise SinkError(f"preview port {self.port} on 127.0.0.1 is unavailable ({exc.strerror}): "
                            "pick another with mjpeg:PORT") from exc
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.description = f"mjpeg:{self.port}"
        threading.Thread(target=self._server.serve_forever, name="preview-http", daemon=True).start()
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


class _PreviewHandler(BaseHTTPRequestHandler):
    sink: MjpegPreviewSink
    server_version = "vcam-preview"

    def log_message(self, format: str, *args: object) -> None:  # route http.server's stderr noise to logging
        log.debug("preview: " + format, *args)

    def _allowed(self) -> bool:
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0]
        if host not in LOCAL_HOSTS:
            self.send_error(HTTPStatus.FORBIDDEN, "non-local Host header")
            return False
        token = parse_qs(urlsplit(self.path).query).get("token", [""])[0]
        if not hmac.compare_digest(token, self.sink.token):
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
