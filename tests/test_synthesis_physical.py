"""The generator's physical densities and the structures added for realism (sheets, rosettes, wide chains)."""

from __future__ import annotations

import numpy as np
import pytest

from nanoseg.synthesis import load_params, synthesize_sample

QUIET = dict(network_prob=0.0, chains=(0, 0), arcs=(0, 0), elongated_loops=(0, 0), dense_clusters=(0, 0),
             big_particles=(0.0, 0.0), debris=(0.0, 0.0), sheets_per_um2=(0.0, 0.0), rosettes_per_um2=(0.0, 0.0),
             thick_flakes_per_um2=(0.0, 0.0), rings_per_image=(0, 0))


def _per_um2(kind: str, overrides: dict, scale: float, n: int = 4, size: int = 256) -> float:
    p = load_params("realistic", overrides=dict(QUIET, **overrides, scale_nm_per_px=(scale, scale)))
    count = 0
    for i in range(n):
        rows = synthesize_sample(p, 3, i, (size, size))["particles"]
        count += sum(1 for x, y, r, k, _ in rows if k == kind and 0 <= x < size and 0 <= y < size)
    return count / (n * (size * scale / 1000) ** 2)


def test_scattered_particles_are_a_density_per_um2_at_every_pixel_size():
    fine = _per_um2("scattered", {"scattered_per_um2": (300.0, 300.0)}, 0.5, n=12)
    coarse = _per_um2("scattered", {"scattered_per_um2": (300.0, 300.0)}, 2.0)
    # 300 groups of 1-3 particles (2 on average) per um^2, whatever the magnification
    assert fine == pytest.approx(600, rel=0.3) and coarse == pytest.approx(600, rel=0.3)


def test_rosettes_have_a_dark_centre_and_are_never_labelled():
    p = load_params("realistic", overrides=dict(QUIET, rosettes_per_um2=(400.0, 400.0), scattered_per_um2=(0.0, 0.0),
                                                rings_per_image=(1, 1), scale_nm_per_px=(0.5, 0.5),
                                                texture_strength=(0.0, 0.0), region_contrast=(0.0, 0.0)))
    s = synthesize_sample(p, 4, 0, (256, 256))
    rosettes = [n for n in s["negatives"] if n["type"] == "rosette"]
    assert rosettes
    img = s["image"].astype(float)
    darker = 0
    for n in rosettes:
        x, y = int(round(n["cx"])), int(round(n["cy"]))
        if 12 <= x < 244 and 12 <= y < 244:
            assert s["mask"][y, x] == 0
            ring_px = [img[int(y + 9 * np.sin(a)), int(x + 9 * np.cos(a))] for a in np.linspace(0, 2 * np.pi, 12)]
            darker += img[y, x] < np.median(ring_px)
    assert darker >= 1


def test_carbon_sheets_carry_their_own_particles():
    p = load_params("realistic", overrides=dict(QUIET, sheets_per_um2=(3.0, 3.0),
                                                sheet_particles_per_um2=(3000.0, 3000.0), scale_nm_per_px=(1.0, 1.0)))
    s = synthesize_sample(p, 5, 0, (256, 256))
    assert sum(1 for n in s["negatives"] if n["type"] == "sheet") >= 1
    assert any(row[3] == "sheet" for row in s["particles"])


def test_chains_several_particles_wide_spread_wider_than_single_file_ones():
    def spread(rows_range):
        p = load_params("realistic", overrides=dict(QUIET, chains=(3, 3), chain_width_particles=rows_range,
                                                    line_width_jitter=(0.0, 0.0), scale_nm_per_px=(1.0, 1.0)))
        s = synthesize_sample(p, 6, 0, (256, 256))
        xy = np.array([[x, y] for x, y, r, k, _ in s["particles"] if k == "chain"])
        return len(xy)
    # the same chains hold about rows x as many particles when they are 3 particles wide
    assert spread((3, 3)) > 1.8 * spread((1, 1))
