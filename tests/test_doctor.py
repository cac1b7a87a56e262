"""`vcam doctor` on fake /sys and /dev trees (loopback module states, permissions), odd sizes, corrupt model
files, invalid configs; every problem comes with its exact fix."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vcam import doctor, registry
from vcam.config import build_config
from vcam.doctor import check_config, check_loopback, check_models, check_permissions, check_sizes, format_report

from .support import short_dir

VIDEO_GID = 44


def fake_tree(root: Path, module: str | None = "Y", camera: bool = True, loopback: bool = True,
              mode: int = 0o660) -> tuple[Path, Path]:
    """A /sys + /dev tree like a laptop's: camera video0 on USB, loopback video2 under devices/virtual."""
    sys_root, dev_root = root / "sys", root / "dev"
    (sys_root / "class" / "video4linux").mkdir(parents=True)
    dev_root.mkdir()
    if module is not None:
        params = sys_root / "module" / "v4l2loopback" / "parameters"
        params.mkdir(parents=True)
        (params / "exclusive_caps").write_text(module + "\n")
    nodes = []
    if camera:
        nodes.append(("video0", "devices/pci0000:00/0000:00:14.0/usb1/1-5/1-5:1.0/video4linux/video0",
                      "Integrated Camera: Integrated C"))
    if loopback:
        nodes.append(("video2", "devices/virtual/video4linux/video2", "vcam"))
    for name, real, label in nodes:
        target = sys_root / real
        target.mkdir(parents=True)
        (target / "name").write_text(label + "\n")
        (sys_root / "class" / "video4linux" / name).symlink_to(target)
        node = dev_root / name
        node.write_bytes(b"")
        os.chown(node, 0, VIDEO_GID) if os.getuid() == 0 else None
        os.chmod(node, mode)
    return sys_root, dev_root


def _levels(checks) -> dict[str, str]:
    return {c.name: c.level for c in checks}


def test_missing_module_says_how_to_install_and_load_it(tmp_path: Path) -> None:
    sys_root, dev_root = fake_tree(tmp_path, module=None, loopback=False)
    (check,) = check_loopback(sys_root, dev_root)
    assert check.level == "error" and "not loaded" in check.message
    assert "sudo modprobe v4l2loopback exclusive_caps=1 card_label=vcam" in check.fix
    assert "v4l2loopback-dkms" in check.fix and "/etc/modprobe.d/v4l2loopback.conf" in check.fix


def test_module_without_exclusive_caps_is_an_error_with_the_reload_commands(tmp_path: Path) -> None:
    sys_root, dev_root = fake_tree(tmp_path, module="N,N,N")
    checks = check_loopback(sys_root, dev_root)
    caps = next(c for c in checks if c.name == "exclusive_caps")
    assert caps.level == "error" and "Chrome" in caps.message
    assert "sudo modprobe -r v4l2loopback" in caps.fix and "exclusive_caps=1" in caps.fix


def test_a_good_setup_passes(tmp_path: Path) -> None:
    sys_root, dev_root = fake_tree(tmp_path)
    checks = check_loopback(sys_root, dev_root) + doctor.check_cameras(sys_root, dev_root)
    assert all(c.level == "ok" for c in checks), format_report(checks)
    assert {str(dev_root / "video2"), "cameras"} - set(_levels(checks)) == {"cameras"}
    nodes = doctor.video_nodes(sys_root, dev_root)
    assert [(n.path.name, n.loopback) for n in nodes] == [("video0", False), ("video2", True)]


def test_no_camera_and_a_missing_configured_camera(tmp_path: Path) -> None:
    sys_root, dev_root = fake_tree(tmp_path, camera=False)
    checks = doctor.check_cameras(sys_root, dev_root, device=str(dev_root / "video7"))
    assert [c.level for c in checks] == ["error", "warn"]
    assert "does not exist" in checks[0].message and "vcam demo" in checks[1].fix


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0, reason="needs root to act as another user")
def test_device_permission_problem_names_the_group_to_join(tmp_path: Path) -> None:
    """Run the check as uid nobody (not in group video) in a forked child: the real permission check."""
    root = short_dir()  # pytest's tmp_path sits in a 0700 directory that uid nobody cannot enter
    os.chmod(root, 0o755)
    sys_root, dev_root = fake_tree(root)
    node = doctor.video_nodes(sys_root, dev_root)[1]
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            result = [c.as_dict() for c in check_permissions(node)]
            os.write(write_end, json.dumps(result).encode())
        except BaseException as exc:  # report it to the parent rather than die silently
            os.write(write_end, json.dumps([{"level": "crash", "message": repr(exc)}]).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    with os.fdopen(read_end) as f:
        (check,) = json.loads(f.read())
    assert check["level"] == "error" and "cannot open" in check["message"]
    group = "video" if _group_name(VIDEO_GID) == "video" else _group_name(VIDEO_GID)
    assert check["fix"].startswith(f"sudo usermod -aG {group} $USER")
    assert check_permissions(node)[0].level == "ok"  # root itself may
    shutil.rmtree(root, ignore_errors=True)


def _group_name(gid: int) -> str:
    import grp

    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def test_odd_camera_size_gets_the_even_size_to_use() -> None:
    config = build_config({"source": {"width": 1279, "height": 719}})
    checks = check_sizes(config)
    bad = next(c for c in checks if c.name == "source size")
    assert bad.level == "error" and "Chrome rejects odd widths" in bad.message
    assert bad.fix == "set [source] width = 1278, height = 718"
    assert next(c for c in checks if c.name == "output size").level == "ok"


def test_corrupt_and_missing_model_files_are_named(tmp_path: Path, monkeypatch) -> None:
    real = registry.list_models("segmentation")[0]
    good = tmp_path / "good"
    good.mkdir()
    shutil.copy(real.path, good / real.file)
    shutil.copy(real.card_path, good / real.card_path.name)
    bad = tmp_path / "bad"
    shutil.copytree(good, bad)
    data = bytearray((bad / real.file).read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte
    (bad / real.file).write_bytes(bytes(data))
    gone = tmp_path / "gone"
    shutil.copytree(good, gone)
    (gone / real.file).unlink()
    cards = [real.model_copy(update={"card_path": d / real.card_path.name}) for d in (good, bad, gone)]
    monkeypatch.setattr(registry, "list_models", lambda task=None: cards)
    checks = check_models()
    assert [c.level for c in checks] == ["ok", "error", "error"]
    assert "corrupt (sha256" in checks[1].message and str(bad / real.file) in checks[1].message
    assert "is missing" in checks[2].message
    assert "pip install --force-reinstall vcam" in checks[1].fix


def test_invalid_config_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[background]\nblur_strength = 500\n")
    (check,), config = check_config(path)
    assert config is None and check.level == "error"
    assert "background.blur_strength" in check.message and f"edit {path}" in check.fix
    path.write_text('preset = "office"\n')
    (check,), config = check_config(path)
    assert check.level == "ok" and config.preset == "office"


def test_cli_doctor_prints_fixes_and_exits_nonzero_on_problems(tmp_path: Path) -> None:
    (tmp_path / "cfg" / "vcam").mkdir(parents=True)
    (tmp_path / "cfg" / "vcam" / "config.toml").write_text("[output]\nwidth = 641\n")
    (tmp_path / "run").mkdir(mode=0o700)
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "cfg"), "XDG_RUNTIME_DIR": str(tmp_path / "run")}
    proc = subprocess.run([sys.executable, "-m", "vcam", "doctor"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1
    assert "[FAIL] config:" in proc.stdout and "output.width" in proc.stdout and "fix: edit" in proc.stdout
    assert "[ok  ] onnxruntime" in proc.stdout and "CPUExecutionProvider" in proc.stdout
    assert "[info] daemon: vcam is not running" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "vcam", "doctor", "--json"], env=env, capture_output=True,
                          text=True, timeout=120)
    rows = json.loads(proc.stdout)
    assert {"name", "level", "message", "fix"} <= set(rows[0])
