"""Time of one training step (forward, Dice loss, backward, SGD step) at batch 4, 320x320, on CPU.

Reference (issue 5): PaddleSeg 2.8's UNet takes about 28 s for this step on a 2-core machine of this
kind; the target for `unet` is at most half of that. Run: `.venv/bin/python benchmarks/bench_train_step.py`.
"""

import sys
import time

import torch

from nanoseg.models import build_model
from nanoseg.training.losses import dice_loss


def step_time(name: str, batch: int = 4, size: int = 320, repeats: int = 3) -> float:
    torch.manual_seed(0)
    model = build_model(name).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.rand(batch, 1, size, size)
    y = torch.randint(0, 2, (batch, size, size))
    times = []
    for _ in range(repeats + 1):  # the first step warms up allocators
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = dice_loss(model(x), y)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return min(times[1:])


def main(names=("unet-small", "unet")) -> None:
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for name in names:
        print(f"train step {name:12s} batch 4, 320x320, CPU: {step_time(name):.2f} s")


if __name__ == "__main__":
    main(tuple(sys.argv[1:]) or ("unet-small", "unet"))
