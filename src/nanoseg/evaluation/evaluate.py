"""Evaluation: a model on images or a dataset folder, or two folders of masks, with the PaddleSeg
metrics (``metrics.py``) and, optionally, ring-structure scores (``structures.py``).

One tile rule for every caller: training's validation, ``nanoseg experiment`` and
``nanoseg evaluate`` all segment an image with ``inference.sliding.predict_mask`` at the
tile ``inference.sliding.tile_rule`` gives for the model's training size, exactly as
``nanoseg predict`` does, so the checkpoint picked as best during training is scored
the way it is later reported and used.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .. import io
from ..data.dataset import check_mask_classes
from ..errors import NanosegError
from ..inference.sliding import predict_mask, predict_probs, tile_rule
from .metrics import AreaAccumulator, calculate_area_torch


def evaluate_model(model, images, masks, *, tile_px: int, num_classes: int = 2, device="cpu",
                   progress: bool = True, predictions: list | None = None, batch_size: int = 8,
                   confidences: list | None = None) -> dict:
    """PaddleSeg metrics of a model over lists of 8-bit images and class-index masks.

    Images that fit in one tile go through the model whole, ``batch_size`` images of one
    size at a time, and their metric areas are counted on ``device`` (one copy back to
    the host at the end); larger images are segmented tile by tile (``predict_mask``).

    Parameters
    ----------
    model : torch.nn.Module
        A nanoseg model (``models.build_model``); put in eval mode here.
    images, masks : sequences of numpy arrays
        HxW uint8 micrographs and their masks (0, 1, 255 = ignore), in the same order.
    tile_px : int
        Sliding-window tile side in px (``inference.sliding.tile_rule``); images that fit
        in one tile go through the model whole.
    num_classes : int
        Classes of the masks and the model.
    device : str or torch.device
        Where the model runs.
    progress : bool
        Show a progress bar.
    predictions : list, optional
        Receives each predicted mask (uint8 HxW) in order.
    batch_size : int
        Whole images per forward pass.
    confidences : list, optional
        Receives each image's ring probability (float32 HxW) in order; the images then go
        through ``predict_probs`` one by one (the ring rules need the probabilities).
    """
    model.eval()
    device = torch.device(device)
    acc = AreaAccumulator(num_classes)
    if confidences is not None:
        for img, mask in tqdm(list(zip(images, masks)), desc="evaluate", unit="img", disable=not progress):
            probs = predict_probs(model, img, tile_px, tile_px // 4, 4, device)
            pred = probs.argmax(0).astype(np.uint8)
            confidences.append(probs[1])
            acc.update(pred, mask)
            if predictions is not None:
                predictions.append(pred)
        return acc.compute()
    whole: dict[tuple, list[int]] = {}
    tiled: list[int] = []
    for k, img in enumerate(images):
        (whole.setdefault(img.shape, []) if max(img.shape) <= tile_px else tiled).append(k)
    chunks = [ks[b:b + batch_size] for ks in whole.values() for b in range(0, len(ks), batch_size)]
    chunks += [[k] for k in tiled]
    preds: dict[int, np.ndarray] = {}
    areas = torch.zeros(3, num_classes, dtype=torch.int64, device=device)
    non_blocking = device.type == "cuda"
    for ks in tqdm(chunks, desc="evaluate", unit="batch", disable=not progress):
        if max(images[ks[0]].shape) > tile_px:
            pred = predict_mask(model, images[ks[0]], tile_px=tile_px, device=device)
            acc.update(pred, masks[ks[0]])
            if predictions is not None:
                preds[ks[0]] = pred
            continue
        with torch.inference_mode():
            x = torch.from_numpy(np.stack([images[k] for k in ks])).to(device, non_blocking=non_blocking)
            y = torch.from_numpy(np.stack([masks[k] for k in ks])).to(device, non_blocking=non_blocking)
            pred = model(x[:, None].float().div_(255.0)).argmax(1)
            areas += calculate_area_torch(pred, y, num_classes)
            if predictions is not None:
                preds.update(zip(ks, pred.to(torch.uint8).cpu().numpy()))
    acc.add_areas(areas.cpu().numpy(), len(images) - len(tiled))
    if predictions is not None:
        predictions.extend(preds[k] for k in range(len(images)))
    return acc.compute()


def evaluate_checkpoint(model_path: str | Path, data_dir: str | Path, *, structures: bool = False,
                        device: str = "auto", progress: bool = False, ring_rules=None) -> dict:
    """Pixel metrics (PaddleSeg) and, optionally, ring-structure scores of a checkpoint on a dataset folder.

    Parameters
    ----------
    model_path : path
        A nanoseg checkpoint (``RUN/best.pt``).
    data_dir : path
        A dataset folder (``images/``, ``masks/``, ``manifest.csv``; ``meta.jsonl`` and
        ``labelme/`` give synthetic folders their exact ring truth).
    structures : bool
        Also match ring structures: adds ``structures`` (precision, recall, F1, radius
        errors in px, with bootstrap 95% intervals).
    device : str
        ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
    progress : bool
        Show a progress bar.
    ring_rules : inference.rings.RingRules, optional
        Judge the predicted structures as ``predict`` does (``rings.find_rings``: shape, interior,
        confidence) before matching; without it they are only measured.
    """
    from ..data.dataset import load_arrays
    from ..models import load_model, pick_device
    from .structures import evaluate_structures, ground_truth_rings, read_meta

    dev = pick_device(device)
    model, spec = load_model(model_path, dev)
    rows, images, masks = load_arrays(data_dir)
    preds: list = []
    confs: list | None = [] if structures and ring_rules is not None else None
    tile_px, _ = tile_rule(spec.get("train_size"))
    result = evaluate_model(model, images, masks, tile_px=tile_px, num_classes=spec["num_classes"], device=dev,
                            progress=progress, predictions=preds, confidences=confs)
    if structures:
        metas = read_meta(data_dir)
        gts = {r["id"]: ground_truth_rings(Path(data_dir), metas, r["id"], m) for r, m in zip(rows, masks)}
        judged = None
        if confs is not None:  # the rings predict would report
            from ..inference.rings import find_rings

            judged = {r["id"]: find_rings(p, confidence=c, image=img, rules=ring_rules,
                                          nm_per_px=float(r["scale_nm_per_px"]) if r.get("scale_nm_per_px") else None)[0]
                      for r, p, c, img in zip(rows, preds, confs, images)}
        result["structures"] = evaluate_structures({r["id"]: p for r, p in zip(rows, preds)}, gts, pred_rings=judged)
    return result


def evaluate_folders(pred_dir: str | Path, gt_dir: str | Path, *, num_classes: int = 2) -> dict:
    """PaddleSeg metrics of class-index mask PNGs in ``pred_dir`` against ``gt_dir``, matched by file name.

    Parameters
    ----------
    pred_dir, gt_dir : path
        Folders of mask PNGs, or dataset/prediction folders holding them in ``masks/``.
    num_classes : int
        Classes of the masks (255 is ignored).
    """
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
        check_mask_classes(p, num_classes, pred[name])
        check_mask_classes(g, num_classes, gt[name])
        if p.shape != g.shape:
            raise NanosegError(f"{pred[name]}: size {p.shape[1]}x{p.shape[0]} differs from ground truth "
                               f"{g.shape[1]}x{g.shape[0]}")
        acc.update(p, g)
    return acc.compute()
