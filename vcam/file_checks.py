"""Checks of the files that settings name (background image and video, segmenter model, pause picture), run
whenever a config is built: at start, at every reload, ``vcam set`` and ``vcam preset``.

Each path is resolved (``~``, ``$VAR``), opened without blocking (a FIFO or device is refused, never waited on),
size-checked before it is read, and its pixel size read from the image header before anything is decoded. A
file that fails raises ``FileCheckError`` naming the file and the reason; the caller turns it into a
``ConfigError`` for the field. Files that passed are remembered by (inode, size, mtime), so an unchanged file
is not decoded again on the next ``vcam set``.
"""

from __future__ import annotations

import hashlib
import os
import stat
import struct
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    from .config import Config

MAX_IMAGE_BYTES = 64 << 20
MAX_IMAGE_PIXELS = 36_000_000  # 8K UHD (7680x4320, 33 Mpx) fits; a decoded image costs 3 bytes a pixel
MAX_IMAGE_SIDE = 16384
MAX_VIDEO_WIDTH, MAX_VIDEO_HEIGHT = 7680, 4320
MAX_MODEL_BYTES = 256 << 20
IMAGE_FORMATS = "PNG, JPEG, WebP or BMP"

_passed: dict[tuple, bool] = {}  # files that passed their check, keyed by what they are and their stat


class FileCheckError(ValueError):
    """A file named by a setting is missing, of the wrong kind, too large or unreadable."""


def resolve_path(text: str) -> Path:
    """``~/x`` and ``$HOME/x`` -> an absolute-looking path (environment variables first, then ``~``)."""
    return Path(os.path.expanduser(os.path.expandvars(text)))


def _open_regular(path: Path, max_bytes: int, allow_empty: bool = False) -> tuple[int, os.stat_result]:
    """An fd of ``path`` opened read-only without blocking, after checking it is a regular non-empty file of at
    most ``max_bytes``; the caller closes it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise FileCheckError(f"{path} does not exist") from None
    except PermissionError:
        raise FileCheckError(f"{path} cannot be read (permission denied)") from None
    except OSError as exc:
        raise FileCheckError(f"{path} cannot be opened: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise FileCheckError(f"{path} is a directory, not a file")
        if not stat.S_ISREG(info.st_mode):
            raise FileCheckError(f"{path} is not a regular file (a FIFO, socket or device)")
        if info.st_size == 0 and not allow_empty:
            raise FileCheckError(f"{path} is empty")
        if info.st_size > max_bytes:
            raise FileCheckError(f"{path} is {info.st_size / 2**20:.1f} MiB; the limit is {max_bytes >> 20} MiB")
    except BaseException:
        os.close(fd)
        raise
    return fd, info


def read_regular_file(path: Path, max_bytes: int, allow_empty: bool = False) -> bytes:
    """The bytes of a regular file of at most ``max_bytes`` (never blocks on a FIFO, never reads more)."""
    fd, _ = _open_regular(path, max_bytes, allow_empty)
    try:
        chunks, left = [], max_bytes + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    except OSError as exc:
        raise FileCheckError(f"{path} cannot be read: {exc.strerror}") from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > max_bytes:
        raise FileCheckError(f"{path} grew past the limit of {max_bytes >> 20} MiB while being read")
    return data


def _key(kind: str, path: Path) -> tuple | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return kind, str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def _remember(key: tuple | None) -> None:
    if key is not None:
        if len(_passed) > 64:
            _passed.clear()
        _passed[key] = True


# ----- images --------------------------------------------------------------------------------------------
def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            i += 2
            continue
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            height, width = struct.unpack(">HH", data[i + 5:i + 9])
            return width, height
        i += 2 + length
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30:
        w, h = struct.unpack("<HH", data[26:30])
        return w & 0x3FFF, h & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(data) >= 30:
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    return None


def image_header_size(data: bytes) -> tuple[str, int, int] | None:
    """(format, width, height) read from an image's header, without decoding it; None for other formats."""
    size: tuple[int, int] | None = None
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        fmt, size = "PNG", struct.unpack(">II", data[16:24])
    elif data[:2] == b"\xff\xd8":
        fmt, size = "JPEG", _jpeg_size(data)
    elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        fmt, size = "WebP", _webp_size(data)
    elif data[:2] == b"BM" and len(data) >= 26:
        w, h = struct.unpack("<ii", data[18:26])
        fmt, size = "BMP", (abs(w), abs(h))
    else:
        return None
    return (fmt, *size) if size else None


def check_image(path: Path) -> None:
    """A picture vcam can use: a regular file of at most 64 MiB, a known format, at most 36 megapixels (read
    from the header before decoding), and one that decodes."""
    key = _key("image", path)
    if key in _passed:
        return
    data = read_regular_file(path, MAX_IMAGE_BYTES)
    header = image_header_size(data)
    if header is None:
        raise FileCheckError(f"{path} is not a {IMAGE_FORMATS} image (or its header is damaged)")
    fmt, width, height = header
    if not (0 < width <= MAX_IMAGE_SIDE and 0 < height <= MAX_IMAGE_SIDE) or width * height > MAX_IMAGE_PIXELS:
        raise FileCheckError(f"{path} is {width}x{height} pixels; the limit is {MAX_IMAGE_PIXELS // 10**6} "
                             f"megapixels and {MAX_IMAGE_SIDE} pixels a side (scale it down first)")
    if cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) is None:
        raise FileCheckError(f"{path} is a damaged {fmt} image (it does not decode)")
    _remember(key)


# ----- videos and models ---------------------------------------------------------------------------------
def check_video(path: Path) -> None:
    """A video vcam can loop: a regular file whose frames are at most 7680x4320 (from the container, before
    decoding) and whose first frame decodes."""
    key = _key("video", path)
    if key in _passed:
        return
    fd, _ = _open_regular(path, 1 << 40)
    try:
        # Linux: open the very file we checked (a rename or a FIFO put in its place since cannot interfere).
        name = f"/proc/self/fd/{fd}" if sys.platform.startswith("linux") else str(path)
        cap = cv2.VideoCapture(name)
        try:
            if not cap.isOpened():
                raise FileCheckError(f"{path} is not a video OpenCV can read")
            width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
            if width > MAX_VIDEO_WIDTH or height > MAX_VIDEO_HEIGHT:
                raise FileCheckError(f"{path} has {width}x{height} frames; the limit is "
                                     f"{MAX_VIDEO_WIDTH}x{MAX_VIDEO_HEIGHT}")
            ok, _ = cap.read()
            if not ok:
                raise FileCheckError(f"{path} has no frame OpenCV can decode")
        finally:
            cap.release()
    finally:
        os.close(fd)
    _remember(key)


def check_model(choice: str, threads: int = 1) -> None:
    """A segmenter named by card name, tier or ``.onnx`` path: its card parses, the file matches the card's
    sha256, and it loads and follows the segmenter contract."""
    from .registry import find_model
    from .segmenter import ModelError, Segmenter

    try:
        card = find_model(choice, "segmentation")
    except LookupError as exc:
        raise FileCheckError(str(exc)) from None
    key = _key(f"model:{card.sha256}", card.path)
    if key in _passed:
        return
    data = read_regular_file(card.path, MAX_MODEL_BYTES)
    if card.sha256 and hashlib.sha256(data).hexdigest() != card.sha256:
        raise FileCheckError(f"{card.path} is corrupt: its sha256 does not match its card {card.card_path}")
    try:
        Segmenter(card, threads)
    except ModelError as exc:
        raise FileCheckError(str(exc)) from None
    _remember(key)


# ----- a whole config ------------------------------------------------------------------------------------
def check_config_files(config: Config, previous: Config | None = None) -> Config:
    """``config`` with every file setting resolved (``~``, ``$VAR``) and the files named checked; raises
    ``FileCheckError`` with the field's dotted name in ``field``.

    With ``previous`` (the running config), a file the pipeline already holds is not checked again: only a path
    that changed, or one that comes into use (``mode = "image"`` naming a picture set earlier), is. So a picture
    deleted after it was loaded does not make every later ``vcam set`` fail."""
    bg, daemon, model = config.background, config.daemon, config.model
    resolved = {name: str(resolve_path(value)) if value else value
                for name, value in (("image", bg.image), ("video", bg.video))}
    pause = str(resolve_path(daemon.pause_image)) if daemon.pause_image else None
    segmenter = model.segmenter
    if segmenter.endswith(".onnx"):
        segmenter = str(resolve_path(segmenter))
    old_bg = previous.background if previous is not None else None
    checks = [  # field, check, path, whether the pipeline already holds this very file
        ("background.image", check_image, resolved["image"],
         old_bg is not None and old_bg.image == resolved["image"] and (bg.mode != "image" or old_bg.mode == "image")),
        ("background.video", check_video, resolved["video"],
         old_bg is not None and old_bg.video == resolved["video"] and (bg.mode != "video" or old_bg.mode == "video")),
        ("daemon.pause_image", check_image, pause, previous is not None and previous.daemon.pause_image == pause),
    ]
    for field, check, value, held in checks:
        if value and not held:  # named but not in use yet is checked too: `vcam set background.image X` fails now
            _field_check(field, lambda: check(Path(value)))
    if segmenter != "auto" and not (previous is not None and previous.model.segmenter == segmenter
                                    and previous.model.threads == model.threads):
        _field_check("model.segmenter", lambda: check_model(segmenter, model.threads))
    return config.model_copy(update={
        "background": bg.model_copy(update=resolved),
        "daemon": daemon.model_copy(update={"pause_image": pause}),
        "model": model.model_copy(update={"segmenter": segmenter}),
    })


def _field_check(field: str, check) -> None:
    try:
        check()
    except FileCheckError as exc:
        exc.field = field  # type: ignore[attr-defined]
        raise
