"""Measure ring structures in a class mask: centre, radius, width, ellipse, circularity, coverage.

Each 8-connected component of class 1 is one structure. Units are pixels; the
caller converts to nm with the pixel size.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

COVERAGE_BINS = 180  # 2 degree bins


def fit_circle(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Algebraic (Kasa) least-squares circle through points: (cx, cy, r)."""
    # normal equations on centred coordinates (well conditioned; no threaded LAPACK call on tiny problems)
    mx, my = float(x.mean()), float(y.mean())
    u, v = x - mx, y - my
    b = u * u + v * v
    suu, svv, suv = float(u @ u), float(v @ v), float(u @ v)
    sub, svb = float(u @ b), float(v @ b)
    det = suu * svv - suv * suv
    if det <= 1e-12 * max(suu * svv, 1e-300):  # collinear points: no circle
        sol = np.linalg.lstsq(np.column_stack([u, v, np.ones_like(u)]), b, rcond=None)[0]
        cu, cv = sol[0] / 2, sol[1] / 2
        return float(cu + mx), float(cv + my), math.sqrt(max(sol[2] + cu * cu + cv * cv, 0.0))
    cu = 0.5 * (svv * sub - suv * svb) / det
    cv = 0.5 * (suu * svb - suv * sub) / det
    r = math.sqrt(max(float(b.mean()) + cu * cu + cv * cv, 0.0))
    return float(cu + mx), float(cv + my), r


def angular_coverage(x, y, cx, cy, bins: int = COVERAGE_BINS) -> float:
    """Fraction of angular bins around the centre that hold any pixel of the structure."""
    ang = np.mod(np.arctan2(y - cy, x - cx), 2 * np.pi)
    r = np.hypot(x - cx, y - cy)
    # a pixel covers +-half a pixel of arc: mark the bins it spans
    half = np.arcsin(np.clip(0.5 / np.maximum(r, 0.5), 0, 1))
    width = 2 * np.pi / bins
    b0 = np.floor((ang - half) / width).astype(int)
    b1 = np.floor((ang + half) / width).astype(int)
    hit = np.zeros(bins, bool)
    hit[np.mod(b0, bins)] = True
    hit[np.mod(b1, bins)] = True
    return float(hit.mean())


def _centre_line(ys: np.ndarray, xs: np.ndarray):
    """Pixel coordinates of the skeleton of one component."""
    from skimage.morphology import skeletonize

    y0, x0 = ys.min(), xs.min()
    box = np.zeros((ys.max() - y0 + 3, xs.max() - x0 + 3), bool)
    box[ys - y0 + 1, xs - x0 + 1] = True
    sy, sx = np.nonzero(skeletonize(box))
    return (sx + x0 - 1).astype(np.float64), (sy + y0 - 1).astype(np.float64)


def measure_component(ys: np.ndarray, xs: np.ndarray) -> dict:
    x = xs.astype(np.float64)
    y = ys.astype(np.float64)
    area = int(len(x))
    # fit the circle to the band's centre line: on a thick, short arc a fit to all pixels bends
    # towards the band's inner edge
    sx, sy = _centre_line(ys, xs)
    if len(sx) >= 5 and np.ptp(sx) > 0 and np.ptp(sy) > 0:
        cx, cy, _ = fit_circle(sx, sy)
    elif area >= 3 and np.ptp(x) > 0 and np.ptp(y) > 0:
        cx, cy, _ = fit_circle(x, y)
    else:
        cx, cy = float(x.mean()), float(y.mean())
    r = np.hypot(x - cx, y - cy)
    mean_r = float(r.mean())
    cov = angular_coverage(x, y, cx, cy)
    width = float(area / max(cov * 2 * math.pi * max(mean_r, 1e-6), 1e-6))
    if area >= 5:
        pts = np.column_stack([x, y]).astype(np.float32)
        (ex, ey), (d1, d2), angle = cv2.fitEllipse(pts)
        major, minor = max(d1, d2) / 2, min(d1, d2) / 2
        if d1 < d2:  # orientation of the major axis, degrees from +x (image y down)
            angle = angle + 90
        angle = float(np.mod(angle, 180))
    else:
        major = minor = mean_r
        angle = 0.0
    circ = float(minor / major) if major > 0 else 0.0
    return {
        "centre_x_px": cx, "centre_y_px": cy, "mean_radius_px": mean_r, "ring_width_px": width,
        "ellipse_major_px": float(major), "ellipse_minor_px": float(minor), "ellipse_angle_deg": angle,
        "circularity": circ, "coverage": cov, "area_px": area,
    }


MIN_AREA_PX = 30
MIN_COVERAGE = 0.4
MIN_RADIUS_PX = 8.0


def measure_structures(mask: np.ndarray, min_area_px: int = MIN_AREA_PX, min_coverage: float = MIN_COVERAGE,
                       min_radius_px: float = MIN_RADIUS_PX, class_index: int = 1,
                       confidence: np.ndarray | None = None, with_pixels: bool = False) -> list[dict]:
    """One row per connected ring structure.

    Components smaller than ``min_area_px``, covering less than ``min_coverage`` of
    the circle around their own centre, or with a mean radius under ``min_radius_px``
    (a clump of particles, not a loop) are fragments, not ring structures, and are
    dropped from the measurements (they stay in the mask). With ``confidence`` (the
    model's probability of the class, HxW) each row also gets the structure's mean confidence;
    ``with_pixels`` keeps each structure's pixel coordinates as ``row["_pixels"] = (ys, xs)``.
    """
    fg = (mask == class_index).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    rows = []
    for k in range(1, n):
        if stats[k, cv2.CC_STAT_AREA] < min_area_px:
            continue
        # the component's pixels from its bounding box (row-major, as a whole-image nonzero gives them)
        x0, y0, bw, bh = (int(v) for v in stats[k, :4])
        ys, xs = np.nonzero(labels[y0:y0 + bh, x0:x0 + bw] == k)
        ys, xs = ys + y0, xs + x0
        row = measure_component(ys, xs)
        if row["coverage"] >= min_coverage and row["mean_radius_px"] >= min_radius_px:
            if confidence is not None:
                row["mean_confidence"] = float(confidence[ys, xs].mean())
            if with_pixels:
                row["_pixels"] = (ys, xs)
            rows.append(row)
    rows.sort(key=lambda r: (round(r["centre_y_px"]), round(r["centre_x_px"])))
    for i, r in enumerate(rows, 1):
        r["structure_id"] = i
    return rows


PX_LENGTH_FIELDS = ("centre_x", "centre_y", "mean_radius", "ring_width", "ellipse_major", "ellipse_minor")


def add_physical_units(row: dict, nm_per_px: float | None, source: str) -> dict:
    row["nm_per_px"] = nm_per_px if nm_per_px is not None else ""
    row["scale_source"] = source
    for f in PX_LENGTH_FIELDS:
        row[f"{f}_nm"] = row[f"{f}_px"] * nm_per_px if nm_per_px else ""
    row["area_nm2"] = row["area_px"] * nm_per_px**2 if nm_per_px else ""
    return row
