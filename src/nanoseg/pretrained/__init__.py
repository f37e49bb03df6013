"""The model nanoseg ships: trained by nanoseg itself (``make model``), used when ``predict`` gets no ``--model``.

``rings-unet-small.pt`` is what the committed recipe produced (``experiments/default-model/``);
its checksum, training log and scores are in ``MODEL_CARD.md`` beside it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ..errors import NanosegError

DEFAULT_MODEL = Path(__file__).with_name("rings-unet-small.pt")


def default_model_path() -> Path:
    """The packaged default checkpoint (a one-line error when the package was built without it)."""
    if not DEFAULT_MODEL.exists():
        raise NanosegError(f"--model: no default model packaged ({DEFAULT_MODEL.name} missing); "
                           "train one with `make model` or pass --model RUN/best.pt")
    return DEFAULT_MODEL


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
