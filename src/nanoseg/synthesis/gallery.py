"""A grid of synthetic images with their ring masks outlined, for a quick look."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .. import io


def outline(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    rgb = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    contours, _ = cv2.findContours((mask == 1).astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(rgb, contours, -1, (255, 80, 40), 1)
    return rgb


def write_gallery(folder, path, n: int = 16, ncols: int = 4) -> None:
    """Image | outlined-mask pairs side by side, ``n`` samples, as one PNG."""
    folder = Path(folder)
    rows = io.read_csv(folder / "manifest.csv")[:n]  # the generator's own manifest
    tiles = []
    for r in rows:
        img = io.read_gray(folder / "images" / f"{r['id']}.png")
        mask = io.read_mask(folder / "masks" / f"{r['id']}.png")
        tiles.append(np.hstack([cv2.cvtColor(img, cv2.COLOR_GRAY2RGB), outline(img, mask)]))
    if not tiles:
        return
    h = max(t.shape[0] for t in tiles)
    w = max(t.shape[1] for t in tiles)
    pad = [np.pad(t, ((0, h - t.shape[0] + 4), (0, w - t.shape[1] + 4), (0, 0)), constant_values=255) for t in tiles]
    while len(pad) % ncols:
        pad.append(np.full_like(pad[0], 255))
    grid = np.vstack([np.hstack(pad[i:i + ncols]) for i in range(0, len(pad), ncols)])
    io.write_png(path, grid)
