"""Overall realism distance of a generator setting to the four Boiko et al. 2020 references.

Renders ``--per-real`` images of 320x320 at each reference's pixel size (``references/boiko2020/
scales.csv``) for each of ``--seeds``, measures them and the references with ``nanoseg.realism``
and prints, per seed and as a mean, the set distance per magnification and overall
(``distance.compare_matched``), with the references measured in tiles of 320 px (like with like,
``stats.measure_tiled``; the default of ``nanoseg realism`` and ``nanoseg calibrate``) and whole
(``--whole``). Then the per-statistic table of the first seed. Not a speed benchmark: it is the
measurement behind the README's realism table.

``--from-checkout DIR`` renders the same images with the generator of another checkout (e.g. an
earlier commit, ``git worktree add --detach DIR COMMIT``) in a subprocess and measures them here, so
two generators are compared with one measurement.

48 renders per reference (the default; it was 16): every statistic's distance is an absolute log
ratio or a Wasserstein distance, which the renders' sampling noise can only raise, and the wide
``realistic`` ranges need more renders than a narrow calibrated set for their mean to settle (16 ->
48 renders: the preset 0.135 -> 0.116, the calibrated YAML 0.093 -> 0.084, the generator against
itself 0.080 -> 0.077; ``benchmarks/realism_floor.py``).

Run from the project root: ``python benchmarks/realism_references.py [--config YAML] [--per-real 48]
[--seeds 0,1] [--whole] [--from-checkout DIR]`` (about 1 minute per seed at 48 images per
reference on the 2-core development machine).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from nanoseg.realism.calibrate import SYNTH_SIZE_PX, render_batch
from nanoseg.realism.distance import NAMES, compare_matched, format_table
from nanoseg.realism.sources import load_real, read_scale_csv
from nanoseg.realism.stats import measure_image, measure_tiled
from nanoseg.synthesis.params import SynthParams, load_params

REFERENCES = Path(__file__).resolve().parents[1] / "references" / "boiko2020"

#: run in the other checkout: the calibrate protocol's images (320 px at each reference's pixel size)
RENDER_ELSEWHERE = """
import sys, json, numpy as np
from nanoseg.synthesis.generate import synthesize_sample
from nanoseg.synthesis.params import load_params
out, per, seeds, scales, preset, config = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]), \\
    json.loads(sys.argv[4]), sys.argv[5], sys.argv[6] or None
p0 = load_params(preset, config)
imgs = {}
for seed in seeds:
    for j, s in enumerate(scales):
        p = p0.model_copy(update={"scale_nm_per_px": (s, s)})
        for k in range(per):
            imgs[f"{seed}_{j * per + k}"] = synthesize_sample(p, seed, j * per + k, (320, 320))["image"]
np.savez_compressed(out, **imgs)
"""


def render_elsewhere(checkout: str, scales, per_real: int, seeds, preset: str, config: str | None) -> dict:
    """{seed: [uint8 images]} rendered by the generator of ``checkout`` (same order as render_batch)."""
    import json

    import numpy as np

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "images.npz"
        env = dict(os.environ, PYTHONPATH=str(Path(checkout).resolve() / "src"))
        subprocess.run([sys.executable, "-c", RENDER_ELSEWHERE, str(out), str(per_real), json.dumps(seeds),
                        json.dumps(scales), preset, config or ""], check=True, env=env, cwd=checkout)
        data = np.load(out)
        return {seed: [data[f"{seed}_{i}"] for i in range(len(scales) * per_real)] for seed in seeds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=None, help="generator YAML on top of the preset")
    ap.add_argument("--preset", default="realistic")
    ap.add_argument("--per-real", type=int, default=48, help="synthetic images per reference and seed")
    ap.add_argument("--seeds", default="0,1", help="comma-separated render seeds")
    ap.add_argument("--whole", action="store_true", help="measure the references whole, not in 320 px tiles")
    ap.add_argument("--references", default=str(REFERENCES))
    ap.add_argument("--from-checkout", default=None, help="render with the generator of this checkout")
    args = ap.parse_args()
    ref = Path(args.references)
    real, _ = load_real(sorted(ref.glob("*.png")), scale_table=read_scale_csv(ref / "scales.csv"),
                        crop_bottom="auto")
    tile = None if args.whole else SYNTH_SIZE_PX
    real_stats = [measure_tiled(m.image, m.scale_nm_per_px, tile_px=tile, seed=i) for i, m in enumerate(real)]
    values = load_params(args.preset, args.config).model_dump()
    scales = [m.scale_nm_per_px for m in real]
    values["scale_nm_per_px"] = (min(scales), max(scales))
    params = SynthParams(**values)
    results = []
    seeds = [int(s) for s in args.seeds.split(",")]
    elsewhere = render_elsewhere(args.from_checkout, scales, args.per_real, seeds, args.preset, args.config) \
        if args.from_checkout else None
    for seed in seeds:
        if elsewhere:
            synth = [measure_image(img, scales[i // args.per_real], seed=i % args.per_real)
                     for i, img in enumerate(elsewhere[seed])]
        else:
            synth = render_batch(params, scales, per_real=args.per_real, seed=seed)
        r = compare_matched(real_stats, synth, names=[m.name for m in real])
        results.append(r)
        groups = ", ".join(f"{g['scale_nm_per_px']:g} nm/px {g['overall_distance']:.3f}" for g in r["groups"])
        print(f"seed {seed}: overall {r['overall_distance']:.3f} ({groups}); pooled {r['pooled_distance']:.3f}")
    mean = float(np.mean([r["overall_distance"] for r in results]))
    per_group = np.mean([[g["overall_distance"] for g in r["groups"]] for r in results], axis=0)
    print(f"mean over {len(results)} seed(s): overall {mean:.3f}; per magnification "
          + ", ".join(f"{g['scale_nm_per_px']:g} nm/px {d:.3f}" for g, d in zip(results[0]["groups"], per_group))
          + f"; references {'whole' if args.whole else f'in {SYNTH_SIZE_PX} px tiles'}, "
          f"{args.per_real} images per reference and seed, config {args.config or args.preset}"
          + (f", generator of {args.from_checkout}" if args.from_checkout else ""))
    for k, name in enumerate(NAMES):
        d = np.mean([[g["rows"][k]["distance"] for g in r["groups"]] for r in results], axis=0)
        print(f"  {name:22s} distance per magnification (mean over seeds): " + " ".join(f"{x:.3f}" for x in d))
    print(format_table(results[0]))


if __name__ == "__main__":
    main()
