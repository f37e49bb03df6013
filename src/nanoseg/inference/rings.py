"""From a predicted class mask to ring structures: the shape rules that tell a ring from a look-alike.

A segmentation model marks bands of particles; on real micrographs it also marks pieces of
the chain network, straight chains, particle clumps and the bright step edges of carbon
sheets. What makes a ring a ring is geometry and topology, so every candidate component
(``measure.measure_structures``) is judged on shape evidence, each rule with its reason:

=====================  ==========================================================================
rule (default)          why
=====================  ==========================================================================
coverage >= 0.5         a ring is a closed or nearly closed loop (the labels ask for ~60% of the
                        circumference; predicted bands lose a little at gaps between clusters).
                        Chain fragments and arcs cover a small angle around their own centre.
circularity >= 0.5      a ring is round: aspect ratio (major/minor axis) below about 1.8-2, as
                        labelled. Elongated loops and cells of the anisotropic chain network fail.
radial_cv <= 0.3        the band keeps its distance from the centre all the way round (the std
                        of the per-direction radius over its mean; labelled rings: 0.08-0.26).
                        Kinked chains, zig-zag network paths and sheet edges do not.
interior_fill <= 0.25   the interior is empty support: the share of the disc inside the band
                        (0.75 x its inner radius) covered by particles that are not part of
                        another ring band (a nested ring is allowed; labelled rings: 0.01-0.17).
                        Regions of the network enclose other chains; clumps are filled.
confidence >= 0.6       the model's mean ring probability over the band: half-hearted bands on
                        sheet edges and in busy network regions score low.
=====================  ==========================================================================

Size rules (area, radius) stay in ``measure``. Particles for ``interior_fill`` come from a
white top-hat of the micrograph (a disc of ``TOPHAT_NM`` radius, in nm where the pixel size is
known) thresholded at median + 4 robust standard deviations, the same detector on every image.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from .measure import MIN_AREA_PX, MIN_RADIUS_PX, measure_structures

TOPHAT_NM = 8.0  # top-hat disc radius: larger than a Pd particle (~10 nm across), smaller than a cell
RADIAL_BINS = 36


@dataclass(frozen=True)
class RingRules:
    """Thresholds of the shape evidence (see the module header for each rule's reason)."""

    min_coverage: float = 0.5
    min_circularity: float = 0.5
    max_radial_cv: float = 0.3
    max_interior_fill: float = 0.25
    min_confidence: float = 0.6
    min_area_px: int = MIN_AREA_PX
    min_radius_px: float = MIN_RADIUS_PX


def particle_map(image: np.ndarray, nm_per_px: float | None = None) -> np.ndarray:
    """Boolean map of bright particles: white top-hat, thresholded robustly.

    Parameters
    ----------
    image : (H, W) uint8
        The micrograph (data bar removed).
    nm_per_px : float, optional
        Pixel size; the top-hat disc is ``TOPHAT_NM`` nm (8 px when unknown).
    """
    radius_px = TOPHAT_NM / nm_per_px if nm_per_px else TOPHAT_NM
    k = max(3, int(round(radius_px)) * 2 + 1)
    g = cv2.GaussianBlur(image.astype(np.float32), (0, 0), max(0.6, 0.1 * radius_px))
    th = cv2.morphologyEx(g, cv2.MORPH_TOPHAT, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    med = float(np.median(th))
    mad = float(np.median(np.abs(th - med))) * 1.4826
    return th > med + 4 * max(mad, 1e-3)


def radial_cv(ys: np.ndarray, xs: np.ndarray, cx: float, cy: float, bins: int = RADIAL_BINS) -> float:
    """Std over mean of the band's mean radius in each direction (bins without pixels skipped)."""
    ang = np.mod(np.arctan2(ys - cy, xs - cx), 2 * np.pi)
    idx = np.minimum((ang / (2 * np.pi) * bins).astype(int), bins - 1)
    r = np.hypot(xs - cx, ys - cy)
    n = np.bincount(idx, minlength=bins)
    s = np.bincount(idx, weights=r, minlength=bins)
    per = s[n > 0] / n[n > 0]
    return float(per.std() / per.mean()) if len(per) > 1 and per.mean() > 0 else 1.0


def interior_fill(particles: np.ndarray, cx: float, cy: float, inner_radius_px: float) -> float:
    """Share of the disc of 0.75 x ``inner_radius_px`` around the centre covered by particles."""
    r = 0.75 * inner_radius_px
    if r < 2:
        return 0.0
    h, w = particles.shape
    y0, y1 = max(0, int(cy - r)), min(h, int(cy + r) + 1)
    x0, x1 = max(0, int(cx - r)), min(w, int(cx + r) + 1)
    if y1 <= y0 or x1 <= x0:
        return 0.0
    yy, xx = np.mgrid[y0:y1, x0:x1]
    disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    return float(particles[y0:y1, x0:x1][disc].mean()) if disc.any() else 0.0


def judge(row: dict, rules: RingRules) -> str | None:
    """The first rule a measured structure breaks (None: it is a ring)."""
    checks = (("coverage", row["coverage"] >= rules.min_coverage),
              ("circularity", row["circularity"] >= rules.min_circularity),
              ("radial_cv", row["radial_cv"] <= rules.max_radial_cv),
              ("interior_fill", row.get("interior_fill") is None or row["interior_fill"] <= rules.max_interior_fill),
              ("confidence", row.get("mean_confidence") is None or row["mean_confidence"] >= rules.min_confidence))
    return next((name for name, ok in checks if not ok), None)


def find_rings(mask: np.ndarray, *, confidence: np.ndarray | None = None, image: np.ndarray | None = None,
               nm_per_px: float | None = None, rules: RingRules = RingRules(),
               zoom: float = 1.0) -> tuple[list[dict], list[dict]]:
    """Ring structures of a class mask, judged on shape evidence.

    Parameters
    ----------
    mask : (H, W) uint8
        Class map (1 = ring band).
    confidence : (H, W) float, optional
        The model's ring probability; adds ``mean_confidence`` and its rule.
    image : (H, W) uint8, optional
        The micrograph; adds ``interior_fill`` and its rule.
    nm_per_px : float, optional
        Pixel size of ``mask`` and ``image`` (nm/px), for the particle detector.
    rules : RingRules
        Thresholds; the size rules are in the model's working pixels.
    zoom : float
        Working pixels per image pixel (``scale.resample_factor``): size rules are divided by it.

    Returns
    -------
    (rings, rejected) : two lists of measured rows; each rejected row names its ``rejected_by`` rule.
    """
    rows = measure_structures(mask, max(1, round(rules.min_area_px / zoom**2)), 0.0,
                              rules.min_radius_px / zoom, confidence=confidence, with_pixels=True)
    # particles on predicted ring bands (a nested ring) do not fill an interior
    particles = particle_map(image, nm_per_px) & (mask != 1) if image is not None else None
    kept, rejected = [], []
    for row in rows:
        ys, xs = row.pop("_pixels")
        row["radial_cv"] = radial_cv(ys.astype(float), xs.astype(float), row["centre_x_px"], row["centre_y_px"])
        if particles is not None:
            inner = max(row["mean_radius_px"] - row["ring_width_px"] / 2, 0.0)
            row["interior_fill"] = interior_fill(particles, row["centre_x_px"], row["centre_y_px"], inner)
        why = judge(row, rules)
        if why is None:
            kept.append(row)
        else:
            rejected.append(dict(row, rejected_by=why))
    for i, r in enumerate(kept, 1):
        r["structure_id"] = i
    return kept, rejected


def rules_dict(rules: RingRules) -> dict:
    """The thresholds as recorded in ``summary.json``."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(rules).items()}
