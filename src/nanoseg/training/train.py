"""The training loop, readable top to bottom (after torchvision's reference scripts).

Iteration-based SGD (momentum 0.9, lr 0.01, polynomial decay with power 0.9),
Dice loss by default, evaluation on whole validation images every
``eval_every`` iterations, ``best.pt`` by mIoU and ``last.pt``. ``resume``
continues a killed run from ``last.pt`` and reproduces the uninterrupted run:
the data order and every augmentation are functions of (seed, epoch, index).

Batches come from a DataLoader with worker processes (``nanoseg.data.loader``),
so they are built while the model steps; the loss stays on the device and is
read only at the progress-bar interval, evaluations and checkpoints, so a CUDA
step never waits for the host. ``compile`` runs the training forward through
``torch.compile``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch
import yaml
from tqdm import tqdm

from .. import __version__, io
from ..data.augment import JointTransform
from ..data.dataset import SegmentationDataset, check_mask_classes, scale_range
from ..data.loader import EpochBatchSampler, default_num_workers, train_loader
from ..errors import NanosegError
from ..evaluation.evaluate import evaluate_model
from ..inference.sliding import tile_rule
from ..models import NORMALIZE, build_model, checkpoint, pick_device
from .config import TrainConfig
from .losses import LOSSES


def _dist_info():
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    return world, rank, local


def poly_lr(base_lr: float, it: int, total: int, power: float) -> float:
    return base_lr * (1 - it / total) ** power


def train(cfg: TrainConfig, out: str | Path, *, resume: bool = False, progress: bool = True,
          stop_after: int | None = None) -> dict:
    """Train a segmentation model with the paper's protocol; returns the best evaluation's metrics.

    Parameters
    ----------
    cfg : TrainConfig
        Every setting of the run (``load_train_config``: data folders, model, iterations, batch,
        lr, loss, crop in px, evaluation interval, seed, device, data-loader workers, ...).
    out : str or Path
        Run folder: ``config.yaml``, ``metrics.jsonl``, ``best.pt``, ``last.pt``, ``curve.png``.
    resume : bool
        Continue a killed run from ``out/last.pt`` (same settings; the result equals an
        uninterrupted run).
    progress : bool
        Show a progress bar.
    stop_after : int, optional
        Stop after this many iterations as if killed (used to test resume).
    """
    out = Path(out)
    world, rank, local = _dist_info()
    if world > 1:
        torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    device = pick_device(cfg.device if world == 1 or not torch.cuda.is_available() else f"cuda:{local}")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    last_path, best_path = out / "last.pt", out / "best.pt"
    io.check_out_separate(out, [("--train", cfg.train), ("--val", cfg.val), ("--encoder-weights", cfg.encoder_weights)])
    if out.exists() and not out.is_dir():
        raise NanosegError(f"--out: {out} exists and is not a folder")
    if rank == 0 and out.exists() and any(out.iterdir()) and not resume:  # rank 0 alone: no race
        if (out / "config.yaml").exists():
            raise NanosegError(f"{out}: run folder exists (use --resume to continue it, or another --out)")
        raise NanosegError(f"{out}: output folder exists and is not empty")
    # --resume without last.pt (killed before its first checkpoint) starts over in place
    resume_state = checkpoint.load(last_path, flag="--resume") if resume and last_path.exists() else None
    if resume_state is not None:
        _check_resumable(resume_state, cfg, last_path)

    # --- data (read before the run folder exists, so bad input leaves nothing behind)
    transform = JointTransform(cfg.augment_strength) if cfg.augment else None
    train_ds = SegmentationDataset(cfg.train, transform=transform, crop_px=cfg.crop, seed=cfg.seed)
    if cfg.batch_size < world:
        raise NanosegError(f"--batch-size: {cfg.batch_size} is smaller than the {world} processes")
    if len(train_ds) == 0:
        raise NanosegError(f"--train: {cfg.train} holds no samples")
    if cfg.crop is None and len({im.shape for im in train_ds.images}) > 1:
        raise NanosegError(f"--crop: training images in {cfg.train} differ in size; give --crop PX "
                           "(or tile them with `nanoseg import --tile`)")
    val_ds = SegmentationDataset(cfg.val) if cfg.val else None
    for ds in (train_ds, val_ds):
        for r, m in zip(ds.rows if ds else [], ds.masks if ds else []):
            check_mask_classes(m, cfg.num_classes, ds.folder / "masks" / f"{r['id']}.png")
    train_size = cfg.crop or int(train_ds.images[0].shape[0])
    tile_px, _ = tile_rule(train_size)  # validation segments images as predict and evaluate do
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NanosegError(f"--out: cannot create {out} ({exc.strerror or exc})") from None

    # --- model, optimiser
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, cfg.num_classes, 1, cfg.encoder_weights).to(device)
    use_amp = cfg.amp and device.type == "cuda"
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    if cfg.optimizer == "adamw":
        optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                    weight_decay=cfg.weight_decay)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    loss_fn = LOSSES[cfg.loss]
    trained_scale = (tuple(cfg.scale_nm_per_px_range) if cfg.scale_nm_per_px_range
                     else scale_range(train_ds.rows))
    spec = checkpoint.model_spec(cfg.model, cfg.num_classes, train_size, NORMALIZE, trained_scale)
    start_it, best, data_pos, loss_avg0 = 0, {"miou": -1.0}, (0, 0), None
    if resume_state is not None:
        checkpoint.load_state(model, resume_state["model_state"], last_path, cfg.model, flag="--resume")
        try:
            optimizer.load_state_dict(resume_state["optimizer"])
            if "scaler" in resume_state:
                scaler.load_state_dict(resume_state["scaler"])
            torch.set_rng_state(resume_state["torch_rng"])
        except (ValueError, KeyError, TypeError, RuntimeError) as exc:
            raise NanosegError(f"--resume: {last_path} does not fit this run's optimiser "
                               f"({str(exc).strip().splitlines()[0]})") from None
        start_it = int(resume_state["iteration"])
        best = resume_state.get("best", best)
        data_pos = tuple(resume_state["data_pos"])
        loss_avg0 = resume_state.get("loss_avg")  # the running loss of the uninterrupted run
        _truncate_metrics(out / "metrics.jsonl", start_it)
    elif rank == 0:
        # a fresh start (or a run killed before its first last.pt): earlier evaluations are void
        (out / "metrics.jsonl").unlink(missing_ok=True)
        best_path.unlink(missing_ok=True)
    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[local] if device.type == "cuda" else None)
    if cfg.compile:
        net = torch.compile(net)  # training forward only; evaluation and checkpoints use the plain module
    num_workers = default_num_workers(device) if cfg.num_workers is None else cfg.num_workers
    if rank == 0:
        record = cfg.model_dump()
        # what the run found at start-up, kept apart from the settings (``run`` is ignored on --resume)
        record["run"] = {"resumed_from": start_it if resume_state else None, "device": str(device),
                         "world_size": world, "amp": use_amp, "train_size": train_size,
                         "num_workers": num_workers, "compile": cfg.compile,
                         "n_train": len(train_ds), "n_val": len(val_ds) if val_ds else 0,
                         "torch": str(torch.__version__), "nanoseg": __version__}
        io.atomic_write_text(out / "config.yaml", yaml.safe_dump(record, sort_keys=False))

    # --- loop
    sampler = EpochBatchSampler(len(train_ds), cfg.batch_size, cfg.seed, start=data_pos, rank=rank, world=world)
    loader = iter(train_loader(train_ds, sampler, num_workers=num_workers, pin_memory=device.type == "cuda"))
    non_blocking = device.type == "cuda"
    save_every = cfg.save_every or cfg.eval_every
    end_it = cfg.iters if stop_after is None else min(cfg.iters, stop_after)
    bar = tqdm(total=cfg.iters, initial=start_it, desc="train", unit="it", mininterval=0.5,
               disable=not progress or rank != 0)
    model.train()
    t0 = time.time()
    # the loss stays on the device (float64, so the running mean is the one Python floats gave) and is
    # read only when shown or logged: no host sync per iteration
    loss_avg = None if loss_avg0 is None else torch.tensor(loss_avg0, dtype=torch.float64, device=device)
    first_bad = torch.zeros((), dtype=torch.int64, device=device)  # first iteration with a non-finite loss
    shown_at = time.monotonic()
    for it in range(start_it, end_it):
        x, y = next(loader)
        x = x.to(device, non_blocking=non_blocking)
        y = y.to(device, non_blocking=non_blocking)
        if device.type == "cuda":
            x = x.to(memory_format=torch.channels_last)
        lr = poly_lr(cfg.lr, it, cfg.iters, cfg.power)
        for g in optimizer.param_groups:
            g["lr"] = lr
        with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
            logits = net(x)
            loss = loss_fn(logits, y)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        lv = loss.detach().double()
        first_bad = torch.where((first_bad == 0) & ~torch.isfinite(lv), it + 1, first_bad)
        loss_avg = lv if loss_avg is None else 0.9 * loss_avg + 0.1 * lv
        done = it + 1
        bar.update()
        evaluate_now = rank == 0 and val_ds is not None and (done % cfg.eval_every == 0 or done == cfg.iters)
        save_now = rank == 0 and (done % save_every == 0 or done == cfg.iters)
        show_now = not bar.disable and time.monotonic() - shown_at >= bar.mininterval
        if not (evaluate_now or save_now or show_now or done == end_it):
            continue
        _check_finite(first_bad, lv)
        if show_now:
            bar.set_postfix(loss=f"{float(lv):.4f}", lr=f"{lr:.5f}")
            shown_at = time.monotonic()
        if evaluate_now:
            m = evaluate_model(model, val_ds.images, val_ds.masks, tile_px=tile_px, num_classes=cfg.num_classes,
                               device=device, progress=False, batch_size=cfg.batch_size)
            model.train()
            row = {"iteration": done, "loss": float(loss_avg), "lr": lr, "time_s": round(time.time() - t0, 2),
                   **{k: m[k] for k in ("miou", "acc", "kappa", "dice", "class_iou", "class_dice")}}
            with open(out / "metrics.jsonl", "a") as f:
                f.write(io.dumps_json(row) + "\n")
            if m["miou"] > best["miou"]:
                best = dict(row)
                checkpoint.save(best_path, spec, model, iteration=done, metrics=row)
            bar.write(f"iter {done}: mIoU {m['miou']:.4f} Acc {m['acc']:.4f} Kappa {m['kappa']:.4f} "
                      f"Dice {m['dice']:.4f} (best {best['miou']:.4f})")
        if save_now:
            checkpoint.save(last_path, spec, model, iteration=done, optimizer=optimizer.state_dict(),
                            scaler=scaler.state_dict(), best=best, data_pos=sampler.position(done - start_it),
                            torch_rng=torch.get_rng_state(), config=cfg.model_dump(), loss_avg=float(loss_avg))
    del loader  # stops the worker processes
    bar.close()
    if rank == 0:
        if val_ds is None and end_it == cfg.iters:
            checkpoint.save(best_path, spec, model, iteration=end_it, metrics={})
        if (out / "metrics.jsonl").exists():
            from ..figures import plot_curve

            plot_curve(read_metrics(out / "metrics.jsonl"), out / "curve.png")
    if world > 1:
        torch.distributed.destroy_process_group()
    return best


def _check_resumable(state: dict, cfg: TrainConfig, path: Path) -> None:
    """A ``last.pt`` from another run (architecture, classes) or without its training state is refused."""
    spec = state["spec"]
    if spec["arch"] != cfg.model or spec["num_classes"] != cfg.num_classes:
        raise NanosegError(f"--resume: {path} was trained as {spec['arch']!r} with {spec['num_classes']} classes, "
                           f"this run asks for {cfg.model!r} with {cfg.num_classes}")
    missing = [k for k in ("optimizer", "iteration", "data_pos", "torch_rng") if k not in state]
    if missing:
        raise NanosegError(f"--resume: {path} holds no training state ({', '.join(missing)} missing)")
    it = state["iteration"]
    if not isinstance(it, int) or not 0 < it <= cfg.iters:
        raise NanosegError(f"--resume: {path} is at iteration {it!r}, outside this run's 1..{cfg.iters}")


def _check_finite(first_bad: torch.Tensor, loss: torch.Tensor) -> None:
    bad = int(first_bad)
    if bad:
        raise NanosegError(f"training diverged at iteration {bad} (non-finite loss; now {float(loss)}); lower --lr")


def read_metrics(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line cut by a kill
    return rows


def _truncate_metrics(path: Path, upto_iteration: int) -> None:
    """Drop evaluations after the checkpoint we resume from (they will be redone)."""
    rows = [r for r in read_metrics(path) if isinstance(r, dict) and r.get("iteration", 0) <= upto_iteration]
    io.atomic_write_text(path, "".join(io.dumps_json(r) + "\n" for r in rows))
