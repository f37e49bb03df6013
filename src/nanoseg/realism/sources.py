"""Micrographs for the realism statistics: real files with their pixel size and data bar, synthetic folders.

Real micrographs often carry no pixel size (the Boiko et al. 2020 TIFFs have none: their
scale is on the burnt-in scale bar), so each file's scale comes from, in order: a per-file
value (``--scale-nm-per-px`` given once per file, or a CSV ``file,scale_nm_per_px``), a single
value for all, the file's metadata (``nanoseg.scale``), else none (lengths stay in px).
A synthetic dataset folder records each image's ``scale_nm_per_px`` in ``meta.jsonl`` (or
``manifest.csv``).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .. import io
from ..imaging import data_bar_rows
from ..errors import NanosegError
from ..scale import read_pixel_size
from .stats import ImageStats, measure_tiled


@dataclass
class Micrograph:
    name: str
    image: np.ndarray               # uint8, data bar removed
    scale_nm_per_px: float | None
    scale_source: str               # flag | csv | metadata:... | manifest | none
    crop_bottom_px: int = 0


def read_scale_csv(path: str | Path) -> dict[str, float]:
    """file name (or stem) -> nm per px from a CSV with columns ``file`` and ``scale_nm_per_px``."""
    path = Path(path)
    try:
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise NanosegError(f"{path}: cannot read the scale table ({exc})") from None
    if not rows or not {"file", "scale_nm_per_px"} <= set(rows[0]):
        raise NanosegError(f"{path}: the scale table needs the columns file,scale_nm_per_px")
    out = {}
    for i, row in enumerate(rows, 2):
        try:
            val = float(row["scale_nm_per_px"])
        except (TypeError, ValueError):
            raise NanosegError(f"{path}:{i}: scale_nm_per_px {row['scale_nm_per_px']!r} is not a number") from None
        if val <= 0:
            raise NanosegError(f"{path}:{i}: scale_nm_per_px must be positive")
        out[Path(row["file"]).name] = val
        out[Path(row["file"]).stem] = val
    return out


def load_real(paths, *, scales: list[float] | None = None, scale_table: dict[str, float] | None = None,
              crop_bottom: int | str | None = None) -> tuple[list[Micrograph], list[tuple[str, str]]]:
    """Read real micrographs, cut their data bar and give each its pixel size.

    Parameters
    ----------
    paths : files or folders of micrographs
    scales : list of float, optional
        nm per px: one value for every file, or one per file in the order found.
    scale_table : dict, optional
        file name or stem -> nm per px (wins over ``scales``).
    crop_bottom : int or "auto", optional
        Rows of data bar to cut (``"auto"``: ``imaging.detect_data_bar``).

    Returns the readable micrographs and (file, reason) for those skipped.
    """
    files, problems = io.collect_images(paths)
    scales = list(scales or [])
    if any(s <= 0 for s in scales):
        raise NanosegError("--scale-nm-per-px: must be positive")
    if len(scales) > 1 and len(scales) != len(files):
        raise NanosegError(f"--scale-nm-per-px: given {len(scales)} times for {len(files)} file(s); "
                           "give it once for all or once per file")
    out = []
    for i, path in enumerate(files):
        try:
            img = io.read_gray(path)
        except NanosegError as exc:
            problems.append((str(path), str(exc).split(": ", 1)[-1]))
            continue
        try:
            bar = data_bar_rows(img, crop_bottom)
        except NanosegError as exc:
            problems.append((str(path), str(exc)))
            continue
        full, img = img, img[:-bar] if bar else img
        if min(img.shape) < 32:
            problems.append((str(path), f"{img.shape[1]}x{img.shape[0]} is too small to measure (32 px)"))
            continue
        if scale_table and (path.name in scale_table or path.stem in scale_table):
            scale, src = scale_table.get(path.name, scale_table.get(path.stem)), "csv"
        elif scales:
            scale, src = scales[i] if len(scales) > 1 else scales[0], "flag"
        else:
            scale, src = read_pixel_size(path, full)
        out.append(Micrograph(path.name, img, scale, src, bar))
    return out, problems


def load_synthetic(folder: str | Path) -> list[Micrograph]:
    """Every image of a dataset folder with the pixel size it was rendered at (None if unrecorded)."""
    from ..synthesis.meta import read_meta

    folder = Path(folder)
    img_dir = folder / "images"
    if not img_dir.is_dir():
        raise NanosegError(f"--synth: {folder} is not a dataset folder (no images/)")
    meta = read_meta(folder)
    manifest = {}
    if (folder / "manifest.csv").exists():
        for row in io.read_csv(folder / "manifest.csv"):
            try:
                manifest[row["id"]] = json.loads(row.get("params") or "{}").get("scale_nm_per_px")
            except (json.JSONDecodeError, AttributeError):
                continue
    out = []
    for path in io.list_images(img_dir):
        scale = (meta.get(path.stem, {}).get("values") or {}).get("scale_nm_per_px") or manifest.get(path.stem)
        out.append(Micrograph(path.stem, io.read_gray(path), float(scale) if scale else None,
                              "manifest" if scale else "none"))
    if not out:
        raise NanosegError(f"--synth: {img_dir} holds no images")
    return out


def measure_all(micrographs: list[Micrograph], *, use_scale: bool = True, tile_px: int | None = None,
                desc: str = "measure", progress: bool = True) -> list[ImageStats]:
    """``measure_image`` of every micrograph (in px when ``use_scale`` is False), in tiles of
    ``tile_px`` when given (``stats.measure_tiled``)."""
    return [measure_tiled(m.image, m.scale_nm_per_px if use_scale else None, tile_px=tile_px, seed=i)
            for i, m in enumerate(tqdm(micrographs, desc=desc, unit="img", disable=not progress))]
