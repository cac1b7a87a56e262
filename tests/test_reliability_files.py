"""Validate before apply: every setting that names a file is resolved and checked when the config is built (at
start, reload, `vcam set`, `vcam preset`); a bad live change is refused with the field and the reason, the CLI
exits non-zero, status shows it, the last good settings stay in force, and the error clears once it is gone."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from vcam.config import ConfigError, bundled_background, build_config
from vcam.registry import list_models

from .reliability_support import live_session, png_header_only, wait_until


@pytest.fixture
def picture(tmp_path: Path) -> Path:
    path = tmp_path / "shelf.jpg"
    shutil.copy(bundled_background("architecture"), path)
    return path


def test_home_and_variables_are_expanded(tmp_path: Path, picture: Path, monkeypatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("VCAM_TEST_PICTURES", str(tmp_path))
    for given in ("~/shelf.jpg", "$VCAM_TEST_PICTURES/shelf.jpg"):
        config = build_config({"background": {"mode": "image", "image": given}})
        assert config.background.image == str(picture)


def _bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """name -> (path, what the error must say)."""
    one_byte = tmp_path / "one.jpg"
    one_byte.write_bytes(b"x")
    huge = tmp_path / "huge.png"
    huge.write_bytes(png_header_only(20000, 20000))
    text = tmp_path / "notes.png"
    text.write_text("not a picture at all, just some text")
    folder = tmp_path / "folder.jpg"
    folder.mkdir()
    fifo = tmp_path / "fifo.jpg"
    os.mkfifo(fifo)
    return {"missing": (tmp_path / "missing.jpg", "does not exist"), "directory": (folder, "is a directory"),
            "one byte": (one_byte, "PNG, JPEG"), "20000x20000": (huge, "20000x20000 pixels"),
            "text": (text, "PNG, JPEG"), "fifo": (fifo, "not a regular file")}


def test_bad_background_files_are_refused_at_build_naming_field_and_reason(tmp_path: Path) -> None:
    for name, (path, reason) in _bad_files(tmp_path).items():
        with pytest.raises(ConfigError) as info:
            build_config({"background": {"mode": "image", "image": str(path)}}, origin="cfg.toml")
        message = str(info.value)
        assert "cfg.toml: background.image" in message and reason in message and str(path) in message, name
    with pytest.raises(ConfigError, match="background.video.*does not exist"):
        build_config({"background": {"mode": "video", "video": str(tmp_path / "gone.mp4")}})
    with pytest.raises(ConfigError, match="daemon.pause_image.*is a directory"):
        build_config({"daemon": {"pause_image": str(tmp_path / "folder.jpg")}})


def _copied_model(tmp_path: Path, card_text: str | None = None, corrupt: bool = False) -> Path:
    card = next(c for c in list_models("segmentation") if c.sha256)
    model = tmp_path / "mine.onnx"
    data = bytearray(card.path.read_bytes())
    if corrupt:
        data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    meta = json.loads(card.card_path.read_text())
    meta["file"] = model.name
    (tmp_path / "mine.json").write_text(json.dumps(meta) if card_text is None else card_text)
    return model


def test_an_explicitly_named_model_is_checked_against_its_card(tmp_path: Path) -> None:
    good = _copied_model(tmp_path)
    assert build_config({"model": {"segmenter": str(good)}}).model.segmenter == str(good)
    (tmp_path / "c").mkdir()
    corrupt = _copied_model(tmp_path / "c", corrupt=True)
    with pytest.raises(ConfigError, match="model.segmenter.*corrupt.*sha256"):
        build_config({"model": {"segmenter": str(corrupt)}})
    from vcam.segmenter import ModelError, load_segmenter

    with pytest.raises(ModelError, match="corrupt"):  # loading it by name checks the hash too
        load_segmenter(str(corrupt))


def test_a_corrupt_card_beside_a_model_path_is_a_clear_error_at_start(tmp_path: Path) -> None:
    model = _copied_model(tmp_path, card_text="{ this is not json")
    (tmp_path / "cfg.toml").write_text("")
    out = subprocess.run([sys.executable, "-m", "vcam", "run", "--config", str(tmp_path / "cfg.toml"), "--model",
                          str(model), "--source", "demo", "--sink", f"y4m:{tmp_path / 'o.y4m'}", "--seconds", "1"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert "Traceback" not in out.stderr, out.stderr
    assert "model.segmenter" in out.stderr and "mine.json" in out.stderr, out.stderr


def test_readme_preset_example_with_tilde_runs(tmp_path: Path, picture: Path) -> None:
    """README's own example (`image = "~/Pictures/shelf.jpg"`): valid for doctor, and the daemon starts."""
    home = tmp_path / "home"
    (home / "Pictures").mkdir(parents=True)
    shutil.copy(picture, home / "Pictures" / "shelf.jpg")
    cfg = tmp_path / "cfg.toml"
    cfg.write_text('preset = "shelf"\n[presets.shelf]\nbackground = { mode = "image", image = '
                   '"~/Pictures/shelf.jpg" }\n')
    env = {**os.environ, "HOME": str(home), "XDG_RUNTIME_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-m", "vcam", "run", "--config", str(cfg), "--source", "demo", "--sink",
                          f"y4m:{tmp_path / 'o.y4m'}", "--size", "320x240", "--seconds", "2"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    doctor = subprocess.run([sys.executable, "-m", "vcam", "doctor", "--config", str(cfg), "--json"], env=env,
                            capture_output=True, text=True, timeout=120)
    config_check = next(c for c in json.loads(doctor.stdout) if c["name"] == "config")
    assert config_check["level"] == "ok", config_check
    home_missing = {**env, "HOME": str(tmp_path / "nobody-home")}
    doctor = subprocess.run([sys.executable, "-m", "vcam", "doctor", "--config", str(cfg), "--json"],
                            env=home_missing, capture_output=True, text=True, timeout=120)
    config_check = next(c for c in json.loads(doctor.stdout) if c["name"] == "config")
    assert config_check["level"] == "error" and "does not exist" in config_check["message"]


def test_bad_live_changes_are_refused_shown_and_the_last_good_settings_stay(tmp_path: Path) -> None:
    bad = _bad_files(tmp_path)
    text = '[presets.broken]\nbackground = { mode = "image", image = "%s" }\n' % bad["one byte"][0]
    with live_session(file_text=text) as run:
        wait_until(lambda: run.daemon.stats.frames_processed > 3)
        good = run.daemon.config
        for name, (path, reason) in bad.items():
            out = run.cli("set", "background.image", json.dumps(str(path)))
            assert out.returncode == 1 and "background.image" in out.stderr and reason in out.stderr, name
        out = run.cli("preset", "broken")
        assert out.returncode == 1 and "background.image" in out.stderr and "PNG, JPEG" in out.stderr
        status = run.status()
        assert "background.image" in status["config_error"] and status["change_error"]
        assert "CONFIG ERROR" in run.cli("status").stdout
        assert run.daemon.config is good and run.session.live.config is good
        processed = run.daemon.stats.frames_processed
        wait_until(lambda: run.daemon.stats.frames_processed > processed + 10)  # frames keep coming
        assert run.cli("set", "blur.strength", "30").returncode == 0  # an accepted change clears the error
        assert run.status()["config_error"] is None


def test_a_reload_with_a_bad_file_keeps_the_last_good_config_and_clears_once_fixed(tmp_path: Path,
                                                                                    picture: Path) -> None:
    image = tmp_path / "bg.jpg"
    text = '[background]\nmode = "image"\nimage = "%s"\n' % image
    with live_session(file_text='preset = "blur"\n') as run:
        wait_until(lambda: run.daemon.stats.frames_processed > 3)
        good = run.daemon.config
        run.config_path.write_text(text)  # names a picture that is not there yet
        wait_until(lambda: (run.status()["config_error"] or "").find("does not exist") >= 0)
        assert run.daemon.config is good
        shutil.copy(picture, image)  # the cause goes away: the watcher retries while the reload is failing
        wait_until(lambda: run.status()["config_error"] is None)
        assert run.status()["background_mode"] == "image"
        out = run.cli("reload")
        assert out.returncode == 0
        image.unlink()
        out = run.cli("reload")
        assert out.returncode == 1 and "does not exist" in out.stderr
        assert run.status()["background_mode"] == "image"  # the picture in use stays in use
        # a live change that leaves the loaded picture alone is accepted; bringing the lost picture back into
        # use (blur, then image again) is refused
        assert run.cli("set", "background.light_wrap", "0.5").returncode == 0
        assert run.cli("set", "background.mode", "blur").returncode == 0
        out = run.cli("set", "background.mode", "image")
        assert out.returncode == 1 and "background.image" in out.stderr and "does not exist" in out.stderr


def test_decoding_a_checked_image_sees_no_more_than_the_limits(tmp_path: Path) -> None:
    """A real PNG just over the pixel limit is refused from its header (no 2.5 GB decode)."""
    path = tmp_path / "big.png"
    cv2.imwrite(str(path), np.zeros((6100, 6100), np.uint8))  # 37.2 Mpx of zeros: a small file
    with pytest.raises(ConfigError, match="6100x6100 pixels"):
        build_config({"background": {"mode": "image", "image": str(path)}})


def test_the_compositor_never_waits_on_a_fifo_put_in_place_of_a_checked_file(tmp_path: Path) -> None:
    """A picture replaced by a FIFO between its check and its use: the processing thread gets an error, never
    a read that waits for a writer forever."""
    import threading

    from vcam.postprocess.composite import BackgroundSettings, Compositor

    fifo = tmp_path / "bg.jpg"
    os.mkfifo(fifo)
    outcome: list[str] = []

    def load(mode: str) -> None:
        try:
            Compositor(BackgroundSettings(mode=mode, **{mode: str(fifo)}))
            outcome.append("loaded")
        except ValueError as exc:
            outcome.append(str(exc))

    for mode in ("image", "video"):
        worker = threading.Thread(target=load, args=(mode,), daemon=True)
        worker.start()
        worker.join(timeout=30)
        blocked = worker.is_alive()
        if blocked:  # unblock it (open the FIFO for writing once) so that the test run can end
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass
        assert not blocked, f"mode {mode}: loading waited on the FIFO"
        assert "cannot be read" in outcome[-1] or "regular file" in outcome[-1], outcome
