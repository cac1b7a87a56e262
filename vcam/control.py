"""The local control API: one JSON object per line over a per-user socket.

Unix: a stream socket ``$XDG_RUNTIME_DIR/vcam/control.sock`` (directory 0700, socket 0600); every connection's
peer credentials are checked (``SO_PEERCRED`` on Linux, ``LOCAL_PEERCRED`` on macOS) and other users are
refused even if the file modes were loosened. Windows (no credentials on AF_UNIX there): a TCP port on
127.0.0.1 and a random per-run token in ``%LOCALAPPDATA%\\vcam\\control.json`` (a per-user directory); every
request must carry the token.

Requests (``{"cmd": ...}``): status, toggle {what}, blur {on}, beauty {on}, preset {name}, set {field, value},
pause, resume, reload, ping. Replies: ``{"ok": true, "status": {...}}`` or ``{"ok": false, "error": "..."}``.
A rejected request changes nothing.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import secrets
import selectors
import socket
import stat
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 64 * 1024
CLIENT_TIMEOUT_S = 5.0  # a connection is closed this long after it was accepted, whatever it sends
MAX_CONNECTIONS = 8  # open at once; a new one closes the oldest
MAX_REQUESTS_PER_CONNECTION = 16
SELECT_INTERVAL_S = 0.1
ACCEPT_BACKOFF_S = 0.1
COMMANDS = ("ping", "status", "toggle", "blur", "beauty", "preset", "set", "pause", "resume", "reload")

Handler = Callable[[dict[str, Any]], dict[str, Any]]


class DaemonNotRunning(ConnectionError):
    """Nobody answers on the control socket."""


class ControlError(RuntimeError):
    """The daemon answered with an error (the request changed nothing)."""


# ----- where ---------------------------------------------------------------------------------------------
def use_tcp() -> bool:
    return sys.platform == "win32"


def runtime_dir() -> Path:
    """The per-user directory for the socket: ``$XDG_RUNTIME_DIR/vcam`` (else a private dir in TMPDIR)."""
    if use_tcp():
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "vcam"
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and Path(xdg).is_dir():
        return Path(xdg) / "vcam"
    return Path(tempfile.gettempdir()) / f"vcam-{os.getuid()}"


def default_address() -> Path:
    """The socket path (Unix) or the port-and-token file (Windows)."""
    return runtime_dir() / ("control.json" if use_tcp() else "control.sock")


def private_dir(path: Path) -> None:
    """Create ``path`` as a 0700 directory owned by us; refuse one someone else owns or a symlink."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise PermissionError(f"{path} is not a plain directory; remove it")
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise PermissionError(f"{path} belongs to uid {info.st_uid}, not you; remove it")
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(path, 0o700)


# ----- peer credentials ----------------------------------------------------------------------------------
def peer_uid(conn: socket.socket) -> int | None:
    """The uid of the process at the other end of a Unix socket (None where the OS cannot tell)."""
    if sys.platform.startswith("linux"):
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _pid, uid, _gid = struct.unpack("3i", creds)
        return uid
    if sys.platform == "darwin":  # struct xucred {u_int cr_version; uid_t cr_uid; ...}; SOL_LOCAL=0, LOCAL_PEERCRED=1
        creds = conn.getsockopt(0, 1, 76)
        _version, uid = struct.unpack_from("Ii", creds)
        return uid
    return None


def peer_allowed(conn: socket.socket) -> bool:
    uid = peer_uid(conn)
    return uid is not None and uid == os.getuid()


# ----- server --------------------------------------------------------------------------------------------
class _Conn:
    """One client connection: what it sent so far and when it must be done."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock, self.deadline, self.buf, self.requests = sock, deadline, b"", 0


class ControlServer:
    """Answers requests with ``handler`` on one background thread that multiplexes every connection.

    Each connection has an overall deadline (``CLIENT_TIMEOUT_S`` from its accept, not per read) and at most
    ``MAX_CONNECTIONS`` are open: a new client closes the oldest, so clients that connect and stall cannot lock
    out the next one (the tray, ``vcam status``). An accept that fails (out of file descriptors) is retried
    after a pause; the server never stops on it.
    """

    def __init__(self, handler: Handler, address: Path | None = None, tcp: bool | None = None) -> None:
        self.handler = handler
        self.address = address or default_address()
        self.tcp = use_tcp() if tcp is None else tcp
        self.token = secrets.token_hex(32) if self.tcp else None
        self.refused = 0  # connections refused for another user's credentials or a bad token
        self.accept_errors = 0
        self.evicted = 0  # connections closed to make room for a newer one
        self.client_timeout = CLIENT_TIMEOUT_S
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._conns: dict[int, _Conn] = {}

    def start(self) -> None:
        private_dir(self.address.parent)
        self._sock = self._bind_tcp() if self.tcp else self._bind_unix()
        self._sock.listen(16)
        self._sock.setblocking(False)
        self._thread = threading.Thread(target=self._serve, name="control", daemon=True)
        self._thread.start()
        log.info("control API on %s", self.address)

    def _bind_unix(self) -> socket.socket:
        path = self.address
        if path.exists() or path.is_symlink():
            if _answers(path):
                raise RuntimeError(f"another vcam daemon is already running (control socket {path})")
            path.unlink()  # stale socket of a daemon that died
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)  # the socket is born 0600: no window where others could connect
        try:
            sock.bind(str(path))
        finally:
            os.umask(old_umask)
        os.chmod(path, 0o600)
        return sock

    def _bind_tcp(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        tmp = self.address.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"port": port, "token": self.token, "pid": os.getpid()}, f)
        os.replace(tmp, self.address)
        return sock

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        try:
            self.address.unlink()
        except FileNotFoundError:
            pass

    def _serve(self) -> None:
        assert self._sock is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self._sock, selectors.EVENT_READ, None)
            try:
                while not self._stop.is_set():
                    for key, _ in selector.select(timeout=SELECT_INTERVAL_S):
                        if key.data is None:
                            self._accept(selector)
                        else:
                            self._read(selector, key.data)
                    self._expire(selector)
            finally:
                for conn in list(self._conns.values()):
                    self._close(selector, conn)

    def _accept(self, selector: selectors.BaseSelector) -> None:
        try:
            sock, _ = self._sock.accept()  # type: ignore[union-attr]
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:  # EMFILE/ENFILE/ENOBUFS: wait for descriptors to free up, then go on
            self.accept_errors += 1
            if self.accept_errors == 1 or self.accept_errors % 100 == 0:
                log.error("control: cannot accept a connection (%s; %d times so far); retrying",
                          exc.strerror or exc, self.accept_errors)
            self._stop.wait(ACCEPT_BACKOFF_S)
            return
        if not self.tcp and not _peer_allowed_safely(sock):
            self.refused += 1
            log.warning("control: refused a connection from another user (only uid %d may control vcam)",
                        os.getuid())
            sock.setblocking(False)
            _send(sock, {"ok": False, "error": "permission denied: this vcam belongs to another user"})
            sock.close()
            return
        if len(self._conns) >= MAX_CONNECTIONS:
            oldest = min(self._conns.values(), key=lambda c: c.deadline)
            _send(oldest.sock, {"ok": False, "error": "dropped: too many open control connections"})
            self._close(selector, oldest)
            self.evicted += 1
        sock.setblocking(False)
        conn = _Conn(sock, time.monotonic() + self.client_timeout)
        self._conns[sock.fileno()] = conn
        selector.register(sock, selectors.EVENT_READ, conn)

    def _read(self, selector: selectors.BaseSelector, conn: _Conn) -> None:
        try:
            chunk = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._close(selector, conn)
            return
        conn.buf += chunk
        while b"\n" in conn.buf:
            line, conn.buf = conn.buf.split(b"\n", 1)
            if not line.strip():
                continue
            conn.requests += 1
            if not _send(conn.sock, self.answer(line)) or conn.requests >= MAX_REQUESTS_PER_CONNECTION:
                self._close(selector, conn)
                return
        if len(conn.buf) > MAX_REQUEST_BYTES:
            _send(conn.sock, {"ok": False, "error": f"request larger than {MAX_REQUEST_BYTES} bytes"})
            self._close(selector, conn)

    def _expire(self, selector: selectors.BaseSelector) -> None:
        now = time.monotonic()
        for conn in [c for c in self._conns.values() if c.deadline <= now]:
            _send(conn.sock, {"ok": False, "error": f"timeout: a connection may stay {self.client_timeout:g} s"})
            self._close(selector, conn)

    def _close(self, selector: selectors.BaseSelector, conn: _Conn) -> None:
        self._conns.pop(conn.sock.fileno(), None)
        try:
            selector.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        conn.sock.close()

    def answer(self, line: bytes) -> dict[str, Any]:
        """One request line -> one reply; never raises."""
        try:
            return self._answer(line)
        except Exception as exc:  # a bug in a command must not take the control API down
            log.exception("control request failed")
            return {"ok": False, "error": f"internal error: {type(exc).__name__}"}

    def _answer(self, line: bytes) -> dict[str, Any]:
        if len(line) > MAX_REQUEST_BYTES:
            return {"ok": False, "error": f"request larger than {MAX_REQUEST_BYTES} bytes"}
        try:
            request = json.loads(line)
        except RecursionError:
            return {"ok": False, "error": "request is nested too deeply"}
        except (ValueError, UnicodeDecodeError) as exc:  # bad JSON, or an integer of more than 4300 digits
            return {"ok": False, "error": f"request is not JSON: {str(exc)[:200]}"}
        if not isinstance(request, dict):
            return {"ok": False, "error": "request must be a JSON object with a 'cmd'"}
        if self.tcp:
            token = request.pop("token", None)
            if not isinstance(token, str) or not hmac.compare_digest(token.encode("utf-8", "replace"),
                                                                     (self.token or "").encode()):
                self.refused += 1
                return {"ok": False, "error": "permission denied: missing or wrong token"}
        cmd = request.get("cmd")
        try:
            return self.handler(request)
        except RecursionError:
            return {"ok": False, "error": "request is nested too deeply"}
        except Exception as exc:
            log.exception("control request %s failed", _short(cmd))
            return {"ok": False, "error": f"internal error: {type(exc).__name__}"}


def _short(value: Any) -> str:
    return value[:40] if isinstance(value, str) else type(value).__name__


def _peer_allowed_safely(conn: socket.socket) -> bool:
    try:
        return peer_allowed(conn)
    except OSError:
        return False


def _send(conn: socket.socket, reply: dict[str, Any]) -> bool:
    """Send one reply line without blocking; False when it could not all be sent (the client is not reading)."""
    try:
        data = json.dumps(reply, default=str).encode() + b"\n"
    except (ValueError, TypeError, RecursionError):
        data = b'{"ok": false, "error": "reply could not be encoded"}\n'
    try:
        return conn.send(data) == len(data)
    except OSError:
        return False


def _answers(path: Path) -> bool:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(1.0)
    try:
        sock.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        sock.close()


# ----- client --------------------------------------------------------------------------------------------
class ControlClient:
    """``ControlClient().request("set", field="background.blur_strength", value=70)`` -> the reply dict."""

    def __init__(self, address: Path | None = None, timeout: float = 5.0, tcp: bool | None = None) -> None:
        self.address = address or default_address()
        self.timeout = timeout
        self.tcp = use_tcp() if tcp is None else tcp

    def _connect(self) -> tuple[socket.socket, str | None]:
        not_running = DaemonNotRunning(
            f"vcam is not running (no answer on {self.address}). Start it with `vcam run`, or enable the "
            "service with `vcam install-service`.")
        if self.tcp:
            try:
                info = json.loads(self.address.read_text(encoding="utf-8"))
                sock = socket.create_connection(("127.0.0.1", int(info["port"])), timeout=self.timeout)
                return sock, str(info["token"])
            except (OSError, ValueError, KeyError, TypeError):
                raise not_running from None
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(str(self.address))
        except PermissionError:
            sock.close()
            raise ControlError(f"permission denied on {self.address}: the daemon belongs to another user") \
                from None
        except OSError:
            sock.close()
            raise not_running from None
        return sock, None

    def request(self, cmd: str, **args: Any) -> dict[str, Any]:
        """Send one request; the reply when ok, ControlError with the daemon's message when not."""
        sock, token = self._connect()
        payload = {"cmd": cmd, **args}
        if token:
            payload["token"] = token
        try:
            sock.sendall(json.dumps(payload).encode() + b"\n")
            buf = b""
            while b"\n" not in buf:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                buf += chunk
        except OSError as exc:
            raise DaemonNotRunning(f"vcam stopped answering on {self.address}: {exc}") from None
        finally:
            sock.close()
        if not buf.strip():
            raise DaemonNotRunning(f"vcam closed the control connection on {self.address} without answering")
        reply = json.loads(buf.split(b"\n", 1)[0])
        if not reply.get("ok"):
            raise ControlError(reply.get("error") or "request failed")
        return reply
