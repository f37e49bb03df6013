"""One distance between a set of real micrographs and a set of synthetic ones.

Every statistic of ``stats.ImageStats`` gets a distance in [0, 1]; the overall distance is their
plain mean. Per statistic:

- positive scalars (density per um^2, area fraction, clustering, particle contrast, noise,
  blur edge width, median chain width): ``min(1, |ln(synthetic / real)|)``: 10% off is 0.095,
  a factor e (2.7) or more is 1;
- distributions of lengths (particle or cluster diameter, nearest-neighbour distance): the 1-D
  Wasserstein distance between the distributions of ln(length), i.e. the mean |difference of
  ln-quantiles| over the 1st..99th percentiles, clipped at 1 (a pure scale change by a factor k
  gives |ln k|, as for a scalar);
- background grey levels: the Wasserstein distance between the grey-level distributions divided
  by the real particle contrast (particle minus background grey), clipped at 1;
- texture power spectrum: the mean over the wavelength bands resolved in both sets of
  ``|ln(P_synthetic / P_real)| / 2`` (an amplitude ratio), clipped at 1;
- sheet/flake coverage (a share that is often near 0): ``min(1, |ln((s + 0.05) / (r + 0.05))|)``.

``compare_matched`` gives the headline number, the *set distance per magnification*: the real
micrographs are grouped by pixel size (within ``SCALE_MATCH`` of the group's first; without a
scale, one group), each real micrograph is paired with the synthetic images at its pixel size
(within ``SCALE_MATCH``; all synthetic images when none is that close), each group's real
micrographs and their matched synthetic images are summarised with every real micrograph
weighing the same (``stats.pool(equal_weight=True)``: densities, shares and levels are means,
distributions the micrographs' quantiles pooled), the two summaries are compared as above, and
the overall distance is the mean over the groups. Every magnification is thereby judged at its
own pixel size and counts the same, and mismatches at two magnifications cannot cancel. The
pooled row (all groups together) and the per-micrograph distances (one real micrograph against
its matched images; larger, since one micrograph is not the spread of a set) are reported beside it.
"""

from __future__ import annotations

import math

import numpy as np

from .stats import ImageStats, pool

SCALE_MATCH = 0.25   # synthetic images within 25% of a real micrograph's pixel size are its match
COVERAGE_OFFSET = 0.05
QUANTILES = np.linspace(0.01, 0.99, 99)

# name, what it is, unit, kind
STATISTICS = [
    ("particle_diameter_nm", "particle (or merged cluster) equivalent diameter, median", "nm", "log-distribution"),
    ("density_per_um2", "particles per um^2", "1/um^2", "ratio"),
    ("area_fraction", "share of the field covered by particles", "", "ratio"),
    ("nn_distance_nm", "nearest-neighbour distance, median", "nm", "log-distribution"),
    ("clustering", "share of particles touching another", "", "ratio"),
    ("chain_width_nm", "chain width, median", "nm", "ratio"),
    ("background_level", "background grey level, median", "grey", "grey-distribution"),
    ("particle_contrast", "particle minus background grey", "grey", "ratio"),
    ("texture_power", "background power spectrum (4-128 nm bands) / contrast^2", "", "spectrum"),
    ("noise_rel", "high-pass noise on the background / particle contrast", "", "ratio"),
    ("blur_edge_width_nm", "10-90% edge width of single particles", "nm", "ratio"),
    ("sheet_coverage", "share of the field on brighter sheets or flakes", "", "coverage"),
]
NAMES = [s[0] for s in STATISTICS]


def _ratio_distance(s: float, r: float) -> float:
    if not (np.isfinite(s) and np.isfinite(r)) or s <= 0 or r <= 0:
        return 1.0 if (np.isfinite(s) and np.isfinite(r) and (s > 0) != (r > 0)) else float("nan")
    return min(1.0, abs(math.log(s / r)))


def _log_w1(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a[a > 0], b[b > 0]
    if len(a) < 3 or len(b) < 3:
        return float("nan")
    return min(1.0, float(np.mean(np.abs(np.quantile(np.log(a), QUANTILES) - np.quantile(np.log(b), QUANTILES)))))


def statistic_distances(real: ImageStats, synth: ImageStats) -> dict[str, float]:
    """name -> distance in [0, 1] (nan where a statistic could not be measured in one of the sets)."""
    rs, ss = real.summary(), synth.summary()
    out = {}
    for name, _, _, kind in STATISTICS:
        if kind == "ratio":
            out[name] = _ratio_distance(ss[name], rs[name])
        elif kind == "log-distribution":
            arr = {"particle_diameter_nm": "diameter_nm", "nn_distance_nm": "nn_distance_nm"}[name]
            out[name] = _log_w1(getattr(synth, arr), getattr(real, arr))
        elif kind == "grey-distribution":
            w1 = float(np.mean(np.abs(np.quantile(synth.background_grey, QUANTILES)
                                      - np.quantile(real.background_grey, QUANTILES))))
            out[name] = min(1.0, w1 / max(real.contrast, 1.0))
        elif kind == "spectrum":
            ps, pr = np.asarray(synth.texture_power), np.asarray(real.texture_power)
            ok = np.isfinite(ps) & np.isfinite(pr) & (ps > 0) & (pr > 0)
            out[name] = min(1.0, float(np.mean(np.abs(np.log(ps[ok] / pr[ok])) / 2))) if ok.any() else float("nan")
        elif kind == "coverage":
            out[name] = min(1.0, abs(math.log((ss[name] + COVERAGE_OFFSET) / (rs[name] + COVERAGE_OFFSET))))
    return out


def overall(distances: dict[str, float]) -> float:
    """Mean of the per-statistic distances that could be measured."""
    vals = [v for v in distances.values() if np.isfinite(v)]
    return float(np.mean(vals)) if vals else float("nan")


def compare(real: list[ImageStats], synth: list[ImageStats], *, equal_weight: bool = False) -> dict:
    """Pooled comparison: per-statistic real value, synthetic value, ratio and distance, and the overall."""
    if not real or not synth:
        raise ValueError("compare: both sets need at least one image")
    pr, ps = pool(real, equal_weight=equal_weight), pool(synth, equal_weight=equal_weight)
    if pr.units != ps.units:
        raise ValueError("compare: one set is measured in nm and the other in px")
    d = statistic_distances(pr, ps)
    rs, ss = pr.summary(), ps.summary()
    rows = []
    for name, what, unit, kind in STATISTICS:
        rv, sv = rs[name], ss[name]
        if kind == "spectrum":
            rv_arr, sv_arr = np.asarray(rv, float), np.asarray(sv, float)
            both = np.isfinite(rv_arr) & np.isfinite(sv_arr) & (rv_arr > 0) & (sv_arr > 0)
            ratio = float(np.exp(np.mean(np.log(sv_arr[both] / rv_arr[both])))) if both.any() else float("nan")
            rv = float(np.exp(np.mean(np.log(rv_arr[both])))) if both.any() else float("nan")
            sv = float(np.exp(np.mean(np.log(sv_arr[both])))) if both.any() else float("nan")
        else:
            ratio = sv / rv if (np.isfinite(rv) and rv != 0) else float("nan")
        unit_shown = unit.replace("nm", "px") if pr.units == "px" else unit
        rows.append({"statistic": name, "what": what, "unit": unit_shown, "real": rv, "synthetic": sv,
                     "ratio": ratio, "distance": d[name]})
    return {"units": pr.units, "n_real": pr.n_images, "n_synthetic": ps.n_images, "rows": rows,
            "overall_distance": overall(d)}


def matched_synthetic(real: ImageStats, synth: list[ImageStats]) -> list[ImageStats]:
    """The synthetic images at the real micrograph's pixel size (within SCALE_MATCH), else all."""
    if real.scale_nm_per_px is None:
        return synth
    near = [s for s in synth if s.scale_nm_per_px
            and abs(s.scale_nm_per_px / real.scale_nm_per_px - 1) <= SCALE_MATCH]
    return near or synth


def compare_matched(real: list[ImageStats], synth: list[ImageStats], names: list[str] | None = None) -> dict:
    """Per real micrograph against its scale-matched synthetic images, plus the pooled table.

    Returns ``pooled`` (the set comparison, see the module docstring), ``per_image`` (one
    ``compare`` per real micrograph against its matched images, with ``name`` and ``n_matched``)
    and ``overall_distance``: the set distance.
    """
    per, matched = [], []
    for i, r in enumerate(real):
        m = matched_synthetic(r, synth)
        matched.append(pool(m))
        c = compare([r], m)
        c["name"] = names[i] if names else f"real_{i}"
        c["scale_nm_per_px"] = r.scale_nm_per_px
        c["n_matched"] = len(m)
        per.append(c)
    pooled = compare(real, matched, equal_weight=True)
    pooled["n_synthetic"] = len(synth)
    groups = []
    for idx in magnification_groups(real):
        g = compare([real[i] for i in idx], [matched[i] for i in idx], equal_weight=True)
        g["members"] = [per[i]["name"] for i in idx]
        g["scale_nm_per_px"] = real[idx[0]].scale_nm_per_px
        groups.append(g)
    return {"pooled": pooled, "per_image": per, "groups": groups,
            "overall_distance": float(np.nanmean([g["overall_distance"] for g in groups])),
            "pooled_distance": pooled["overall_distance"],
            "per_image_mean_distance": float(np.nanmean([c["overall_distance"] for c in per])),
            "units": per[0]["units"]}


def magnification_groups(real: list[ImageStats]) -> list[list[int]]:
    """Indices of the real micrographs grouped by pixel size (within SCALE_MATCH of a group's first)."""
    groups: list[list[int]] = []
    for i, r in enumerate(real):
        for g in groups:
            s0 = real[g[0]].scale_nm_per_px
            if r.scale_nm_per_px is None or s0 is None or abs(r.scale_nm_per_px / s0 - 1) <= SCALE_MATCH:
                g.append(i)
                break
        else:
            groups.append([i])
    return groups


def format_table(result: dict) -> str:
    """Markdown table of ``compare_matched``'s result: pooled values and ratios, then for every
    magnification group its synthetic/real ratio and distance."""
    pooled = result["pooled"]
    lines = []
    if result["units"] == "px":
        lines.append("(pixel size unknown: lengths and densities are compared in px)")
    groups = result["groups"]

    def gname(g):
        return f"{g['scale_nm_per_px']:g} nm/px" if g["scale_nm_per_px"] else "all"
    head = "| statistic | unit | real | synthetic | ratio | distance |"
    head += "".join(f" {gname(g)}: ratio, d |" for g in groups)
    lines += [head, "|" + "---|" * (6 + len(groups))]
    for k, row in enumerate(pooled["rows"]):
        cells = [row["statistic"], row["unit"] or "-", _fmt(row["real"]), _fmt(row["synthetic"]),
                 _fmt(row["ratio"]), _fmt(row["distance"])]
        cells += [f"{_fmt(g['rows'][k]['ratio'])}, {_fmt(g['rows'][k]['distance'])}" for g in groups]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("| **overall distance** | | | | | " + _fmt(pooled["overall_distance"]) + " |"
                 + "".join(f" {_fmt(g['overall_distance'])} |" for g in groups))
    lines.append(f"\noverall distance (mean over {len(groups)} magnification(s), real micrographs against the "
                 f"synthetic images at their pixel size): {result['overall_distance']:.3f}; all pooled "
                 f"{result['pooled_distance']:.3f}; one micrograph at a time {result['per_image_mean_distance']:.3f}")
    return "\n".join(lines)


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "n/a"
    a = abs(v)
    return f"{v:.3g}" if a < 1000 else f"{v:.0f}"
