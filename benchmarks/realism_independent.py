"""A second opinion on the generator's realism: particle statistics written without nanoseg.realism.

    python benchmarks/realism_independent.py [--synth DIR] [--n 150] [--seed 0]

``nanoseg.realism`` and ``nanoseg calibrate`` judge the generator with one implementation of the
particle statistics, and the generator was tuned against it; a match could then be a match to that
implementation's quirks. This script measures the two statistics the realism issue names first,
particle area fraction and clustering, plus the particle size and density, with a different,
deliberately plain recipe (the one the issue describes: white top-hat, Otsu threshold, connected
components, all from scikit-image, nothing shared with nanoseg.realism):

- particles: white top-hat with a disc of ``TOPHAT_NM`` (15 nm) radius, Otsu's threshold on the
  result, components under ``SPECK_NM2`` (8 nm^2) dropped;
- area fraction: particle pixels over the field;
- particles in a component: its area over the median area of the smaller half of the components
  (one particle), rounded, at least 1; clustering is the share of particles in components of two or
  more, density the particles per um^2, and the size the median equivalent diameter of the
  components (nm).

The references (``references/boiko2020``, data bar cut at row 890, pixel sizes from ``scales.csv``)
are measured in 320 px tiles, as large as the synthetic images (the Otsu threshold is chosen per
image); the synthetic images are a ``nanoseg synth --preset realistic`` folder as a user makes it
(``--synth``, else ``--n`` images rendered at ``--seed``: random pixel sizes of 0.5-2 nm/px), each
compared with the references of its magnification (pixel size within a factor 1.4). Prints the
ratio synthetic / real of each statistic per magnification and pooled (every reference counting
the same).
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from skimage import filters, io, measure, morphology

ROOT = Path(__file__).resolve().parents[1]
REFERENCES = ROOT / "references" / "boiko2020"
DATA_BAR_ROW = 890  # the Hitachi SU8000 data bar of the references starts here
TILE_PX = 320
TOPHAT_NM = 15.0
SPECK_NM2 = 8.0
STATS = ("area_fraction", "clustering", "median_diameter_nm", "particles_per_um2")


def particle_stats(image: np.ndarray, nm_per_px: float) -> dict | None:
    """The four statistics of one image (None: no particle found)."""
    tophat = morphology.white_tophat(image.astype(float), morphology.disk(max(2, round(TOPHAT_NM / nm_per_px))))
    if tophat.max() <= tophat.min():
        return None
    mask = tophat > filters.threshold_otsu(tophat)
    labels = measure.label(mask)
    areas_px = np.bincount(labels.ravel())[1:]
    areas_px = areas_px[areas_px * nm_per_px**2 >= SPECK_NM2]
    if len(areas_px) == 0:
        return None
    areas_nm2 = areas_px * nm_per_px**2
    one = np.median(areas_nm2[areas_nm2 <= np.median(areas_nm2)])
    particles = np.maximum(1, np.round(areas_nm2 / one))
    field_um2 = image.size * nm_per_px**2 / 1e6
    return {"area_fraction": float(areas_px.sum() / image.size),
            "clustering": float(particles[particles > 1].sum() / particles.sum()),
            "median_diameter_nm": float(np.median(np.sqrt(4 * areas_nm2 / np.pi))),
            "particles_per_um2": float(particles.sum() / field_um2)}


def mean_stats(rows: list[dict]) -> dict:
    return {k: float(np.mean([r[k] for r in rows])) for k in STATS}


def references() -> list[tuple[str, float, dict]]:
    out = []
    with open(REFERENCES / "scales.csv", newline="") as f:
        for row in csv.DictReader(f):
            nm = float(row["scale_nm_per_px"])
            image = io.imread(REFERENCES / row["file"])[:DATA_BAR_ROW]
            tiles = [image[y:y + TILE_PX, x:x + TILE_PX]
                     for y in range(0, image.shape[0] - TILE_PX + 1, TILE_PX)
                     for x in range(0, image.shape[1] - TILE_PX + 1, TILE_PX)]
            rows = [s for s in (particle_stats(t, nm) for t in tiles) if s]
            out.append((row["file"].rsplit(".", 1)[0], nm, mean_stats(rows)))
    return out


def synthetic(folder: Path) -> list[tuple[float, dict]]:
    out = []
    with open(folder / "manifest.csv", newline="") as f:
        for row in csv.DictReader(f):
            nm = float(row["scale_nm_per_px"])
            s = particle_stats(io.imread(folder / "images" / f"{row['id']}.png"), nm)
            if s:
                out.append((nm, s))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--synth", type=Path, help="a `nanoseg synth` folder (default: render one)")
    ap.add_argument("--n", type=int, default=150)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.synth
        if folder is None:
            folder = Path(tmp) / "sd"
            subprocess.run([sys.executable, "-m", "nanoseg", "synth", "--out", str(folder), "--n", str(args.n),
                            "--seed", str(args.seed), "--preset", "realistic"], check=True,
                           stdout=subprocess.DEVNULL)
        synth = synthetic(folder)
    refs = references()
    print(f"{'reference':34s} {'nm/px':>6s} {'synth':>5s}  " + "  ".join(f"{k:>28s}" for k in STATS))
    ratios = []
    for name, nm, real in refs:
        near = [s for snm, s in synth if max(snm / nm, nm / snm) <= 1.4]
        if not near:
            print(f"{name:34s} {nm:6.3g}     0  (no synthetic image within a factor 1.4 of its pixel size)")
            continue
        syn = mean_stats(near)
        ratios.append({k: syn[k] / real[k] for k in STATS})
        print(f"{name:34s} {nm:6.3g} {len(near):5d}  " + "  ".join(
            f"{real[k]:9.3g} -> {syn[k]:9.3g} ({syn[k] / real[k]:4.2f})" for k in STATS))
    if ratios:
        print(f"{'mean ratio synthetic / real':47s} " + "  ".join(
            f"{np.mean([r[k] for r in ratios]):28.2f}" for k in STATS))


if __name__ == "__main__":
    main()
