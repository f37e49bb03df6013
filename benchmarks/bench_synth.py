"""Synthetic images per second for `nanoseg synth --n 1000` at 321x321, all files written, all cores.

Target (issue 3): at least 100 images/s on a 2-core CPU. Run from the project root:
`.venv/bin/python benchmarks/bench_synth.py [--n 1000] [--dir DIR] [--repeat 3]`.

The dataset is written to a temporary folder inside ``--dir`` (default: the current
directory, i.e. where a user's datasets go) and deleted afterwards. Where the output
lands matters: file creation costs about 0.05 ms on a plain local disk but can cost
ten times that on a watched or network folder, and each image writes four files.
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

from nanoseg.synthesis import load_params, synthesize_dataset


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--dir", default=".", help="folder that receives the temporary dataset")
    ap.add_argument("--repeat", type=int, default=1, help="runs; each is reported, then the median")
    ap.add_argument("--preset", default="realistic")
    args = ap.parse_args()
    workers = os.cpu_count() or 1
    rates = []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory(dir=args.dir, prefix=".bench_synth_") as tmp:
            t0 = time.perf_counter()
            synthesize_dataset(Path(tmp) / "sd", args.n, 0, load_params(args.preset), args.preset, (321, 321),
                               workers=workers, progress=False)
            dt = time.perf_counter() - t0
        rates.append(args.n / dt)
        print(f"synth {args.preset} 321x321: {args.n} images in {dt:.1f} s = {args.n / dt:.1f} images/s "
              f"({workers} workers, output in {Path(args.dir).resolve().name or '/'}/)")
    if len(rates) > 1:
        print(f"median: {sorted(rates)[len(rates) // 2]:.1f} images/s over {len(rates)} runs")


if __name__ == "__main__":
    main()
