"""The paper's augmentations with albumentations, applied to image and mask together.

Flips, transpose (mirror), affine (scale, translate/pan, rotate, shear),
rotation, Gaussian noise, brightness/contrast. Masks are resampled with nearest
neighbour and padded with the ignore index, so labels never blur.
"""

from __future__ import annotations

import os
from pathlib import Path

import albumentations as A
import cv2
import numpy as np
from tqdm import tqdm

from .. import io
from ..errors import NanosegError
from .dataset import load_sample, read_manifest


#: strongest augmentation: scale 0.5-1.5, shifts up to 30 %, twice the paper's noise and contrast
MAX_STRENGTH = 2.0


def paper_augmentation(strength: float = 1.0) -> A.Compose:
    """The pipeline of the study ("flipping, mirror, affine, rotation, Gaussian noise, contrast, scale, panning")."""
    s = float(strength)
    return A.Compose([
        A.HorizontalFlip(p=0.5),
        A.VerticalFlip(p=0.5),
        A.Transpose(p=0.3),
        A.Affine(scale=(1 - 0.25 * s, 1 + 0.25 * s), translate_percent=(-0.15 * s, 0.15 * s),
                 rotate=(-180, 180), shear=(-8 * s, 8 * s), interpolation=cv2.INTER_LINEAR,
                 mask_interpolation=cv2.INTER_NEAREST, border_mode=cv2.BORDER_REFLECT_101,
                 fill=0, fill_mask=255, p=0.8),
        A.RandomBrightnessContrast(brightness_limit=0.2 * s, contrast_limit=0.25 * s, p=0.6),
        A.GaussNoise(std_range=(0.01, 0.06 * s), p=0.5),
    ], seed=None)


class JointTransform:
    """Callable (image, mask, rng) -> (image, mask): deterministic for a given rng."""

    def __init__(self, strength: float = 1.0):
        self.strength = strength
        self.pipeline = paper_augmentation(strength)

    def __call__(self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator):
        self.pipeline.set_random_seed(int(rng.integers(0, 2**31 - 1)))
        out = self.pipeline(image=image, mask=mask)
        return out["image"], out["mask"]


def augment_pool(src: str | Path, out: str | Path, *, n: int, seed: int, strength: float = 1.0,
                 overwrite: bool = False, progress: bool = True, keep_originals: bool = True) -> list[dict]:
    """Write a pool of ``n`` samples: the originals (if ``keep_originals``) plus augmented copies.

    Copies are spread evenly over the originals; each keeps its original's group and pixel size.
    Returns the manifest rows.

    Parameters
    ----------
    src : str or Path
        Dataset folder to augment (read only).
    out : str or Path
        Pool folder to create.
    n : int
        Samples in the pool, originals included (at least 1).
    seed : int
        Seed of every augmentation: copy ``k`` depends on (``seed``, ``k``) only.
    strength : float
        Scale of every augmentation range, 0 (none) to 2; 1 is the paper's (affine zoom of
        +-25%, shifts of 15% of the side, rotations, flips, noise and contrast).
    overwrite : bool
        Replace a non-empty ``out``.
    progress : bool
        Show a progress bar.
    keep_originals : bool
        Put the originals in the pool (when ``n`` is at least their number).
    """
    rows = read_manifest(src)
    if n < 1:
        raise NanosegError(f"--n: must be at least 1 (got {n})")
    if seed < 0:
        raise NanosegError(f"--seed: must be non-negative (got {seed})")
    if not (0 <= strength <= MAX_STRENGTH):  # also refuses NaN
        raise NanosegError(f"--strength: must lie in 0..{MAX_STRENGTH} (got {strength})")
    transform = JointTransform(strength)
    n_orig = len(rows) if keep_originals and n >= len(rows) else 0
    with io.atomic_dir(out, overwrite=overwrite, inputs=[("--in", src)]) as tmp:
        out_rows = []
        bar = tqdm(total=n, desc="augment", unit="img", disable=not progress)
        for k in range(n):
            base = rows[k % len(rows)]
            img, mask = load_sample(src, base["id"])
            if k < n_orig:
                aug_img, aug_mask, kind = img, mask, "original"
            else:
                rng = np.random.default_rng([seed, k])
                aug_img, aug_mask = transform(img, mask, rng)
                kind = "augmented"
            aid = f"{base['id']}__a{k:05d}"
            io.write_png(tmp / "images" / f"{aid}.png", aug_img)
            io.write_png(tmp / "masks" / f"{aid}.png", aug_mask)
            out_rows.append({"id": aid, "source": base.get("source", "unknown"), "group": base.get("group", base["id"]),
                             "original_id": base["id"], "augmentation": kind, "seed": seed, "index": k,
                             # the pixel size of the original (the affine zoom of +-25% is augmentation)
                             "scale_nm_per_px": base.get("scale_nm_per_px", "")})
            bar.update()
        bar.close()
        io.write_csv(tmp / "manifest.csv", out_rows)
        io.write_json(tmp / "augment.json", {"src": os.fspath(src), "n": n, "seed": seed, "strength": strength})
    return out_rows
