"""Images per second of the command `nanoseg synth --n 1000` at 321x321, all files written, all cores.

Target (issue 3): at least 100 images/s on a 2-core CPU. Run from the project root:
`.venv/bin/python benchmarks/bench_synth.py [--n 1000] [--dir DIR] [--repeat 3]`.

Each run times the whole command in a fresh process (Python start-up, imports,
worker start-up, rendering, writing images/, masks/, labelme/, meta/ and
manifest.csv, and the final move into place), so the figure is what a user gets.
The dataset goes to a temporary folder inside ``--dir`` (default: the current
directory, i.e. where a user's datasets go) and is deleted afterwards. Where it
lands matters: creating a file costs about 0.05 ms on a plain local disk but can
cost ten times that on a watched or network folder, and each image writes four.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--dir", default=".", help="folder that receives the temporary dataset")
    ap.add_argument("--repeat", type=int, default=1, help="runs; each is reported, then the median")
    ap.add_argument("--preset", default="realistic")
    ap.add_argument("--workers", type=int, default=0, help="0: all cores")
    args = ap.parse_args()
    workers = args.workers or os.cpu_count() or 1
    rates = []
    for _ in range(args.repeat):
        os.sync()  # start clean: the previous run's deleted files are still being written back/discarded
        with tempfile.TemporaryDirectory(dir=args.dir, prefix=".bench_synth_") as tmp:
            cmd = [sys.executable, "-m", "nanoseg", "synth", "--out", str(Path(tmp) / "sd"), "--n", str(args.n),
                   "--seed", "0", "--preset", args.preset, "--size", "321", "--workers", str(workers)]
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            dt = time.perf_counter() - t0
            assert len(list((Path(tmp) / "sd" / "images").iterdir())) == args.n
        rates.append(args.n / dt)
        print(f"nanoseg synth --n {args.n} --preset {args.preset} --size 321 --workers {workers}: "
              f"{dt:.1f} s = {args.n / dt:.1f} images/s", flush=True)
    if len(rates) > 1:
        print(f"median of {len(rates)} runs: {statistics.median(rates):.1f} images/s "
              f"(min {min(rates):.1f}, max {max(rates):.1f})")


if __name__ == "__main__":
    main()
