"""The model registry: every shipped ``NAME.onnx`` under ``vcam.models`` with its card ``NAME.json``.

Code asks for "the segmenter" and gets a card; it never knows which network is behind it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

log = logging.getLogger(__name__)


class ModelCardError(LookupError):
    """A model's card beside it cannot be used (not JSON, wrong fields); the message names the card."""


class ModelCard(BaseModel):
    """What a model file's card says about it (docs/ARCHITECTURE.md)."""

    model_config = ConfigDict(frozen=True, extra="allow")

    name: str
    task: str
    file: str
    input_size: tuple[int, int] | None = None  # [H, W]
    tier: str = "baseline"
    priority: int = 0
    licence: str = "unknown"
    source: str = ""
    sha256: str | None = None
    figures: dict[str, Any] = Field(default_factory=dict)
    card_path: Path | None = None

    @property
    def path(self) -> Path:
        assert self.card_path is not None
        return self.card_path.parent / self.file

    def verify(self) -> str | None:
        """None when the model file is present and matches its card's hash, else the problem."""
        from .file_checks import MAX_MODEL_BYTES, FileCheckError, read_regular_file

        if not self.path.is_file():
            return f"{self.path} is missing"
        if self.sha256:
            try:
                digest = hashlib.sha256(read_regular_file(self.path, MAX_MODEL_BYTES)).hexdigest()
            except FileCheckError as exc:
                return str(exc)
            if digest != self.sha256:
                return f"{self.path} is corrupt (sha256 {digest[:12]}... != card {self.sha256[:12]}...)"
        return None


def models_root() -> Path:
    return Path(str(resources.files("vcam.models")))


@lru_cache(maxsize=1)
def _scan() -> tuple[ModelCard, ...]:
    cards = []
    for card_file in sorted(models_root().rglob("*.json")):
        if not (card_file.with_suffix(".onnx")).exists():
            continue
        try:
            data = json.loads(card_file.read_text())
            cards.append(ModelCard(**data, card_path=card_file))
        except (json.JSONDecodeError, ValidationError, TypeError) as exc:
            log.warning("ignoring model card %s: %s", card_file, exc)
    return tuple(cards)


def list_models(task: str | None = None) -> list[ModelCard]:
    """Installed models (optionally of one task), highest priority first."""
    cards = [c for c in _scan() if task is None or c.task == task]
    return sorted(cards, key=lambda c: -c.priority)


def verified_model_path(name: str, task: str) -> Path:
    """The path of the shipped model ``name`` of ``task`` after its card's sha256 check; ``LookupError`` when
    it is not installed, ``ValueError`` when the file is missing or corrupt."""
    card = find_model(name, task)
    problem = _verify_cached(card.path, card.sha256)
    if problem:
        raise ValueError(problem)
    return card.path


@lru_cache(maxsize=16)
def _verify_cached(path: Path, sha256: str | None) -> str | None:
    # Shipped files do not change while the daemon runs: hash each once per process.
    return ModelCard(name=path.stem, task="", file=path.name, sha256=sha256, card_path=path.with_suffix(".json")).verify()


def find_model(name_or_path: str, task: str) -> ModelCard:
    """A model by card name, tier, or a path to an ``.onnx`` file (with or without a card beside it)."""
    for card in list_models(task):
        if name_or_path in (card.name, card.tier, card.file):
            return card
    path = Path(name_or_path).expanduser()
    if path.suffix == ".onnx":
        card_file = path.with_suffix(".json")
        if card_file.exists():
            return _read_card(card_file)
        return ModelCard(name=path.stem, task=task, file=path.name, card_path=path.resolve().with_suffix(".json"))
    known = ", ".join(c.name for c in list_models(task)) or "none installed"
    raise LookupError(f"no {task} model named {name_or_path!r}; installed: {known}; or give a path to an .onnx file")


def _read_card(card_file: Path) -> ModelCard:
    """The card beside a model named by path; ``ModelCardError`` (a clear message) when it cannot be used."""
    from .file_checks import FileCheckError, read_regular_file

    try:
        data = json.loads(read_regular_file(card_file, 1 << 20))
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        data.pop("card_path", None)
        return ModelCard(**data, card_path=card_file.resolve())
    except FileCheckError as exc:
        raise ModelCardError(f"model card {exc}") from None
    except (ValueError, RecursionError, TypeError) as exc:  # JSON errors and pydantic's are ValueErrors
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelCardError(f"model card {card_file} cannot be used ({reason}); fix it or delete it") from None
