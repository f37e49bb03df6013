"""``nanoseg compare``: results folders (``predict`` / ``measure``) compared as samples.

Each folder is one sample (a catalyst, a preparation condition). Reported per sample: images,
rings, density per µm² (per megapixel without a pixel size) and median ring diameter and band
width, each with a 95% interval; per pair of samples: the density ratio, the difference of
median diameters and band widths with bootstrap 95% intervals, and p-values.

The unit of sampling is the micrograph. Rings of one image share its particles, its spot on the
support and its imaging, so they are not independent draws: intervals resample whole images
(cluster bootstrap) and the verdict of each line rests on an image-level test (a permutation
test that reassigns whole images between the two samples; for densities, Mann-Whitney U on the
per-image densities). Mann-Whitney U and Kolmogorov-Smirnov on the pooled rings are reported as
well, as the literature uses them, with the caveat that they treat rings as independent. The
verdicts' p-values are Holm-adjusted over every test the comparison makes (pairs x statistics),
so three samples compared on three statistics do not produce a difference by chance more
often than one comparison would.
"""

from __future__ import annotations

import math
from itertools import combinations
from pathlib import Path

import numpy as np
from scipy import stats as sps

from .. import io
from ..errors import NanosegError
from . import statistics as st
from .results import read_results

ALPHA = 0.05
N_PERM = 2000
QUANTITIES = {"diameter": ("mean_radius", 2.0, "median ring diameter"),
              "band_width": ("ring_width", 1.0, "median band width")}


def _float(v) -> float | None:
    if v in ("", None):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def load_sample(folder: str | Path, name: str | None = None) -> dict:
    """One sample from a results folder (see ``sample_from``)."""
    folder = Path(folder)
    summary, rows = read_results(folder)
    return sample_from(summary["images"], rows, name or folder.name, str(folder))


def sample_from(images: dict, rows: list[dict], name: str, folder: str = "") -> dict:
    """One sample: per-image ring counts, field areas, diameters and band widths (px and nm), from the
    per-image records of ``summary.json`` and the ``structures.csv`` rows (or ``measure_image`` output)."""
    per_image = []
    for img, rec in images.items():
        mine = [r for r in rows if r["image"] == img]
        nm = _float(rec.get("nm_per_px"))
        entry = {"image": img, "n": int(rec["n_structures"]), "nm_per_px": nm,
                 "area_mpx": float(rec["field_area_px"]) / 1e6,
                 "area_um2": float(rec["field_area_px"]) * nm * nm / 1e6 if nm else None}
        for q, (col, factor, _) in QUANTITIES.items():
            px = [factor * v for v in (_float(r.get(f"{col}_px")) for r in mine) if v is not None]
            entry[f"{q}_px"] = px
            entry[f"{q}_nm"] = [v * nm for v in px] if nm else None
        per_image.append(entry)
    return {"name": name, "folder": folder, "images": per_image}


def _two_sample_stats(flat_sorted: np.ndarray, ranks: np.ndarray, block_end: np.ndarray,
                      in_b: np.ndarray) -> np.ndarray:
    """(n_assignments, 3): |difference of medians|, |AUC - 0.5| (Mann-Whitney U / (nA nB)) and the
    Kolmogorov-Smirnov distance, for each row of ``in_b`` (True where a value belongs to B)."""
    in_b = np.atleast_2d(in_b)
    cb = np.cumsum(in_b, axis=1)
    ca = np.cumsum(~in_b, axis=1)
    nb, na = cb[:, -1], ca[:, -1]
    out = np.full((len(in_b), 3), np.nan)
    ok = (nb > 0) & (na > 0)
    if not ok.any():
        return out

    def median(c, n):
        lo = np.argmax(c > ((n - 1) // 2)[:, None], axis=1)
        hi = np.argmax(c > (n // 2)[:, None], axis=1)
        return (flat_sorted[lo] + flat_sorted[hi]) / 2

    out[:, 0] = np.abs(median(cb, nb) - median(ca, na))
    with np.errstate(invalid="ignore", divide="ignore"):
        u_b = (in_b * ranks).sum(1) - nb * (nb + 1) / 2
        out[:, 1] = np.abs(u_b / (na * nb) - 0.5)
        # ECDFs compared after each block of tied values
        out[:, 2] = np.abs(cb[:, block_end] / nb[:, None] - ca[:, block_end] / na[:, None]).max(1)
    out[~ok] = np.nan
    return out


def image_permutation_tests(groups_a: list, groups_b: list, *, n_perm: int = N_PERM,
                            seed: int = st.SEED) -> dict | None:
    """Two-sided p-values of the difference of medians, the Mann-Whitney U statistic and the
    Kolmogorov-Smirnov distance of the pooled rings, when whole images are reassigned at random
    between the two samples (under 'drawn alike' the images, not the rings, are exchangeable).

    Parameters
    ----------
    groups_a, groups_b : list of array-like
        Per-image values (e.g. ring diameters in nm) of each sample.
    n_perm : int
        Random reassignments.
    seed : int
        Seed of the reassignments.

    Returns
    -------
    dict with ``p_median``, ``p_mann_whitney``, ``p_ks``, or ``None`` when a sample has no value.
    """
    groups = [np.asarray(g, float) for g in list(groups_a) + list(groups_b)]
    n_a = len(groups_a)
    if not any(len(g) for g in groups[:n_a]) or not any(len(g) for g in groups[n_a:]):
        return None
    flat = np.concatenate(groups)
    owner = np.concatenate([np.full(len(g), k) for k, g in enumerate(groups)])
    order = np.argsort(flat, kind="stable")
    flat_sorted, owner_sorted = flat[order], owner[order]
    ranks = sps.rankdata(flat_sorted)
    block_end = np.r_[np.nonzero(np.diff(flat_sorted))[0], len(flat_sorted) - 1]
    image_in_b = np.arange(len(groups)) >= n_a
    observed = _two_sample_stats(flat_sorted, ranks, block_end, image_in_b[owner_sorted])[0]
    rng = np.random.default_rng(seed)
    hits, valid = np.zeros(3), np.zeros(3)
    for start in range(0, n_perm, 250):  # chunks keep the (perms x rings) membership matrix small
        perms = np.array([rng.permutation(image_in_b) for _ in range(min(250, n_perm - start))])
        stats = _two_sample_stats(flat_sorted, ranks, block_end, perms[:, owner_sorted])
        finite = np.isfinite(stats)
        valid += finite.sum(0)
        hits += (finite & (stats >= observed - 1e-12)).sum(0)
    p = (hits + 1) / (valid + 1)
    return {"p_median": float(p[0]), "p_mann_whitney": float(p[1]), "p_ks": float(p[2])}


def _sample_stats(sample: dict, unit: str, seed: int) -> dict:
    imgs = sample["images"]
    area_key = "area_um2" if unit == "nm" else "area_mpx"
    out = {"name": sample["name"], "folder": sample["folder"], "n_images": len(imgs),
           "n_rings": int(sum(i["n"] for i in imgs)),
           "density": st.ratio_summary([i["n"] for i in imgs], [i[area_key] for i in imgs], seed=seed),
           "density_unit": "rings/µm²" if unit == "nm" else "rings/megapixel"}
    for q in QUANTITIES:
        groups = [i[f"{q}_{unit}"] for i in imgs]
        out[q] = st.describe([v for g in groups for v in g], groups=groups, seed=seed)
    return out


def _pair(a: dict, b: dict, unit: str, seed: int) -> dict:
    """B against A: density ratio, differences of medians, p-values."""
    area_key = "area_um2" if unit == "nm" else "area_mpx"
    out = {"a": a["name"], "b": b["name"]}
    dens_a = [i["n"] / i[area_key] for i in a["images"] if i[area_key]]
    dens_b = [i["n"] / i[area_key] for i in b["images"] if i[area_key]]
    boot_a = st.cluster_ratio_boot([i["n"] for i in a["images"]], [i[area_key] for i in a["images"]], seed=seed)
    boot_b = st.cluster_ratio_boot([i["n"] for i in b["images"]], [i[area_key] for i in b["images"]], seed=seed + 1)
    ta = sum(i["n"] for i in a["images"]) / sum(i[area_key] for i in a["images"])
    tb = sum(i["n"] for i in b["images"]) / sum(i[area_key] for i in b["images"])
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio_boot = boot_b / boot_a
    out["density"] = {
        "a": ta, "b": tb, "difference": tb - ta, "difference_ci95": st._percentile_interval(boot_b - boot_a, st.LEVEL),
        "ratio": tb / ta if ta else None,
        "ratio_ci95": st._percentile_interval(ratio_boot, st.LEVEL) if len(dens_a) > 1 and len(dens_b) > 1 else None,
        "image_level_test": "Mann-Whitney U on per-image densities",
        "p_image_level": float(sps.mannwhitneyu(dens_a, dens_b, alternative="two-sided").pvalue)
        if len(dens_a) and len(dens_b) else None,
    }
    for q in QUANTITIES:
        ga = [i[f"{q}_{unit}"] for i in a["images"]]
        gb = [i[f"{q}_{unit}"] for i in b["images"]]
        xa = np.array([v for g in ga for v in g], float)
        xb = np.array([v for g in gb for v in g], float)
        entry = {"a_median": float(np.median(xa)) if len(xa) else None,
                 "b_median": float(np.median(xb)) if len(xb) else None,
                 "n_rings_a": int(len(xa)), "n_rings_b": int(len(xb))}
        if len(xa) and len(xb):
            ba = st.cluster_stat_boot(ga, "median", seed=seed)
            bb = st.cluster_stat_boot(gb, "median", seed=seed + 1)
            entry["difference_of_medians"] = entry["b_median"] - entry["a_median"]
            entry["difference_ci95"] = st._percentile_interval(bb - ba, st.LEVEL)
            perm = image_permutation_tests(ga, gb, seed=seed)
            entry["test"] = ("whole images permuted between the samples; p_median: difference of medians, "
                             "p_mann_whitney: Mann-Whitney U, p_ks: Kolmogorov-Smirnov distance. *_rings: "
                             "scipy's p-values that treat every ring as independent")
            entry["p_image_level"] = perm["p_median"]
            entry["p_mann_whitney"] = perm["p_mann_whitney"]
            entry["p_ks"] = perm["p_ks"]
            res = sps.mannwhitneyu(xb, xa, alternative="two-sided")
            entry["mann_whitney_u"] = float(res.statistic)
            entry["p_mann_whitney_rings"] = float(res.pvalue)
            ks = sps.ks_2samp(xa, xb)
            entry["ks_distance"] = float(ks.statistic)
            entry["p_ks_rings"] = float(ks.pvalue)
        else:
            entry.update(difference_of_medians=None, difference_ci95=None, p_image_level=None, p_mann_whitney=None,
                         p_ks=None, p_mann_whitney_rings=None, p_ks_rings=None)
        out[q] = entry
    return out


def _p(p) -> str:
    """'= 0.03' or '< 0.0001' (to follow a 'p')."""
    if p is None:
        return "n/a"
    return f"= {p:.2g}" if p >= 1e-4 else "< 0.0001"


def _pp(p) -> str:
    """As ``_p`` for a permutation p-value, which cannot go below 1 / (permutations + 1)."""
    if p is not None and p <= 1.5 / (N_PERM + 1):
        return f"≤ {1 / (N_PERM + 1):.1g}"
    return _p(p)


def _ci(ci, digits=3, signed=False) -> str:
    if not ci:
        return "n/a"
    f = (lambda v: f"{v:+.{digits}g}") if signed else (lambda v: f"{v:.{digits}g}")
    return f"[{f(ci[0])}, {f(ci[1])}]"


def plain_language(result: dict) -> list[str]:
    """One line per sample and per statistic of each pair, in words."""
    unit = result["unit"]
    m = result["n_tests"]
    lines = []
    for s in result["samples"]:
        d = s["density"]
        diam = s["diameter"] or {}
        lines.append(f"{s['name']}: {s['n_images']} image(s), {s['n_rings']} ring(s); density "
                     f"{d['value']:.3g} {s['density_unit']} {_ci(d['ci95'])}; median diameter "
                     f"{diam.get('median', float('nan')):.3g} {unit} {_ci(diam.get('median_ci95'))} (95% intervals, "
                     "images resampled)." if d and diam else f"{s['name']}: {s['n_images']} image(s), "
                     f"{s['n_rings']} ring(s); too few rings for size statistics.")
    for pr in result["pairs"]:
        a, b = pr["a"], pr["b"]
        d = pr["density"]
        verdict = _verdict(d.get("p_image_level"), d.get("p_holm"), m, (d.get("ratio") or 0) > 1,
                           f"{b} is denser than {a}", f"{b} is sparser than {a}")
        lines.append(f"Density, {b} vs {a}: {d['b']:.3g} vs {d['a']:.3g} {result['samples'][0]['density_unit']} "
                     f"(ratio {d['ratio']:.3g}, 95% CI {_ci(d['ratio_ci95'])}); per-image Mann-Whitney "
                     f"p {_p(d['p_image_level'])}, Holm-adjusted over {m} tests p {_p(d.get('p_holm'))}. {verdict}"
                     if d.get("ratio") is not None else f"Density, {b} vs {a}: not comparable (no rings in {a}).")
        for q, (_, _, label) in QUANTITIES.items():
            e = pr[q]
            if e.get("difference_of_medians") is None:
                lines.append(f"{label.capitalize()}, {b} vs {a}: not comparable (a sample has no rings).")
                continue
            what, up, down = (("rings", "larger", "smaller") if q == "diameter" else
                              ("ring bands", "thicker", "thinner"))
            verdict = _verdict(e.get("p_image_level"), e.get("p_holm"), m, e["difference_of_medians"] > 0,
                               f"{b} has {up} {what} than {a}", f"{b} has {down} {what} than {a}")
            lines.append(f"{label.capitalize()}, {b} vs {a}: {e['b_median']:.3g} vs {e['a_median']:.3g} {unit}; "
                         f"difference {e['difference_of_medians']:+.3g} {unit}, 95% CI {_ci(e['difference_ci95'], signed=True)} "
                         f"(images resampled); whole images permuted: difference of medians p {_pp(e['p_image_level'])} "
                         f"(Holm-adjusted p {_p(e.get('p_holm'))}), Mann-Whitney p {_pp(e['p_mann_whitney'])}, "
                         f"Kolmogorov-Smirnov p {_pp(e['p_ks'])}. {verdict}"
                         + (f" (Treating rings as independent, scipy's Mann-Whitney p {_p(e['p_mann_whitney_rings'])} "
                            f"and KS p {_p(e['p_ks_rings'])} look significant: rings of one micrograph resemble each "
                            "other, which makes such p-values too small.)"
                            if min(e["p_mann_whitney_rings"], e["p_ks_rings"]) < ALPHA and (e.get("p_holm") or 1) >= ALPHA
                            else ""))
    return lines


def _verdict(p_raw, p_holm, n_tests: int, positive: bool, claim_up: str, claim_down: str) -> str:
    if p_holm is None:
        return "Too few images to test."
    if p_holm < ALPHA:
        return f"→ {claim_up if positive else claim_down} (significant at {ALPHA:g} after correction)."
    if p_raw is not None and p_raw < ALPHA and n_tests > 1:
        return (f"→ A hint at most: p {_p(p_raw)} on its own, but not significant once corrected for the {n_tests} "
                "tests of this comparison; confirm on more images before reporting it.")
    return ("→ No evidence of a difference at this sample size (which does not show that the samples are the "
            "same; the interval gives the differences still compatible with the data).")


def compare_folders(folders: list, *, names: list[str] | None = None, seed: int = st.SEED) -> dict:
    """Compare results folders as samples.

    Parameters
    ----------
    folders : list of path
        Two or more ``predict`` / ``measure`` folders, one per sample.
    names : list of str, optional
        Sample names (default: the folder names).
    seed : int
        Seed of every bootstrap and permutation.

    Returns
    -------
    dict with ``samples`` (per-sample statistics), ``pairs`` (every pair, the later sample
    against the earlier), ``unit``, ``n_tests``, ``lines`` (plain language).
    """
    if len(folders) < 2:
        raise NanosegError("compare: give at least two results folders")
    if names is not None and len(names) != len(folders):
        raise NanosegError(f"--names: {len(names)} name(s) for {len(folders)} folder(s)")
    return compare_samples([load_sample(f, names[k] if names else None) for k, f in enumerate(folders)], seed=seed)


def compare_samples(samples: list[dict], *, seed: int = st.SEED) -> dict:
    """``compare_folders`` on samples already loaded (``sample_from``)."""
    seen = set()
    for s in samples:
        if s["name"] in seen:
            s["name"] = s["folder"]
        seen.add(s["name"])
    unit = "nm" if all(i["nm_per_px"] for s in samples for i in s["images"]) else "px"
    per_sample = [_sample_stats(s, unit, seed) for s in samples]
    pairs = [_pair(samples[i], samples[j], unit, seed) for i, j in combinations(range(len(samples)), 2)]
    keys = [(k, q) for k in range(len(pairs)) for q in ("density", *QUANTITIES)]
    adjusted = st.holm([pairs[k][q].get("p_image_level") for k, q in keys])
    for (k, q), p in zip(keys, adjusted):
        pairs[k][q]["p_holm"] = p
    result = {"unit": unit, "density_unit": per_sample[0]["density_unit"], "seed": seed, "alpha": ALPHA,
              "n_boot": st.N_BOOT, "n_perm": N_PERM, "n_tests": sum(p is not None for p in adjusted),
              "multiple_comparisons": "Holm-Bonferroni over every image-level test (pairs x statistics)",
              "samples": per_sample, "pairs": pairs}
    if unit == "px":
        result["note"] = "some images have no pixel size: sizes in px and densities per megapixel"
    result["lines"] = plain_language(result)
    result["_raw"] = samples
    return result


def compare_figure(result: dict, path: str | Path) -> None:
    """Overlaid diameter histograms, diameter ECDFs and densities with intervals, one colour per sample."""
    import matplotlib.pyplot as plt

    from ..figures import _save

    unit = result["unit"]
    samples = result["_raw"]
    colours = plt.get_cmap("tab10").colors
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.9))
    allv = [v for s in samples for i in s["images"] for v in i[f"diameter_{unit}"]]
    bins = np.histogram_bin_edges(allv, bins=30) if allv else 10
    for k, s in enumerate(samples):
        vals = np.sort([v for i in s["images"] for v in i[f"diameter_{unit}"]])
        c = colours[k % len(colours)]
        if len(vals):
            axes[0].hist(vals, bins=bins, weights=np.full(len(vals), 1 / len(vals)), histtype="step", lw=2, color=c,
                         label=f"{s['name']} (n = {len(vals)})")
            axes[1].step(vals, np.arange(1, len(vals) + 1) / len(vals), where="post", color=c, lw=2, label=s["name"])
        d = result["samples"][k]["density"]
        if d:
            lo, hi = d["ci95"] or (d["value"], d["value"])
            axes[2].errorbar([k], [d["value"]], yerr=[[d["value"] - lo], [hi - d["value"]]], fmt="o", capsize=6,
                             color=c, ms=8)
    axes[0].set_xlabel(f"ring diameter ({unit})")
    axes[0].set_ylabel("fraction of rings")
    axes[0].legend(fontsize=8)
    axes[0].set_title("diameter distribution")
    axes[1].set_xlabel(f"ring diameter ({unit})")
    axes[1].set_ylabel("cumulative fraction of rings")
    axes[1].set_title("ECDF")
    axes[1].legend(fontsize=8, loc="lower right")
    axes[2].set_xticks(range(len(samples)), [s["name"] for s in samples], rotation=15)
    axes[2].set_ylabel(f"density ({result['density_unit']})")
    axes[2].set_title("density, 95% interval (images resampled)")
    axes[2].set_xlim(-0.6, len(samples) - 0.4)
    tops = [max(d["density"]["ci95"][1] if d["density"]["ci95"] else 0, d["density"]["value"])
            for d in result["samples"] if d["density"]]
    axes[2].set_ylim(0, 1.15 * max(tops) if tops and max(tops) > 0 else 1)
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    _save(fig, path)


def write_json(result: dict, path: str | Path) -> None:
    io.write_json(path, {k: v for k, v in result.items() if not k.startswith("_")})
