"""``nanoseg calibrate``: fit the generator's ranges to a user's unlabelled micrographs.

The fit is an iterated, damped proportional correction. Each iteration renders a small batch
of synthetic images at every real micrograph's own pixel size (fixed seeds: the same scenes
every iteration, so that a change of the distance is the parameters' doing), measures them
with ``stats.measure_image`` and moves each parameter in ``KNOBS`` by the mismatch of the
statistic it mainly drives: multiplicative parameters by ``(real / synthetic) ** (gain x
DAMPING)``, additive ones (grey levels) by the difference. The iterate with the smallest
overall distance (``distance.compare_matched``) is kept. Ranges keep their relative width;
grey-level ranges are first set around the levels measured on the real micrographs.

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
from ..synthesis.generate import synthesize_sample
from ..synthesis.params import SynthParams, load_params
from .distance import compare_matched
from .sources import Micrograph
from .stats import ImageStats, measure_image

DAMPING = 0.8
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
    Knob("psf_sigma_nm", "blur_edge_width_nm", "mul", 1.0, (0.05, 50.0)),
    Knob("background_level", "background_level", "add", 1.0, (0.0, 250.0)),
    Knob("particle_level", "particle_level", "add", 1.0, (5.0, 255.0)),
    Knob("dose_e_per_px", "noise_rel", "mul", -2.0, (2.0, 20000.0)),
    Knob("detector_noise", "noise_rel", "mul", -1.0, (0.0, 0.3)),
    Knob("texture_strength", "texture_power", "mul", 0.5, (0.0, 0.6)),
    Knob("scattered_per_um2", "density_per_um2", "mul", 1.0, (0.0, 6000.0)),
    Knob("network_cells", "density_per_um2", "mul", 1.0, (1, 60)),
    Knob("chains", "density_per_um2", "mul", 1.0, (0, 40)),
    Knob("line_width_jitter", "chain_width_nm", "mul", 2.0, (0.0, 4.0)),
    Knob("flakes", "sheet_coverage", "mul", 1.0, (0, 8)),
]


def _value(stats: ImageStats, name: str) -> float:
    if name == "particle_level":
        return stats.particle_level
    if name == "texture_power":
        p = np.asarray(stats.texture_power, float)
        ok = np.isfinite(p) & (p > 0)
        return float(np.exp(np.mean(np.log(p[ok])))) if ok.any() else float("nan")
    if name == "sheet_coverage":
        return stats.sheet_coverage + 0.05  # as the distance sees it: near-zero shares stay comparable
    return float(stats.summary()[name])


def _set_range(values: dict, knob: Knob, factor: float | None = None, shift: float | None = None) -> None:
    lo, hi = values[knob.param]
    is_int = isinstance(lo, int) and isinstance(hi, int)
    if factor is not None:
        if is_int and hi == 0 and factor > 1:
            hi = 1
        lo, hi = lo * factor, hi * factor
    if shift is not None:
        lo, hi = lo + shift, hi + shift
    b0, b1 = knob.bounds
    lo, hi = min(max(lo, b0), b1), min(max(hi, b0), b1)
    if is_int:
        lo, hi = int(round(lo)), max(int(round(hi)), int(round(lo)))
    values[knob.param] = (lo, hi)


def render_batch(params: SynthParams, scales: list[float | None], *, per_real: int, seed: int,
                 size_px: int = SYNTH_SIZE_PX) -> list[ImageStats]:
    """Statistics of ``per_real`` synthetic images at each of ``scales`` (fixed seeds)."""
    out = []
    for j, s in enumerate(scales):
        p = params if s is None else params.model_copy(update={"scale_nm_per_px": (s, s)})
        for k in range(per_real):
            img = synthesize_sample(p, seed, j * per_real + k, (size_px, size_px))["image"]
            out.append(measure_image(img, s, seed=k))
    return out


def calibrate(real: list[Micrograph], *, preset: str = "realistic", config: str | Path | None = None,
              iterations: int = 6, per_real: int = 6, seed: int = 0, size_px: int = SYNTH_SIZE_PX,
              knobs: list[Knob] | None = None, progress: bool = True) -> dict:
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
        Seed of the calibration renders (the same scenes every iteration).
    size_px : int
        Side of the rendered images (px).
    knobs : list of Knob, optional
        Which parameters to move (default ``KNOBS``).

    Returns a dict with ``params`` (the best SynthParams), ``overrides`` (the fields that differ
    from the preset, YAML-ready), ``distance_before``, ``distance_after``, ``history`` (distance
    per iteration) and ``comparison`` (``compare_matched`` of the best iterate).
    """
    if not real:
        raise NanosegError("calibrate: no micrographs to calibrate to")
    if iterations < 0 or per_real < 1:
        raise NanosegError("calibrate: --iterations must be >= 0 and --per-image >= 1")
    knobs = KNOBS if knobs is None else knobs
    known = [m.scale_nm_per_px for m in real]
    use_nm = all(known)
    scales = [m.scale_nm_per_px if use_nm else None for m in real]
    real_stats = [measure_image(m.image, s, seed=i) for i, (m, s) in enumerate(zip(real, scales))]
    names = [m.name for m in real]
    start = load_params(preset, config)
    values = start.model_dump()
    if use_nm:
        values["scale_nm_per_px"] = (min(known), max(known))

    def evaluate(vals: dict):
        params = SynthParams(**vals)
        synth = render_batch(params, scales, per_real=per_real, seed=seed, size_px=size_px)
        return params, synth, compare_matched(real_stats, synth, names=names)

    bar = tqdm(total=iterations + 2, desc="calibrate", unit="step", disable=not progress)
    _, _, before = evaluate(values)
    bar.update()
    # grey levels: start from what the real micrographs show (the generator maps support and
    # particle centre to these levels before noise and blur)
    bgs = np.array([st.background_level for st in real_stats])
    pls = np.array([st.particle_level for st in real_stats])
    spread = max(5.0, float(bgs.max() - bgs.min()) / 2 + 4)
    values["background_level"] = (max(0.0, float(bgs.mean()) - spread), float(bgs.mean()) + spread)
    pspread = max(8.0, float(pls.max() - pls.min()) / 2 + 6)
    values["particle_level"] = (max(5.0, float(pls.mean()) - pspread), min(255.0, float(pls.mean()) + pspread))
    history = [before["overall_distance"]]
    start_vals = start.model_dump() | ({"scale_nm_per_px": values["scale_nm_per_px"]} if use_nm else {})
    best = (before["overall_distance"], start_vals, before)
    for it in range(iterations + 1):
        params, synth, result = evaluate(values)
        history.append(result["overall_distance"])
        if result["overall_distance"] < best[0]:
            best = (result["overall_distance"], dict(values), result)
        bar.set_postfix(distance=f"{result['overall_distance']:.3f}", best=f"{best[0]:.3f}")
        bar.update()
        if it == iterations:
            break
        # one correction step from the matched pairs: each real micrograph against its own renders
        new = dict(values)
        for knob in knobs:
            ratios, diffs = [], []
            for i, r in enumerate(real_stats):
                ss = _pool_synth(synth, i, per_real)
                rv, sv = _value(r, knob.statistic), _value(ss, knob.statistic)
                if np.isfinite(rv) and np.isfinite(sv):
                    diffs.append(rv - sv)
                    if rv > 0 and sv > 0:
                        ratios.append(math.log(rv / sv))
            if knob.mode == "mul" and ratios:
                step = math.exp(float(np.clip(DAMPING * knob.gain * np.mean(ratios),
                                              -math.log(MAX_STEP), math.log(MAX_STEP))))
                _set_range(new, knob, factor=step)
            elif knob.mode == "add" and diffs:
                _set_range(new, knob, shift=float(np.clip(DAMPING * knob.gain * np.mean(diffs), -40, 40)))
        values = new
    bar.close()
    best_params = SynthParams(**best[1])
    base = load_params(preset).model_dump()
    overrides = {k: v for k, v in best_params.model_dump().items() if v != base[k]}
    return {"params": best_params, "overrides": overrides, "distance_before": before["overall_distance"],
            "distance_after": best[0], "history": history, "comparison": best[2],
            "before": before, "units": "nm" if use_nm else "px", "preset": preset}


def _pool_synth(synth: list[ImageStats], i: int, per_real: int) -> ImageStats:
    from .stats import pool

    return pool(synth[i * per_real:(i + 1) * per_real])


def write_params_yaml(path: str | Path, result: dict, *, sources: list[str]) -> None:
    """The calibrated overrides as a YAML that ``nanoseg synth --config`` reads (atomically)."""
    from ..io import atomic_write_text

    def plain(v):
        if isinstance(v, tuple):
            return [plain(x) for x in v]
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
