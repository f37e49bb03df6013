"""``nanoseg calibrate``: fit the generator's ranges to a user's unlabelled micrographs.

The fit is an iterated, damped proportional correction. Each iteration renders a batch of
synthetic images at every real micrograph's own pixel size, measures them with
``stats.measure_image`` and moves each parameter in ``KNOBS`` by the mismatch of the statistic it
mainly drives: multiplicative parameters by ``(real / synthetic) ** (gain x step)``, additive ones
(grey levels) by ``gain x`` the difference, where ``step`` starts at ``DAMPING`` and shrinks
as ``DAMPING / (1 + iteration / 2)`` (early steps move far, late ones settle instead of chasing the
rendering noise). The real micrographs are measured in tiles of the rendered size
(``stats.measure_tiled``). A mismatch is averaged over the real micrographs with every magnification
weighing the same, as in the distance. Ranges keep their relative width; grey-level ranges are
moved from the first iteration on by the measured grey-level differences (a full first step: a
support 50 levels brighter than the preset's is reached in two iterations; then shrinking like the
others, since every iteration's renders draw their own grey levels from the ranges).

Why this converges rather than wanders: every iteration renders *new* scenes (iteration i at seed
``seed + FIT_SEED_OFFSET + i``), and the steps shrink, so the iterates average the rendering noise
out over all iterations' renders (a stochastic approximation) and the last iterate is kept; the
parameters are kept as floats between iterations (integer counts are rounded only to render), so
small corrections of a count accumulate instead of being rounded away. An earlier version rendered
the same scenes every iteration and kept the iterate with the smallest distance on them: that
iterate fitted those twelve scenes (at x50k, where whether a crop holds a chain network is a coin
toss per image, the distance of one set of twelve renders to the reference differs from another
set's by several hundredths) and did not hold on others. The distances reported before and after are measured on *other* seeds
(``seed + 1000``) with ``validation_per_real`` images per micrograph, so the reported gain is not the
fit's own noise. Where the fitted parameters do not beat the starting ones there, the starting
ones are kept (``kept_start``).

Micrographs at several pixel sizes (magnification groups, as in the distance) are fitted one group
at a time, and the result holds each group's values in ``SynthParams.by_scale`` (an image takes the
entry nearest its own pixel size): one micrograph per magnification has its own brightness,
contrast, dose and focus, and shows its own field, and on the four references the mismatches go
opposite ways at different magnifications (the x50k support is brighter than the preset's, the
x200k one darker), which ranges shared by all magnifications cannot follow (one shared fit kept the
preset there).

Works for any material whose particles are brighter than the support: nothing here assumes
Pd or a particle size (the statistics measure sizes, spacing and grey levels as they are).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from tqdm import tqdm

from ..errors import NanosegError
from ..synthesis.generate import single_threaded_math, synthesize_sample
from ..synthesis.params import SynthParams, load_params
from .distance import compare_matched, magnification_groups
from .sources import Micrograph
from .stats import SPECTRUM_BANDS, ImageStats, measure_image, measure_tiled, pool

DAMPING = 0.8
FIT_SEED_OFFSET = 100   # the fitting renders' seeds: clear of the small seeds benchmarks and users render with
MAX_STEP = 2.0            # no parameter moves by more than this factor (or 40 grey levels) per iteration
SYNTH_SIZE_PX = 320       # side of the rendered calibration images


@dataclass(frozen=True)
class Knob:
    """A generator parameter moved by the mismatch of one statistic.

    ``mode``: ``mul`` multiplies the range by (real / synthetic) ** gain, ``add`` shifts it by
    gain x (real - synthetic). ``bounds``: the values the range is kept within.
    """

    param: str
    statistic: str
    mode: str
    gain: float
    bounds: tuple[float, float]


KNOBS = [
    Knob("particle_diameter_nm", "single_particle_diameter_nm", "mul", 1.0, (0.5, 200.0)),
    # the measured edge width grows slower than the beam (pixel, scan-line and glow blur add to it:
    # 0.9 -> 2.2 nm of beam, x2.4, measures 2.7 -> 4.7 nm, x1.75), hence a gain above 1
    Knob("psf_sigma_nm", "blur_edge_width_nm", "mul", 1.5, (0.05, 50.0)),
    Knob("background_level", "background_level", "add", 1.0, (0.0, 250.0)),
    Knob("particle_level", "particle_level", "add", 1.0, (5.0, 255.0)),
    Knob("dose_e_per_px", "noise_rel", "mul", -2.0, (2.0, 20000.0)),  # shot noise ~ dose^-1/2
    Knob("detector_noise", "noise_rel", "mul", 1.0, (0.0, 0.3)),     # noise ~ detector_noise
    # the support's power at 32-128 nm is the grain's (octaves of 5-40 nm): on the four references'
    # pixel sizes it moves ~2x for grain x1.5 (power ~ amplitude^2: gain 0.5), and under 5% for
    # texture_strength / 3 (its ~70 and ~350 nm features lie beyond the measured bands or the field),
    # while the 4-16 nm bands are the noise's (noise_rel fits those). An earlier version moved the
    # grain by the 4-32 nm bands and texture_strength by the 32-128 nm ones: the grain grew to match
    # noise-dominated bands and overshot the coarse ones, and the texture distance grew step by step
    Knob("grain_strength", "texture_power_coarse", "mul", 0.5, (0.0, 0.6)),
    # ... and the grain's fine octaves (5, 10 nm) by the 4-32 nm power over the fit of the coarse ones:
    # the spectrum's slope (at x200k the reference's 4-32 nm power is 2-3 times the preset's while its
    # 32-128 nm power matches; noise_rel fits the noise there, measured on a 1.5 px high-pass)
    Knob("grain_fine_ratio", "texture_power_fine", "mul", 0.5, (0.2, 5.0)),
    Knob("scattered_per_um2", "density_per_um2", "mul", 1.0, (0.0, 6000.0)),
    # a Voronoi network's edge length per area grows as the square root of its cell density: gain 2
    Knob("network_cells", "density_per_um2", "mul", 2.0, (1, 60)),
    Knob("chains", "density_per_um2", "mul", 1.0, (0, 40)),
    # the compact hard negatives hold their share of the particles too (at x200k, without rosettes,
    # dense clusters and arcs the calibrated renders hold 715 instead of 991 particles per um^2)
    Knob("rosettes_per_um2", "density_per_um2", "mul", 1.0, (0.0, 400.0)),
    Knob("dense_clusters", "density_per_um2", "mul", 1.0, (0, 40)),
    Knob("arcs", "density_per_um2", "mul", 1.0, (0, 40)),
    Knob("line_width_jitter", "chain_width_nm", "mul", 2.0, (0.0, 4.0)),
    # touching particles per cluster, by how much larger a merged component is than one particle
    # (equivalent diameter ~ sqrt(particles): gain 2)
    Knob("cluster_size", "cluster_to_single_diameter", "mul", 2.0, (1, 12)),
    Knob("sheets_per_um2", "sheet_coverage", "mul", 1.0, (0.0, 20.0)),
]

#: wavelength bands (indices into SPECTRUM_BANDS): the noise-dominated fine ones and the grain's coarse ones
FINE_BANDS = [i for i, (lo, hi) in enumerate(SPECTRUM_BANDS) if hi <= 32]
COARSE_BANDS = [i for i, (lo, hi) in enumerate(SPECTRUM_BANDS) if lo >= 32]


def _value(stats: ImageStats, name: str) -> float:
    if name == "particle_level":
        return stats.particle_level
    if name.startswith("texture_power"):
        p = np.asarray(stats.texture_power, float)
        p = p[{"texture_power": slice(None), "texture_power_fine": FINE_BANDS,
               "texture_power_coarse": COARSE_BANDS}[name]]
        ok = np.isfinite(p) & (p > 0)
        return float(np.exp(np.mean(np.log(p[ok])))) if ok.any() else float("nan")
    if name == "cluster_to_single_diameter":
        summary = stats.summary()
        return summary["particle_diameter_nm"] / summary["single_particle_diameter_nm"]
    if name == "sheet_coverage":
        return stats.sheet_coverage + 0.05  # as the distance sees it: near-zero shares stay comparable
    return float(stats.summary()[name])


def _move(state: dict, knob: Knob, *, factor: float | None = None, shift: float | None = None,
          integer: bool = False) -> None:
    """Move the float range ``state[knob.param]`` by a factor or a shift, within the knob's bounds."""
    lo, hi = state[knob.param]
    if factor is not None:
        if integer and hi == 0 and factor > 1:
            hi = 1.0
        lo, hi = lo * factor, hi * factor
    if shift is not None:
        lo, hi = lo + shift, hi + shift
    b0, b1 = knob.bounds
    state[knob.param] = (min(max(lo, b0), b1), min(max(hi, b0), b1))


def _rendered(values: dict, state: dict, integer: set) -> dict:
    """The parameter values with the knobs' float ranges (integer counts rounded, lo <= hi)."""
    out = dict(values)
    for name, (lo, hi) in state.items():
        if name in integer:
            lo = int(round(lo))
            out[name] = (lo, max(lo, int(round(hi))))
        else:
            out[name] = (float(lo), float(hi))
    return out


def render_batch(params: SynthParams, scales: list[float | None], *, per_real: int, seed: int,
                 size_px: int = SYNTH_SIZE_PX) -> list[ImageStats]:
    """Statistics of ``per_real`` synthetic images at each of ``scales`` (fixed seeds)."""
    out = []
    for j, s in enumerate(scales):
        p = params if s is None else params.model_copy(update={"scale_nm_per_px": (s, s)})
        for k in range(per_real):
            with single_threaded_math():  # the renders' small matrix products are faster on one thread
                img = synthesize_sample(p, seed, j * per_real + k, (size_px, size_px))["image"]
            out.append(measure_image(img, s, seed=k))
    return out


def calibrate(real: list[Micrograph], *, preset: str = "realistic", config: str | Path | None = None,
              iterations: int = 8, per_real: int = 12, seed: int = 0, size_px: int = SYNTH_SIZE_PX,
              knobs: list[Knob] | None = None, validation_per_real: int | None = None,
              by_magnification: bool = True, progress: bool = True) -> dict:
    """Fit the generator's ranges to real micrographs by their statistics.

    Parameters
    ----------
    real : list of sources.Micrograph
        The micrographs (data bar removed) with their pixel size (nm/px, or None: all in px).
    preset, config : str
        Starting parameters (a preset, optionally a YAML on top of it).
    iterations : int
        Correction steps (each renders ``per_real`` images per real micrograph).
    per_real : int
        Synthetic images rendered at each real micrograph's pixel size per iteration.
    seed : int
        Seed of the fitting renders (iteration i renders at ``seed + FIT_SEED_OFFSET + i``); the
        validation renders use ``seed + 1000``.
    size_px : int
        Side of the rendered images (px).
    knobs : list of Knob, optional
        Which parameters to move (default ``KNOBS``).
    validation_per_real : int, optional
        Images per real micrograph of the before/after validation (default ``2 * per_real``).
    by_magnification : bool
        Micrographs at several pixel sizes: fit each magnification group on its own, its values in
        ``by_scale`` (see the module docstring); False: one fit of ranges shared by all.

    Returns a dict with ``params`` (the fitted SynthParams: the last iterate, or the start where that
    does not beat it on the validation renders), ``overrides`` (the fields that differ
    from the preset, YAML-ready), ``distance_before`` and ``distance_after`` (validation renders),
    ``history`` (fitting distance per iteration), ``trace`` (each knob's range centre per
    iteration), ``best_iteration`` (the iterate kept: the last) and ``comparison``
    (``compare_matched`` of the kept parameters on the validation renders).
    """
    if not real:
        raise NanosegError("calibrate: no micrographs to calibrate to")
    if iterations < 0 or per_real < 1:
        raise NanosegError("calibrate: --iterations must be >= 0 and --per-image >= 1")
    knobs = KNOBS if knobs is None else knobs
    known = [m.scale_nm_per_px for m in real]
    use_nm = all(known)
    scales = [m.scale_nm_per_px if use_nm else None for m in real]
    # the real micrographs in tiles of the rendered size: like with like (stats.measure_tiled)
    real_stats = [measure_tiled(m.image, s, tile_px=size_px, seed=i) for i, (m, s) in enumerate(zip(real, scales))]
    names = [m.name for m in real]
    groups = magnification_groups(real_stats)
    if use_nm and len(groups) > 1 and by_magnification:
        return _calibrate_by_magnification(real, real_stats, groups, preset=preset, config=config,
                                           iterations=iterations, per_real=per_real, seed=seed, size_px=size_px,
                                           knobs=knobs, validation_per_real=validation_per_real, progress=progress)
    # every magnification weighs the same in a correction, as in the distance
    weights = np.zeros(len(real))
    for g in groups:
        weights[g] = 1.0 / (len(groups) * len(g))
    start = load_params(preset, config)
    # a start with per-magnification values (an earlier calibration): this pixel size's, as plain ranges
    values = start.model_dump(exclude={"by_scale"}) | (start.at_scale(float(np.median(known))) if use_nm else {})
    if use_nm:
        values["scale_nm_per_px"] = (min(known), max(known))
    integer = {k.param for k in knobs if isinstance(values[k.param][0], int)}
    state = {k.param: (float(values[k.param][0]), float(values[k.param][1])) for k in knobs}

    def evaluate(vals: dict, at_seed: int, n: int):
        params = SynthParams(**vals)
        synth = render_batch(params, scales, per_real=n, seed=at_seed, size_px=size_px)
        return params, synth, compare_matched(real_stats, synth, names=names)

    bar = tqdm(total=iterations + 3, desc="calibrate", unit="step", disable=not progress)
    history, trace = [], []
    for it in range(iterations + 1):
        vals = _rendered(values, state, integer)
        _, synth, result = evaluate(vals, seed + FIT_SEED_OFFSET + it, per_real)
        history.append(result["overall_distance"])
        trace.append({k: round((lo + hi) / 2, 4) for k, (lo, hi) in state.items()})
        bar.set_postfix(distance=f"{result['overall_distance']:.3f}")
        bar.update()
        if it == iterations:
            break
        # one correction step from the matched pairs: each real micrograph against its own renders
        synth_sets = [pool(synth[i * per_real:(i + 1) * per_real]) for i in range(len(real))]
        _correct(state, knobs, real_stats, synth_sets, weights, integer=integer, step=DAMPING / (1 + it / 2))
    # before and after on other seeds: the reported gain is not the fit's own noise
    n_val = validation_per_real or 2 * per_real
    start_vals = dict(values)  # the start as fitted from: its ranges, at the micrographs' pixel sizes
    _, _, before = evaluate(start_vals, seed + 1000, n_val)
    bar.update()
    fitted, _, after = evaluate(vals, seed + 1000, n_val)  # vals: the last iterate, the fit
    bar.update()
    bar.close()
    kept_start = not after["overall_distance"] < before["overall_distance"]
    if kept_start:  # the fit did not beat the starting parameters on other seeds: keep those
        fitted, after = SynthParams(**start_vals), before
    base = load_params(preset).model_dump()
    overrides = {k: v for k, v in fitted.model_dump().items() if v != base[k]}
    return {"params": fitted, "overrides": overrides, "distance_before": before["overall_distance"],
            "distance_after": after["overall_distance"], "history": history, "trace": trace, "best_iteration": iterations, "kept_start": kept_start,
            "comparison": after, "before": before, "units": "nm" if use_nm else "px", "preset": preset}


def _calibrate_by_magnification(real: list[Micrograph], real_stats: list[ImageStats], groups: list[list[int]], *,
                                preset: str, config, iterations: int, per_real: int, seed: int, size_px: int,
                                knobs, validation_per_real, progress: bool) -> dict:
    """Micrographs at several pixel sizes: each magnification group fitted on its own (``calibrate`` of its
    micrographs, which keeps the start where its fit does not beat it), the results joined as the start's
    ranges plus one ``by_scale`` entry per group that changed; before and after measured on the whole set
    (the start is kept where the joined result does not beat it there either)."""
    subs = [calibrate([real[i] for i in g], preset=preset, config=config, iterations=iterations, per_real=per_real,
                      seed=seed, size_px=size_px, knobs=knobs, validation_per_real=validation_per_real,
                      progress=progress) for g in groups]
    start = load_params(preset, config)
    known = [m.scale_nm_per_px for m in real]
    start_vals = start.model_dump() | {"scale_nm_per_px": (min(known), max(known))}
    flat = start.model_dump(exclude={"by_scale"})
    by_scale = {}  # an entry for every group, {} where it kept the start: an image takes the nearest entry
    for g, sub in zip(groups, subs):
        fitted = sub["params"].model_dump(exclude={"by_scale"})
        by_scale[float(np.median([known[i] for i in g]))] = {
            k: v for k, v in fitted.items() if k != "scale_nm_per_px" and v != flat[k]}
    if not any(by_scale.values()):
        by_scale = {}
    n_val = validation_per_real or 2 * per_real
    names = [m.name for m in real]

    def validate(vals: dict) -> tuple[SynthParams, dict]:
        params = SynthParams(**vals)
        synth = render_batch(params, known, per_real=n_val, seed=seed + 1000, size_px=size_px)
        return params, compare_matched(real_stats, synth, names=names)

    _, before = validate(start_vals)
    params, after = validate(start_vals | {"by_scale": by_scale}) if by_scale else (SynthParams(**start_vals), before)
    if not after["overall_distance"] < before["overall_distance"]:  # not better on the whole set either: the start
        params, after, by_scale = SynthParams(**start_vals), before, {}
    base = load_params(preset).model_dump()
    overrides = {k: v for k, v in params.model_dump().items() if v != base[k]}
    return {"params": params, "overrides": overrides, "distance_before": before["overall_distance"],
            "distance_after": after["overall_distance"], "history": [sub["history"] for sub in subs],
            "trace": [sub["trace"] for sub in subs], "best_iteration": [sub["best_iteration"] for sub in subs],
            "kept_start": not by_scale, "groups": [{"scale_nm_per_px": float(np.median([known[i] for i in g])),
                                                   "members": [real[i].name for i in g], "kept_start": sub["kept_start"],
                                                   "distance_before": sub["distance_before"],
                                                   "distance_after": sub["distance_after"]}
                                                  for g, sub in zip(groups, subs)],
            "comparison": after, "before": before, "units": "nm", "preset": preset}


def _correct(state: dict, knobs: list, real_stats: list, synth_sets: list, weights: np.ndarray, *, integer: set,
             step: float) -> None:
    """Move every knob's range by the weighted real-vs-synthetic gap of its statistic: ``step`` of
    the log ratio for ``mul`` knobs, ``step / DAMPING`` of the difference for ``add`` knobs (the
    grey levels).
    Knobs that drive the same statistic each take the whole step: their contributions add up
    (particles per um^2 are those of the scattered groups plus the network's plus the chains'; noise
    is shot noise plus detector noise in quadrature), so scaling every one of them by f scales the
    statistic by f. Splitting the step among them (a third each for the density, as an earlier
    version did) moved the density by a cube root of the step: on the x100k references, where rings
    hold most of the synthetic particles, a 0.66x density gap had hardly closed after eight steps."""
    for knob in knobs:
        logs, diffs, wl, wd = [], [], [], []
        for i, r in enumerate(real_stats):
            rv, sv = _value(r, knob.statistic), _value(synth_sets[i], knob.statistic)
            if np.isfinite(rv) and np.isfinite(sv):
                diffs.append(rv - sv)
                wd.append(weights[i])
                if rv > 0 and sv > 0:
                    logs.append(math.log(rv / sv))
                    wl.append(weights[i])
        if knob.mode == "mul" and logs:
            mean = float(np.average(logs, weights=wl))
            _move(state, knob, integer=knob.param in integer,
                  factor=math.exp(float(np.clip(step * knob.gain * mean,
                                                -math.log(MAX_STEP), math.log(MAX_STEP)))))
        elif knob.mode == "add" and diffs:  # grey levels: a full first step (they map almost one to one),
            mean = float(np.average(diffs, weights=wd))  # then shrinking as the others' (fresh renders' noise)
            _move(state, knob, shift=float(np.clip(knob.gain * mean * step / DAMPING, -40, 40)))


def write_params_yaml(path: str | Path, result: dict, *, sources: list[str]) -> None:
    """The calibrated overrides as a YAML that ``nanoseg synth --config`` reads (atomically)."""
    from ..io import atomic_write_text

    def plain(v):
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {plain(k): plain(x) for k, x in v.items()}
        if isinstance(v, float):
            return round(v, 4)
        return v

    head = [
        f"# nanoseg calibrate: generator ranges fitted to {len(sources)} micrograph(s) by their statistics",
        f"# (nanoseg.realism). Use: nanoseg synth --preset {result['preset']} --config THIS_FILE ...",
        f"# overall distance to the micrographs: {result['distance_before']:.3f} with the preset, "
        f"{result['distance_after']:.3f} calibrated (lengths in {result['units']})",
        "# micrographs: " + ", ".join(sources),
    ]
    body = yaml.safe_dump({k: plain(v) for k, v in result["overrides"].items()}, sort_keys=False,
                          default_flow_style=None)
    atomic_write_text(path, "\n".join(head) + "\n" + body)
