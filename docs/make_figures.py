"""Regenerate the README's figures: a synthetic crop beside a real one at the same scale, and
galleries of both presets. Run: `.venv/bin/python docs/make_figures.py`."""

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


if __name__ == "__main__":
    main()
