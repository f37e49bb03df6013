"""The training loop's overhead: `nanoseg train` per iteration against the bare model step.

Part 1, the loop: each round times (a) `bare` steps of the same model, batch and crop on one
fixed tensor in memory (forward, Dice loss, backward, SGD step: nothing but the model), and
(b) `nanoseg train` itself (the library call behind the command: data loader and its workers,
augmentation, random crops, lr schedule, the loss kept on the device) as the difference between
a run of `--iters K + n` and one of `--iters K`, so start-up, worker start and the final
checkpoint cancel. The speed ratio bare/train is taken within a round; the median over rounds
is reported, so other load on the machine moves both sides alike (and, beside it, the ratio of
the fastest rounds of each side, which holds up better when other jobs load the machine).

Part 2, the data pipeline alone: samples/s of the training DataLoader (augmentation and crop,
no model) with 0, 1 and 2 worker processes.

Part 3 (`--formats`), on the CPU: the bare step in channels-last memory format and under bfloat16
autocast, as speed ratios to the plain float32 step, interleaved; they decide whether the CPU
path uses them (CUDA uses channels-last and float16 autocast; no GPU was available to measure).

Run: `.venv/bin/python benchmarks/bench_train_loop.py [--model unet-small] [--batch 4] [--crop 256]
[--rounds 5] [--workers 1] [--compile]`.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from nanoseg.data.augment import JointTransform
from nanoseg.data.dataset import SegmentationDataset
from nanoseg.data.loader import EpochBatchSampler, train_loader
from nanoseg.models import build_model
from nanoseg.synthesis import load_params, synthesize_dataset
from nanoseg.training.config import TrainConfig
from nanoseg.training.losses import dice_loss
from nanoseg.training.train import train


def bare_steps(model_name: str, batch: int, crop: int, n: int, compile_: bool) -> float:
    torch.manual_seed(0)
    model = build_model(model_name).train()
    net = torch.compile(model) if compile_ else model
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=4e-5)
    x = torch.rand(batch, 1, crop, crop)
    y = torch.randint(0, 2, (batch, crop, crop))

    def step():
        opt.zero_grad(set_to_none=True)
        dice_loss(net(x), y).backward()
        opt.step()

    step()  # warm-up (and compilation)
    t0 = time.perf_counter()
    for _ in range(n):
        step()
    return (time.perf_counter() - t0) / n


def format_steps(model_name: str, batch: int, crop: int, n: int, rounds: int) -> None:
    torch.manual_seed(0)
    x0 = torch.rand(batch, 1, crop, crop)
    y = torch.randint(0, 2, (batch, crop, crop))
    variants = {}
    for v in ("float32", "channels-last", "bfloat16 autocast"):
        torch.manual_seed(0)
        model = build_model(model_name).train()
        x = x0
        if v == "channels-last":
            model = model.to(memory_format=torch.channels_last)
            x = x0.to(memory_format=torch.channels_last)
        variants[v] = (model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9), x)

    def step(v):
        model, opt, x = variants[v]
        t0 = time.perf_counter()
        for _ in range(n):
            opt.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=v.startswith("bfloat16")):
                loss = dice_loss(model(x), y)
            loss.backward()
            opt.step()
        return (time.perf_counter() - t0) / n

    for v in variants:
        step(v)
    times = {v: [] for v in variants}
    for _ in range(rounds):
        for v in variants:
            times[v].append(step(v))
    for v in variants:
        ratio = statistics.median([a / b for a, b in zip(times["float32"], times[v])])
        print(f"step {v:18s} median {statistics.median(times[v]):.3f} s: speed {ratio:.2f}x float32")


def train_time(data: Path, out: Path, iters: int, args) -> float:
    cfg = TrainConfig(train=str(data), model=args.model, iters=iters, batch_size=args.batch, crop=args.crop,
                      eval_every=10**6, num_workers=args.workers, compile=args.compile, seed=0)
    t0 = time.perf_counter()
    train(cfg, out, progress=False)
    return time.perf_counter() - t0


def loader_rate(data: Path, workers: int, batch: int, crop: int, n_batches: int) -> float:
    ds = SegmentationDataset(data, transform=JointTransform(), crop_px=crop, seed=0)
    it = iter(train_loader(ds, EpochBatchSampler(len(ds), batch, 0), num_workers=workers))
    next(it)  # worker start-up is paid once per run, not per batch
    t0 = time.perf_counter()
    for _ in range(n_batches):
        next(it)
    rate = n_batches * batch / (time.perf_counter() - t0)
    del it
    return rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="unet-small")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=8, help="timed iterations per side and round")
    ap.add_argument("--workers", type=int, default=None, help="train's --num-workers (default: its own)")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--skip-loop", action="store_true", help="only the data pipeline")
    ap.add_argument("--formats", action="store_true", help="also time channels-last and bfloat16 steps")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.model}, batch {args.batch}, "
          f"crop {args.crop}, workers {args.workers if args.workers is not None else 'default'}"
          f"{', compiled' if args.compile else ''}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = tmp / "sd"
        synthesize_dataset(data, n=32, seed=0, params=load_params("realistic"), preset="realistic", size_hw=(321, 321), workers=1,
                           progress=False)
        if not args.skip_loop:
            k0 = 2
            bare, loop, ratios = [], [], []
            train_time(data, tmp / "warm", k0, args)
            for r in range(args.rounds):
                b = bare_steps(args.model, args.batch, args.crop, args.steps, args.compile)
                t_short = train_time(data, tmp / f"s{r}", k0, args)
                t_long = train_time(data, tmp / f"l{r}", k0 + args.steps, args)
                if t_long <= t_short:  # other load swamped the difference: no measurement this round
                    print(f"  round {r}: bare {b:.3f} s/it, the longer run was not longer: round dropped")
                    continue
                t = (t_long - t_short) / args.steps
                bare.append(b)
                loop.append(t)
                ratios.append(b / t)
                print(f"  round {r}: bare {b:.3f} s/it, nanoseg train {t:.3f} s/it, speed ratio {b / t:.3f}")
            if not ratios:
                raise SystemExit("every round was swamped by other load; run again on a quieter machine")
            print(f"loop: bare step median {statistics.median(bare):.3f} s, nanoseg train median "
                  f"{statistics.median(loop):.3f} s/it; train speed = {statistics.median(ratios):.2f}x the bare "
                  f"step (median of {len(ratios)} interleaved rounds, range {min(ratios):.2f}-{max(ratios):.2f}; "
                  f"fastest rounds {min(bare) / min(loop):.2f}x)")
        for crop in sorted({args.crop, 321}):
            rates = {w: [] for w in (0, 1, 2)}
            for _ in range(3):
                for w in rates:
                    rates[w].append(loader_rate(data, w, 16, crop, 6))
            line = ", ".join(f"{w} workers {statistics.median(v):.0f}" for w, v in rates.items())
            print(f"data pipeline, batch 16, crop {crop}: samples/s {line} (median of 3, interleaved)")
    if args.formats:
        format_steps(args.model, args.batch, args.crop, 2, args.rounds)


if __name__ == "__main__":
    main()
