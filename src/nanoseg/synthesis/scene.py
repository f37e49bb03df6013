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

from ..data import labelme

REFERENCE_CROP_PX = 321
RING_MAX_CLUSTER_GAP = 1.2   # particle diameters between clusters on a ring
MIN_PARTICLE_SHARE = 0.5     # of a ring band's angular extent that particles must actually cover

# particle kinds (stored in the meta file)
KINDS = ("ring", "network", "chain", "arc", "loop", "cluster", "scattered", "big")


@dataclass
class Scene:
    shape: tuple[int, int]
    # (N, 6): x, y, r, kind (index into KINDS), structure_id (ring id or -1), yield
    particles: np.ndarray = field(default_factory=lambda: np.zeros((0, 6)))
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

def particles_along_many(curves, closed: bool, v: dict, r_mean: float, rng, radial_jitter: float = 0.0):
    """Clusters of touching particles along several polylines at once, with gaps between clusters.

    Returns an (M, 3) array of x, y, radius and the (M,) index of the curve each
    particle sits on. Cluster sizes, gaps and scatter come from ``v`` (the drawn
    parameters): particles in real micrographs sit on lines in clumps of 2-6, not
    as evenly spaced beads. All curves share one set of random draws and one
    cumulative sum of particle-to-particle and cluster-to-cluster steps, which
    restarts at each curve: a network of 30 edges costs about what one edge costs.
    """
    curves = [np.vstack([c, c[:1]]) if closed else np.asarray(c, float) for c in curves]
    if not curves:
        return np.zeros((0, 3)), np.zeros(0, dtype=np.int64)
    pts = np.concatenate(curves)
    counts = np.array([len(c) for c in curves])
    n_curves = len(counts)
    seg = np.diff(pts, axis=0)
    seglen = np.hypot(seg[:, 0], seg[:, 1])
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])          # first point of each curve
    seglen[first[1:] - 1] = 1.0                                      # the jump between curves: never sampled
    s_pts = np.concatenate([[0.0], np.cumsum(seglen)])
    s0 = s_pts[first]
    length = s_pts[first + counts - 1] - s0
    lo, hi = v["cluster_size_range"]
    gap_px = v["cluster_gap"] * 2 * r_mean
    per_cluster = r_mean * (1.75 * (lo + hi) / 2 + 1) + gap_px  # mean arc length a cluster uses
    n_clu = (length / max(per_cluster, 0.5) * 1.3).astype(np.int64) + 3
    sizes = rng.integers(lo, hi + 1, int(n_clu.sum()))
    n = int(sizes.sum())
    r = r_mean * np.maximum(0.45, 1.0 + v["particle_size_spread"] * rng.standard_normal(n))
    within = rng.uniform(0.75, 1.0, n)
    gaps = rng.uniform(0.5, 1.5, len(sizes)) * gap_px
    offs = rng.normal(0.0, radial_jitter * r_mean, len(sizes)) if radial_jitter > 0 else np.zeros(len(sizes))
    side = rng.uniform(-1, 1, n) * v["line_width_jitter"] * r
    lead = rng.uniform(0, gap_px + r_mean, n_curves)
    clu_start = np.concatenate([[0], np.cumsum(sizes)[:-1]])         # first particle of each cluster
    curve_first = clu_start[np.concatenate([[0], np.cumsum(n_clu)[:-1]])]
    step = np.empty(n)
    step[1:] = (r[:-1] + r[1:]) * within[1:]
    step[clu_start[1:]] = r[clu_start[1:] - 1] + r_mean + gaps[:-1]  # jump to the next cluster
    step[curve_first] = lead
    cum = np.cumsum(step)
    cid = np.repeat(np.repeat(np.arange(n_curves), n_clu), sizes)
    s = cum - (cum[curve_first] - lead)[cid]                          # arc length within its own curve
    keep = s < length[cid]
    if not keep.any():
        return np.zeros((0, 3)), np.zeros(0, dtype=np.int64)
    s, r, cid = s[keep], r[keep], cid[keep]
    off = (np.repeat(offs, sizes) + side)[keep]
    sg = s + s0[cid]
    x = np.interp(sg, s_pts, pts[:, 0])
    y = np.interp(sg, s_pts, pts[:, 1])
    k = np.clip(np.searchsorted(s_pts, sg, side="right") - 1, 0, len(seg) - 1)
    t = seg[k] / np.maximum(seglen[k], 1e-9)[:, None]
    return np.column_stack([x - t[:, 1] * off, y + t[:, 0] * off, r]), cid


def particles_along(pts: np.ndarray, closed: bool, v: dict, r_mean: float, rng,
                    radial_jitter: float = 0.0) -> np.ndarray:
    """(M, 3) x, y, radius of particle clusters along one polyline (see ``particles_along_many``)."""
    return particles_along_many([pts], closed, v, r_mean, rng, radial_jitter)[0]


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


def voronoi_edges(seeds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """End points (p, q), each (E, 2), of the finite edges of the Voronoi diagram of ``seeds``.

    OpenCV's Delaunay subdivision gives every cell as a polygon; cells at the rim
    reach out to far-away virtual vertices, so only edges whose both ends lie near
    the seeds are kept (those are the finite ridges). Each inner edge is shared by
    two cells and is returned once, in a fixed order.
    """
    lo, hi = seeds.min(axis=0) - 1, seeds.max(axis=0) + 1
    sub = cv2.Subdiv2D((int(math.floor(lo[0])), int(math.floor(lo[1])),
                        int(math.ceil(hi[0] - lo[0])) + 1, int(math.ceil(hi[1] - lo[1])) + 1))
    sub.insert([(float(x), float(y)) for x, y in seeds])
    facets, _ = sub.getVoronoiFacetList([])
    if not facets:
        return np.zeros((0, 2)), np.zeros((0, 2))
    a = np.concatenate([np.asarray(f, np.float64).reshape(-1, 2) for f in facets])
    b = np.concatenate([np.roll(np.asarray(f, np.float64).reshape(-1, 2), -1, axis=0) for f in facets])
    reach = 2 * float((hi - lo).max())
    centre = (lo + hi) / 2
    near = (np.abs(a - centre).max(axis=1) < reach) & (np.abs(b - centre).max(axis=1) < reach)
    a, b = np.round(a[near], 3), np.round(b[near], 3)
    swap = (a[:, 0] > b[:, 0]) | ((a[:, 0] == b[:, 0]) & (a[:, 1] > b[:, 1]))
    ab = np.where(swap[:, None], np.hstack([b, a]), np.hstack([a, b]))
    ab = np.unique(ab[(ab[:, 0] != ab[:, 2]) | (ab[:, 1] != ab[:, 3])], axis=0)
    return ab[:, :2], ab[:, 2:]


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
    b0 = np.floor((ang - half) / width).astype(np.int64)
    nb = np.floor((ang + half) / width).astype(np.int64) - b0 + 1     # bins each particle spans
    which = np.repeat(np.arange(len(parts)), nb)
    idx = (b0[which] + np.arange(len(which)) - np.repeat(np.cumsum(nb) - nb, nb)) % k
    np.minimum.at(inner, idx, (rho - parts[:, 2] - 0.5)[which])
    np.maximum.at(outer, idx, (rho + parts[:, 2] + 0.5)[which])
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
    c = np.concatenate([np.roll(covered, -shift), [True]])   # starts and ends on True
    starts = np.flatnonzero(c[:-1] & ~c[1:]) + 1
    ends = np.flatnonzero(~c[:-1] & c[1:]) + 1
    return [(int((s + shift) % k), int(e - s)) for s, e in zip(starts, ends)]


def _full_runs(covered: np.ndarray):
    """Index arrays of circular runs of True, each in angular order."""
    k = len(covered)
    if covered.all():
        return [np.arange(k)]
    shift = int(np.flatnonzero(~covered)[0])
    c = np.concatenate([np.roll(covered, -shift), [False]])  # starts and ends on False
    starts = np.flatnonzero(~c[:-1] & c[1:]) + 1
    ends = np.flatnonzero(c[:-1] & ~c[1:]) + 1
    return [(np.arange(s, e) + shift) % k for s, e in zip(starts, ends)]


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
    chunks = []  # (M, 6) arrays: x, y, r, kind, structure_id, yield

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
        # paint the band over the mask in its bounding box, as labelme paints the shapes in order
        painted = labelme.paint_in_box(band["shapes"], shape)
        if painted is None:
            continue
        (y0, x0), drawn = painted
        box = mask[y0:y0 + drawn.shape[0], x0:x0 + drawn.shape[1]]
        new_box = np.where(drawn == labelme.UNTOUCHED, box, drawn)
        # keep labels order-independent: the union of bands must equal labelme's painting
        if not (drawn == 1).any() or not np.array_equal(new_box, np.maximum(box, drawn == 1)):
            continue
        box[...] = new_box
        sid = len(scene.rings)
        inside = (parts[:, 0] > -parts[:, 2]) & (parts[:, 0] < w + parts[:, 2]) & \
                 (parts[:, 1] > -parts[:, 2]) & (parts[:, 1] < h + parts[:, 2])
        ylds = np.maximum(1.0 + v["particle_yield_spread"] * rng.standard_normal(len(parts)), 0.5)
        chunks.append(np.column_stack([parts, np.full(len(parts), KINDS.index("ring")),
                                       np.full(len(parts), sid), ylds]))
        rho = np.hypot(parts[:, 0] - cx, parts[:, 1] - cy)
        first = len(scene.labelme_shapes)
        scene.rings.append({
            "id": sid, "type": "ring", "cx": float(cx), "cy": float(cy),
            "radius_px": float(rho.mean()), "r_inner_px": band["r_inner_px"],
            "r_outer_px": band["r_outer_px"], "coverage": band["coverage"],
            "irregularity": float(irr), "n_particles": int(inside.sum()),
            # this ring's own labelme shapes, [first, last): structure-level ground truth measures
            # them exactly as predictions are measured (``inference.structures.rings_from_meta``)
            "shapes": [first, first + len(band["shapes"])],
        })
        scene.labelme_shapes = scene.labelme_shapes + band["shapes"]

    # --- hard negatives and support, kept off the ring bands
    dist = cv2.distanceTransform((mask == 0).astype(np.uint8), cv2.DIST_L2, 3) if mask.any() \
        else np.full(shape, 1e6, dtype=np.float32)

    def add(parts, kind, yld=1.0, margin=1.5) -> np.ndarray:
        """Keep the particles clear of ring bands and inside the frame; returns which were kept."""
        if len(parts) == 0:
            return np.zeros(0, dtype=bool)
        xi = np.clip(np.rint(parts[:, 0]).astype(np.int64), 0, w - 1)
        yi = np.clip(np.rint(parts[:, 1]).astype(np.int64), 0, h - 1)
        ok = dist[yi, xi] > parts[:, 2] + margin
        ok &= (parts[:, 0] > -parts[:, 2]) & (parts[:, 0] < w + parts[:, 2])
        ok &= (parts[:, 1] > -parts[:, 2]) & (parts[:, 1] < h + parts[:, 2])
        n_ok = int(ok.sum())
        if n_ok:
            ylds = np.maximum(yld * (1.0 + v["particle_yield_spread"] * rng.standard_normal(n_ok)), 0.5)
            chunks.append(np.column_stack([parts[ok], np.full(n_ok, kind), np.full(n_ok, -1), ylds]))
        return ok

    def add_curves(curves, closed, kind, negatives, radial_jitter=0.0):
        """Particles along all ``curves``; the negative of each curve that kept any is recorded."""
        parts, cid = particles_along_many(curves, closed, v, r_mean, rng, radial_jitter)
        kept = np.bincount(cid[add(parts, kind)], minlength=len(curves))
        scene.negatives.extend(neg for neg, n in zip(negatives, kept) if n)

    diag = math.hypot(h, w)
    margin_px = 4 * r_mean
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
        p, q = voronoi_edges(seeds)
        to_frame = np.array([[1.0 / stretch, 0.0], [0.0, 1.0]]) @ rot.T
        p, q = p @ to_frame + [w / 2, h / 2], q @ to_frame + [w / 2, h / 2]
        seg_len = np.hypot(*(q - p).T)
        ok = (seg_len >= 4) & (seg_len <= 2 * diag)
        p, q, seg_len = p[ok], q[ok], seg_len[ok]
        # each edge bows sideways: a quadratic Bezier through a jittered midpoint
        perp = np.column_stack([-(q - p)[:, 1], (q - p)[:, 0]]) / seg_len[:, None]
        mid = (p + q) / 2 + rng.normal(0, 0.12 * seg_len)[:, None] * perp
        n_pts = np.maximum(8, (seg_len / 2).astype(np.int64))
        e = np.repeat(np.arange(len(p)), n_pts)
        first = np.cumsum(n_pts) - n_pts
        t = ((np.arange(len(e)) - first[e]) / (n_pts[e] - 1))[:, None]
        pts = (1 - t) ** 2 * p[e] + 2 * (1 - t) * t * mid[e] + t**2 * q[e]
        if len(pts):
            lo_x, lo_y = (np.minimum.reduceat(pts[:, i], first) for i in (0, 1))
            hi_x, hi_y = (np.maximum.reduceat(pts[:, i], first) for i in (0, 1))
            # edges outside the frame get no particles
            seen = (hi_x >= -margin_px) & (lo_x <= w + margin_px) & (hi_y >= -margin_px) & (lo_y <= h + margin_px)
            curves = np.split(pts[seen[e]], np.cumsum(n_pts[seen])[:-1])
            negs = [{"type": "network_edge", "from": ab[:2], "to": ab[2:]}
                    for ab in np.column_stack([p, q])[seen].tolist()]
            add_curves(curves, False, KINDS.index("network"), negs)
    curves, negs = [], []
    for _ in range(max(0, int(round(v["chains"] * area)))):
        straight = rng.uniform() < 0.5
        curve = random_walk_curve(rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0, 2 * np.pi),
                                  rng.uniform(40, 0.9 * diag), 0.0 if straight else rng.uniform(0.01, 0.05), rng)
        curves.append(curve)
        negs.append({"type": "straight_chain" if straight else "curved_chain",
                     "start": curve[0].tolist(), "end": curve[-1].tolist()})
    add_curves(curves, False, KINDS.index("chain"), negs)
    curves, negs = [], []
    for _ in range(max(0, int(round(v["arcs"] * area)))):
        R = float(rng.uniform(rad_lo, rad_hi))
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        span = math.radians(rng.uniform(40, 190))
        a0 = rng.uniform(0, 2 * np.pi)
        th = np.linspace(a0, a0 + span, max(16, int(R * span / 0.7)))
        curves.append(np.column_stack([cx + R * np.cos(th), cy + R * np.sin(th)]))
        negs.append({"type": "arc", "cx": cx, "cy": cy, "radius_px": R, "span_deg": math.degrees(span)})
    add_curves(curves, False, KINDS.index("arc"), negs, v["ring_radial_jitter"])
    curves, negs = [], []
    for _ in range(max(0, int(round(v["elongated_loops"] * area)))):
        R = float(rng.uniform(rad_lo, rad_hi))
        aspect = rng.uniform(2.2, 4.0)
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        curves.append(ring_curve(cx, cy, R, 0.0, rng, aspect=aspect, angle=rng.uniform(0, np.pi)))
        negs.append({"type": "elongated_loop", "cx": cx, "cy": cy, "radius_px": R, "aspect": aspect})
    add_curves(curves, True, KINDS.index("loop"), negs)
    for _ in range(max(0, int(round(v["dense_clusters"] * area)))):
        arr = _dense_cluster(rng.uniform(0, w), rng.uniform(0, h), int(rng.integers(8, 40)), r_mean,
                             v["particle_size_spread"], rng)
        if add(arr, KINDS.index("cluster")).any():
            scene.negatives.append({"type": "dense_cluster", "cx": float(arr[:, 0].mean()),
                                    "cy": float(arr[:, 1].mean()), "n": len(arr)})
    # detached particles: singles, pairs and triples in a line
    n_scatter = int(rng.poisson(v["scattered_per_10k_px2"] * h * w / 1e4))
    if n_scatter:
        xy = rng.uniform(0, 1, (n_scatter, 2)) * [w, h]
        k = rng.integers(1, 4, n_scatter)
        a = rng.uniform(0, 2 * np.pi, n_scatter)
        j = np.arange(k.sum()) - np.repeat(np.cumsum(k) - k, k)          # position within its group
        g = np.repeat(np.arange(n_scatter), k)
        r = r_mean * np.maximum(0.5, 1 + v["particle_size_spread"] * rng.standard_normal(len(g)))
        step = j * 1.8 * r_mean
        add(np.column_stack([xy[g, 0] + step * np.cos(a[g]), xy[g, 1] + step * np.sin(a[g]), r]),
            KINDS.index("scattered"))
    for _ in range(max(0, int(round(v["big_particles"] * area)))):
        r = r_mean * rng.uniform(2.2, 4.5)
        arr = np.array([[rng.uniform(0, w), rng.uniform(0, h), r]])
        if add(arr, KINDS.index("big"), yld=rng.uniform(1.05, 1.3), margin=2.0).any():
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
    scene.particles = np.concatenate(chunks) if chunks else np.zeros((0, 6))
    return scene, mask


def _dense_cluster(x: float, y: float, n: int, r_mean: float, size_spread: float, rng) -> np.ndarray:
    """(n, 3) particles grown from one seed, each new one touching a random earlier one."""
    r = r_mean * np.maximum(0.5, 1 + size_spread * rng.standard_normal(n))
    r[0] = r_mean
    parent = (rng.uniform(0, 1, n) * np.arange(n)).astype(np.int64)  # parent[i] < i
    a = rng.uniform(0, 2 * np.pi, n)
    xs, ys = np.empty(n), np.empty(n)
    xs[0], ys[0] = x, y
    for i in range(1, n):  # sequential: a particle needs its parent's position
        d = (r[parent[i]] + r[i]) * 0.9
        xs[i] = xs[parent[i]] + d * math.cos(a[i])
        ys[i] = ys[parent[i]] + d * math.sin(a[i])
    return np.column_stack([xs, ys, r])


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
