"""Regenerate the README's figures: a synthetic crop beside a real one at the same scale, and
galleries of both presets. Run: `.venv/bin/python docs/make_figures.py [--reference DIR]`.

With ``--reference`` (a folder holding the Boiko et al. 2020 micrographs 9-S1-no_area-50k-ordered.tif,
2-S1-no_area-100k-ordered.tif and 569-S1-A64-200k-ordered.tif, CC BY 4.0, figshare
doi 10.6084/m9.figshare.11783661) it also draws ``magnifications.png``: a real crop at x50k, x100k and
x200k beside synthetic images at the matching pixel size.
"""

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from nanoseg import io
from nanoseg.demo import example_micrograph
from nanoseg.synthesis import load_params, synthesize_sample
from nanoseg.synthesis.gallery import outline

HERE = Path(__file__).parent


def label(img: np.ndarray, text: str) -> np.ndarray:
    im = Image.fromarray(img).convert("RGB")
    d = ImageDraw.Draw(im)
    d.rectangle([0, 0, 8 + 6 * len(text), 14], fill=(0, 0, 0))
    d.text((4, 2), text, fill=(255, 255, 255))
    return np.array(im)


def main() -> None:
    real = io.read_gray(example_micrograph())[60:381, 280:601]  # x100k, about 1 nm/px
    p = load_params("realistic", overrides={"scale_nm_per_px": (1.0, 1.0)})
    synth = [synthesize_sample(p, 2024, i, (321, 321)) for i in range(2)]
    gap = np.full((321, 6, 3), 255, np.uint8)
    row = np.hstack([label(real, "real (Boiko et al. 2020), x100k, ~1 nm/px"), gap,
                     label(synth[0]["image"], "nanoseg realistic, 1 nm/px"), gap,
                     label(outline(synth[0]["image"], synth[0]["mask"]), "its ring mask, outlined")])
    io.write_png(HERE / "synthetic_vs_real.png", row)
    for preset in ("realistic", "simple"):
        tiles = []
        for i in range(8):
            s = synthesize_sample(load_params(preset), 7, i, (200, 200))
            tiles.append(outline(s["image"], s["mask"]))
        grid = np.vstack([np.hstack(tiles[:4]), np.hstack(tiles[4:])])
        io.write_png(HERE / f"gallery_{preset}.png", grid)


MAGNIFICATIONS = [  # file, label, nm/px, crop origin (y, x)
    ("9-S1-no_area-50k-ordered.tif", "x50k, ~2 nm/px", 2.0, (200, 300)),
    ("2-S1-no_area-100k-ordered.tif", "x100k, ~1 nm/px", 1.0, (200, 300)),
    ("569-S1-A64-200k-ordered.tif", "x200k, ~0.5 nm/px", 0.5, (380, 820)),
]


def magnifications(reference: Path, size: int = 200) -> None:
    rows = []
    gap = np.full((size, 6, 3), 255, np.uint8)
    for i, (name, text, nm, (y, x)) in enumerate(MAGNIFICATIONS):
        real = io.read_gray(reference / name)[y:y + size, x:x + size]
        p = load_params("realistic", overrides={"scale_nm_per_px": (nm, nm)})
        tiles = [label(real, f"real {text}")]
        for k in range(2):
            tiles += [gap, label(synthesize_sample(p, 31, 10 * i + k, (size, size))["image"], f"nanoseg {nm:g} nm/px")]
        rows.append(np.hstack(tiles))
    sep = np.full((6, rows[0].shape[1], 3), 255, np.uint8)
    io.write_png(HERE / "magnifications.png", np.vstack([rows[0], sep, rows[1], sep, rows[2]]))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference", type=Path, help="folder with the Boiko et al. 2020 micrographs")
    args = ap.parse_args()
    main()
    if args.reference:
        magnifications(args.reference)
