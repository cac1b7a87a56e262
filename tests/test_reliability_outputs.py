"""Output files in shared places: no symlink is followed, another user's file is never reused, new files are
0600, a FIFO without a reader never hangs start-up, and `vcam demo` writes into the user's own directory."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from vcam.sinks import FileSink, SinkError, Y4MSink

NOBODY = 65534


@pytest.mark.parametrize("make", [Y4MSink, FileSink])
def test_a_symlink_in_place_of_the_output_is_refused(tmp_path: Path, make) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    link = tmp_path / "out.mp4"
    link.symlink_to(victim)
    with pytest.raises(SinkError, match="symbolic link"):
        make(str(link)).open(64, 64, 30)
    assert victim.read_text() == "precious"


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to create a file owned by another user")
@pytest.mark.parametrize("make", [Y4MSink, FileSink])
def test_a_file_of_another_user_is_never_reused(tmp_path: Path, make) -> None:
    planted = tmp_path / "out.mp4"
    planted.write_text("")
    os.chmod(planted, 0o666)
    os.chown(planted, NOBODY, NOBODY)
    with pytest.raises(SinkError, match="belongs to uid 65534"):
        make(str(planted)).open(64, 64, 30)
    assert planted.stat().st_size == 0 and stat.S_IMODE(planted.stat().st_mode) == 0o666


def test_output_files_are_private(tmp_path: Path) -> None:
    fresh = tmp_path / "fresh.y4m"
    old = tmp_path / "old.y4m"
    old.write_bytes(b"x" * 1000)
    os.chmod(old, 0o644)
    for path in (fresh, old):
        sink = Y4MSink(str(path))
        sink.open(64, 64, 30)
        sink.close()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.read_bytes().startswith(b"YUV4MPEG2 W64 H64")
    video = tmp_path / "v.avi"
    sink = FileSink(str(video))
    sink.open(64, 64, 30)
    sink.close()
    assert stat.S_IMODE(video.stat().st_mode) == 0o600


def test_a_fifo_without_a_reader_does_not_hang_start_up(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.y4m"
    os.mkfifo(fifo)
    (tmp_path / "cfg.toml").write_text("")
    out = subprocess.run([sys.executable, "-m", "vcam", "run", "--config", str(tmp_path / "cfg.toml"), "--source",
                          "demo", "--size", "320x240", "--sink", f"y4m:{fifo}", "--sink", f"y4m:{tmp_path / 'o.y4m'}",
                          "--seconds", "1"], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "XDG_RUNTIME_DIR": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    assert "FIFO with no reader" in out.stderr
    assert (tmp_path / "o.y4m").stat().st_size > 0


@pytest.mark.parametrize("runtime", [True, False])
def test_demo_writes_into_the_users_own_directory(tmp_path: Path, runtime: bool) -> None:
    home, tmpdir, run = tmp_path / "home", tmp_path / "tmp", tmp_path / "run"
    for folder in (home, tmpdir, run):
        folder.mkdir(mode=0o700)
    env = {k: v for k, v in os.environ.items() if k not in ("XDG_RUNTIME_DIR", "XDG_CACHE_HOME")}
    env.update(HOME=str(home), TMPDIR=str(tmpdir), XDG_CONFIG_HOME=str(home / ".config"))
    if runtime:
        env["XDG_RUNTIME_DIR"] = str(run)
    out = subprocess.run([sys.executable, "-m", "vcam", "demo", "--port", "0", "--width", "320", "--height", "240",
                          "--seconds", "1"], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    expected = (run / "vcam" / "demo.y4m") if runtime else (home / ".cache" / "vcam" / "demo.y4m")
    assert expected.stat().st_size > 0 and stat.S_IMODE(expected.stat().st_mode) == 0o600
    assert stat.S_IMODE(expected.parent.stat().st_mode) == 0o700
    assert list(tmpdir.rglob("*.y4m")) == []  # (the control socket's private dir may live there)
