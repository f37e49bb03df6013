"""Descriptive statistics of ring measurements: summaries with seeded bootstrap intervals.

Numbers in, plain dicts out (``io.write_json`` writes them as strict JSON). Two kinds of interval:

* within one image the rings are the sampling unit (``describe``);
* over a folder of images the rings of one micrograph are not independent (same
  particles, same preparation spot, same imaging), so the images are resampled with
  all their rings (a cluster bootstrap, ``describe(..., groups=...)``,
  ``cluster_ratio_ci``): one crowded micrograph cannot narrow the interval on its own.

Every random choice flows from ``seed``; the same input gives the same intervals.
"""

from __future__ import annotations

import math

import numpy as np

N_BOOT = 2000
SEED = 0
LEVEL = 0.95


def _percentile_interval(boots: np.ndarray, level: float) -> list[float] | None:
    boots = boots[np.isfinite(boots)]
    if not len(boots):
        return None
    a = (1 - level) / 2 * 100
    return [float(np.percentile(boots, a)), float(np.percentile(boots, 100 - a))]


def bootstrap_ci(values, statistic=np.median, *, n_boot: int = N_BOOT, seed: int = SEED,
                 level: float = LEVEL) -> list[float] | None:
    """Percentile bootstrap interval of ``statistic`` over ``values`` resampled with replacement.

    Parameters
    ----------
    values : array-like
        The observations (e.g. ring diameters in nm of one image).
    statistic : callable
        ``statistic(array, axis=1)`` on a (n_boot, n) array, e.g. ``np.median`` or ``np.mean``.
    n_boot : int
        Bootstrap resamples.
    seed : int
        Seed of the resampling.
    level : float
        Coverage of the interval (0.95: the 2.5th to 97.5th percentile).

    Returns
    -------
    ``[low, high]``, or ``None`` with fewer than two observations.
    """
    a = np.asarray(values, float)
    a = a[np.isfinite(a)]
    if len(a) < 2:
        return None
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(a), (n_boot, len(a)))
    return _percentile_interval(statistic(a[idx], axis=1), level)


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    """Median of sorted ``values`` each repeated ``weights`` times (as np.median of the repeated array)."""
    v, w = values, weights  # values sorted ascending
    cum = np.cumsum(w)
    total = cum[-1]
    if total == 0:
        return float("nan")
    lo = np.searchsorted(cum, (total - 1) // 2 + 1)  # element number (total-1)//2, 0-based
    hi = np.searchsorted(cum, total // 2 + 1)
    return float((v[lo] + v[hi]) / 2)


def cluster_resample_counts(n_groups: int, *, n_boot: int = N_BOOT, seed: int = SEED) -> np.ndarray:
    """(n_boot, n_groups) multiplicities of each group in each bootstrap resample of the groups."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n_groups, (n_boot, n_groups))
    counts = np.zeros((n_boot, n_groups), np.int64)
    np.add.at(counts, (np.repeat(np.arange(n_boot), n_groups), idx.ravel()), 1)
    return counts


def cluster_stat_boot(groups: list, statistic: str = "median", *, n_boot: int = N_BOOT,
                      seed: int = SEED) -> np.ndarray:
    """Bootstrap distribution of the pooled ``statistic`` ("median" or "mean") when whole groups
    (images) are resampled with replacement. Resamples with no value give NaN."""
    arrays = [np.asarray(g, float) for g in groups]
    arrays = [g[np.isfinite(g)] for g in arrays]
    flat = np.concatenate(arrays) if arrays else np.zeros(0)
    owner = np.concatenate([np.full(len(g), k) for k, g in enumerate(arrays)]) if arrays else np.zeros(0, int)
    counts = cluster_resample_counts(len(arrays), n_boot=n_boot, seed=seed)
    out = np.full(n_boot, np.nan)
    if statistic == "mean":
        sums = np.array([g.sum() for g in arrays])
        sizes = np.array([len(g) for g in arrays], float)
        tot = counts @ sizes
        ok = tot > 0
        out[ok] = (counts @ sums)[ok] / tot[ok]
    elif statistic == "median":
        order = np.argsort(flat, kind="stable")
        flat_sorted, owner_sorted = flat[order], owner[order]
        for b in range(n_boot):
            w = counts[b, owner_sorted]  # how often each value enters this resample
            if w.any():
                out[b] = _weighted_median(flat_sorted, w)
    else:
        raise ValueError(f"statistic must be 'median' or 'mean', not {statistic!r}")
    return out


def describe(values, *, groups: list | None = None, n_boot: int = N_BOOT, seed: int = SEED,
             level: float = LEVEL) -> dict | None:
    """n, mean, median, std, min, max, and bootstrap intervals of the mean and the median.

    Parameters
    ----------
    values : array-like
        Pooled observations (one per ring).
    groups : list of array-like, optional
        The same observations split by image: the intervals then come from resampling whole
        images (cluster bootstrap) instead of single rings.
    n_boot, seed, level : int, int, float
        Resamples, seed and coverage of the bootstrap intervals.

    Returns
    -------
    dict, or ``None`` when there is no finite value.
    """
    a = np.asarray(values, float)
    a = a[np.isfinite(a)]
    if not len(a):
        return None
    out = {"n": int(len(a)), "mean": float(a.mean()), "median": float(np.median(a)),
           "std": float(a.std(ddof=1)) if len(a) > 1 else None, "min": float(a.min()), "max": float(a.max())}
    if groups is not None:
        nonempty = [g for g in groups if len(g)]
        if len(nonempty) >= 2:
            out["mean_ci95"] = _percentile_interval(cluster_stat_boot(groups, "mean", n_boot=n_boot, seed=seed), level)
            out["median_ci95"] = _percentile_interval(
                cluster_stat_boot(groups, "median", n_boot=n_boot, seed=seed), level)
        else:
            out["mean_ci95"] = out["median_ci95"] = None
        out["ci_unit"] = "images"
    else:
        out["mean_ci95"] = bootstrap_ci(a, np.mean, n_boot=n_boot, seed=seed, level=level)
        out["median_ci95"] = bootstrap_ci(a, np.median, n_boot=n_boot, seed=seed, level=level)
        out["ci_unit"] = "rings"
    return out


def cluster_ratio_boot(numerators, denominators, *, n_boot: int = N_BOOT, seed: int = SEED) -> np.ndarray:
    """Bootstrap distribution of sum(numerators) / sum(denominators) with the images (pairs)
    resampled with replacement: e.g. rings per µm² over a folder of micrographs."""
    num = np.asarray(numerators, float)
    den = np.asarray(denominators, float)
    counts = cluster_resample_counts(len(num), n_boot=n_boot, seed=seed)
    d = counts @ den
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(d > 0, (counts @ num) / np.where(d > 0, d, 1), np.nan)


def ratio_summary(numerators, denominators, *, n_boot: int = N_BOOT, seed: int = SEED,
                  level: float = LEVEL) -> dict | None:
    """Pooled ratio (e.g. density = total rings / total field area) with a cluster-bootstrap
    interval over images; ``None`` when the denominators sum to zero."""
    num = np.asarray(numerators, float)
    den = np.asarray(denominators, float)
    if not len(den) or den.sum() <= 0:
        return None
    ci = _percentile_interval(cluster_ratio_boot(num, den, n_boot=n_boot, seed=seed), level) if len(den) >= 2 else None
    return {"value": float(num.sum() / den.sum()), "ci95": ci, "ci_unit": "images", "n_images": int(len(den))}


def nested_in(rows: list[dict]) -> list[int | None]:
    """For each ring, the ``structure_id`` of the smallest ring it lies inside (its disc within the
    other's disc: centre distance + its radius <= the other's radius), or ``None``."""
    out = []
    for r in rows:
        best, best_r = None, math.inf
        for o in rows:
            if o is r or o["mean_radius_px"] <= r["mean_radius_px"]:
                continue
            d = math.hypot(r["centre_x_px"] - o["centre_x_px"], r["centre_y_px"] - o["centre_y_px"])
            if d + r["mean_radius_px"] <= o["mean_radius_px"] and o["mean_radius_px"] < best_r:
                best, best_r = o["structure_id"], o["mean_radius_px"]
        out.append(best)
    return out


def holm(p_values: list[float | None]) -> list[float | None]:
    """Holm-Bonferroni adjusted p-values (``None`` entries are skipped and stay ``None``)."""
    idx = [i for i, p in enumerate(p_values) if p is not None and math.isfinite(p)]
    m = len(idx)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, i in enumerate(sorted(idx, key=lambda i: p_values[i])):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted
