"""CPU time per synthetic 321x321 `realistic` image in one process (robust to a busy machine).

Run from two checkouts to compare generator versions side by side:
`PYTHONPATH=src python benchmarks/bench_synth_cpu.py [--n 150]`. The end-to-end figure
(images/s of the whole `nanoseg synth` command) is `bench_synth.py`'s.
"""

import argparse
import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

from nanoseg.synthesis import load_params, synthesize_sample  # noqa: E402
from nanoseg.synthesis.generate import _tune_process  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=150)
    args = ap.parse_args()
    _tune_process()
    p = load_params("realistic")
    for i in range(5):
        synthesize_sample(p, 0, i, (321, 321))
    t = time.process_time()
    for i in range(args.n):
        synthesize_sample(p, 1, i, (321, 321))
    print(f"{(time.process_time() - t) / args.n * 1000:.1f} ms CPU per 321x321 realistic image")


if __name__ == "__main__":
    main()
