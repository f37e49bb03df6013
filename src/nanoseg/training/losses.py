"""Losses: Dice as PaddleSeg 2.8's DiceLoss (softmax, one-hot, ignore mask, smooth=1, per image), CE, Dice+CE."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..io import IGNORE_INDEX


def dice_loss(logits: torch.Tensor, labels: torch.Tensor, smooth: float = 1.0, eps: float = 1e-8,
              ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """1 - soft Dice, exactly as PaddleSeg 2.8's DiceLoss: per image and class (sums over the
    pixels of one image), averaged over the batch, then over the classes."""
    num_classes = logits.shape[1]
    valid = (labels != ignore_index)
    safe = torch.where(valid, labels, torch.zeros_like(labels))
    onehot = F.one_hot(safe, num_classes).permute(0, 3, 1, 2).to(logits.dtype)
    probs = F.softmax(logits.float(), dim=1).to(logits.dtype)
    v = valid.unsqueeze(1).to(logits.dtype)
    probs, onehot = probs * v, onehot * v
    dims = (2, 3)
    inter = (probs * onehot).sum(dims)                  # (N, C)
    card = probs.sum(dims) + onehot.sum(dims)
    dice = (2 * inter + smooth) / (card + smooth + eps)
    return (1 - dice).mean()


def ce_loss(logits, labels, ignore_index: int = IGNORE_INDEX):
    return F.cross_entropy(logits.float(), labels, ignore_index=ignore_index)


LOSSES = {
    "dice": dice_loss,
    "ce": ce_loss,
    "dice+ce": lambda lo, la: dice_loss(lo, la) + ce_loss(lo, la),
}
