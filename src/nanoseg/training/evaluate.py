"""Evaluation: a model on a dataset, or two folders of masks, with the PaddleSeg metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .. import io
from ..errors import NanosegError
from .metrics import AreaAccumulator


@torch.no_grad()
def predict_logits(model, image: np.ndarray, device) -> torch.Tensor:
    x = torch.from_numpy(image.astype(np.float32) / 255.0)[None, None].to(device)
    return model(x)[0]


def evaluate_model(model, images, masks, num_classes: int = 2, device="cpu", progress: bool = True) -> dict:
    """Whole-image evaluation of a model (eval mode) over lists of images and masks."""
    model.eval()
    acc = AreaAccumulator(num_classes)
    for img, mask in tqdm(list(zip(images, masks)), desc="evaluate", unit="img", disable=not progress):
        pred = predict_logits(model, img, device).argmax(0).cpu().numpy()
        acc.update(pred, mask)
    return acc.compute()


def evaluate_folders(pred_dir: str | Path, gt_dir: str | Path, num_classes: int = 2) -> dict:
    """Metrics of class-index mask PNGs in ``pred_dir`` against ``gt_dir``, matched by file name."""
    pred_dir, gt_dir = Path(pred_dir), Path(gt_dir)
    for d, flag in ((pred_dir, "--pred"), (gt_dir, "--gt")):
        if not d.is_dir():
            raise NanosegError(f"{flag}: {d} is not a folder")
    gt_sub = gt_dir / "masks" if (gt_dir / "masks").is_dir() else gt_dir
    pred_sub = pred_dir / "masks" if (pred_dir / "masks").is_dir() else pred_dir
    pred = {p.name: p for p in io.list_images(pred_sub)}
    gt = {p.name: p for p in io.list_images(gt_sub)}
    if not gt:
        raise NanosegError(f"--gt: {gt_sub} holds no mask images")
    missing = sorted(set(gt) - set(pred))
    extra = sorted(set(pred) - set(gt))
    if missing:
        raise NanosegError(f"--pred: {pred_sub} lacks {len(missing)} mask(s) present in --gt, e.g. {missing[0]}")
    if extra:
        raise NanosegError(f"--pred: {pred_sub / extra[0]} has no ground truth in {gt_sub} ({len(extra)} extra)")
    acc = AreaAccumulator(num_classes)
    for name in sorted(gt):
        p, g = io.read_mask(pred[name]), io.read_mask(gt[name])
        if p.shape != g.shape:
            raise NanosegError(f"{pred[name]}: size {p.shape[1]}x{p.shape[0]} differs from ground truth "
                               f"{g.shape[1]}x{g.shape[0]}")
        acc.update(p, g)
    return acc.compute()
