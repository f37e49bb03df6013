"""Synthetic images per second for `nanoseg synth --n 1000` at 321x321, all files written, all cores.

Target (issue 3): at least 100 images/s on a 2-core CPU. Run: `.venv/bin/python benchmarks/bench_synth.py [N]`.
"""

import os
import sys
import tempfile
import time
from pathlib import Path

from nanoseg.synthesis import load_params, synthesize_dataset


def main(n: int = 1000) -> None:
    workers = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        synthesize_dataset(Path(tmp) / "sd", n, 0, load_params("realistic"), "realistic", (321, 321),
                           workers=workers, progress=False)
        dt = time.perf_counter() - t0
    print(f"synth realistic 321x321: {n} images in {dt:.1f} s = {n / dt:.1f} images/s ({workers} workers)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
