"""`predict` throughput on a 1280x960 micrograph on CPU, in megapixels per second (sliding window,
measurement and all outputs). Run: `.venv/bin/python benchmarks/bench_predict.py`.
"""

import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from nanoseg import io
from nanoseg.inference.predict import predict
from nanoseg.models import NORMALIZE, build_model
from nanoseg.models import checkpoint


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        img = np.random.default_rng(0).integers(0, 255, (960, 1280)).astype(np.uint8)
        io.write_png(tmp / "micrograph.png", img)
        for name in ("unet-small", "unet"):
            torch.manual_seed(0)
            model = build_model(name)
            ckpt = tmp / f"{name}.pt"
            checkpoint.save(ckpt, checkpoint.model_spec(name, 2, 321, NORMALIZE), model)
            best = float("inf")
            for k in range(2):
                t0 = time.perf_counter()
                predict(ckpt, [tmp / "micrograph.png"], tmp / f"out_{name}_{k}", progress=False)
                best = min(best, time.perf_counter() - t0)
            mp = 1280 * 960 / 1e6
            print(f"predict {name:10s} 1280x960 on CPU: {best:.2f} s = {mp / best:.3f} MP/s "
                  f"({torch.get_num_threads()} threads)")


if __name__ == "__main__":
    main()
