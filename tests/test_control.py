"""The control socket: modes, peer credentials against another uid, stale sockets, bad requests, the CLI when
the daemon is down, and the Windows-style TCP + token transport."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vcam.control import MAX_REQUEST_BYTES, ControlClient, ControlError, ControlServer, DaemonNotRunning

from .support import short_dir

NOBODY = 65534


def _echo(request: dict) -> dict:
    return {"ok": True, "echo": request}


@pytest.fixture
def server():
    root = short_dir()
    srv = ControlServer(_echo, root / "vcam" / "control.sock")
    srv.start()
    yield srv
    srv.stop()
    shutil.rmtree(root, ignore_errors=True)


def test_socket_is_private_and_answers(server: ControlServer) -> None:
    path = server.address
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    assert stat.S_ISSOCK(os.stat(path).st_mode)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    client = ControlClient(path)
    assert client.request("ping", x=1)["echo"] == {"cmd": "ping", "x": 1}
    rtts = []
    for _ in range(50):
        t0 = time.perf_counter()
        client.request("ping")
        rtts.append((time.perf_counter() - t0) * 1e3)
    rtts.sort()
    print(f"control round trip: median {rtts[25]:.2f} ms, max {rtts[-1]:.2f} ms (50 pings, new connection each)")
    assert rtts[25] < 50


def _as_nobody(path: Path) -> str:
    """Connect and send a ping from a forked child running as uid ``nobody``; the child's verdict."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read_end)
        verdict = "?"
        try:
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(5)
            try:
                sock.connect(str(path))
                try:
                    sock.sendall(b'{"cmd": "ping"}\n')
                except BrokenPipeError:  # the server may already have answered and hung up
                    pass
                reply = sock.recv(4096)
                verdict = "reply:" + reply.decode()
            except PermissionError:
                verdict = "EACCES"
            except OSError as exc:
                verdict = f"oserror:{exc}"
        finally:
            os.write(write_end, verdict.encode())
            os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    with os.fdopen(read_end, "rb") as f:
        return f.read().decode()


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0 or not sys.platform.startswith("linux"),
                    reason="switching to another uid needs root on Linux")
def test_another_uid_is_refused(server: ControlServer) -> None:
    path = server.address
    # First line of defence: the 0700 directory keeps another user from reaching the socket at all.
    assert _as_nobody(path) == "EACCES"
    # Second: even with the modes loosened (a misconfiguration), SO_PEERCRED refuses the other uid.
    os.chmod(path.parent.parent, 0o755)  # the temp dir holding the test's runtime dir
    os.chmod(path.parent, 0o755)
    os.chmod(path, 0o666)
    verdict = _as_nobody(path)
    assert verdict.startswith("reply:"), verdict
    reply = json.loads(verdict[6:])
    assert reply["ok"] is False and "another user" in reply["error"]
    assert server.refused == 1
    assert ControlClient(path).request("ping")["ok"]  # our own uid still gets in


def test_client_says_daemon_not_running() -> None:
    root = short_dir()
    with pytest.raises(DaemonNotRunning, match="not running"):
        ControlClient(root / "vcam" / "control.sock").request("status")
    (root / "vcam").mkdir()
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(root / "vcam" / "control.sock"))  # a socket file nobody listens on (daemon crashed)
    stale.close()
    with pytest.raises(DaemonNotRunning):
        ControlClient(root / "vcam" / "control.sock").request("status")
    # A new daemon replaces the stale socket.
    srv = ControlServer(_echo, root / "vcam" / "control.sock")
    srv.start()
    try:
        assert ControlClient(root / "vcam" / "control.sock").request("ping")["ok"]
        with pytest.raises(RuntimeError, match="already running"):
            ControlServer(_echo, root / "vcam" / "control.sock").start()
    finally:
        srv.stop()
    assert not (root / "vcam" / "control.sock").exists()
    shutil.rmtree(root, ignore_errors=True)


def test_cli_exits_nonzero_with_a_clear_message_when_the_daemon_is_down() -> None:
    root = short_dir()
    os.chmod(root, 0o700)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(root)}
    for args in (["status"], ["toggle", "blur"], ["preset", "office"], ["set", "blur.strength", "70"], ["pause"]):
        proc = subprocess.run([sys.executable, "-m", "vcam", *args], env=env, capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 3, (args, proc.stderr)
        assert "vcam is not running" in proc.stderr and "vcam run" in proc.stderr
        assert "Traceback" not in proc.stderr
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize("raw, message", [
    (b"{not json\n", "not JSON"),
    (b"[1, 2]\n", "JSON object"),
    (b"\xff\xfe\n", "not JSON"),
])
def test_malformed_requests_get_an_error_reply(server: ControlServer, raw: bytes, message: str) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5)
    sock.connect(str(server.address))
    sock.sendall(raw)
    reply = json.loads(sock.recv(65536))
    sock.close()
    assert reply["ok"] is False and message in reply["error"]


def test_huge_request_is_cut_off(server: ControlServer) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5)
    sock.connect(str(server.address))
    try:
        sock.sendall(b"x" * (MAX_REQUEST_BYTES + 70000))
    except (BrokenPipeError, ConnectionResetError):
        pass
    reply = json.loads(sock.recv(65536).split(b"\n")[0])
    sock.close()
    assert reply["ok"] is False and "larger than" in reply["error"]
    assert ControlClient(server.address).request("ping")["ok"]  # the server is fine


def test_tcp_transport_requires_the_token() -> None:
    """The Windows transport (127.0.0.1 port + per-user token file), exercised here on Linux."""
    root = short_dir()
    srv = ControlServer(_echo, root / "vcam" / "control.json", tcp=True)
    srv.start()
    try:
        info = json.loads((root / "vcam" / "control.json").read_text())
        assert stat.S_IMODE(os.stat(root / "vcam" / "control.json").st_mode) == 0o600
        assert ControlClient(root / "vcam" / "control.json", tcp=True).request("ping")["ok"]
        for token in (None, "0" * 64):
            with socket.create_connection(("127.0.0.1", info["port"]), timeout=5) as sock:
                sock.sendall(json.dumps({"cmd": "ping", **({"token": token} if token else {})}).encode() + b"\n")
                reply = json.loads(sock.recv(65536))
            assert reply["ok"] is False and "token" in reply["error"]
        assert srv.refused == 2
    finally:
        srv.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_refused_request_raises_control_error(server: ControlServer) -> None:
    srv = ControlServer(lambda r: {"ok": False, "error": "nope"}, server.address.parent / "other.sock")
    srv.start()
    try:
        with pytest.raises(ControlError, match="nope"):
            ControlClient(srv.address).request("status")
    finally:
        srv.stop()


def test_cli_commands_against_a_running_vcam_run(tmp_path: Path) -> None:
    """`vcam run` in its own process with a config file; the CLI client commands in others."""
    root = short_dir()
    (root / "cfg" / "vcam").mkdir(parents=True)
    config = root / "cfg" / "vcam" / "config.toml"
    config.write_text('preset = "blur"\n[presets.meeting]\nbackground = { mode = "blur", blur_strength = 85 }\n')
    env = {**os.environ, "XDG_CONFIG_HOME": str(root / "cfg"), "XDG_RUNTIME_DIR": str(root)}
    os.chmod(root, 0o700)
    daemon = subprocess.Popen([sys.executable, "-m", "vcam", "run", "--source", "demo", "--sink",
                               f"y4m:{tmp_path / 'o.y4m'}", "--seconds", "60"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def vcam(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "vcam", *args], env=env, capture_output=True, text=True,
                              timeout=60)

    try:
        deadline = time.monotonic() + 60
        while not (root / "vcam" / "control.sock").exists():
            assert daemon.poll() is None and time.monotonic() < deadline, "daemon did not start"
            time.sleep(0.2)
        status = json.loads(vcam("status", "--json").stdout)
        assert status["preset"] == "blur" and status["presets"][-1] == "meeting"
        assert vcam("preset", "meeting").stdout.strip() == "preset meeting (background blur)"
        assert vcam("set", "blur.strength", "20").returncode == 0
        assert json.loads(vcam("status", "--json").stdout)["blur_strength"] == 20
        refused = vcam("set", "blur.strength", "700")
        assert refused.returncode == 1 and "less than or equal to 100" in refused.stderr
        assert vcam("toggle", "pause").stdout.strip() == "camera paused"
        assert vcam("resume").stdout.strip() == "camera on"
        assert "preset meeting" in vcam("status").stdout
    finally:
        daemon.terminate()
        daemon.wait(20)
    assert not (root / "vcam" / "control.sock").exists()  # removed on a clean stop
    assert vcam("status").returncode == 3
    shutil.rmtree(root, ignore_errors=True)
