"""Where the training and evaluation data lives: one root for every script in the repository.

``VCAM_DATA`` overrides it; the default is ``shared/data`` beside the repository (``../shared/data`` from the
repository root). The installed product never reads it.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def data_root() -> Path:
    """The data folder: ``$VCAM_DATA`` if set, else ``<repo>/../shared/data``."""
    env = os.environ.get("VCAM_DATA")
    return Path(env).expanduser() if env else REPO.parent / "shared" / "data"


DATA_ROOT = data_root()
