"""Segmentation metrics exactly as PaddleSeg 2.8 computes them (paddleseg.utils.metrics).

Intersection, prediction and label areas per class are accumulated over the
whole evaluation set first; pixels labelled ``ignore_index`` are excluded from
all three. Then, per class c with I, P, L the accumulated areas:
IoU = I/(P+L-I), Dice = 2I/(P+L) (0 where the denominator is 0); mIoU and
mDice are plain means over classes; Acc = sum(I)/sum(P); Kappa = (po-pe)/(1-pe)
with po = sum(I)/N and pe = sum(P*L)/N^2, N the number of labelled pixels.
"""

from __future__ import annotations

import numpy as np

from ..io import IGNORE_INDEX


def calculate_area(pred: np.ndarray, label: np.ndarray, num_classes: int, ignore_index: int = IGNORE_INDEX):
    """Per-class intersection, prediction and label areas of one image (int64 arrays)."""
    pred = np.asarray(pred).astype(np.int64).ravel()
    label = np.asarray(label).astype(np.int64).ravel()
    if pred.shape != label.shape:
        raise ValueError(f"prediction and label differ in size: {pred.shape} vs {label.shape}")
    keep = label != ignore_index
    pred, label = pred[keep], label[keep]
    valid_pred = (pred >= 0) & (pred < num_classes)
    pred_area = np.bincount(pred[valid_pred], minlength=num_classes)[:num_classes]
    label_area = np.bincount(label[(label >= 0) & (label < num_classes)], minlength=num_classes)[:num_classes]
    same = (pred == label) & valid_pred
    intersect = np.bincount(pred[same], minlength=num_classes)[:num_classes]
    return intersect.astype(np.int64), pred_area.astype(np.int64), label_area.astype(np.int64)


def calculate_area_torch(pred, label, num_classes: int, ignore_index: int = IGNORE_INDEX):
    """``calculate_area`` on tensors of any shape (a batch at once), on their device.

    Returns an int64 tensor (3, num_classes): intersection, prediction and label
    areas. Masked sums only, no boolean indexing, so a CUDA caller is never made
    to wait; the counts equal ``calculate_area``'s.
    """
    import torch

    if pred.shape != label.shape:
        raise ValueError(f"prediction and label differ in size: {tuple(pred.shape)} vs {tuple(label.shape)}")
    label = label.long()
    pred = pred.long()
    keep = label != ignore_index
    out = []
    for c in range(num_classes):
        is_p, is_l = keep & (pred == c), keep & (label == c)
        out.append(torch.stack([(is_p & is_l).sum(), is_p.sum(), is_l.sum()]))
    return torch.stack(out, 1)


class AreaAccumulator:
    """Accumulate areas image by image; ``compute()`` gives the PaddleSeg metrics."""

    def __init__(self, num_classes: int = 2, ignore_index: int = IGNORE_INDEX):
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.intersect = np.zeros(num_classes, np.int64)
        self.pred = np.zeros(num_classes, np.int64)
        self.label = np.zeros(num_classes, np.int64)
        self.n_images = 0

    def update(self, pred, label):
        i, p, lab = calculate_area(pred, label, self.num_classes, self.ignore_index)
        self.intersect += i
        self.pred += p
        self.label += lab
        self.n_images += 1

    def add_areas(self, areas, n_images: int) -> None:
        """Add summed (intersection, prediction, label) areas, e.g. of ``calculate_area_torch``."""
        a = np.asarray(areas, np.int64)
        self.intersect += a[0]
        self.pred += a[1]
        self.label += a[2]
        self.n_images += int(n_images)

    def compute(self) -> dict:
        return metrics_from_areas(self.intersect, self.pred, self.label, self.n_images)


def _safe_div(a, b):
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    return np.divide(a, b, out=np.zeros_like(a), where=b != 0)


def metrics_from_areas(intersect, pred_area, label_area, n_images: int = 0) -> dict:
    intersect = np.asarray(intersect, np.float64)
    pred_area = np.asarray(pred_area, np.float64)
    label_area = np.asarray(label_area, np.float64)
    class_iou = _safe_div(intersect, pred_area + label_area - intersect)
    class_dice = _safe_div(2 * intersect, pred_area + label_area)
    class_acc = _safe_div(intersect, pred_area)
    acc = float(intersect.sum() / pred_area.sum()) if pred_area.sum() else 0.0
    total = label_area.sum()
    if total:
        po = intersect.sum() / total
        pe = float((pred_area * label_area).sum()) / (total * total)
        kappa = float((po - pe) / (1 - pe)) if pe != 1 else 0.0
    else:
        kappa = 0.0
    return {
        "miou": float(class_iou.mean()),
        "acc": acc,
        "kappa": kappa,
        "dice": float(class_dice.mean()),
        "class_iou": class_iou.tolist(),
        "class_dice": class_dice.tolist(),
        "class_acc": class_acc.tolist(),
        "n_images": int(n_images),
    }
