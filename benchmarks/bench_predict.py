"""`nanoseg predict` as a multiple of one bare whole-image forward pass, per back-end.

The micrograph is the packaged real example (Boiko et al. 2020, 1280x1024 with a 134-row data bar,
so 1280x890 reaches the network). Each round times, back to back: one bare forward pass of the
model over the whole image (`model(x)` under `torch.inference_mode`), then `predict` (the library
call behind the command: checkpoint loading, reading, the data bar, inference, measurement, masks,
overlays, CSV/JSON) with each back-end, and with the former default for a model trained at 321 px
(352-px tiles, 88 px of overlap) for comparison. Ratios are taken within a round and the median over rounds is reported, so
other load on the machine moves both sides of a ratio alike.

Run: `.venv/bin/python benchmarks/bench_predict.py [--models unet-small unet] [--rounds 5]`.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from nanoseg import io
from nanoseg.demo import EXAMPLE_DATA_BAR_PX, example_micrograph
from nanoseg.inference.predict import predict
from nanoseg.models import NORMALIZE, build_model, checkpoint

VARIANTS = {  # name -> predict keyword arguments
    "torch": {},
    "onnx": {"backend": "onnx"},
    "torch, 352-px tiles (before)": {"tile_px": 352, "overlap_px": 88},
}


def bench(name: str, rounds: int, tmp: Path) -> dict[str, list[float]]:
    torch.manual_seed(0)
    model = build_model(name).eval()
    ckpt = tmp / f"{name}.pt"
    checkpoint.save(ckpt, checkpoint.model_spec(name, 2, 321, NORMALIZE), model)
    image = io.read_gray(example_micrograph())[:-EXAMPLE_DATA_BAR_PX]
    x = torch.from_numpy(image.astype(np.float32) / 255.0)[None, None]

    def bare() -> float:
        t0 = time.perf_counter()
        with torch.inference_mode():
            model(x)
        return time.perf_counter() - t0

    def run(kw: dict, k: int) -> float:
        t0 = time.perf_counter()
        predict(ckpt, [example_micrograph()], tmp / f"out_{name}_{k}", crop_bottom=EXAMPLE_DATA_BAR_PX,
                progress=False, overwrite=True, **kw)
        return time.perf_counter() - t0

    bare()  # warm-up: allocator, oneDNN kernels
    for kw in VARIANTS.values():
        run(kw, 0)
    times: dict[str, list[float]] = {"bare forward": [], **{v: [] for v in VARIANTS}}
    for r in range(rounds):
        times["bare forward"].append(bare())
        for v, kw in VARIANTS.items():
            times[v].append(run(kw, r))
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["unet-small"])
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; image 1280x890 (real example)")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            t = bench(name, args.rounds, Path(tmp))
            base = t["bare forward"]
            print(f"{name}: bare whole-image forward median {statistics.median(base):.2f} s "
                  f"({args.rounds} rounds, interleaved)")
            for v in VARIANTS:
                ratios = [a / b for a, b in zip(t[v], base)]
                print(f"  predict [{v}]: median {statistics.median(t[v]):.2f} s = "
                      f"{statistics.median(ratios):.2f}x the bare forward pass "
                      f"(range {min(ratios):.2f}-{max(ratios):.2f})")


if __name__ == "__main__":
    main()
