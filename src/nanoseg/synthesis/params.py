"""Generator parameters: value ranges sampled per image, two presets, YAML overrides.

Every field that is a ``[lo, hi]`` pair is drawn uniformly per image; the drawn
values are stored with the image (``manifest.csv`` column ``params``), so every
image documents exactly how it was made. Lengths are in pixels at the image's
own scale unless the name says ``_nm``. Counts of hard negatives are per field area
(``_per_01um2``: per 0.1 um^2, the area of a 321x321 crop at 1 nm/px; ``_per_um2``), so an
image at x50k holds 16 times the structures of one at x200k, as real micrographs do; rings,
the labelled class, keep their per-image count and pixel radii.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..config import first_error, read_yaml_mapping
from ..errors import NanosegError

Range = tuple[float, float]
IntRange = tuple[int, int]


#: ranges whose values divide or set a blur width: zero is meaningless there (and would crash or
#: render black images), so their lower end must be above zero (``cluster_size`` at least 1)
POSITIVE = {"scale_nm_per_px", "particle_diameter_nm", "psf_sigma_nm", "dose_e_per_px", "gamma",
            "scan_blur_px", "halo_sigma_px", "ring_radius_px", "cluster_size"}


#: most objects of one kind per image or 0.1 um^2 (``[lo, hi]`` integer ranges) and most particles
#: per um^2 of a density: beyond these an image would take minutes or gigabytes, never what a user meant
MAX_COUNT = 200
MAX_PER_UM2 = 10000.0
#: counts per 0.1 um^2 given as a mean (a float range; the count is a Poisson draw)
MEAN_COUNTS = {"big_particles", "debris"}


class SynthParams(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    # scale and particles
    scale_nm_per_px: Range = Field((0.5, 2.0), description="pixel size (x200k ~0.5, x100k ~1, x50k ~2 on the Boiko et al. Hitachi SU8000 images); sets particle size and beam blur in px")
    particle_diameter_nm: Range = Field((6.0, 11.0), description="particle diameter (Pd in the Boiko et al. 2020 references measures ~6-11 nm, nanoseg.realism)")
    particle_size_spread: Range = Field((0.1, 0.25), description="relative std of particle radius within an image")
    particle_yield_spread: Range = Field((0.05, 0.2), description="relative std of particle brightness (facets, size)")
    cluster_size: IntRange = Field((2, 6), description="touching particles per cluster along a line")
    cluster_gap: Range = Field((0.3, 1.8), description="gap between clusters, in particle diameters")
    line_width_jitter: Range = Field((0.5, 1.5), description="sideways scatter of particles about a line, in radii")
    # rings (the labelled class)
    rings_per_image: IntRange = Field((1, 4), description="rings per 321x321 area (per 0.1 um^2 where a crop covers less; at least one)")
    ring_radius_px: Range = Field((12.0, 110.0), description="mean ring radius at a 321 px crop")
    ring_irregularity: Range = Field((0.0, 0.12), description="amplitude of low harmonics of the ring radius")
    ring_coverage: Range = Field((0.8, 1.0), description="fraction of the circumference carrying particles")
    ring_radial_jitter: Range = Field((0.0, 0.8), description="radial scatter of clusters, in particle radii")
    nested_ring_prob: float = Field(0.2, ge=0, le=1, description="chance that a ring gets a ring inside it")
    # hard negatives (class 0)
    network_prob: float = Field(0.6, ge=0, le=1, description="chance of a chain network around the rings")
    network_cells: IntRange = Field((1, 4), description="Voronoi cells of the chain network per 0.1 um^2")
    chains: IntRange = Field((0, 2), description="open straight or curved chains per 0.1 um^2")
    arcs: IntRange = Field((0, 3), description="short arcs (< 200 deg) of ring-like particles per 0.1 um^2")
    elongated_loops: IntRange = Field((0, 1), description="closed loops far from round (aspect > 2) per 0.1 um^2")
    dense_clusters: IntRange = Field((0, 3), description="compact clusters of adhering particles per 0.1 um^2")
    big_particles: Range = Field((0.0, 0.5), description="large bright particles per 0.1 um^2 (a mean: the count "
                                 "is a Poisson draw; the Boiko et al. references show about 1-3 per um^2)")
    debris: Range = Field((0.0, 0.2), description="large bright irregular debris per 0.1 um^2 (a mean: the count is "
                          "a Poisson draw; the references show about 1 per um^2)")
    scattered_per_um2: Range = Field((20.0, 150.0), description="groups of detached particles (singles, pairs, triples) per um^2")
    # support
    sheets_per_um2: Range = Field((0.0, 0.5), description="translucent carbon sheets (150-1000 nm) with layered "
                                  "step edges that show as bright ridges and carry their own particles, per um^2 of "
                                  "the frame and the 500 nm around it (the references: a few per 5 um^2 frame)")
    pits: IntRange = Field((0, 6), description="dark pits in the support per 0.1 um^2")
    texture_strength: Range = Field((0.02, 0.06), description="relative amplitude of the support texture (features of ~70 and ~350 nm)")
    gradient_strength: Range = Field((0.0, 0.35), description="relative light-to-dark ramp across a full 1280x960 instrument frame (a crop sees its share)")
    # image formation (Cizmar et al., Scanning 30(5), 2008)
    edge_gain: Range = Field((0.05, 0.35), description="secondary-electron edge brightening factor")
    psf_sigma_nm: Range = Field((0.6, 1.2), description="Gaussian beam blur (sigma) in nm: the probe size is physical, so in pixels it is psf_sigma_nm / scale_nm_per_px (soft at x200k, crisp at x50k)")
    dose_e_per_px: Range = Field((40.0, 250.0), description="shot-noise dose; lower is noisier")
    shot_noise: Literal["cornish-fisher", "exact"] = Field(
        "cornish-fisher", description="Poisson sampler: exact (numpy) or its 3rd-order Cornish-Fisher quantile "
                                      "(same mean/variance/skew, 5x faster; see render.shot_noise_counts)")
    scan_blur_px: Range = Field((0.2, 0.8), description="detector bandwidth: blur of the noise along the scan line")
    halo_strength: Range = Field((0.0, 0.25), description="diffuse SE glow around particles (backscatter), relative")
    halo_sigma_px: Range = Field((3.0, 10.0), description="width of that glow")
    detector_noise: Range = Field((0.005, 0.03), description="additive Gaussian noise, relative")
    line_jitter: Range = Field((0.0, 0.03), description="per-scan-line gain jitter, relative")
    line_drift: Range = Field((0.0, 0.05), description="slow gain drift over the frame, relative")
    background_level: Range = Field((25.0, 90.0), description="8-bit grey of the bare support")
    particle_level: Range = Field((105.0, 200.0), description="8-bit grey of a clean Pd particle centre (its mean "
                                  "yield, before contamination; the crystallites make peaks brighter)")
    gamma: Range = Field((0.85, 1.2), description="display gamma")
    # added with the realism statistics (nanoseg.realism); appended so the earlier draws keep their order
    chain_width_particles: IntRange = Field((1, 4), description="rows of particles side by side in a chain "
                                            "(network edges, chains), drawn per chain")
    ring_width_particles: IntRange = Field((1, 2), description="rows of particles side by side in a ring, per ring")
    polygon_network_prob: float = Field(0.4, ge=0, le=1, description="share of networks with unstretched polygonal "
                                        "cells and straight edges (never labelled: rings are round)")
    sheet_layers: IntRange = Field((1, 3), description="stacked layers of a carbon sheet, each with its own step edge")
    sheet_particles_per_um2: Range = Field((100.0, 900.0), description="particles lying on a carbon sheet per um^2")
    thick_flakes_per_um2: Range = Field((0.0, 1.5), description="thick faceted graphite pieces (30-200 nm) with "
                                        "bright edges per um^2")
    rosettes_per_um2: Range = Field((0.0, 40.0), description="rosettes of 5-8 touching particles round a dark "
                                    "centre (smaller than any ring) per um^2")
    grain_strength: Range = Field((0.04, 0.12), description="relative amplitude of the support's grain (octaves of 5-40 nm)")
    region_contrast: Range = Field((0.0, 0.15), description="relative brightness step between support regions "
                                   "(patches of ~300-800 nm)")
    particle_facets: Range = Field((0.1, 0.35), description="relative SE-yield contrast of the crystallites "
                                   "(~2.5 nm) within a particle: Pd particles look lumpy, not like smooth beads")
    contamination_loss: Range = Field((0.1, 0.35), description="share of the particles' SE contrast lost under the "
                                      "carbonaceous film the beam deposits, in a frame at 1 nm/px; the film grows "
                                      "with the hydrocarbon supply per area, which diffuses in across the frame's "
                                      "edge, so the loss compounds as 1 / scale_nm_per_px: dim particles at x200k")
    grain_fine_ratio: Range = Field((1.0, 1.0), description="amplitude of the grain's fine octaves (5 and 10 nm) "
                                    "over its coarse ones (20 and 40 nm): the slope of the support's spectrum, "
                                    "which differs between carbon supports (nanoseg calibrate fits it by the "
                                    "4-32 nm power; the x200k reference's is 2-3 times the preset's)")
    # not drawn: per-magnification values (``nanoseg calibrate`` on micrographs at several pixel sizes)
    by_scale: dict[float, dict[str, Any]] = Field(
        default_factory=dict, description="values that replace the ones above for the images at a pixel size: "
        "{scale_nm_per_px: {parameter: range}}; an image takes the entry nearest to its own pixel size (in log "
        "scale), so micrographs taken at x50k and x200k with their own brightness, contrast, dose or focus are "
        "each matched (nanoseg calibrate writes it); empty: the same ranges at every pixel size")

    @field_validator("*", mode="after")
    @classmethod
    def _check_range(cls, v, info):
        if isinstance(v, tuple):
            lo, hi = v
            if lo > hi:
                raise ValueError(f"inverted range [{lo}, {hi}]")
            if lo < 0:
                raise ValueError(f"negative value in range [{lo}, {hi}]")
            if info.field_name in POSITIVE and lo <= 0:
                raise ValueError(f"range [{lo}, {hi}] must lie above zero")
            if isinstance(hi, int) and not isinstance(hi, bool) and hi > MAX_COUNT:
                raise ValueError(f"range [{lo}, {hi}] goes above the limit of {MAX_COUNT} per image")
            if info.field_name in MEAN_COUNTS and hi > MAX_COUNT:
                raise ValueError(f"range [{lo}, {hi}] goes above the limit of {MAX_COUNT} per 0.1 um^2")
            if info.field_name.endswith("_per_um2") and hi > MAX_PER_UM2:
                raise ValueError(f"range [{lo}, {hi}] goes above the limit of {MAX_PER_UM2:g} per um^2")
        return v


    @model_validator(mode="after")
    def _check_by_scale(self):
        if not self.by_scale:
            return self
        base = self.model_dump(exclude={"by_scale"})
        checked = {}
        for scale, values in self.by_scale.items():
            if not scale > 0:
                raise ValueError(f"by_scale: pixel size {scale} must be above zero")
            if not isinstance(values, dict):
                raise ValueError(f"by_scale: the entry for {scale} nm/px must be a mapping of parameters")
            bad = set(values) - set(base) | {"scale_nm_per_px"} & set(values)
            if bad:
                raise ValueError(f"by_scale: {', '.join(sorted(bad))} cannot be set per pixel size")
            try:
                one = SynthParams(**(base | values))
            except ValidationError as exc:
                where, msg = first_error(exc)
                raise ValueError(f"by_scale {scale}: {where}: {msg}") from None
            checked[float(scale)] = {k: getattr(one, k) for k in values}
        self.by_scale = checked
        return self

    def at_scale(self, scale_nm_per_px: float) -> dict:
        """The ``by_scale`` values for an image at this pixel size (the entry nearest in log scale), or {}."""
        if not self.by_scale:
            return {}
        return self.by_scale[min(self.by_scale, key=lambda s: abs(math.log(s / scale_nm_per_px)))]


SIMPLE_OVERRIDES = dict(
    particle_size_spread=(0.05, 0.12),
    cluster_size=(1, 4),
    line_width_jitter=(0.1, 0.4),
    ring_radial_jitter=(0.0, 0.4),
    network_prob=0.0,
    chains=(0, 1),
    arcs=(0, 1),
    elongated_loops=(0, 0),
    dense_clusters=(0, 0),
    big_particles=(0.0, 0.0),
    debris=(0.0, 0.0),
    scattered_per_um2=(0.0, 80.0),
    sheets_per_um2=(0.0, 0.0),
    chain_width_particles=(1, 1),
    ring_width_particles=(1, 1),
    polygon_network_prob=0.0,
    thick_flakes_per_um2=(0.0, 0.0),
    rosettes_per_um2=(0.0, 0.0),
    grain_strength=(0.0, 0.02),
    region_contrast=(0.0, 0.0),
    particle_facets=(0.0, 0.05),
    contamination_loss=(0.0, 0.0),
    pits=(0, 0),
    texture_strength=(0.0, 0.02),
    gradient_strength=(0.0, 0.05),
    dose_e_per_px=(60.0, 200.0),
    detector_noise=(0.003, 0.01),
    halo_strength=(0.0, 0.05),
    line_jitter=(0.0, 0.01),
    line_drift=(0.0, 0.01),
    background_level=(25.0, 60.0),
    particle_level=(170.0, 230.0),
)

PRESETS = {
    "realistic": SynthParams(),
    "simple": SynthParams(**SIMPLE_OVERRIDES),
}


def load_params(preset: str = "realistic", config: str | Path | None = None,
                overrides: dict | None = None) -> SynthParams:
    """Preset, then YAML file, then explicit overrides; invalid values raise NanosegError."""
    if preset not in PRESETS:
        raise NanosegError(f"--preset: unknown preset {preset!r} (choose from {', '.join(PRESETS)})")
    values = PRESETS[preset].model_dump()
    if config is not None:
        values.update(read_yaml_mapping(config, "generator config"))
    values.update(overrides or {})
    try:
        return SynthParams(**values)
    except ValidationError as exc:
        where, msg = first_error(exc)
        src = f"{config}: " if config and where not in (overrides or {}) else ("--set: " if overrides else "")
        raise NanosegError(f"{src}invalid generator parameter {where or 'parameters'}: {msg}") from None
