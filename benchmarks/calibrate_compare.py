"""How often does ``nanoseg compare`` call two samples drawn alike different? (false-positive rates)

Renders pairs of synthetic samples with the same generator parameters and different seeds,
measures their masks with the code ``measure`` uses, compares them as ``compare`` does and
counts the pairs each p-value rejects at 0.05 and 0.01. A calibrated test rejects about 5% and 1%
of them. ``--radius-b`` gives the second sample other ring radii instead (then the rates are the
power). Not a speed benchmark: it checks the statistics.

Run: ``python benchmarks/calibrate_compare.py [--pairs 20] [--images 24] [--preset simple]``
(about 2 CPU-minutes with the defaults).
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from tqdm import tqdm

from nanoseg.analysis.compare import compare_samples, sample_from
from nanoseg.analysis.results import measure_image
from nanoseg.synthesis import load_params, synthesize_sample


def render_sample(params, seed: int, n: int, size: int, name: str) -> dict:
    rows, images = [], {}
    for i in range(n):
        s = synthesize_sample(params, seed, i, (size, size))
        img = f"{name}_{i}"
        r, images[img] = measure_image(s["mask"], name=img, file=img, nm_per_px=s["values"]["scale_nm_per_px"],
                                       scale_source="synthetic")
        rows += r
    return sample_from(images, rows, name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=20)
    ap.add_argument("--images", type=int, default=24, help="images per sample")
    ap.add_argument("--size", type=int, default=192)
    ap.add_argument("--preset", default="simple")
    ap.add_argument("--radius", default="[14, 26]", help="ring_radius_px of both samples")
    ap.add_argument("--radius-b", default=None, help="ring_radius_px of the second sample (power instead)")
    ap.add_argument("--fixed-scale", action="store_true", help="scale_nm_per_px fixed at 1 (default: preset range)")
    ap.add_argument("--seed", type=int, default=1000)
    args = ap.parse_args()
    base = {"rings_per_image": [8, 14], "nested_ring_prob": 0.0, "ring_radius_px": json.loads(args.radius)}
    if args.fixed_scale:
        base["scale_nm_per_px"] = [1.0, 1.0]
    pa = load_params(args.preset, overrides=base)
    pb = load_params(args.preset, overrides=dict(base, ring_radius_px=json.loads(args.radius_b))) \
        if args.radius_b else pa
    keys = [("density", "p_image_level")] + [(q, k) for q in ("diameter", "band_width")
                                               for k in ("p_image_level", "p_mann_whitney", "p_ks",
                                                         "p_mann_whitney_rings", "p_ks_rings")]
    pvals = {k: [] for k in keys}
    for k in tqdm(range(args.pairs), desc="pairs"):
        a = render_sample(pa, args.seed + 2 * k, args.images, args.size, "A")
        b = render_sample(pb, args.seed + 2 * k + 1, args.images, args.size, "B")
        pair = compare_samples([a, b])["pairs"][0]
        for q, key in keys:
            pvals[(q, key)].append(pair[q][key])
    print(f"{args.pairs} pairs of {args.images} images ({args.size} px, {args.preset}, radius {args.radius}"
          f"{' vs ' + args.radius_b if args.radius_b else ', drawn alike'}; "
          f"{'1 nm/px' if args.fixed_scale else 'preset pixel sizes'})")
    print("p_image_level: difference of medians, p_mann_whitney / p_ks: those statistics, all three with whole images"
          " permuted; *_rings: scipy's p-values treating rings as independent")
    print(f"{'statistic':<12} {'p-value':<22} {'rejects at 0.05':>16} {'at 0.01':>8} {'median p':>9}")
    for (q, key), ps in pvals.items():
        ps = np.array([p for p in ps if p is not None], float)
        print(f"{q:<12} {key:<22} {np.mean(ps < 0.05):>16.2f} {np.mean(ps < 0.01):>8.2f} {np.median(ps):>9.3g}")


if __name__ == "__main__":
    main()
