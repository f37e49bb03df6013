"""The parameter values drawn for one image: a frozen, typed record that scene, render and metadata read.

``SynthParams`` holds *ranges*; ``DrawnParams.sample`` draws one value from each, in the
field order of ``SynthParams`` (that order fixes the random stream, so it never changes),
and computes once the pixel quantities every stage needs: the particle radius as it is
rendered (the nm diameter over the pixel size, clipped to what the frame can hold), the
beam blur in pixels, and the ring radius bounds at this frame size. ``record()`` is what
``meta.jsonl`` (``values``) and ``manifest.csv`` (``params``) store: the drawn values
plus the rendered particle radius and blur, so the metadata says what was rendered.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from .params import SynthParams

REFERENCE_CROP_PX = 321  # frame side at which per-image counts and ring radii are given
#: the SynthParams fields drawn per image, in order (``by_scale`` holds per-magnification values of them)
DRAWN_FIELDS = [name for name in SynthParams.model_fields if name != "by_scale"]
REFERENCE_FIELD_UM2 = 0.1  # field area per which hard-negative counts are given (~321x321 px at 1 nm/px)
#: a frame holds particles of radius up to its side over this (16 px at 321 px: a 16 nm Pd particle at
#: x200k, 0.5 nm/px); smaller frames shrink them. It was 40 (8 px at 321 px), which clipped every
#: particle above 8 nm at x200k: the preset's 6-11 nm rendered as 6-8 nm there, and calibrate,
#: seeing the x200k particles too small whatever it asked for, grew the diameter 8.5 -> 25 nm
FRAME_PER_MAX_PARTICLE_RADIUS = 20


def draw_value(rng: np.random.Generator, spec):
    """One value from a ``(lo, hi)`` range (ints inclusive) or a scalar."""
    if isinstance(spec, tuple):
        lo, hi = spec
        if isinstance(lo, int) and isinstance(hi, int):
            return int(rng.integers(lo, hi + 1))
        return float(rng.uniform(lo, hi))
    return spec


@dataclass(frozen=True)
class DrawnParams:
    """One image's drawn parameters (units as in ``SynthParams``) and derived pixel quantities."""

    # --- drawn, one per SynthParams field and in its order (see SynthParams for meanings)
    scale_nm_per_px: float
    particle_diameter_nm: float
    particle_size_spread: float
    particle_yield_spread: float
    cluster_size: int
    cluster_gap: float
    line_width_jitter: float
    rings_per_image: int
    ring_radius_px: float
    ring_irregularity: float
    ring_coverage: float
    ring_radial_jitter: float
    nested_ring_prob: float
    network_prob: float
    network_cells: int
    chains: int
    arcs: int
    elongated_loops: int
    dense_clusters: int
    big_particles: float
    debris: float
    scattered_per_um2: float
    sheets_per_um2: float
    pits: int
    texture_strength: float
    gradient_strength: float
    edge_gain: float
    psf_sigma_nm: float
    dose_e_per_px: float
    shot_noise: str
    scan_blur_px: float
    halo_strength: float
    halo_sigma_px: float
    detector_noise: float
    line_jitter: float
    line_drift: float
    background_level: float
    particle_level: float
    gamma: float
    chain_width_particles: int
    ring_width_particles: int
    polygon_network_prob: float
    sheet_layers: int
    sheet_particles_per_um2: float
    thick_flakes_per_um2: float
    rosettes_per_um2: float
    grain_strength: float
    region_contrast: float
    particle_facets: float
    contamination_loss: float
    grain_fine_ratio: float
    # --- context: the frame and the ranges that are used as ranges
    shape_hw: tuple[int, int] = (REFERENCE_CROP_PX, REFERENCE_CROP_PX)
    cluster_size_range: tuple[int, int] = (2, 6)
    ring_radius_range_px: tuple[float, float] = (12.0, 110.0)
    chain_width_range: tuple[int, int] = (1, 4)
    # --- derived once from the above (not arguments)
    particle_radius_px: float = field(init=False)   # mean particle radius as rendered
    psf_sigma_px: float = field(init=False)         # beam blur (Gaussian sigma) in px
    frame_fit: float = field(init=False)            # min(1, frame side / 321): ring radii shrink in small frames
    area_units: float = field(init=False)           # frame area in 321x321 units: the ring count scales with it
    field_um2: float = field(init=False)            # frame area in um^2: hard-negative counts scale with it
    field_units: float = field(init=False)          # field_um2 / REFERENCE_FIELD_UM2
    ring_radius_lo_px: float = field(init=False)    # ring radius bounds at this frame and particle size
    ring_radius_hi_px: float = field(init=False)

    def __post_init__(self):
        h, w = self.shape_hw
        r = self.particle_diameter_nm / self.scale_nm_per_px / 2.0
        r = float(np.clip(r, 0.9, max(1.0, min(h, w) / FRAME_PER_MAX_PARTICLE_RADIUS)))
        fit = min(1.0, min(h, w) / REFERENCE_CROP_PX)
        lo, hi = self.ring_radius_range_px
        lo = max(lo * fit, 4 * r + 2)
        hi = min(max(hi * fit, lo), 0.45 * min(h, w))
        for name, value in (("particle_radius_px", r), ("psf_sigma_px", self.psf_sigma_nm / self.scale_nm_per_px),
                            ("frame_fit", fit), ("area_units", h * w / REFERENCE_CROP_PX**2),
                            ("ring_radius_lo_px", lo), ("ring_radius_hi_px", hi),
                            ("field_um2", h * w * self.scale_nm_per_px**2 / 1e6),
                            ("field_units", h * w * self.scale_nm_per_px**2 / 1e6 / REFERENCE_FIELD_UM2)):
            object.__setattr__(self, name, value)

    @classmethod
    def sample(cls, params: SynthParams, rng: np.random.Generator, shape_hw: tuple[int, int]) -> "DrawnParams":
        """Draw every ranged parameter of ``params`` once (in field order) for a frame of ``shape_hw`` px."""
        scale = draw_value(rng, params.scale_nm_per_px)
        here = params.at_scale(scale)  # per-magnification values (by_scale), if any

        def spec(name):
            return here.get(name, getattr(params, name))

        drawn = {"scale_nm_per_px": scale} | {name: draw_value(rng, spec(name)) for name in DRAWN_FIELDS[1:]}
        return cls(**drawn, shape_hw=(int(shape_hw[0]), int(shape_hw[1])),
                   cluster_size_range=tuple(spec("cluster_size")), ring_radius_range_px=tuple(spec("ring_radius_px")),
                   chain_width_range=tuple(spec("chain_width_particles")))

    def record(self) -> dict:
        """What the metadata stores: every drawn value, then the rendered particle radius and blur (px)."""
        out = {name: getattr(self, name) for name in DRAWN_FIELDS}
        out["particle_radius_px"] = self.particle_radius_px
        out["psf_sigma_px"] = self.psf_sigma_px
        return out

    def replace(self, **changes) -> "DrawnParams":
        """A copy with some drawn values changed (derived quantities recomputed)."""
        return dataclasses.replace(self, **changes)


def _check_fields() -> None:
    drawn = [f.name for f in dataclasses.fields(DrawnParams) if f.init][:len(DRAWN_FIELDS)]
    if drawn != DRAWN_FIELDS:
        raise TypeError("DrawnParams must list every drawn SynthParams field, in the same order "
                        f"(SynthParams: {DRAWN_FIELDS})")


_check_fields()
