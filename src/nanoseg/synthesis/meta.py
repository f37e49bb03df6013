"""Per-image ground truth of a synthetic dataset: ``DIR/meta.jsonl``.

One JSON object per line, in manifest order: the image id, seed, index and preset, the
parameter values drawn for it, its rings (centre, radii, coverage and the index range
of the ring's own labelme shapes), its hard negatives, and every particle (x, y, r,
kind, structure id). One file for the whole dataset, not one per image: creating a
file is the largest per-image cost of ``nanoseg synth`` after rendering itself.
Folders written by earlier versions (``DIR/meta/<id>.json``) are read as well.
"""

from __future__ import annotations

import json
from pathlib import Path

import orjson

from ..errors import NanosegError, brief

META_FILE = "meta.jsonl"


def read_meta(folder: str | Path) -> dict[str, dict]:
    """id -> meta record of every synthetic image in ``folder`` (empty when there is none)."""
    folder = Path(folder)
    out: dict[str, dict] = {}
    path = folder / META_FILE
    if path.exists():
        with open(path, "rb") as fh:
            for line_no, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    rec = orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    raise NanosegError(f"{path}:{line_no}: not a JSON line ({brief(exc)})") from None
                if not isinstance(rec, dict) or "id" not in rec:
                    raise NanosegError(f"{path}:{line_no}: a meta record needs an 'id'")
                out[str(rec["id"])] = rec
    legacy = folder / "meta"
    if legacy.is_dir():
        for p in sorted(legacy.glob("*.json")):
            try:
                out.setdefault(p.stem, json.loads(p.read_text()))
            except (OSError, json.JSONDecodeError) as exc:
                raise NanosegError(f"{p}: not a readable meta file ({brief(exc)})") from None
    return out
