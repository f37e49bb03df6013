"""Sliding-window inference with overlap and smooth (cosine) blending: no seams, any size."""

from __future__ import annotations

import numpy as np
import torch


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    if length <= tile:
        return [0]
    step = max(1, tile - overlap)
    starts = list(range(0, length - tile + 1, step))
    if starts[-1] != length - tile:
        starts.append(length - tile)
    return starts


def blend_window(h: int, w: int) -> np.ndarray:
    """Weights that fall smoothly to a small floor at tile edges (separable Hann)."""
    def one(n):
        if n < 3:
            return np.ones(n)
        return 0.05 + 0.95 * np.sin(np.pi * (np.arange(n) + 0.5) / n) ** 2
    return np.outer(one(h), one(w)).astype(np.float32)


@torch.no_grad()
def predict_probs(model, image: np.ndarray, tile_px: int = 384, overlap_px: int = 96, batch_size: int = 4,
                  device="cpu") -> np.ndarray:
    """Class probabilities (C, H, W) of an 8-bit image.

    An image that fits in one tile goes through the model whole (the model pads
    it to its stride); larger images are cut into overlapping tiles whose
    softmax outputs are blended with a smooth window.
    """
    h, w = image.shape
    x_full = torch.from_numpy(image.astype(np.float32) / 255.0)
    if h <= tile_px and w <= tile_px:
        logits = model(x_full[None, None].to(device))
        return torch.softmax(logits.float(), 1)[0].cpu().numpy()
    th, tw = min(tile_px, h), min(tile_px, w)
    ys, xs = tile_starts(h, th, overlap_px), tile_starts(w, tw, overlap_px)
    coords = [(y, x) for y in ys for x in xs]
    win = blend_window(th, tw)
    acc = None
    wsum = np.zeros((h, w), np.float32)
    for b in range(0, len(coords), batch_size):
        chunk = coords[b:b + batch_size]
        batch = torch.stack([x_full[y:y + th, x:x + tw] for y, x in chunk])[:, None].to(device)
        probs = torch.softmax(model(batch).float(), 1).cpu().numpy()
        if acc is None:
            acc = np.zeros((probs.shape[1], h, w), np.float32)
        for (y, x), p in zip(chunk, probs):
            acc[:, y:y + th, x:x + tw] += p * win
            wsum[y:y + th, x:x + tw] += win
    return acc / wsum[None]
