"""Scene model: where the support features, particles, rings and hard negatives are.

Everything here is geometry in pixel units (x right, y down, pixel centres at
integers). The rendering of a scene into an SEM image lives in ``render.py``.
Rings are the labelled class; every other particle arrangement is a hard
negative kept clear of the ring bands so that a mask pixel never lies on one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.spatial import Voronoi

from ..data import labelme
from ..inference.measure import measure_component

REFERENCE_CROP_PX = 321
RING_MAX_CLUSTER_GAP = 1.2   # particle diameters between clusters on a ring
MIN_PARTICLE_SHARE = 0.5     # of a ring band's angular extent that particles must actually cover

# particle kinds (stored in the meta file)
KINDS = ("ring", "network", "chain", "arc", "loop", "cluster", "scattered", "big")


@dataclass
class Scene:
    shape: tuple[int, int]
    particles: list = field(default_factory=list)  # (x, y, r, kind, structure_id, yield)
    rings: list = field(default_factory=list)      # dicts, see ring_band
    negatives: list = field(default_factory=list)  # dicts: type and geometry
    debris: list = field(default_factory=list)     # (polygon Nx2, height_px, yield)
    flakes: list = field(default_factory=list)     # (polygon Nx2, height_px, yield_gain)
    pits: list = field(default_factory=list)       # (x, y, radius_px, depth)
    labelme_shapes: list = field(default_factory=list)


def draw_value(rng: np.random.Generator, spec):
    """One value from a ``(lo, hi)`` range (ints inclusive) or a scalar."""
    if isinstance(spec, tuple):
        lo, hi = spec
        if isinstance(lo, int) and isinstance(hi, int):
            return int(rng.integers(lo, hi + 1))
        return float(rng.uniform(lo, hi))
    return spec


def sample_values(params, rng: np.random.Generator) -> dict:
    """Draw every ranged parameter once for one image (field order fixes the RNG stream)."""
    return {name: draw_value(rng, getattr(params, name)) for name in type(params).model_fields}


# ------------------------------------------------------------------ curves

def polyline_frame(pts: np.ndarray, closed: bool):
    """Cumulative arc length, and a function giving point and unit normal at arc length s."""
    if closed:
        pts = np.vstack([pts, pts[:1]])
    seg = np.diff(pts, axis=0)
    seglen = np.hypot(seg[:, 0], seg[:, 1])
    s = np.concatenate([[0.0], np.cumsum(seglen)])

    def at(si: np.ndarray):
        si = np.asarray(si, dtype=float)
        x = np.interp(si, s, pts[:, 0])
        y = np.interp(si, s, pts[:, 1])
        k = np.clip(np.searchsorted(s, si, side="right") - 1, 0, len(seg) - 1)
        t = seg[k] / np.maximum(seglen[k], 1e-9)[:, None]
        normal = np.stack([-t[:, 1], t[:, 0]], axis=1)
        return np.stack([x, y], axis=1), normal

    return s[-1], at


def particles_along(pts: np.ndarray, closed: bool, v: dict, r_mean: float, rng,
                    radial_jitter: float = 0.0):
    """Clusters of touching particles along a polyline, with gaps between clusters.

    Returns an (M, 3) array of x, y, radius. Cluster sizes, gaps and scatter come
    from ``v`` (the drawn parameters): particles in real micrographs sit on lines
    in clumps of 2-6, not as evenly spaced beads. Vectorised: positions along the
    line are a cumulative sum of particle-to-particle and cluster-to-cluster steps.
    """
    total, at = polyline_frame(pts, closed)
    if total <= 0:
        return np.zeros((0, 3))
    lo, hi = v["cluster_size_range"]
    gap_px = v["cluster_gap"] * 2 * r_mean
    per_cluster = r_mean * (1.75 * (lo + hi) / 2 + 1) + gap_px  # mean arc length a cluster uses
    n_clu = int(total / max(per_cluster, 0.5) * 1.3) + 3
    sizes = rng.integers(lo, hi + 1, n_clu)
    n = int(sizes.sum())
    r = r_mean * np.maximum(0.45, 1.0 + v["particle_size_spread"] * rng.standard_normal(n))
    within = rng.uniform(0.75, 1.0, n)
    gaps = rng.uniform(0.5, 1.5, n_clu) * gap_px
    offs = rng.normal(0.0, radial_jitter * r_mean, n_clu) if radial_jitter > 0 else np.zeros(n_clu)
    side = rng.uniform(-1, 1, n) * v["line_width_jitter"] * r
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    step = np.empty(n)
    step[1:] = (r[:-1] + r[1:]) * within[1:]
    step[starts[1:]] = r[starts[1:] - 1] + r_mean + gaps[:-1]   # jump to the next cluster
    step[0] = rng.uniform(0, gap_px + r_mean)
    s = np.cumsum(step)
    keep = s < total
    if not keep.any():
        return np.zeros((0, 3))
    s, r = s[keep], r[keep]
    off = (np.repeat(offs, sizes) + side)[keep]
    p, nrm = at(s)
    xy = p + nrm * off[:, None]
    return np.column_stack([xy, r])


def ring_curve(cx, cy, radius, irregularity, rng, n=None, aspect=1.0, angle=0.0):
    """Closed star-shaped curve: a circle with random low harmonics (or an ellipse)."""
    n = n or int(max(64, 2 * math.pi * radius / 0.7))
    th = np.linspace(0, 2 * np.pi, n, endpoint=False)
    rho = np.ones_like(th)
    for k in (2, 3, 4):
        rho += irregularity * rng.uniform(-1, 1) / math.sqrt(k - 1) * np.cos(k * th + rng.uniform(0, 2 * np.pi))
    x = radius * rho * np.cos(th)
    y = radius * rho * np.sin(th) / aspect
    ca, sa = math.cos(angle), math.sin(angle)
    return np.column_stack([cx + ca * x - sa * y, cy + sa * x + ca * y])


def random_walk_curve(x0, y0, heading, length, curvature, rng, step=2.0):
    """Open curve from a start point; ``curvature`` is the heading noise per px (rad)."""
    n = max(2, int(length / step))
    turns = rng.normal(0, curvature * math.sqrt(step), n).cumsum() if curvature > 0 else np.zeros(n)
    bend = rng.normal(0, curvature * 0.3) * step * np.arange(n) if curvature > 0 else 0.0
    ang = heading + turns + bend
    pts = np.column_stack([x0 + np.cumsum(step * np.cos(ang)), y0 + np.cumsum(step * np.sin(ang))])
    return np.vstack([[x0, y0], pts])


# ------------------------------------------------------------------ ring bands

def ring_band(cx: float, cy: float, parts: np.ndarray, radius: float, fill_px: float):
    """Band polygons covering a ring's particles, from their inner to outer edge.

    Angular bins (about 2 px of arc each) take the min/max radial extent of the
    particles over them; short empty runs (gaps between clusters) are bridged,
    long ones (real gaps in the ring) stay open. Returns the labelme shapes, the
    angular coverage and mean inner/outer radii.
    """
    k = int(np.clip(round(2 * math.pi * radius / 2.0), 36, 360))
    width = 2 * math.pi / k
    inner = np.full(k, np.inf)
    outer = np.full(k, -np.inf)
    dx, dy = parts[:, 0] - cx, parts[:, 1] - cy
    rho = np.hypot(dx, dy)
    ang = np.mod(np.arctan2(dy, dx), 2 * math.pi)
    half = np.arcsin(np.clip(parts[:, 2] / np.maximum(rho, 1e-6), 0, 1))
    for a, h, p, r in zip(ang, half, rho, parts[:, 2]):
        b0 = int(math.floor((a - h) / width))
        b1 = int(math.floor((a + h) / width))
        idx = np.arange(b0, b1 + 1) % k
        inner[idx] = np.minimum(inner[idx], p - r - 0.5)
        outer[idx] = np.maximum(outer[idx], p + r + 0.5)
    covered = np.isfinite(inner)
    if covered.sum() < 3:
        return None
    # bridge short empty runs
    fill_bins = int(math.ceil(fill_px / max(radius * width, 1e-6)))
    runs = _empty_runs(covered)
    bridged = covered.copy()
    for start, length in runs:
        if length <= fill_bins:
            bridged[(start + np.arange(length)) % k] = True
    centres = (np.arange(k) + 0.5) * width
    cov_idx = np.flatnonzero(covered)
    for arr in (inner, outer):
        vals = arr[cov_idx]
        fill = np.interp(centres, centres[cov_idx], vals, period=2 * math.pi)
        arr[~covered] = fill[~covered]
    inner = np.maximum(inner, 0.5)
    shapes = []
    open_runs = _empty_runs(bridged)
    if not open_runs:
        outer_xy = np.column_stack([cx + outer * np.cos(centres), cy + outer * np.sin(centres)])
        inner_xy = np.column_stack([cx + inner * np.cos(centres), cy + inner * np.sin(centres)])
        shapes = labelme.ring_shapes(outer_xy, inner_xy)
    else:
        for seg in _full_runs(bridged):
            if len(seg) < 2:
                continue
            th = centres[seg]
            # extend each arc to the edges of its first and last bins
            th = np.concatenate([[th[0] - width / 2], th, [th[-1] + width / 2]])
            o = np.concatenate([[outer[seg[0]]], outer[seg], [outer[seg[-1]]]])
            i = np.concatenate([[inner[seg[0]]], inner[seg], [inner[seg[-1]]]])
            poly = np.vstack([np.column_stack([cx + o * np.cos(th), cy + o * np.sin(th)]),
                              np.column_stack([cx + i * np.cos(th), cy + i * np.sin(th)])[::-1]])
            shapes.append(labelme.polygon_shape(poly, "ring"))
    if not shapes:
        return None
    sel = bridged
    return {
        "shapes": shapes,
        "coverage": float(sel.mean()),
        "particle_coverage": float(covered.mean()),
        "r_inner_px": float(inner[sel].mean()),
        "r_outer_px": float(outer[sel].mean()),
    }


def _empty_runs(covered: np.ndarray):
    """(start, length) of circular runs of False."""
    k = len(covered)
    if covered.all():
        return []
    if not covered.any():
        return [(0, k)]
    shift = int(np.flatnonzero(covered)[0])
    c = np.roll(covered, -shift)
    runs, i = [], 0
    while i < k:
        if not c[i]:
            j = i
            while j < k and not c[j]:
                j += 1
            runs.append(((i + shift) % k, j - i))
            i = j
        else:
            i += 1
    return runs


def _full_runs(covered: np.ndarray):
    """Index arrays of circular runs of True, each in angular order."""
    k = len(covered)
    shift = int(np.flatnonzero(~covered)[0]) if (~covered).any() else 0
    c = np.roll(covered, -shift)
    runs, i = [], 0
    while i < k:
        if c[i]:
            j = i
            while j < k and c[j]:
                j += 1
            runs.append((np.arange(i, j) + shift) % k)
            i = j
        else:
            i += 1
    return runs


# ------------------------------------------------------------------ scene building

def build_scene(shape: tuple[int, int], v: dict, rng: np.random.Generator) -> tuple[Scene, np.ndarray]:
    """Lay out one scene from drawn parameters ``v``. Returns the scene and its class mask."""
    h, w = shape
    scene = Scene(shape=shape)
    fit = min(1.0, min(h, w) / REFERENCE_CROP_PX)
    area = h * w / REFERENCE_CROP_PX**2
    r_mean = v["particle_diameter_nm"] / v["scale_nm_per_px"] / 2.0
    r_mean = float(np.clip(r_mean, 0.9, max(1.0, min(h, w) / 40)))
    v = dict(v, r_mean_px=r_mean)

    # --- rings (the labelled class)
    rad_lo, rad_hi = v["_ring_radius_range"]
    rad_lo = max(rad_lo * fit, 4 * r_mean + 2)
    rad_hi = min(max(rad_hi * fit, rad_lo), 0.45 * min(h, w))
    n_rings = v["rings_per_image"]
    n_rings = max(1 if n_rings > 0 else 0, int(round(n_rings * area)))
    placed = []  # (cx, cy, r_in_extent, r_out_extent)
    ring_specs = []
    for _ in range(n_rings):
        for _try in range(30):
            R = float(np.exp(rng.uniform(math.log(rad_lo), math.log(max(rad_hi, rad_lo + 1e-3)))))
            cx = rng.uniform(-0.15 * R, w + 0.15 * R)
            cy = rng.uniform(-0.15 * R, h + 0.15 * R)
            irr = rng.uniform(0, v["_ring_irregularity_hi"])
            spec = _ring_extent(cx, cy, R, irr, r_mean, v)
            if _fits(spec, placed):
                placed.append(spec)
                ring_specs.append((cx, cy, R, irr))
                break
        else:
            continue
        if rng.uniform() < v["nested_ring_prob"]:
            R2 = R * rng.uniform(0.35, 0.65)
            if R2 >= rad_lo:
                cx2 = cx + rng.normal(0, 0.08 * R)
                cy2 = cy + rng.normal(0, 0.08 * R)
                irr2 = rng.uniform(0, v["_ring_irregularity_hi"])
                spec2 = _ring_extent(cx2, cy2, R2, irr2, r_mean, v)
                if _fits(spec2, placed):
                    placed.append(spec2)
                    ring_specs.append((cx2, cy2, R2, irr2))

    mask = np.zeros(shape, dtype=np.uint8)
    # rings are denser than loose chains (clusters at most 1.2 diameters apart), so that a ring
    # reads as a ring; the band bridges the gaps between clusters but never a sixth of the circle
    v_ring = dict(v, cluster_gap=min(v["cluster_gap"], RING_MAX_CLUSTER_GAP))
    # largest first, so a nested ring's band is painted after its host's hole
    for cx, cy, R, irr in sorted(ring_specs, key=lambda s: -s[2]):
        fill_px = min(2 * r_mean * (v_ring["cluster_gap"] * 1.5 + 1) + 4, max(4 * r_mean, math.pi * R / 3))
        curve = ring_curve(cx, cy, R, irr, rng)
        parts = particles_along(curve, True, v_ring, r_mean, rng, radial_jitter=v["ring_radial_jitter"])
        parts = _cut_gaps(parts, cx, cy, R, v["ring_coverage"], fill_px, rng)
        if len(parts) < 4:
            continue
        band = ring_band(cx, cy, parts, R, fill_px)
        if band is None or band["particle_coverage"] < MIN_PARTICLE_SHARE * band["coverage"]:
            continue  # too few particles to read as a ring
        trial = scene.labelme_shapes + band["shapes"]
        painted = _paint_band(mask, band["shapes"])
        if painted is None:
            continue
        m_new, m_band = painted
        # keep labels order-independent: the union of bands must equal labelme's painting
        if not np.array_equal(m_new, np.maximum(mask, m_band)) or not m_band.any():
            continue
        mask = m_new
        sid = len(scene.rings)
        inside = (parts[:, 0] > -parts[:, 2]) & (parts[:, 0] < w + parts[:, 2]) & \
                 (parts[:, 1] > -parts[:, 2]) & (parts[:, 1] < h + parts[:, 2])
        ylds = 1.0 + v["particle_yield_spread"] * rng.standard_normal(len(parts))
        for (x, y, r), yl in zip(parts, ylds):
            scene.particles.append((x, y, r, 0, sid, float(max(yl, 0.5))))
        rho = np.hypot(parts[:, 0] - cx, parts[:, 1] - cy)
        scene.rings.append({
            "id": sid, "type": "ring", "cx": float(cx), "cy": float(cy),
            "radius_px": float(rho.mean()), "r_inner_px": band["r_inner_px"],
            "r_outer_px": band["r_outer_px"], "coverage": band["coverage"],
            "irregularity": float(irr), "n_particles": int(inside.sum()),
            # the band measured exactly as predictions are measured (structure-level ground truth)
            "band": measure_component(*np.nonzero(m_band == 1)),
        })
        scene.labelme_shapes = trial

    # --- hard negatives and support, kept off the ring bands
    dist = cv2.distanceTransform((mask == 0).astype(np.uint8), cv2.DIST_L2, 3) if mask.any() \
        else np.full(shape, 1e6, dtype=np.float32)

    def add(parts, kind, sid=-1, yld=1.0, margin=1.5):
        if len(parts) == 0:
            return 0
        xi = np.clip(np.rint(parts[:, 0]).astype(int), 0, w - 1)
        yi = np.clip(np.rint(parts[:, 1]).astype(int), 0, h - 1)
        ok = dist[yi, xi] > parts[:, 2] + margin
        ok &= (parts[:, 0] > -parts[:, 2]) & (parts[:, 0] < w + parts[:, 2])
        ok &= (parts[:, 1] > -parts[:, 2]) & (parts[:, 1] < h + parts[:, 2])
        n_ok = int(ok.sum())
        ylds = np.maximum(yld * (1.0 + v["particle_yield_spread"] * rng.standard_normal(n_ok)), 0.5)
        kept = parts[ok]
        scene.particles.extend(zip(kept[:, 0].tolist(), kept[:, 1].tolist(), kept[:, 2].tolist(),
                                   [kind] * n_ok, [sid] * n_ok, ylds.tolist()))
        return n_ok

    diag = math.hypot(h, w)
    if rng.uniform() < v["network_prob"]:
        # Voronoi cells in a stretched frame: elongated, irregular cells with a preferred line
        # direction, as in real micrographs; round cells would be unlabelled rings.
        n_cells = max(2, int(round(v["network_cells"] * area)))
        stretch = rng.uniform(2.2, 4.0)
        theta = rng.uniform(0, np.pi)
        rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
        span = 0.75 * diag
        seeds = np.column_stack([rng.uniform(-span * stretch, span * stretch, n_cells * 4 + 4),
                                 rng.uniform(-span, span, n_cells * 4 + 4)])
        vor = Voronoi(seeds)
        verts = (vor.vertices * [1.0 / stretch, 1.0]) @ rot.T + [w / 2, h / 2]
        for a, b in vor.ridge_vertices:
            if a < 0 or b < 0:
                continue
            p, q = verts[a], verts[b]
            seg_len = float(np.hypot(*(q - p)))
            if seg_len < 4 or seg_len > 2 * diag:
                continue
            mid = (p + q) / 2 + rng.normal(0, 0.12 * seg_len) * np.array([-(q - p)[1], (q - p)[0]]) / seg_len
            t = np.linspace(0, 1, max(8, int(seg_len / 2)))[:, None]
            curve = (1 - t) ** 2 * p + 2 * (1 - t) * t * mid + t**2 * q
            lo_xy, hi_xy = curve.min(axis=0), curve.max(axis=0)
            if hi_xy[0] < -4 * r_mean or lo_xy[0] > w + 4 * r_mean or hi_xy[1] < -4 * r_mean \
                    or lo_xy[1] > h + 4 * r_mean:
                continue  # most of the network lies outside the frame: place nothing there
            n = add(particles_along(curve, False, v, r_mean, rng), 1)
            if n:
                scene.negatives.append({"type": "network_edge", "from": p.tolist(), "to": q.tolist()})
    for _ in range(max(0, int(round(v["chains"] * area)))):
        straight = rng.uniform() < 0.5
        curve = random_walk_curve(rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0, 2 * np.pi),
                                  rng.uniform(40, 0.9 * diag), 0.0 if straight else rng.uniform(0.01, 0.05), rng)
        if add(particles_along(curve, False, v, r_mean, rng), 2):
            scene.negatives.append({"type": "straight_chain" if straight else "curved_chain",
                                    "start": curve[0].tolist(), "end": curve[-1].tolist()})
    for _ in range(max(0, int(round(v["arcs"] * area)))):
        R = float(rng.uniform(rad_lo, rad_hi))
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        span = math.radians(rng.uniform(40, 190))
        a0 = rng.uniform(0, 2 * np.pi)
        th = np.linspace(a0, a0 + span, max(16, int(R * span / 0.7)))
        curve = np.column_stack([cx + R * np.cos(th), cy + R * np.sin(th)])
        if add(particles_along(curve, False, v, r_mean, rng, v["ring_radial_jitter"]), 3):
            scene.negatives.append({"type": "arc", "cx": cx, "cy": cy, "radius_px": R,
                                    "span_deg": math.degrees(span)})
    for _ in range(max(0, int(round(v["elongated_loops"] * area)))):
        R = float(rng.uniform(rad_lo, rad_hi))
        aspect = rng.uniform(2.2, 4.0)
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        curve = ring_curve(cx, cy, R, 0.0, rng, aspect=aspect, angle=rng.uniform(0, np.pi))
        if add(particles_along(curve, True, v, r_mean, rng), 4):
            scene.negatives.append({"type": "elongated_loop", "cx": cx, "cy": cy, "radius_px": R,
                                    "aspect": aspect})
    for _ in range(max(0, int(round(v["dense_clusters"] * area)))):
        n = int(rng.integers(8, 40))
        pts = [(rng.uniform(0, w), rng.uniform(0, h), r_mean)]
        for _k in range(n - 1):
            bx, by, br = pts[int(rng.integers(len(pts)))]
            r = r_mean * max(0.5, 1 + v["particle_size_spread"] * rng.normal())
            a = rng.uniform(0, 2 * np.pi)
            pts.append((bx + (br + r) * 0.9 * math.cos(a), by + (br + r) * 0.9 * math.sin(a), r))
        arr = np.array(pts)
        if add(arr, 5):
            scene.negatives.append({"type": "dense_cluster", "cx": float(arr[:, 0].mean()),
                                    "cy": float(arr[:, 1].mean()), "n": n})
    n_scatter = rng.poisson(v["scattered_per_10k_px2"] * h * w / 1e4)
    for _ in range(n_scatter):
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        k = int(rng.integers(1, 4))
        a = rng.uniform(0, 2 * np.pi)
        arr = np.array([(x + j * 1.8 * r_mean * math.cos(a), y + j * 1.8 * r_mean * math.sin(a),
                         r_mean * max(0.5, 1 + v["particle_size_spread"] * rng.normal())) for j in range(k)])
        add(arr, 6)
    for _ in range(max(0, int(round(v["big_particles"] * area)))):
        r = r_mean * rng.uniform(2.2, 4.5)
        arr = np.array([[rng.uniform(0, w), rng.uniform(0, h), r]])
        if add(arr, 7, yld=rng.uniform(1.05, 1.3), margin=2.0):
            scene.negatives.append({"type": "big_particle", "x": float(arr[0, 0]), "y": float(arr[0, 1]),
                                    "r": float(r)})
    for _ in range(max(0, int(round(v["debris"] * area)))):
        size = r_mean * rng.uniform(4, 14)
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        xi, yi = int(np.clip(cx, 0, w - 1)), int(np.clip(cy, 0, h - 1))
        if dist[yi, xi] <= size * 1.6 + 2:
            continue
        poly = ring_curve(cx, cy, size, 0.35, rng, n=24, aspect=rng.uniform(1, 2.5), angle=rng.uniform(0, np.pi))
        scene.debris.append((poly, size * rng.uniform(0.3, 0.6), rng.uniform(0.8, 1.15)))
        scene.negatives.append({"type": "debris", "cx": cx, "cy": cy, "size_px": size})
    for _ in range(v["flakes"]):
        # a flake is a large polygon whose edge crosses the frame: its step shows as a bright ridge
        cx, cy = rng.uniform(-0.3 * w, 1.3 * w), rng.uniform(-0.3 * h, 1.3 * h)
        size = rng.uniform(0.3, 0.8) * diag
        n_vert = int(rng.integers(4, 7))
        ang = np.sort(rng.uniform(0, 2 * np.pi, n_vert))
        rad = size * rng.uniform(0.5, 1.0, n_vert)
        poly = np.column_stack([cx + rad * np.cos(ang), cy + rad * np.sin(ang)])
        scene.flakes.append((poly, rng.uniform(1.5, 4.0), rng.uniform(0.05, 0.35)))
        scene.negatives.append({"type": "flake_edge"})
    for _ in range(v["pits"]):
        scene.pits.append((rng.uniform(0, w), rng.uniform(0, h), rng.uniform(2, 10) * r_mean / 2,
                           rng.uniform(0.1, 0.35)))
    return scene, mask


def _paint_band(mask: np.ndarray, shapes: list[dict]):
    """(mask with ``shapes`` painted over it, mask of ``shapes`` alone), both full size.

    labelme paints in order, so painting new shapes over the current mask equals
    rasterising the whole list. Only the shapes' bounding box is rasterised (PIL's
    rasterisation does not change under integer shifts), which keeps this cheap.
    """
    h, w = mask.shape
    pts = np.concatenate([np.asarray(sh["points"], float) for sh in shapes])
    x0, y0 = np.maximum(np.floor(pts.min(axis=0)).astype(int) - 2, 0)
    x1, y1 = np.minimum(np.ceil(pts.max(axis=0)).astype(int) + 3, [w, h])
    if x0 >= x1 or y0 >= y1:
        return None
    shifted = [dict(sh, points=(np.asarray(sh["points"], float) - [x0, y0]).tolist()) for sh in shapes]
    box = (y1 - y0, x1 - x0)
    m_band = np.zeros_like(mask)
    m_band[y0:y1, x0:x1] = labelme.rasterize({"shapes": shifted}, box)
    m_new = mask.copy()
    m_new[y0:y1, x0:x1] = labelme.rasterize({"shapes": shifted}, box, base=mask[y0:y1, x0:x1])
    return m_new, m_band


def _ring_extent(cx, cy, R, irr, r_mean, v):
    slack = 2 * irr * R + v["ring_radial_jitter"] * r_mean * 2 + 2 * r_mean + 2
    return (cx, cy, max(0.0, R - slack), R + slack)


def _fits(spec, placed) -> bool:
    cx, cy, rin, rout = spec
    for px, py, pin, pout in placed:
        d = math.hypot(cx - px, cy - py)
        if d + rout < pin:      # inside the other's hole
            continue
        if d + pout < rin:      # the other lies in this one's hole
            continue
        if d > rout + pout:     # apart
            continue
        return False
    return True


def _cut_gaps(parts, cx, cy, R, coverage, fill_px, rng):
    """Remove particles in 0-2 angular gaps so that about ``coverage`` of the ring remains."""
    missing = 1.0 - coverage
    min_gap = max(1.6 * fill_px / max(R, 1e-6), 2 * math.pi * 0.04)
    if missing * 2 * math.pi < min_gap or len(parts) == 0:
        return parts
    n_gaps = 1 if missing * 2 * math.pi < 2 * min_gap or rng.uniform() < 0.6 else 2
    total = missing * 2 * math.pi
    widths = [total] if n_gaps == 1 else [total / 2, total / 2]
    ang = np.mod(np.arctan2(parts[:, 1] - cy, parts[:, 0] - cx), 2 * math.pi)
    keep = np.ones(len(parts), dtype=bool)
    start = rng.uniform(0, 2 * math.pi)
    for i, wd in enumerate(widths):
        a0 = start + i * math.pi
        keep &= np.mod(ang - a0, 2 * math.pi) > wd
    return parts[keep]
