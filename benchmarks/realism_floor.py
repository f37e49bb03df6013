"""How small the realism distance can be: the generator measured against micrographs it made itself.

The overall distance of ``benchmarks/realism_references.py`` compares each reference, one
micrograph measured in 320 px tiles, with ``--per-real`` renders at its pixel size. Two
pseudo-references drawn from the generator itself say what a number means:

- **render noise** (``noise``): 12 renders of the generator, each with its own parameter draw,
  pooled as one "micrograph" at each reference's pixel size. It matches the renders' population
  exactly, so its distance to them is the measurement's own noise: the floor under which no
  generator can get with this many renders and a 12-tile micrograph.
- **one draw** (``draw``): one parameter draw of the generator (every range fixed at the values one
  image drew) rendered as 12 tiles, the way a real micrograph is one specimen under one set of
  imaging conditions. Its distance to the renders is how far a micrograph of the preset's own
  population typically lies from the preset's centre: a preset whose ranges are wide for the sake
  of variety cannot be closer than that to a micrograph that is one member of them.

Pixel sizes as the four references (1.98, 0.992, 0.992, 0.496 nm/px), the same grouping and
distance (``distance.compare_matched``). Run from the project root: ``python
benchmarks/realism_floor.py [--config YAML] [--per-real 48] [--trials 4]`` (2-core development
machine: about 2 minutes at the defaults).
"""

from __future__ import annotations

import argparse

import numpy as np

from nanoseg.realism.calibrate import render_batch
from nanoseg.realism.distance import compare_matched
from nanoseg.realism.stats import measure_image, pool
from nanoseg.synthesis.generate import synthesize_sample
from nanoseg.synthesis.params import SynthParams, load_params

SCALES = [1.98, 0.992, 0.992, 0.496]   # the four references' pixel sizes (references/boiko2020/scales.csv)
NAMES = ["x50k", "x100k a", "x100k b", "x200k"]
TILES = 12                             # a 1280x890 reference holds 12 tiles of 320 px
TILE_PX = 320


def one_draw_tiles(params: SynthParams, scale: float, *, draw_seed: int, index: int):
    """12 tiles rendered with one parameter draw at ``scale`` (every range fixed at that draw)."""
    at = params.model_copy(update={"scale_nm_per_px": (scale, scale)})
    drawn = synthesize_sample(at, draw_seed, index, (64, 64))["values"]
    ranges = at.model_dump()
    fixed = {k: (type(ranges[k][0])(v),) * 2 for k, v in drawn.items()
             if isinstance(ranges.get(k), tuple)}
    one = SynthParams(**(ranges | fixed | {"by_scale": {}}))
    return [measure_image(synthesize_sample(one, draw_seed + 1000, index * TILES + t, (TILE_PX, TILE_PX))["image"],
                          scale, seed=t) for t in range(TILES)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=None, help="generator YAML on top of the preset")
    ap.add_argument("--preset", default="realistic")
    ap.add_argument("--per-real", type=int, default=48, help="renders per pseudo-reference (as realism_references.py)")
    ap.add_argument("--trials", type=int, default=4, help="pseudo-reference sets per kind")
    args = ap.parse_args()
    values = load_params(args.preset, args.config).model_dump() | {"scale_nm_per_px": (min(SCALES), max(SCALES))}
    params = SynthParams(**values)
    for kind in ("noise", "draw"):
        overall = []
        for k in range(args.trials):
            if kind == "noise":
                ref = render_batch(params, SCALES, per_real=TILES, seed=900 + k)
                pseudo = [pool(ref[i * TILES:(i + 1) * TILES]) for i in range(len(SCALES))]
            else:
                pseudo = [pool(one_draw_tiles(params, s, draw_seed=500 + k, index=i)) for i, s in enumerate(SCALES)]
            synth = render_batch(params, SCALES, per_real=args.per_real, seed=k % 2)
            r = compare_matched(pseudo, synth, names=NAMES)
            overall.append(r["overall_distance"])
            groups = ", ".join(f"{g['scale_nm_per_px']:g} nm/px {g['overall_distance']:.3f}" for g in r["groups"])
            print(f"{kind} {k}: overall {r['overall_distance']:.3f} ({groups})", flush=True)
        print(f"{kind}: mean {np.mean(overall):.3f}, range {min(overall):.3f}-{max(overall):.3f} over {args.trials} "
              f"pseudo-references, {args.per_real} renders each, config {args.config or args.preset}")


if __name__ == "__main__":
    main()
