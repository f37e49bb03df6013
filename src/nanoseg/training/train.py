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
from dataclasses import dataclass, field
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
    resume_state = _check_out(cfg, out, resume=resume, rank=rank)
    # data read before the run folder exists, so bad input leaves nothing behind
    train_ds, val_ds, train_size = _datasets(cfg, world)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NanosegError(f"--out: cannot create {out} ({exc.strerror or exc})") from None
    run = _setup(cfg, out, device=device, rank=rank, world=world, local=local, train_ds=train_ds, val_ds=val_ds,
                 train_size=train_size, resume_state=resume_state)
    best = _loop(run, stop_after=stop_after, progress=progress)
    if rank == 0:
        if val_ds is None and run.end_it == cfg.iters:
            checkpoint.save(out / "best.pt", run.spec, run.model, iteration=run.end_it, metrics={})
        if (out / "metrics.jsonl").exists():
            from ..figures import plot_curve

            plot_curve(read_metrics(out / "metrics.jsonl"), out / "curve.png")
    if world > 1:
        torch.distributed.destroy_process_group()
    return best


@dataclass
class _Run:
    """Everything the training loop reads: settings, data, model and optimiser, and where it starts."""

    cfg: TrainConfig
    out: Path
    device: torch.device
    rank: int
    world: int
    train_ds: SegmentationDataset
    val_ds: SegmentationDataset | None
    tile_px: int
    model: torch.nn.Module
    net: torch.nn.Module  # what the forward pass runs (DDP and/or compiled around ``model``)
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    use_amp: bool
    spec: dict
    num_workers: int
    start_it: int = 0
    best: dict = field(default_factory=lambda: {"miou": -1.0})
    data_pos: tuple = (0, 0)
    loss_avg0: float | None = None
    end_it: int = 0


def _check_out(cfg: TrainConfig, out: Path, *, resume: bool, rank: int) -> dict | None:
    """Refuse a run folder that is not ours to write; the ``last.pt`` state to resume from, if any."""
    last_path = out / "last.pt"
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
    return resume_state


def _datasets(cfg: TrainConfig, world: int) -> tuple[SegmentationDataset, SegmentationDataset | None, int]:
    """The training and validation sets, checked, and the training size (crop or image side, px)."""
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
    return train_ds, val_ds, cfg.crop or int(train_ds.images[0].shape[0])


def _setup(cfg: TrainConfig, out: Path, *, device, rank: int, world: int, local: int, train_ds, val_ds,
           train_size: int, resume_state: dict | None) -> _Run:
    """Model, optimiser and loss; the state of a resumed run restored; ``RUN/config.yaml`` written."""
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
    trained_scale = (tuple(cfg.scale_nm_per_px_range) if cfg.scale_nm_per_px_range
                     else scale_range(train_ds.rows))
    spec = checkpoint.model_spec(cfg.model, cfg.num_classes, train_size, NORMALIZE, trained_scale)
    tile_px, _ = tile_rule(train_size)  # validation segments images as predict and evaluate do
    run = _Run(cfg=cfg, out=out, device=device, rank=rank, world=world, train_ds=train_ds, val_ds=val_ds,
               tile_px=tile_px, model=model, net=model, optimizer=optimizer, scaler=scaler, use_amp=use_amp,
               spec=spec, num_workers=default_num_workers(device) if cfg.num_workers is None else cfg.num_workers)
    if resume_state is not None:
        _restore(run, resume_state)
    elif rank == 0:
        # a fresh start (or a run killed before its first last.pt): earlier evaluations are void
        (out / "metrics.jsonl").unlink(missing_ok=True)
        (out / "best.pt").unlink(missing_ok=True)
    if world > 1:
        run.net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[local] if device.type == "cuda" else None)
    if cfg.compile:
        run.net = torch.compile(run.net)  # training forward only; evaluation and checkpoints use the plain module
    if rank == 0:
        record = cfg.model_dump()
        # what the run found at start-up, kept apart from the settings (``run`` is ignored on --resume)
        record["run"] = {"resumed_from": run.start_it if resume_state else None, "device": str(device),
                         "world_size": world, "amp": use_amp, "train_size": train_size,
                         "num_workers": run.num_workers, "compile": cfg.compile,
                         "n_train": len(train_ds), "n_val": len(val_ds) if val_ds else 0,
                         "torch": str(torch.__version__), "nanoseg": __version__}
        io.atomic_write_text(out / "config.yaml", yaml.safe_dump(record, sort_keys=False))
    return run


def _restore(run: _Run, state: dict) -> None:
    """Weights, optimiser, scaler, random state and position of a killed run's ``last.pt``."""
    last_path = run.out / "last.pt"
    checkpoint.load_state(run.model, state["model_state"], last_path, run.cfg.model, flag="--resume")
    try:
        run.optimizer.load_state_dict(state["optimizer"])
        if "scaler" in state:
            run.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["torch_rng"])
    except (ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise NanosegError(f"--resume: {last_path} does not fit this run's optimiser "
                           f"({str(exc).strip().splitlines()[0]})") from None
    run.start_it = int(state["iteration"])
    run.best = state.get("best", run.best)
    run.data_pos = tuple(state["data_pos"])
    run.loss_avg0 = state.get("loss_avg")  # the running loss of the uninterrupted run
    _truncate_metrics(run.out / "metrics.jsonl", run.start_it)


def _loop(run: _Run, *, stop_after: int | None, progress: bool) -> dict:
    """The iterations from ``run.start_it``: step, evaluate, checkpoint; returns the best evaluation."""
    cfg, out, device, model, optimizer, scaler = run.cfg, run.out, run.device, run.model, run.optimizer, run.scaler
    rank, start_it, best = run.rank, run.start_it, run.best
    loss_fn = LOSSES[cfg.loss]
    sampler = EpochBatchSampler(len(run.train_ds), cfg.batch_size, cfg.seed, start=run.data_pos, rank=rank,
                                world=run.world)
    loader = iter(train_loader(run.train_ds, sampler, num_workers=run.num_workers, pin_memory=device.type == "cuda"))
    non_blocking = device.type == "cuda"
    save_every = cfg.save_every or cfg.eval_every
    end_it = run.end_it = cfg.iters if stop_after is None else min(cfg.iters, stop_after)
    bar = tqdm(total=cfg.iters, initial=start_it, desc="train", unit="it", mininterval=0.5,
               disable=not progress or rank != 0)
    model.train()
    t0 = time.time()
    # the loss stays on the device (float64, so the running mean is the one Python floats gave) and is
    # read only when shown or logged: no host sync per iteration
    loss_avg = None if run.loss_avg0 is None else torch.tensor(run.loss_avg0, dtype=torch.float64, device=device)
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
        with torch.autocast(device.type, dtype=torch.float16, enabled=run.use_amp):
            logits = run.net(x)
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
        evaluate_now = rank == 0 and run.val_ds is not None and (done % cfg.eval_every == 0 or done == cfg.iters)
        save_now = rank == 0 and (done % save_every == 0 or done == cfg.iters)
        show_now = not bar.disable and time.monotonic() - shown_at >= bar.mininterval
        if not (evaluate_now or save_now or show_now or done == end_it):
            continue
        _check_finite(first_bad, lv)
        if show_now:
            bar.set_postfix(loss=f"{float(lv):.4f}", lr=f"{lr:.5f}")
            shown_at = time.monotonic()
        if evaluate_now:
            best = _evaluate(run, best, done=done, loss_avg=float(loss_avg), lr=lr, seconds=time.time() - t0,
                             bar=bar)
        if save_now:
            checkpoint.save(out / "last.pt", run.spec, model, iteration=done, optimizer=optimizer.state_dict(),
                            scaler=scaler.state_dict(), best=best, data_pos=sampler.position(done - start_it),
                            torch_rng=torch.get_rng_state(), config=cfg.model_dump(), loss_avg=float(loss_avg))
    del loader  # stops the worker processes
    bar.close()
    return best


def _evaluate(run: _Run, best: dict, *, done: int, loss_avg: float, lr: float, seconds: float, bar) -> dict:
    """Evaluate on the validation set, log the row to ``metrics.jsonl``, keep ``best.pt``; the new best."""
    cfg, model = run.cfg, run.model
    m = evaluate_model(model, run.val_ds.images, run.val_ds.masks, tile_px=run.tile_px, num_classes=cfg.num_classes,
                       device=run.device, progress=False, batch_size=cfg.batch_size)
    model.train()
    row = {"iteration": done, "loss": loss_avg, "lr": lr, "time_s": round(seconds, 2),
           **{k: m[k] for k in ("miou", "acc", "kappa", "dice", "class_iou", "class_dice")}}
    with open(run.out / "metrics.jsonl", "a") as f:
        f.write(io.dumps_json(row) + "\n")
    if m["miou"] > best["miou"]:
        best = dict(row)
        checkpoint.save(run.out / "best.pt", run.spec, model, iteration=done, metrics=row)
    bar.write(f"iter {done}: mIoU {m['miou']:.4f} Acc {m['acc']:.4f} Kappa {m['kappa']:.4f} "
              f"Dice {m['dice']:.4f} (best {best['miou']:.4f})")
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
