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
import socket
import stat
import struct
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 64 * 1024
CLIENT_TIMEOUT_S = 5.0  # a connected client that sends nothing for this long is dropped
MAX_CONNECTIONS = 8
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


def _private_dir(path: Path) -> None:
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
class ControlServer:
    """Answers requests with ``handler`` on a background thread (one short-lived thread per connection)."""

    def __init__(self, handler: Handler, address: Path | None = None, tcp: bool | None = None) -> None:
        self.handler = handler
        self.address = address or default_address()
        self.tcp = use_tcp() if tcp is None else tcp
        self.token = secrets.token_hex(32) if self.tcp else None
        self.refused = 0  # connections refused for another user's credentials or a bad token
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def start(self) -> None:
        _private_dir(self.address.parent)
        self._sock = self._bind_tcp() if self.tcp else self._bind_unix()
        self._sock.listen(16)
        self._sock.settimeout(0.5)
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
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                raise
            if not self.tcp and not peer_allowed(conn):
                self.refused += 1
                log.warning("control: refused a connection from uid %s (only uid %d may control vcam)",
                            peer_uid(conn), os.getuid())
                _send(conn, {"ok": False, "error": "permission denied: this vcam belongs to another user"})
                conn.close()
                continue
            if not self._slots.acquire(blocking=False):
                _send(conn, {"ok": False, "error": "busy: too many control connections"})
                conn.close()
                continue
            threading.Thread(target=self._handle, args=(conn,), name="control-conn", daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(CLIENT_TIMEOUT_S)
            buf = b""
            while not self._stop.is_set():
                try:
                    chunk = conn.recv(65536)
                except (TimeoutError, OSError):
                    return
                if not chunk:
                    return
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if line.strip():
                        _send(conn, self.answer(line))
                if len(buf) > MAX_REQUEST_BYTES:
                    _send(conn, {"ok": False, "error": f"request larger than {MAX_REQUEST_BYTES} bytes"})
                    return
        finally:
            conn.close()
            self._slots.release()

    def answer(self, line: bytes) -> dict[str, Any]:
        """One request line -> one reply; never raises."""
        if len(line) > MAX_REQUEST_BYTES:
            return {"ok": False, "error": f"request larger than {MAX_REQUEST_BYTES} bytes"}
        try:
            request = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return {"ok": False, "error": f"request is not JSON: {exc}"}
        if not isinstance(request, dict):
            return {"ok": False, "error": "request must be a JSON object with a 'cmd'"}
        if self.tcp:
            token = request.pop("token", None)
            if not isinstance(token, str) or not hmac.compare_digest(token, self.token or ""):
                self.refused += 1
                return {"ok": False, "error": "permission denied: missing or wrong token"}
        try:
            return self.handler(request)
        except Exception as exc:  # a bug in a command must not take the control API down
            log.exception("control request %r failed", request.get("cmd"))
            return {"ok": False, "error": f"internal error: {exc}"}


def _send(conn: socket.socket, reply: dict[str, Any]) -> None:
    try:
        conn.sendall(json.dumps(reply, default=str).encode() + b"\n")
    except OSError:
        pass


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
