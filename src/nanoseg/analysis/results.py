"""One results folder (``predict`` or ``measure``): measuring a class mask, writing and reading
``structures.csv``, ``review.csv``, ``summary.json`` (and optionally ``report.html``).

``predict`` (masks from a model) and ``measure`` (masks from anywhere) both go through
``measure_image`` for every image and ``write_results`` once, so a hand-labelled folder and a
model's output are measured by the same code and can be compared with ``nanoseg compare``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .. import io
from ..errors import NanosegError
from ..inference.measure import (MIN_AREA_PX, MIN_COVERAGE, MIN_RADIUS_PX, add_physical_units,
                                 measure_structures)
from . import statistics as st

STRUCTURE_COLUMNS = [
    "image", "structure_id", "centre_x_px", "centre_y_px", "mean_radius_px", "ring_width_px",
    "ellipse_major_px", "ellipse_minor_px", "ellipse_angle_deg", "circularity", "coverage", "area_px",
    "nm_per_px", "scale_source", "centre_x_nm", "centre_y_nm", "mean_radius_nm", "ring_width_nm",
    "ellipse_major_nm", "ellipse_minor_nm", "area_nm2", "mean_confidence", "radial_cv", "interior_fill",
    "nested_in",
    # the loop finder's own measurements (inference.loops; empty for the model's rings), to choose
    # its --loop-rule thresholds by
    "max_gap", "exterior_density", "interior_step", "band_fill", "encloses_loop",
]
REJECTED_COLUMNS = STRUCTURE_COLUMNS[:2] + ["rejected_by"] + STRUCTURE_COLUMNS[2:]
REVIEW_COLUMNS = ["image", "mean_confidence", "n_structures", "file"]

#: per-ring quantities summarised in summary.json: name -> (structures.csv column, factor)
LENGTHS = {"radius": ("mean_radius", 1.0), "diameter": ("mean_radius", 2.0), "band_width": ("ring_width", 1.0)}
SHAPES = ("coverage", "circularity")


def _ring_values(rows: list[dict], nm_per_px: float | None) -> dict[str, list[float]]:
    """Per-ring values of every summarised quantity (nm ones only with a pixel size)."""
    out = {}
    for name, (col, factor) in LENGTHS.items():
        px = [float(r[f"{col}_px"]) * factor for r in rows]
        out[f"{name}_px"] = px
        out[f"{name}_nm"] = [v * nm_per_px for v in px] if nm_per_px else []
    for name in SHAPES:
        out[name] = [float(r[name]) for r in rows]
    return out


def measure_image(mask: np.ndarray, *, name: str, file: str, nm_per_px: float | None, scale_source: str,
                  crop_bottom: int = 0, confidence: np.ndarray | None = None, min_area_px: int = MIN_AREA_PX,
                  min_coverage: float = MIN_COVERAGE, min_radius_px: float = MIN_RADIUS_PX,
                  seed: int = st.SEED, rules=None, image: np.ndarray | None = None, zoom: float = 1.0,
                  rejected: list | None = None, found: tuple[list, list] | None = None) -> tuple[list[dict], dict]:
    """Measure every ring of one class mask; return its ``structures.csv`` rows and its
    ``summary.json`` record.

    Parameters
    ----------
    mask : uint8 array (H, W)
        Class map of the measured field (data bar already cropped): 1 = ring band.
    name : str
        Image name used in every output (the file stem).
    file : str
        Source file recorded in the summary.
    nm_per_px : float or None
        Pixel size in nm; ``None`` keeps every size in px and densities per megapixel.
    scale_source : str
        Where the pixel size came from (``flag``, ``metadata:fei``, ``meta.jsonl``, ``none``...).
    crop_bottom : int
        Rows of data bar cut from the bottom before ``mask`` (px), recorded.
    confidence : float array (H, W), optional
        The model's probability of the ring class; gives each ring and the image a mean confidence.
    min_area_px, min_coverage, min_radius_px : int, float, float
        Fragment filters of ``measure_structures`` (px, fraction of the circle, px).
    seed : int
        Seed of the bootstrap intervals (rings resampled within the image).
    rules : inference.rings.RingRules, optional
        Judge every band by the ring rules (``inference.rings.find_rings``; its size rules replace
        the three fragment filters); ``image`` adds the interior rule, ``zoom`` (the model's working
        pixels per image pixel) scales the size rules, and ``rejected`` receives the rejected rows.
    found : (rings, rejected), optional
        Rings already found and judged (``inference.loops.find_loops``): measured as they are.
    """
    if found is not None:
        rows, dropped = found
    elif rules is None:
        rows, dropped = measure_structures(mask, min_area_px, min_coverage, min_radius_px, confidence=confidence), []
    else:
        from ..inference.rings import find_rings

        rows, dropped = find_rings(mask, confidence=confidence, image=image, nm_per_px=nm_per_px, rules=rules,
                                   zoom=zoom)
    for r in dropped:
        add_physical_units(r, nm_per_px, scale_source)
        r["image"] = name
    if rejected is not None:
        rejected += dropped
    for r, parent in zip(rows, st.nested_in(rows)):
        add_physical_units(r, nm_per_px, scale_source)
        r["image"] = name
        r["nested_in"] = parent if parent is not None else ""
    fg = mask == 1
    field_px = int(mask.size)
    field_um2 = field_px * nm_per_px**2 / 1e6 if nm_per_px else None
    conf = float(confidence[fg].mean()) if confidence is not None and fg.any() else None
    values = _ring_values(rows, nm_per_px)
    record = {
        "file": str(file), "height": int(mask.shape[0]), "width": int(mask.shape[1]), "crop_bottom": int(crop_bottom),
        "nm_per_px": nm_per_px, "scale_source": scale_source,
        "n_structures": len(rows), "n_nested": sum(1 for r in rows if r["nested_in"] != ""),
        "field_area_px": field_px, "field_area_um2": field_um2,
        "density_per_um2": len(rows) / field_um2 if field_um2 else None,
        "density_per_mpx": len(rows) / field_px * 1e6,
        "ring_fraction": float(fg.mean()),  # every ring-class pixel, fragments included
        "ring_area_fraction": float(sum(r["area_px"] for r in rows) / field_px),  # measured rings only
        "mean_confidence": conf,
        "rejected": {k: sum(r["rejected_by"] == k for r in dropped) for k in sorted({r["rejected_by"] for r in dropped})},
    }
    for key, vals in values.items():
        record[key] = st.describe(vals, seed=seed)
    return rows, record


def folder_summary(images: dict[str, dict], rows: list[dict], *, seed: int = st.SEED) -> dict:
    """Pooled statistics over the images of one folder; intervals resample whole images."""
    names = list(images)
    by_image = {n: [r for r in rows if r["image"] == n] for n in names}
    scaled = [n for n in names if images[n].get("nm_per_px")]
    out = {
        "n_images": len(names), "n_structures": len(rows),
        "n_nested": sum(images[n]["n_nested"] for n in names),
        "n_images_with_scale": len(scaled),
        "field_area_px": int(sum(images[n]["field_area_px"] for n in names)),
        "field_area_um2": float(sum(images[n]["field_area_um2"] for n in scaled)) if scaled else None,
        "density_per_mpx": st.ratio_summary([images[n]["n_structures"] for n in names],
                                            [images[n]["field_area_px"] / 1e6 for n in names], seed=seed),
        "density_per_um2": st.ratio_summary([images[n]["n_structures"] for n in scaled],
                                            [images[n]["field_area_um2"] for n in scaled], seed=seed)
        if scaled else None,
        "ring_area_fraction": st.ratio_summary([images[n]["ring_area_fraction"] * images[n]["field_area_px"]
                                                for n in names],
                                               [images[n]["field_area_px"] for n in names], seed=seed),
        "structures_per_image": st.describe([images[n]["n_structures"] for n in names], seed=seed),
    }
    per_image_values = {n: _ring_values(by_image[n], images[n].get("nm_per_px")) for n in names}
    for key in per_image_values[names[0]] if names else []:
        groups = [per_image_values[n][key] for n in names]
        out[key] = st.describe([v for g in groups for v in g], groups=groups, seed=seed)
    return out


def review_order(images: dict[str, dict]) -> list[dict]:
    """Images by mean foreground confidence, lowest first (no confidence: first, by name)."""
    review = [{"image": n, "mean_confidence": v.get("mean_confidence"), "n_structures": v["n_structures"],
               "file": v["file"]} for n, v in images.items()]
    review.sort(key=lambda r: (-1.0 if r["mean_confidence"] is None else r["mean_confidence"], r["image"]))
    return review


def write_results(folder: str | Path, *, rows: list[dict], images: dict[str, dict], skipped: list[tuple[str, str]],
                  settings: dict, report: bool = False, title: str = "nanoseg results",
                  seed: int = st.SEED) -> dict:
    """Write ``structures.csv``, ``review.csv``, ``summary.json`` (strict JSON) and, with
    ``report``, ``report.html`` into ``folder`` (which holds ``overlays/<name>.png``).

    Parameters
    ----------
    folder : path
        The (temporary) output folder.
    rows : list of dict
        Every ring of every image (``measure_image`` rows).
    images : dict
        Image name -> ``measure_image`` record.
    skipped : list of (file, reason)
        Inputs that could not be used.
    settings : dict
        The command's own settings, stored at the top of the summary (model, filters, ...).
    report : bool
        Also write the self-contained ``report.html``.
    title : str
        Title of the report.
    seed : int
        Seed of every bootstrap interval.
    """
    folder = Path(folder)
    if not images:
        first = skipped[0] if skipped else ("?", "?")
        raise NanosegError(f"none of the inputs could be used ({first[0]}: {first[1]})")
    io.write_csv(folder / "structures.csv", rows, STRUCTURE_COLUMNS)
    review = review_order(images)
    io.write_csv(folder / "review.csv", review, REVIEW_COLUMNS)
    summary = dict(settings)
    summary.update({
        "n_images": len(images), "n_structures": len(rows),
        "skipped": [{"file": f, "reason": why} for f, why in skipped],
        "bootstrap": {"n_boot": st.N_BOOT, "seed": seed, "level": st.LEVEL,
                      "unit": "rings within an image; whole images (cluster bootstrap) in 'overall'"},
        "overall": folder_summary(images, rows, seed=seed),
        "images": images,
    })
    summary = io.json_safe(summary)
    io.write_json(folder / "summary.json", summary)
    if report:
        from .report import write_report

        write_report(folder, summary=summary, rows=rows, review=review, title=title)
    return summary


def read_results(folder: str | Path) -> tuple[dict, list[dict]]:
    """(summary, structures rows) of a ``predict`` or ``measure`` folder."""
    folder = Path(folder)
    s, c = folder / "summary.json", folder / "structures.csv"
    if not s.exists() or not c.exists():
        raise NanosegError(f"{folder}: not a predict/measure folder (needs summary.json and structures.csv)")
    try:
        summary = json.loads(s.read_text())
    except json.JSONDecodeError as exc:
        raise NanosegError(f"{s}: not valid JSON ({exc})") from None
    if not isinstance(summary, dict) or "images" not in summary:
        raise NanosegError(f"{s}: no per-image records ('images')")
    return summary, io.read_csv(c)
