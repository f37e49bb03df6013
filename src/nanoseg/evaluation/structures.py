"""Structure-level evaluation: are the rings found, and are their sizes right?

Predicted ring structures (connected components measured by ``measure``) are
matched one-to-one to ground-truth rings (from a synthetic ``meta.jsonl`` record or
the components of a labelled mask) by centre distance and radius with the
Hungarian algorithm. A pair matches when the centres are within
``centre_tol`` x the true radius (at least 3 px) and the radii differ by at
most ``radius_tol`` x the true radius. Reported: precision, recall, F1,
absolute and relative radius error, coverage error and count error, with
bootstrap 95% confidence intervals over images.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from .. import io, labelme
from ..io import IGNORE_INDEX
from ..errors import NanosegError
from ..inference.measure import MIN_AREA_PX, MIN_COVERAGE, MIN_RADIUS_PX, measure_component, measure_structures
from ..synthesis.meta import read_meta

CENTRE_TOL = 0.35
RADIUS_TOL = 0.25


def ring_band_measurement(doc: dict, shape_range) -> dict | None:
    """A synthetic ring's own band (its labelme shapes alone), measured as predictions are."""
    a, b = shape_range
    painted = labelme.paint_in_box(doc["shapes"][a:b], (int(doc["imageHeight"]), int(doc["imageWidth"])))
    if painted is None:
        return None
    (y0, x0), box = painted
    ys, xs = np.nonzero(box == 1)
    return measure_component(ys + y0, xs + x0) if len(ys) else None


def rings_from_meta(meta: dict | str | Path, labelme_doc: dict | str | Path | None = None,
                    min_area_px: int = MIN_AREA_PX, min_coverage: float = MIN_COVERAGE) -> list[dict]:
    """Ground-truth rings of a synthetic image, measured on each ring's own band (same filters
    as predictions, so a ring cut down to a sliver by the frame edge is not counted).

    ``meta``: the image's record from ``meta.jsonl`` (``synthesis.read_meta``), or the path of
    a per-image meta file written by earlier versions. The band is rasterised from the ring's
    own labelme shapes (``labelme_doc``: the document or its path; by default
    ``../labelme/<same name>.json`` beside a per-image meta file). A ring entry that already
    carries a measured ``band`` is used as it is.
    """
    if not isinstance(meta, dict):
        meta_path = Path(meta)
        meta = json.loads(meta_path.read_text())
        if labelme_doc is None:
            labelme_doc = meta_path.parent.parent / "labelme" / meta_path.name
    rings = meta.get("rings", [])
    if any("band" not in r and "shapes" in r for r in rings) and not isinstance(labelme_doc, dict):
        if labelme_doc is None:
            raise NanosegError(f"{meta.get('id', 'meta')}: the ring truth needs the image's labelme file")
        labelme_doc = labelme.load(labelme_doc)
    out = []
    for r in rings:
        if "band" in r:
            band = r["band"]
        elif "shapes" in r:
            band = ring_band_measurement(labelme_doc, r["shapes"])
        else:
            continue
        if band and band["area_px"] >= min_area_px and band["coverage"] >= min_coverage \
                and band["mean_radius_px"] >= MIN_RADIUS_PX:
            out.append(dict(band, ring_id=r["id"]))
    return out


def match(pred: list[dict], gt: list[dict], centre_tol: float = CENTRE_TOL, radius_tol: float = RADIUS_TOL):
    """Pairs (i_pred, j_gt) of matched structures."""
    if not pred or not gt:
        return []
    big = 1e9
    cost = np.full((len(pred), len(gt)), big)
    for i, p in enumerate(pred):
        for j, g in enumerate(gt):
            rg = max(g["mean_radius_px"], 1e-6)
            d = math.hypot(p["centre_x_px"] - g["centre_x_px"], p["centre_y_px"] - g["centre_y_px"])
            dr = abs(p["mean_radius_px"] - g["mean_radius_px"])
            if d <= max(3.0, centre_tol * rg) and dr <= radius_tol * rg:
                cost[i, j] = d / rg + dr / rg
    rows, cols = linear_sum_assignment(cost)
    return [(int(i), int(j)) for i, j in zip(rows, cols) if cost[i, j] < big]


def image_scores(pred: list[dict], gt: list[dict], **tol) -> dict:
    pairs = match(pred, gt, **tol)
    abs_err = [abs(pred[i]["mean_radius_px"] - gt[j]["mean_radius_px"]) for i, j in pairs]
    rel_err = [abs(pred[i]["mean_radius_px"] - gt[j]["mean_radius_px"]) / gt[j]["mean_radius_px"] for i, j in pairs]
    cov_err = [abs(pred[i]["coverage"] - gt[j]["coverage"]) for i, j in pairs]
    return {"tp": len(pairs), "fp": len(pred) - len(pairs), "fn": len(gt) - len(pairs),
            "n_pred": len(pred), "n_gt": len(gt), "count_error": len(pred) - len(gt),
            "radius_abs_err_px": abs_err, "radius_rel_err": rel_err, "coverage_err": cov_err}


def _aggregate(per_image: list[dict]) -> dict:
    tp = sum(s["tp"] for s in per_image)
    fp = sum(s["fp"] for s in per_image)
    fn = sum(s["fn"] for s in per_image)
    precision = tp / (tp + fp) if tp + fp else (1.0 if fn == 0 else 0.0)
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0

    def mean(key):
        vals = [v for s in per_image for v in s[key]]
        return float(np.mean(vals)) if vals else float("nan")

    return {"precision": precision, "recall": recall, "f1": f1,
            "radius_abs_err_px": mean("radius_abs_err_px"), "radius_rel_err": mean("radius_rel_err"),
            "coverage_err": mean("coverage_err"),
            "count_abs_err": float(np.mean([abs(s["count_error"]) for s in per_image])) if per_image else float("nan")}


def summarize(per_image: list[dict], n_boot: int = 1000, seed: int = 0) -> dict:
    """Aggregate scores plus bootstrap 95% intervals (images resampled with replacement)."""
    out = _aggregate(per_image)
    out["n_images"] = len(per_image)
    out["n_gt"] = sum(s["n_gt"] for s in per_image)
    out["n_pred"] = sum(s["n_pred"] for s in per_image)
    if len(per_image) >= 2 and n_boot:
        rng = np.random.default_rng(seed)
        boots = [_aggregate([per_image[k] for k in rng.integers(0, len(per_image), len(per_image))])
                 for _ in range(n_boot)]
        for key in ("precision", "recall", "f1", "radius_abs_err_px", "radius_rel_err", "coverage_err",
                    "count_abs_err"):
            vals = np.array([b[key] for b in boots], float)
            vals = vals[np.isfinite(vals)]
            out[f"{key}_ci95"] = [float(np.percentile(vals, 2.5)), float(np.percentile(vals, 97.5))] \
                if len(vals) else [float("nan"), float("nan")]
    return out


def evaluate_structures(pred_masks: dict, gt: dict, min_area_px: int = MIN_AREA_PX,
                        min_coverage: float = MIN_COVERAGE, pred_rings: dict | None = None, **tol) -> dict:
    """``pred_masks``: name -> mask; ``gt``: name -> mask or list of ring dicts.

    ``pred_rings`` (name -> rows already judged by the ring rules, as ``predict`` writes them)
    replaces measuring the predicted masks. A predicted structure lying mostly on pixels the
    truth marks as ignore (255: a doubtful loop) counts neither way.
    """
    per_image = []
    for name in sorted(gt):
        g = gt[name]
        gt_rings = measure_structures(g, min_area_px, min_coverage) if isinstance(g, np.ndarray) else g
        pred = (pred_rings[name] if pred_rings is not None
                else measure_structures(pred_masks[name], min_area_px, min_coverage))
        if isinstance(g, np.ndarray) and (g == IGNORE_INDEX).any():
            pred = [r for r in pred if not _mostly_ignored(r, pred_masks[name], g)]
        scores = image_scores(pred, gt_rings, **tol)
        scores["image"] = name
        per_image.append(scores)
    result = summarize(per_image)
    result["per_image"] = [{k: v for k, v in s.items() if not isinstance(v, list)} for s in per_image]
    return result


def _mostly_ignored(row: dict, pred_mask: np.ndarray, gt_mask: np.ndarray) -> bool:
    """Half or more of the structure's band (the predicted pixels within its ring) is ignore."""
    h, w = gt_mask.shape
    r_out = row["mean_radius_px"] + row["ring_width_px"]
    x0, x1 = max(0, int(row["centre_x_px"] - r_out)), min(w, int(row["centre_x_px"] + r_out) + 1)
    y0, y1 = max(0, int(row["centre_y_px"] - r_out)), min(h, int(row["centre_y_px"] + r_out) + 1)
    band = pred_mask[y0:y1, x0:x1] == 1
    return bool(band.any() and (gt_mask[y0:y1, x0:x1][band] == IGNORE_INDEX).mean() >= 0.5)


def ground_truth_rings(folder: Path, metas: dict, name_stem: str, mask: np.ndarray):
    """Ring truth of one image of ``folder``: its synthetic meta record (``metas``, from
    ``synthesis.read_meta``) measured on the ring's own band when there is one, else the mask."""
    meta = metas.get(name_stem)
    if meta is not None:
        return rings_from_meta(meta, folder / "labelme" / f"{name_stem}.json")
    doc_path = folder / "labelme" / f"{name_stem}.json"
    if doc_path.exists():  # an imported micrograph: each labelled ring on its own band
        return rings_from_labelme(labelme.load(doc_path))
    return mask


def rings_from_labelme(doc: dict, min_area_px: int = MIN_AREA_PX, min_coverage: float = MIN_COVERAGE) -> list[dict]:
    """Ground-truth rings of a labelled micrograph: every ``ring`` shape with its ``_background_``
    holes (``labelme.ring_groups``) rasterised alone and measured as predictions are, so touching
    rings stay apart and a band drawn in pieces counts once."""
    out = []
    for k, group in enumerate(labelme.ring_groups(doc)):
        band = ring_band_measurement(doc, group)
        if band and band["area_px"] >= min_area_px and band["coverage"] >= min_coverage \
                and band["mean_radius_px"] >= MIN_RADIUS_PX:
            out.append(dict(band, ring_id=k))
    return out


def evaluate_structure_folders(pred_dir, gt_dir) -> dict:
    """Ring scores of a folder of predicted masks against a folder or dataset of truth.

    A ``predict`` output folder is judged by the rings it reports (its ``structures.csv``: the
    rings that passed the ring rules, or the loop finder's rings, whose mask is only the chain of
    each band); a folder of bare masks by their connected components.
    """
    pred_dir, gt_dir = Path(pred_dir), Path(gt_dir)
    gt_sub = gt_dir / "masks" if (gt_dir / "masks").is_dir() else gt_dir
    pred_sub = pred_dir / "masks" if (pred_dir / "masks").is_dir() else pred_dir
    reported = _reported_rings(pred_dir / "structures.csv")
    preds, gts = {}, {}
    metas = read_meta(gt_dir)
    for p in io.list_images(gt_sub):
        q = pred_sub / p.name
        if not q.exists():
            raise NanosegError(f"--pred: {q} missing")
        preds[p.stem] = io.read_mask(q)
        gts[p.stem] = ground_truth_rings(gt_dir, metas, p.stem, io.read_mask(p))
    if reported is not None:
        return evaluate_structures(preds, gts, pred_rings={k: reported.get(k, []) for k in preds})
    return evaluate_structures(preds, gts)


RING_FIELDS = ("centre_x_px", "centre_y_px", "mean_radius_px", "ring_width_px", "coverage")


def _reported_rings(path: Path) -> dict[str, list[dict]] | None:
    """Image name -> the rings ``predict`` reported in its ``structures.csv`` (None: no such file)."""
    if not path.is_file():
        return None
    out: dict[str, list[dict]] = {}
    for row in io.read_csv(path):
        try:
            ring = {k: float(row[k]) for k in RING_FIELDS}
        except (KeyError, ValueError):
            raise NanosegError(f"--pred: {path} is not a structures.csv of nanoseg predict") from None
        out.setdefault(row["image"], []).append(ring)
    return out
