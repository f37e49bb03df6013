"""Sliding-window inference with overlap and smooth (sin^2) blending: no seams, any size.

``tile_rule`` is the one rule for the tile a model is evaluated at (``nanoseg evaluate``,
training's validation and experiments all use it); ``nanoseg predict`` runs whole images
when they fit its memory budget, else the largest tiles that fit (``engine.Predictor``).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..imaging import tile_origins

MIN_TILE_PX = 256
DEFAULT_TRAIN_SIZE_PX = 321


def tile_rule(train_size_px: int | None) -> tuple[int, int]:
    """(tile, overlap) in px for a model trained on ``train_size_px`` crops: the training size
    rounded up to a multiple of 32, at least 256; a quarter of it overlaps."""
    tile = max(MIN_TILE_PX, int(math.ceil((train_size_px or DEFAULT_TRAIN_SIZE_PX) / 32) * 32))
    return tile, tile // 4


def edge_taper(n: int, overlap: int, start_inside: bool, end_inside: bool) -> np.ndarray:
    """1-D blending weights of a tile: 1 inside, rising from 0 across ``overlap`` at edges shared
    with a neighbour tile. The first quarter of the overlap gets no weight at all, since outputs
    there saw the tile's artificial border; at image borders the weight stays 1."""
    w = np.ones(n, np.float32)
    if overlap <= 0:
        return w
    dead = overlap // 4
    ramp_len = max(1, overlap - dead)
    ramp = np.sin(0.5 * np.pi * (np.arange(ramp_len) + 0.5) / ramp_len) ** 2
    prof = np.concatenate([np.zeros(dead), ramp])[:n].astype(np.float32)
    if start_inside:
        w[:len(prof)] = np.minimum(w[:len(prof)], prof)
    if end_inside:
        w[n - len(prof):] = np.minimum(w[n - len(prof):], prof[::-1])
    return w


@torch.inference_mode()
def predict_probs(model, image: np.ndarray, tile_px: int = 384, overlap_px: int = 96, batch_size: int = 4,
                  device="cpu") -> np.ndarray:
    """Class probabilities (C, H, W) of an 8-bit image.

    An image that fits in one tile goes through the model whole (the model pads
    it to its stride); larger images are cut into overlapping tiles whose
    softmax outputs are blended with a smooth window. ``model`` is any callable
    from an N×1×H×W float tensor to logits (a PyTorch module or
    ``engine.OnnxRunner``); which tile size to use is ``engine.Predictor``'s choice.
    """
    h, w = image.shape
    x_full = torch.from_numpy(image.astype(np.float32) / 255.0)
    if h <= tile_px and w <= tile_px:
        logits = model(x_full[None, None].to(device))
        return torch.softmax(logits.float(), 1)[0].contiguous().cpu().numpy()  # (C, H, W) even from channels-last
    th, tw = min(tile_px, h), min(tile_px, w)
    coords = tile_origins((h, w), tile_px, overlap_px)
    acc = None
    wsum = np.zeros((h, w), np.float32)
    for b in range(0, len(coords), batch_size):
        chunk = coords[b:b + batch_size]
        batch = torch.stack([x_full[y:y + th, x:x + tw] for y, x in chunk])[:, None].to(device)
        probs = torch.softmax(model(batch).float(), 1).contiguous().cpu().numpy()
        if acc is None:
            acc = np.zeros((probs.shape[1], h, w), np.float32)
        for (y, x), p in zip(chunk, probs):
            win = np.outer(edge_taper(th, overlap_px, y > 0, y + th < h), edge_taper(tw, overlap_px, x > 0, x + tw < w))
            acc[:, y:y + th, x:x + tw] += p * win
            wsum[y:y + th, x:x + tw] += win
    return acc / wsum[None]


def predict_mask(model, image: np.ndarray, *, tile_px: int, overlap_px: int | None = None, batch_size: int = 4,
                 device="cpu") -> np.ndarray:
    """Class-index mask (uint8 HxW) of an 8-bit image: the argmax of ``predict_probs``
    (``overlap_px`` defaults to a quarter of the tile)."""
    overlap_px = tile_px // 4 if overlap_px is None else overlap_px
    return predict_probs(model, image, tile_px, overlap_px, batch_size, device).argmax(0).astype(np.uint8)
