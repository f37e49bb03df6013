"""Images per second of the command `nanoseg synth --n 1000` at 321x321, all files written, all cores.

Target (issue 3): at least 100 images/s on a 2-core CPU. Run from the project root:
`.venv/bin/python benchmarks/bench_synth.py [--n 1000] [--dir DIR] [--repeat 3]`.

Each run times the whole command in a fresh process (Python start-up, imports, worker
start-up, rendering, writing images/, masks/, labelme/, meta.jsonl and manifest.csv, and
the final move into place), so the figure is what a user gets. The datasets go to a
temporary folder inside ``--dir`` (default: the current directory, i.e. where a user's
datasets go) and are deleted after the last run, not between runs: deleting ~100 MB keeps
some file systems busy for a while (on the development VM, creating a file right after
costs 0.7 ms instead of 0.02 ms), which would bill one run for the previous one's cleanup.
For the same reason each run starts once creating a test file is fast again (60 s at most).
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def file_creation_ms(folder: Path, n: int = 200) -> float:
    """Mean milliseconds to create (and later remove) an empty file in ``folder``."""
    probe = Path(tempfile.mkdtemp(dir=folder, prefix=".probe_"))
    t0 = time.perf_counter()
    for i in range(n):
        os.close(os.open(probe / f"{i}", os.O_WRONLY | os.O_CREAT, 0o644))
    dt = (time.perf_counter() - t0) / n * 1e3
    shutil.rmtree(probe)
    return dt


def settle(folder: Path, limit_s: float = 60.0, fast_ms: float = 0.1) -> float:
    """Wait until file creation in ``folder`` is fast; returns the last probe (ms per file)."""
    os.sync()
    t0 = time.perf_counter()
    ms = file_creation_ms(folder)
    while ms > fast_ms and time.perf_counter() - t0 < limit_s:
        time.sleep(2)
        ms = file_creation_ms(folder)
    return ms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--dir", default=".", help="folder that receives the temporary datasets")
    ap.add_argument("--repeat", type=int, default=1, help="runs; each is reported, then the median")
    ap.add_argument("--preset", default="realistic")
    ap.add_argument("--workers", type=int, default=0, help="0: all cores")
    args = ap.parse_args()
    workers = args.workers or os.cpu_count() or 1
    rates = []
    parent = Path(tempfile.mkdtemp(dir=args.dir, prefix=".bench_synth_"))
    try:
        for k in range(args.repeat):
            probe_ms = settle(parent)
            out = parent / f"run{k}"
            cmd = [sys.executable, "-m", "nanoseg", "synth", "--out", str(out), "--n", str(args.n),
                   "--seed", "0", "--preset", args.preset, "--size", "321", "--workers", str(workers)]
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            dt = time.perf_counter() - t0
            assert len(list((out / "images").iterdir())) == args.n
            rates.append(args.n / dt)
            print(f"nanoseg synth --n {args.n} --preset {args.preset} --size 321 --workers {workers}: "
                  f"{dt:.1f} s = {args.n / dt:.1f} images/s (file creation before the run: {probe_ms:.2f} ms)",
                  flush=True)
    finally:
        shutil.rmtree(parent, ignore_errors=True)
    if len(rates) > 1:
        print(f"median of {len(rates)} runs: {statistics.median(rates):.1f} images/s "
              f"(min {min(rates):.1f}, max {max(rates):.1f})")


if __name__ == "__main__":
    main()
