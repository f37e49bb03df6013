"""Particle maps as training targets: every particle a synthetic image records, painted as a disc.

The ring-class masks ``nanoseg synth`` writes ask a model to recognise rings by their context;
a particle map asks only for a local appearance, which the generator renders exactly (each
particle's centre and radius in px are in ``meta.jsonl``). A model trained on these maps can
stand in for the white top-hat particle detector of the loop finder
(``inference.loops.chain_map``). ``particle_dataset`` turns a ``synth`` folder into a folder of
the same layout whose masks are the particle maps (class 1), so ``nanoseg train`` trains on it
unchanged.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np

from .. import io
from ..errors import NanosegError
from .meta import META_FILE, read_meta

SUBPIXEL_BITS = 4  # cv2.circle's fixed-point shift: centres and radii to 1/16 px


def paint_particles(meta: dict, shape_hw: tuple[int, int]) -> np.ndarray:
    """(H, W) uint8 map: 1 inside every particle of one synthetic image's meta record, else 0.

    Parameters
    ----------
    meta : dict
        One record of ``read_meta`` (its ``particles`` table: x, y, r in px of the image).
    shape_hw : (int, int)
        Image height and width (px).
    """
    mask = np.zeros(shape_hw, np.uint8)
    table = meta.get("particles") or {"columns": ["x", "y", "r"], "rows": []}  # as generate writes it
    ix, iy, ir = (table["columns"].index(c) for c in ("x", "y", "r"))
    scale = 1 << SUBPIXEL_BITS
    for row in table["rows"]:
        x, y, r = float(row[ix]), float(row[iy]), float(row[ir])
        cv2.circle(mask, (int(round(x * scale)), int(round(y * scale))), max(1, int(round(r * scale))), 1,
                   thickness=-1, lineType=cv2.LINE_8, shift=SUBPIXEL_BITS)
    return mask


def particle_dataset(src: str | Path, out: str | Path, *, overwrite: bool = False) -> int:
    """Copy a ``nanoseg synth`` folder to ``out`` with particle maps as its masks; returns the count.

    ``images/``, ``manifest.csv`` and ``meta.jsonl`` are copied as they are; ``masks/<id>.png``
    holds the particles (1) on background (0); the ring labelme files are left out (they would
    rasterise to the other target). ``out`` is built under a temporary name; ``src`` is not touched.

    Parameters
    ----------
    src : str or Path
        A synthetic dataset folder (with ``meta.jsonl``).
    out : str or Path
        The folder to create.
    overwrite : bool
        Replace a non-empty ``out``.
    """
    src = Path(src)
    metas = read_meta(src)
    if not metas:
        raise NanosegError(f"{src}: no {META_FILE}: not a synthetic dataset")
    rows = io.read_csv(src / "manifest.csv")
    with io.atomic_dir(out, overwrite=overwrite, inputs=[src]) as tmp:
        (tmp / "images").mkdir()
        (tmp / "masks").mkdir()
        for row in rows:
            sid = io.check_name(row["id"], "manifest id")
            if sid not in metas:
                raise NanosegError(f"{src / META_FILE}: no record for {sid}")
            image = src / "images" / f"{sid}.png"
            shutil.copyfile(image, tmp / "images" / f"{sid}.png")
            io.write_png(tmp / "masks" / f"{sid}.png", paint_particles(metas[sid], io.read_gray(image).shape))
        shutil.copyfile(src / "manifest.csv", tmp / "manifest.csv")
        shutil.copyfile(src / META_FILE, tmp / META_FILE)
        io.write_json(tmp / "particles.json", {"source": src.name, "target": "particles as discs (class 1)",
                                               "n": len(rows)})
    return len(rows)
