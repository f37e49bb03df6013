"""The dataset folder convention and its PyTorch view.

``DIR/images/<id>.png`` (8-bit gray), ``DIR/masks/<id>.png`` (0 background,
1 ring band, 255 ignore), optional ``DIR/labelme/<id>.json``, and
``DIR/manifest.csv`` (id, source, group, plus how each sample was made).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from .. import io
from ..errors import NanosegError


def read_manifest(folder: str | Path) -> list[dict]:
    folder = Path(folder)
    path = folder / "manifest.csv"
    if not folder.is_dir():
        raise NanosegError(f"{folder}: dataset folder not found")
    if not path.exists():
        # a bare images/ + masks/ folder: one group per image
        imgs = io.list_images(folder / "images") if (folder / "images").is_dir() else []
        if not imgs:
            raise NanosegError(f"{folder}: no manifest.csv and no images/ (not a dataset folder)")
        return [{"id": io.check_name(p.stem, str(p)), "source": "unknown", "group": p.stem} for p in imgs]
    try:
        rows = io.read_csv(path)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise NanosegError(f"{path}: cannot read manifest ({exc.__class__.__name__}: {exc})") from None
    if not rows:
        raise NanosegError(f"{path}: manifest is empty")
    seen = set()
    for k, r in enumerate(rows, 2):
        if "id" not in r or r["id"] is None:
            raise NanosegError(f"{path}: line {k} has no id")
        io.check_name(r["id"], f"{path}: line {k}: id")
        if r["id"] in seen:
            raise NanosegError(f"{path}: line {k}: id {r['id']!r} appears twice")
        seen.add(r["id"])
        if not r.get("group"):
            r["group"] = r["id"]
    return rows


def scale_range(rows: list[dict]) -> tuple[float, float] | None:
    """(smallest, largest) ``scale_nm_per_px`` of manifest rows; rows without one are skipped.

    A model records this range of its training data (``spec["scale_nm_per_px_range"]``) so
    that ``predict`` can bring a micrograph of known pixel size into it.
    """
    known = []
    for r in rows:
        try:
            f = float(r.get("scale_nm_per_px") or "nan")
        except (TypeError, ValueError):
            continue
        if math.isfinite(f) and f > 0:
            known.append(f)
    return (min(known), max(known)) if known else None


def load_sample(folder: str | Path, sid: str, need_mask: bool = True):
    folder = Path(folder)
    img = io.read_gray(folder / "images" / f"{sid}.png")
    mask = None
    mp = folder / "masks" / f"{sid}.png"
    if mp.exists():
        mask = io.read_mask(mp)
        if mask.shape != img.shape:
            raise NanosegError(f"{mp}: mask size {mask.shape} differs from image size {img.shape}")
    elif need_mask:
        raise NanosegError(f"{mp}: mask missing")
    return img, mask


def check_mask_classes(mask: np.ndarray, num_classes: int, where) -> None:
    """Refuse a mask holding a class the model cannot have (anything but 0..num_classes-1 and 255):
    the loss would fail mid-run, or the metrics silently drop those pixels."""
    bad = np.unique(mask[(mask >= num_classes) & (mask != io.IGNORE_INDEX)])
    if bad.size:
        raise NanosegError(f"{where}: mask holds class(es) {bad[:5].tolist()} but there are {num_classes} "
                           f"classes (0..{num_classes - 1}, {io.IGNORE_INDEX} ignore)")


def load_arrays(folder: str | Path):
    """All images and masks of a folder, in manifest order (small datasets fit in memory)."""
    rows = read_manifest(folder)
    images, masks = [], []
    for r in rows:
        img, mask = load_sample(folder, r["id"])
        images.append(img)
        masks.append(mask)
    return rows, images, masks


class SegmentationDataset:
    """Images and masks held in memory; optional joint transform and random crop.

    A map-style dataset usable by ``torch.utils.data.DataLoader``, indexed by a
    sample index (at ``self.epoch``) or by an ``(epoch, index)`` key, as the
    training loader's sampler gives them (``nanoseg.data.loader``). Random choices
    come from a generator seeded by (``seed``, epoch, index), so a resumed run sees
    the same samples as an uninterrupted one whichever process builds them.
    """

    def __init__(self, folder: str | Path, transform=None, crop_px: int | None = None, seed: int = 0):
        self.folder = Path(folder)
        self.rows, self.images, self.masks = load_arrays(folder)
        self.transform = transform
        self.crop_px = crop_px
        self.seed = seed
        self.epoch = 0

    def __len__(self):
        return len(self.images)

    def __getitem__(self, key):
        import torch

        epoch, i = key if isinstance(key, tuple) else (self.epoch, key)
        img, mask = self.images[i], self.masks[i]
        rng = np.random.default_rng([self.seed, epoch, i])
        if self.transform is not None:
            img, mask = self.transform(img, mask, rng)
        if self.crop_px:
            img, mask = random_padding_crop(img, mask, self.crop_px, rng)
        x = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32) / 255.0)[None]
        y = torch.from_numpy(np.ascontiguousarray(mask).astype(np.int64))
        return x, y


def random_padding_crop(img: np.ndarray, mask: np.ndarray, crop_px: int, rng: np.random.Generator):
    """PaddleSeg's RandomPaddingCrop: pad (image 0, mask ignore) up to the crop, then crop at random."""
    h, w = img.shape
    ph, pw = max(crop_px - h, 0), max(crop_px - w, 0)
    if ph or pw:
        img = np.pad(img, ((0, ph), (0, pw)), constant_values=0)
        mask = np.pad(mask, ((0, ph), (0, pw)), constant_values=io.IGNORE_INDEX)
        h, w = img.shape
    y0 = int(rng.integers(0, h - crop_px + 1))
    x0 = int(rng.integers(0, w - crop_px + 1))
    return img[y0:y0 + crop_px, x0:x0 + crop_px], mask[y0:y0 + crop_px, x0:x0 + crop_px]
