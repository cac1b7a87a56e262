"""Security: nothing listens beyond the opt-in 127.0.0.1 preview; no frame goes anywhere unasked."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest



def _listening_inet_sockets(pid: int) -> list[tuple[str, int]]:
    """(address, port) of TCP sockets in LISTEN state owned by ``pid`` (Linux /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table, width in (("tcp", 8), ("tcp6", 32)):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and inode in inodes:  # 0A = LISTEN
                addr_hex, port_hex = local.split(":")
                if width == 8:
                    addr = ".".join(str(int(addr_hex[i:i + 2], 16)) for i in (6, 4, 2, 0))
                else:
                    addr = addr_hex
                found.append((addr, int(port_hex, 16)))
    return found


@pytest.mark.skipif(not Path("/proc/self/net/tcp").exists(), reason="needs Linux /proc")
def test_only_the_loopback_preview_listens(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "cfg"), "XDG_RUNTIME_DIR": str(tmp_path / "run")}
    (tmp_path / "run").mkdir(mode=0o700)
    proc = subprocess.Popen([sys.executable, "-m", "vcam", "run", "--source", "demo", "--sink", "mjpeg:0",
                             "--sink", f"y4m:{tmp_path / 'o.y4m'}", "--seconds", "30"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        sockets: list[tuple[str, int]] = []
        while not sockets and time.monotonic() < deadline:
            time.sleep(0.3)
            sockets = _listening_inet_sockets(proc.pid)
        # the control socket is a Unix socket; the preview is up: nothing else opens later than it
        sockets = _listening_inet_sockets(proc.pid)
    finally:
        proc.terminate()
        proc.wait(10)
    assert sockets, "the preview server should be listening"
    assert all(addr == "127.0.0.1" for addr, _ in sockets), sockets
    assert len(sockets) == 1, sockets


def test_without_preview_nothing_listens(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "cfg"), "XDG_RUNTIME_DIR": str(tmp_path / "run")}
    (tmp_path / "run").mkdir(mode=0o700)
    proc = subprocess.Popen([sys.executable, "-m", "vcam", "run", "--source", "demo",
                             "--sink", f"y4m:{tmp_path / 'o.y4m'}", "--seconds", "30"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        # frames written: every sink is open, so anything that would listen listens by now
        while (not (tmp_path / "o.y4m").exists() or (tmp_path / "o.y4m").stat().st_size < 10**6) \
                and time.monotonic() < deadline:
            time.sleep(0.2)
        sockets = _listening_inet_sockets(proc.pid)
    finally:
        proc.terminate()
        proc.wait(10)
    assert sockets == []


def test_frames_go_only_where_asked_and_logs_carry_no_image_data(tmp_path: Path) -> None:
    home, cwd, tmpdir = tmp_path / "home", tmp_path / "cwd", tmp_path / "tmp"
    for d in (home, cwd, tmpdir):
        d.mkdir()
    out = tmp_path / "asked.y4m"
    env = {**os.environ, "HOME": str(home), "TMPDIR": str(tmpdir), "XDG_CONFIG_HOME": str(home / ".config"),
           "XDG_CACHE_HOME": str(home / ".cache"), "XDG_RUNTIME_DIR": str(tmpdir)}
    result = subprocess.run([sys.executable, "-m", "vcam", "--verbose", "run", "--source", "demo", "--sink",
                             f"y4m:{out}", "--seconds", "3"], env=env, cwd=cwd, capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    allowed = {"asked.y4m", "home/.config/vcam/config.toml"}
    extra = [p for p in written if p not in allowed and not p.endswith((".sock", ".lock"))]
    assert extra == [], extra
    log_text = result.stdout + result.stderr
    assert len(log_text) < 50_000  # a few lines per second, never frame dumps
    assert b"\x00" not in log_text and b"FRAME" not in log_text and b"\xff\xd8" not in log_text
