"""Scene model: where the support features, particles, rings and hard negatives are.

Everything here is geometry in pixel units (x right, y down, pixel centres at
integers). The rendering of a scene into an SEM image lives in ``render.py``.
Rings are the labelled class; every other particle arrangement is a hard
negative kept clear of the ring bands so that a mask pixel never lies on one.
``build_scene`` places the rings (``add_rings``), then calls each function of
``NEGATIVES`` in turn; a new kind of structure is one more ``add_*(layout)``
function appended to that dict (and, if it has a count, a ``SynthParams`` field).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from .. import labelme
from .draw import REFERENCE_FIELD_UM2, DrawnParams
RING_MAX_CLUSTER_GAP = 1.2   # particle diameters between clusters on a ring
MIN_PARTICLE_SHARE = 0.5     # of a ring band's angular extent that particles must actually cover
SHEET_REACH_NM = 500.0       # carbon sheets are placed with centres up to this far outside the frame

# particle kinds (stored in the meta file)
KINDS = ("ring", "network", "chain", "arc", "loop", "cluster", "scattered", "big", "rosette", "sheet")


@dataclass
class Scene:
    shape: tuple[int, int]
    # (N, 6): x, y, r, kind (index into KINDS), structure_id (ring id or -1), yield
    particles: np.ndarray = field(default_factory=lambda: np.zeros((0, 6)))
    rings: list = field(default_factory=list)      # dicts, see ring_band
    negatives: list = field(default_factory=list)  # dicts: type and geometry
    debris: list = field(default_factory=list)     # (polygon Nx2, height_px, yield, lumpiness); 0: faceted flake
    flakes: list = field(default_factory=list)     # sheet layers: (polygon Nx2, height_px, yield_gain)
    pits: list = field(default_factory=list)       # (x, y, radius_px, depth)
    labelme_shapes: list = field(default_factory=list)


# ------------------------------------------------------------------ curves

def particles_along_many(curves, closed: bool, r_mean: float, rng, *, cluster_size: tuple[int, int],
                         cluster_gap: float, size_spread: float, width_jitter: float, radial_jitter: float = 0.0,
                         rows=1):
    """Clusters of touching particles along several polylines at once, with gaps between clusters.

    Returns an (M, 3) array of x, y, radius and the (M,) index of the curve each
    particle sits on. ``r_mean``: mean particle radius (px); ``cluster_size``: (lo, hi)
    particles per cluster; ``cluster_gap``: mean gap between clusters, in particle
    diameters; ``size_spread``: relative std of the radius; ``width_jitter``: sideways
    scatter about the line, in radii; ``radial_jitter``: sideways offset of whole
    clusters, in mean radii; ``rows``: particles side by side across the line (an int, or
    one per curve): a chain 1-4 particles wide packs its clusters in a zig-zag of touching
    particles. Particles in real micrographs sit on lines in clumps of 2-6 (per row), not
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
    lo, hi = cluster_size
    gap_px = cluster_gap * 2 * r_mean
    per_cluster = r_mean * (1.75 * (lo + hi) / 2 + 1) + gap_px  # mean arc length a cluster uses
    n_clu = (length / max(per_cluster, 0.5) * 1.3).astype(np.int64) + 3
    rows_c = np.broadcast_to(np.asarray(rows, np.int64), (n_curves,))
    # each cluster is 1..rows of its chain wide: chains of touching clumps, not rigid bands
    rows_k = np.ones(int(n_clu.sum()), np.int64) if (rows_c == 1).all() else \
        np.floor(rng.uniform(0, 1, int(n_clu.sum())) * np.repeat(rows_c, n_clu)).astype(np.int64) + 1
    sizes = rng.integers(lo, hi + 1, int(n_clu.sum())) * rows_k
    n = int(sizes.sum())
    r = r_mean * np.maximum(0.45, 1.0 + size_spread * rng.standard_normal(n))
    within = rng.uniform(0.75, 1.0, n)
    gaps = rng.uniform(0.5, 1.5, len(sizes)) * gap_px
    offs = rng.normal(0.0, radial_jitter * r_mean, len(sizes)) if radial_jitter > 0 else np.zeros(len(sizes))
    side = rng.uniform(-1, 1, n) * width_jitter * r
    clu_rows = np.repeat(rows_k, sizes)                               # rows of each particle's cluster
    lead = rng.uniform(0, gap_px + r_mean, n_curves)
    clu_start = np.concatenate([[0], np.cumsum(sizes)[:-1]])         # first particle of each cluster
    curve_first = clu_start[np.concatenate([[0], np.cumsum(n_clu)[:-1]])]
    step = np.empty(n)
    step[1:] = (r[:-1] + r[1:]) * within[1:] / clu_rows[1:]
    if (rows_k > 1).any():  # rows side by side: a random row within its cluster sets the offset
        row = np.floor(rng.uniform(0, 1, n) * clu_rows)
        side += (row - (clu_rows - 1) / 2) * 1.75 * r_mean
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
    k = np.minimum(np.maximum(np.searchsorted(s_pts, sg, side="right") - 1, 0), len(seg) - 1)
    t = seg[k] / np.maximum(seglen[k], 1e-9)[:, None]
    return np.column_stack([x - t[:, 1] * off, y + t[:, 0] * off, r]), cid


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
    k = int(min(max(round(2 * math.pi * radius / 2.0), 36), 360))
    width = 2 * math.pi / k
    inner = np.full(k, np.inf)
    outer = np.full(k, -np.inf)
    dx, dy = parts[:, 0] - cx, parts[:, 1] - cy
    rho = np.hypot(dx, dy)
    ang = np.mod(np.arctan2(dy, dx), 2 * math.pi)
    half = np.arcsin(np.minimum(np.maximum(parts[:, 2] / np.maximum(rho, 1e-6), 0), 1))
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
    shift = int(np.argmax(covered))
    c = np.concatenate([covered[shift:], covered[:shift], [True]])   # rolled to start and end on True
    starts = np.flatnonzero(c[:-1] & ~c[1:]) + 1
    ends = np.flatnonzero(~c[:-1] & c[1:]) + 1
    return [(int((s + shift) % k), int(e - s)) for s, e in zip(starts, ends)]


def _full_runs(covered: np.ndarray):
    """Index arrays of circular runs of True, each in angular order."""
    k = len(covered)
    if covered.all():
        return [np.arange(k)]
    shift = int(np.argmin(covered))
    c = np.concatenate([covered[shift:], covered[:shift], [False]])  # rolled to start and end on False
    starts = np.flatnonzero(~c[:-1] & c[1:]) + 1
    ends = np.flatnonzero(c[:-1] & ~c[1:]) + 1
    return [(np.arange(s, e) + shift) % k for s, e in zip(starts, ends)]


# ------------------------------------------------------------------ scene building

class Layout:
    """A scene under construction: its drawn parameters, random stream, ring mask and particle table.

    Rings go first (``add_rings``); then ``distance_to_rings`` is fixed, and every hard negative
    is placed through ``keep_clear``/``add_curves``, which drop particles that would touch a ring band
    or, except loose scattered particles, lie in a ring's interior: a ring is a loop around empty
    support (labelled rings of the references: 0-2% of the interior covered), so no chain, network
    edge, cluster, sheet or debris crosses it.
    """

    def __init__(self, d: DrawnParams, rng: np.random.Generator):
        self.d, self.rng = d, rng
        self.h, self.w = d.shape_hw
        self.r_mean = d.particle_radius_px
        self.scene = Scene(shape=d.shape_hw)
        self.mask = np.zeros(d.shape_hw, dtype=np.uint8)
        self.chunks: list[np.ndarray] = []   # (M, 6): x, y, r, kind, structure_id, yield
        self.dist: np.ndarray | None = None  # px to the nearest ring band, set by ``fix_ring_bands``
        self.interior: np.ndarray | None = None  # the empty discs inside the rings, set with it

    def count(self, per_reference_field: float) -> int:
        """How many of a structure with ``per_reference_field`` per 0.1 um^2 this frame holds: a Poisson
        draw with that density times the field (hard negatives are physical densities; rounding the
        mean instead would give a x200k frame, a quarter of 0.1 um^2, none of a kind drawn once or
        twice per 0.1 um^2 and one of a kind drawn three times, far from its density)."""
        return int(self.rng.poisson(max(0.0, per_reference_field * self.d.field_units)))

    def particles(self, curves, closed: bool, radial_jitter: float = 0.0, cluster_gap: float | None = None,
                  rows=None):
        """Clusters of particles along ``curves`` with this image's cluster sizes, gaps and scatter;
        ``rows`` (default: drawn per curve from ``chain_width_particles``) particles side by side."""
        d = self.d
        if rows is None:
            lo, hi = d.chain_width_range
            rows = self.rng.integers(lo, hi + 1, len(curves))
        return particles_along_many(curves, closed, self.r_mean, self.rng, cluster_size=d.cluster_size_range,
                                    cluster_gap=d.cluster_gap if cluster_gap is None else cluster_gap,
                                    size_spread=d.particle_size_spread, width_jitter=d.line_width_jitter,
                                    radial_jitter=radial_jitter, rows=rows)

    def fix_ring_bands(self) -> None:
        self.dist = cv2.distanceTransform((self.mask == 0).astype(np.uint8), cv2.DIST_L2, 3) if self.mask.any() \
            else np.full(self.d.shape_hw, 1e6, dtype=np.float32)
        self.interior = np.zeros(self.d.shape_hw, dtype=np.uint8)
        for ring in self.scene.rings:
            cv2.circle(self.interior, (int(round(ring["cx"])), int(round(ring["cy"]))),
                       max(0, int(ring["r_inner_px"])), 1, -1)

    def keep_clear(self, parts, kind: str, yld: float = 1.0, margin: float = 1.5) -> np.ndarray:
        """Add the particles clear of ring bands and inside the frame; returns which were kept."""
        if len(parts) == 0:
            return np.zeros(0, dtype=bool)
        w, h = self.w, self.h
        x, y, r = parts[:, 0], parts[:, 1], parts[:, 2]
        xi = np.rint(x).astype(np.int64)
        yi = np.rint(y).astype(np.int64)
        np.minimum(np.maximum(xi, 0, out=xi), w - 1, out=xi)  # the nearest pixel in the frame
        np.minimum(np.maximum(yi, 0, out=yi), h - 1, out=yi)
        at = yi * w + xi
        ok = self.dist.reshape(-1)[at] > r + margin
        if kind != "scattered":
            ok &= self.interior.reshape(-1)[at] == 0
        ok &= (x > -r) & (x < w + r)
        ok &= (y > -r) & (y < h + r)
        n_ok = int(np.count_nonzero(ok))
        if n_ok:
            ylds = np.maximum(yld * (1.0 + self.d.particle_yield_spread * self.rng.standard_normal(n_ok)), 0.5)
            rows = np.empty((n_ok, 6))  # x, y, r, kind, structure_id (-1: a hard negative), yield
            rows[:, :3] = parts[ok]
            rows[:, 3] = KINDS.index(kind)
            rows[:, 4] = -1
            rows[:, 5] = ylds
            self.chunks.append(rows)
        return ok

    def add_curves(self, curves, closed: bool, kind: str, negatives: list, radial_jitter: float = 0.0) -> None:
        """Particles along all ``curves``; the negative of each curve that kept any is recorded."""
        parts, cid = self.particles(curves, closed, radial_jitter)
        kept = np.bincount(cid[self.keep_clear(parts, kind)], minlength=len(curves))
        self.scene.negatives.extend(neg for neg, n in zip(negatives, kept) if n)

    def finish(self) -> tuple[Scene, np.ndarray]:
        self.scene.particles = np.concatenate(self.chunks) if self.chunks else np.zeros((0, 6))
        return self.scene, self.mask


def build_scene(d: DrawnParams, rng: np.random.Generator) -> tuple[Scene, np.ndarray]:
    """Lay out one scene from the drawn parameters ``d``. Returns the scene and its class mask.

    Rings first (the labelled class), then every hard negative in ``NEGATIVES`` order. Rings and
    each kind of negative draw from their own stream (spawned from ``rng`` in ``NEGATIVES`` order:
    append new kinds at the end), so a change in how many structures of one kind a scene holds
    leaves every other kind where it was: two parameter sets render the same scene but for what
    they change (common random numbers, which ``nanoseg calibrate`` relies on).
    """
    streams = rng.spawn(1 + len(NEGATIVES))
    lay = Layout(d, streams[0])
    add_rings(lay)
    lay.fix_ring_bands()
    for stream, add_negative in zip(streams[1:], NEGATIVES.values()):
        lay.rng = stream
        add_negative(lay)
    return lay.finish()


# --- rings (the labelled class)

def place_rings(lay: Layout) -> list[tuple[float, float, float, float]]:
    """(cx, cy, radius, irregularity) of non-overlapping rings, some with a ring nested inside."""
    d, rng, h, w = lay.d, lay.rng, lay.h, lay.w
    lo, hi = d.ring_radius_lo_px, d.ring_radius_hi_px
    placed, specs = [], []  # extents (cx, cy, r_in, r_out) and ring specs

    def accept(cx, cy, radius, irr) -> bool:
        extent = _ring_extent(cx, cy, radius, irr, lay.r_mean, d.ring_radial_jitter)
        if not _fits(extent, placed):
            return False
        placed.append(extent)
        specs.append((cx, cy, radius, irr))
        return True

    # per 321x321 crop, and fewer when the crop covers less than 0.1 um^2 (x200k): rings are
    # physical objects too, though enriched over real micrographs; at least one per image
    n_rings = max(1 if d.rings_per_image > 0 else 0,
                  int(round(d.rings_per_image * min(d.area_units, d.field_units))))
    for _ in range(n_rings):
        for _try in range(30):
            R = float(np.exp(rng.uniform(math.log(lo), math.log(max(hi, lo + 1e-3)))))
            cx = rng.uniform(-0.15 * R, w + 0.15 * R)
            cy = rng.uniform(-0.15 * R, h + 0.15 * R)
            if accept(cx, cy, R, rng.uniform(0, d.ring_irregularity)):
                break
        else:
            continue
        if rng.uniform() < d.nested_ring_prob:
            R2 = R * rng.uniform(0.35, 0.65)
            if R2 >= lo:
                accept(cx + rng.normal(0, 0.08 * R), cy + rng.normal(0, 0.08 * R), R2,
                       rng.uniform(0, d.ring_irregularity))
    return specs


def add_rings(lay: Layout) -> None:
    """Particles and labelled bands of every placed ring, largest first (a nested ring's band is
    painted after its host's hole)."""
    d = lay.d
    # rings are denser than loose chains (clusters at most 1.2 diameters apart), so that a ring
    # reads as a ring; the band bridges the gaps between clusters but never a sixth of the circle
    gap = min(d.cluster_gap, RING_MAX_CLUSTER_GAP)
    for cx, cy, R, irr in sorted(place_rings(lay), key=lambda s: -s[2]):
        fill_px = min(2 * lay.r_mean * (gap * 1.5 + 1) + 4, max(4 * lay.r_mean, math.pi * R / 3))
        curve = ring_curve(cx, cy, R, irr, lay.rng)
        rows = int(lay.rng.integers(1, d.ring_width_particles + 1))
        parts = lay.particles([curve], True, radial_jitter=d.ring_radial_jitter, cluster_gap=gap, rows=rows)[0]
        parts = _cut_gaps(parts, cx, cy, R, d.ring_coverage, fill_px, lay.rng)
        if len(parts) < 4:
            continue
        band = ring_band(cx, cy, parts, R, fill_px)
        if band is None or band["particle_coverage"] < MIN_PARTICLE_SHARE * band["coverage"]:
            continue  # too few particles to read as a ring
        if _paint_band(lay.mask, band["shapes"]):
            _record_ring(lay, cx, cy, irr, parts, band)


def _paint_band(mask: np.ndarray, shapes: list) -> bool:
    """Paint a ring band over ``mask`` in its bounding box, as labelme paints the shapes in order;
    refused (False) where the union of bands would not equal labelme's painting."""
    painted = labelme.paint_in_box(shapes, mask.shape)
    if painted is None:
        return False
    (y0, x0), drawn = painted
    box = mask[y0:y0 + drawn.shape[0], x0:x0 + drawn.shape[1]]
    new_box = np.where(drawn == labelme.UNTOUCHED, box, drawn)
    if not (drawn == 1).any() or not np.array_equal(new_box, np.maximum(box, drawn == 1)):
        return False
    box[...] = new_box
    return True


def _record_ring(lay: Layout, cx, cy, irr, parts: np.ndarray, band: dict) -> None:
    scene, w, h = lay.scene, lay.w, lay.h
    sid = len(scene.rings)
    inside = (parts[:, 0] > -parts[:, 2]) & (parts[:, 0] < w + parts[:, 2]) & \
             (parts[:, 1] > -parts[:, 2]) & (parts[:, 1] < h + parts[:, 2])
    ylds = np.maximum(1.0 + lay.d.particle_yield_spread * lay.rng.standard_normal(len(parts)), 0.5)
    lay.chunks.append(np.column_stack([parts, np.full(len(parts), KINDS.index("ring")),
                                       np.full(len(parts), sid), ylds]))
    rho = np.hypot(parts[:, 0] - cx, parts[:, 1] - cy)
    first = len(scene.labelme_shapes)
    scene.rings.append({
        "id": sid, "type": "ring", "cx": float(cx), "cy": float(cy),
        "radius_px": float(rho.mean()), "r_inner_px": band["r_inner_px"],
        "r_outer_px": band["r_outer_px"], "coverage": band["coverage"],
        "irregularity": float(irr), "n_particles": int(inside.sum()),
        # this ring's own labelme shapes, [first, last): structure-level ground truth measures
        # them exactly as predictions are measured (``rings_from_meta``)
        "shapes": [first, first + len(band["shapes"])],
    })
    scene.labelme_shapes = scene.labelme_shapes + band["shapes"]


# --- hard negatives (class 0), each kept off the ring bands

def add_network(lay: Layout) -> None:
    """Voronoi cells in a stretched frame: elongated, irregular cells with a preferred line
    direction, as in real micrographs; or (``polygon_network_prob``) unstretched polygonal cells
    with straight edges, whose corners tell them from the (round) rings. Never labelled."""
    d, rng, h, w = lay.d, lay.rng, lay.h, lay.w
    if not rng.uniform() < d.network_prob:
        return
    diag = math.hypot(h, w)
    polygonal = rng.uniform() < d.polygon_network_prob
    stretch = rng.uniform(1.0, 1.4) if polygonal else rng.uniform(2.2, 4.0)
    bow = 0.03 if polygonal else 0.12
    theta = rng.uniform(0, np.pi)
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    span = 0.75 * diag
    # seeds at network_cells per 0.1 um^2 over the (2 span)^2 px the seeds cover in the frame
    per_px2 = d.network_cells * d.scale_nm_per_px**2 / (REFERENCE_FIELD_UM2 * 1e6)
    n_seeds = max(5, int(round(per_px2 * 4 * span * span)))  # a few edges cross even a x200k frame
    seeds = np.column_stack([rng.uniform(-span * stretch, span * stretch, n_seeds),
                             rng.uniform(-span, span, n_seeds)])
    p, q = voronoi_edges(seeds)
    to_frame = np.array([[1.0 / stretch, 0.0], [0.0, 1.0]]) @ rot.T
    p, q = p @ to_frame + [w / 2, h / 2], q @ to_frame + [w / 2, h / 2]
    seg_len = np.hypot(*(q - p).T)
    ok = (seg_len >= 4) & (seg_len <= 2 * diag)
    p, q, seg_len = p[ok], q[ok], seg_len[ok]
    # each edge bows sideways: a quadratic Bezier through a jittered midpoint
    perp = np.column_stack([-(q - p)[:, 1], (q - p)[:, 0]]) / seg_len[:, None]
    mid = (p + q) / 2 + rng.normal(0, bow * seg_len)[:, None] * perp
    n_pts = np.maximum(8, (seg_len / 2).astype(np.int64))
    e = np.repeat(np.arange(len(p)), n_pts)
    first = np.cumsum(n_pts) - n_pts
    t = ((np.arange(len(e)) - first[e]) / (n_pts[e] - 1))[:, None]
    pts = (1 - t) ** 2 * p[e] + 2 * (1 - t) * t * mid[e] + t**2 * q[e]
    if not len(pts):
        return
    lo_x, lo_y = (np.minimum.reduceat(pts[:, i], first) for i in (0, 1))
    hi_x, hi_y = (np.maximum.reduceat(pts[:, i], first) for i in (0, 1))
    # edges outside the frame get no particles
    m = 4 * lay.r_mean
    seen = (hi_x >= -m) & (lo_x <= w + m) & (hi_y >= -m) & (lo_y <= h + m)
    curves = np.split(pts[seen[e]], np.cumsum(n_pts[seen])[:-1])
    negs = [{"type": "network_edge", "from": ab[:2], "to": ab[2:]} for ab in np.column_stack([p, q])[seen].tolist()]
    lay.add_curves(curves, False, "network", negs)


def add_chains(lay: Layout) -> None:
    """Open straight or curved chains."""
    rng, h, w = lay.rng, lay.h, lay.w
    diag = math.hypot(h, w)
    curves, negs = [], []
    for _ in range(lay.count(lay.d.chains)):
        straight = rng.uniform() < 0.5
        curve = random_walk_curve(rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0, 2 * np.pi),
                                  rng.uniform(40, 0.9 * diag), 0.0 if straight else rng.uniform(0.01, 0.05), rng)
        curves.append(curve)
        negs.append({"type": "straight_chain" if straight else "curved_chain",
                     "start": curve[0].tolist(), "end": curve[-1].tolist()})
    lay.add_curves(curves, False, "chain", negs)


def add_arcs(lay: Layout) -> None:
    """Short arcs (40-190 deg) of ring-like particles: rings' look-alikes that are not closed."""
    d, rng, h, w = lay.d, lay.rng, lay.h, lay.w
    curves, negs = [], []
    for _ in range(lay.count(d.arcs)):
        R = float(rng.uniform(d.ring_radius_lo_px, d.ring_radius_hi_px))
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        span = math.radians(rng.uniform(40, 190))
        a0 = rng.uniform(0, 2 * np.pi)
        th = np.linspace(a0, a0 + span, max(16, int(R * span / 0.7)))
        curves.append(np.column_stack([cx + R * np.cos(th), cy + R * np.sin(th)]))
        negs.append({"type": "arc", "cx": cx, "cy": cy, "radius_px": R, "span_deg": math.degrees(span)})
    lay.add_curves(curves, False, "arc", negs, d.ring_radial_jitter)


def add_elongated_loops(lay: Layout) -> None:
    """Closed loops far from round (aspect 2.2-4)."""
    d, rng, h, w = lay.d, lay.rng, lay.h, lay.w
    curves, negs = [], []
    for _ in range(lay.count(d.elongated_loops)):
        R = float(rng.uniform(d.ring_radius_lo_px, d.ring_radius_hi_px))
        aspect = rng.uniform(2.2, 4.0)
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        curves.append(ring_curve(cx, cy, R, 0.0, rng, aspect=aspect, angle=rng.uniform(0, np.pi)))
        negs.append({"type": "elongated_loop", "cx": cx, "cy": cy, "radius_px": R, "aspect": aspect})
    lay.add_curves(curves, True, "loop", negs)


def add_dense_clusters(lay: Layout) -> None:
    """Compact clusters of 8-40 adhering particles."""
    d, rng = lay.d, lay.rng
    for _ in range(lay.count(d.dense_clusters)):
        arr = _dense_cluster(rng.uniform(0, lay.w), rng.uniform(0, lay.h), int(rng.integers(8, 40)), lay.r_mean,
                             d.particle_size_spread, rng)
        if lay.keep_clear(arr, "cluster").any():
            lay.scene.negatives.append({"type": "dense_cluster", "cx": float(arr[:, 0].mean()),
                                        "cy": float(arr[:, 1].mean()), "n": len(arr)})


def add_scattered(lay: Layout) -> None:
    """Detached particles: singles, pairs and triples in a line."""
    d, rng, h, w = lay.d, lay.rng, lay.h, lay.w
    n_scatter = int(rng.poisson(d.scattered_per_um2 * d.field_um2))
    if not n_scatter:
        return
    xy = rng.uniform(0, 1, (n_scatter, 2)) * [w, h]
    k = rng.integers(1, 4, n_scatter)
    a = rng.uniform(0, 2 * np.pi, n_scatter)
    j = np.arange(k.sum()) - np.repeat(np.cumsum(k) - k, k)          # position within its group
    g = np.repeat(np.arange(n_scatter), k)
    r = lay.r_mean * np.maximum(0.5, 1 + d.particle_size_spread * rng.standard_normal(len(g)))
    step = j * 1.8 * lay.r_mean
    lay.keep_clear(np.column_stack([xy[g, 0] + step * np.cos(a[g]), xy[g, 1] + step * np.sin(a[g]), r]),
                   "scattered")


def add_big_particles(lay: Layout) -> None:
    """Large bright particles (2.2-4.5 particle radii)."""
    rng = lay.rng
    for _ in range(lay.count(lay.d.big_particles)):
        r = lay.r_mean * rng.uniform(2.2, 4.5)
        arr = np.array([[rng.uniform(0, lay.w), rng.uniform(0, lay.h), r]])
        if lay.keep_clear(arr, "big", yld=rng.uniform(1.05, 1.3), margin=2.0).any():
            lay.scene.negatives.append({"type": "big_particle", "x": float(arr[0, 0]), "y": float(arr[0, 1]),
                                        "r": float(r)})


def add_debris(lay: Layout) -> None:
    """Large bright irregular debris (a lumpy polygon, rendered as a bump of the support)."""
    rng, h, w = lay.rng, lay.h, lay.w
    for _ in range(lay.count(lay.d.debris)):
        size = lay.r_mean * rng.uniform(4, 14)
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        xi, yi = int(min(max(cx, 0), w - 1)), int(min(max(cy, 0), h - 1))
        if lay.dist[yi, xi] <= size * 1.6 + 2:
            continue
        poly = ring_curve(cx, cy, size, 0.35, rng, n=24, aspect=rng.uniform(1, 2.5), angle=rng.uniform(0, np.pi))
        lay.scene.debris.append((poly, size * rng.uniform(0.3, 0.6), rng.uniform(0.8, 1.15), 0.3))
        lay.scene.negatives.append({"type": "debris", "cx": cx, "cy": cy, "size_px": size})


def add_flakes(lay: Layout) -> None:
    """Translucent carbon sheets (150-1000 nm across) lying on the support: 1-3 stacked layers,
    each a slightly smaller, shifted copy of the one below with its own step edge (a bright
    ridge) and a little more SE yield; the top layer carries its own scattered particles."""
    d, rng, h, w = lay.d, lay.rng, lay.h, lay.w
    s = d.scale_nm_per_px
    # centres over the frame and SHEET_REACH_NM around it (a sheet reaches up to its size from its
    # centre), so that a frame sees sheets at a density per um^2 whatever its field
    reach = SHEET_REACH_NM / s
    around_um2 = (w + 2 * reach) * (h + 2 * reach) * s * s / 1e6
    for _ in range(int(rng.poisson(d.sheets_per_um2 * around_um2))):
        size = rng.uniform(150, 1000) / s                       # px
        cx, cy = rng.uniform(-reach, w + reach), rng.uniform(-reach, h + reach)
        if not (-size <= cx <= w + size and -size <= cy <= h + size):
            continue                                            # too far out to reach the frame
        n_vert = int(rng.integers(4, 8))
        ang = np.sort(rng.uniform(0, 2 * np.pi, n_vert))
        rad = size * rng.uniform(0.5, 1.0, n_vert)
        poly = np.column_stack([cx + rad * np.cos(ang), cy + rad * np.sin(ang)])
        for layer in range(int(rng.integers(1, d.sheet_layers + 1))):
            if layer:
                shrink = rng.uniform(0.7, 0.95)
                shift = rng.normal(0, 0.08 * size, 2)
                poly = (poly - [cx, cy]) * shrink + [cx, cy] + shift
            lay.scene.flakes.append((poly, rng.uniform(1.5, 4.0), rng.uniform(0.03, 0.2)))
        lay.scene.negatives.append({"type": "sheet", "cx": float(cx), "cy": float(cy), "size_px": float(size)})
        # its own particles: singles and small groups inside the top layer
        inside = _points_in_polygon(poly, rng.uniform(0, 1, (int(rng.poisson(
            d.sheet_particles_per_um2 * d.field_um2)), 2)) * [w, h], (h, w))
        if len(inside):
            r = lay.r_mean * np.maximum(0.5, 1 + d.particle_size_spread * rng.standard_normal(len(inside)))
            lay.keep_clear(np.column_stack([inside, r]), "sheet")


def _points_in_polygon(poly: np.ndarray, pts: np.ndarray, shape_hw) -> np.ndarray:
    """The rows of ``pts`` (x, y, inside the frame) that fall inside the polygon."""
    if not len(pts):
        return pts
    m = np.zeros(shape_hw, np.uint8)
    cv2.fillPoly(m, [np.round(poly * 4).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=2)
    xi = np.clip(pts[:, 0].astype(np.int64), 0, shape_hw[1] - 1)
    yi = np.clip(pts[:, 1].astype(np.int64), 0, shape_hw[0] - 1)
    return pts[m[yi, xi] > 0]


def add_thick_flakes(lay: Layout) -> None:
    """Thick faceted graphite pieces (30-200 nm): a convex polygon of 5-8 straight sides with a
    flat top and a steep bevel, so the edges show bright (SE edge effect)."""
    d, rng, h, w = lay.d, lay.rng, lay.h, lay.w
    for _ in range(int(rng.poisson(d.thick_flakes_per_um2 * d.field_um2))):
        size = rng.uniform(30, 200) / d.scale_nm_per_px / 2
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        xi, yi = int(min(max(cx, 0), w - 1)), int(min(max(cy, 0), h - 1))
        if lay.dist[yi, xi] <= size * 1.3 + 2:
            continue
        n_vert = int(rng.integers(5, 9))
        ang = np.sort(rng.uniform(0, 2 * np.pi, n_vert))
        rad = size * rng.uniform(0.6, 1.0, n_vert)
        aspect = rng.uniform(1.0, 2.0)
        a = rng.uniform(0, np.pi)
        x, y = rad * np.cos(ang), rad * np.sin(ang) / aspect
        poly = np.column_stack([cx + math.cos(a) * x - math.sin(a) * y, cy + math.sin(a) * x + math.cos(a) * y])
        # (polygon, bevel height px, yield, lumpiness): flat, brighter than the support, darker than metal
        lay.scene.debris.append((poly, max(2.0, size * rng.uniform(0.15, 0.3)), rng.uniform(0.45, 0.75), 0.0))
        lay.scene.negatives.append({"type": "thick_flake", "cx": cx, "cy": cy, "size_px": size})


def add_rosettes(lay: Layout) -> None:
    """Rosettes: 5-8 touching particles round a dark centre about one particle wide. Smaller than
    any labelled ring (whose radius is at least 4 particle radii), so never labelled."""
    d, rng = lay.d, lay.rng
    for _ in range(int(rng.poisson(d.rosettes_per_um2 * d.field_um2))):
        n = int(rng.integers(5, 9))
        rho = lay.r_mean / math.sin(math.pi / n) * rng.uniform(0.95, 1.1)
        cx, cy = rng.uniform(0, lay.w), rng.uniform(0, lay.h)
        th = rng.uniform(0, 2 * np.pi) + 2 * np.pi * np.arange(n) / n + rng.normal(0, 0.08, n)
        r = lay.r_mean * np.maximum(0.6, 1 + 0.5 * d.particle_size_spread * rng.standard_normal(n))
        arr = np.column_stack([cx + rho * np.cos(th), cy + rho * np.sin(th), r])
        xi, yi = int(min(max(cx, 0), lay.w - 1)), int(min(max(cy, 0), lay.h - 1))
        if lay.dist[yi, xi] <= rho + 2 * lay.r_mean + 1.5:
            continue  # whole rosettes only: one cut by a ring band would be a part-ring beside it
        if lay.keep_clear(arr, "rosette").any():
            lay.scene.negatives.append({"type": "rosette", "cx": float(cx), "cy": float(cy), "n": n})


def add_pits(lay: Layout) -> None:
    """Dark pits in the support (Gaussian dips, 1-5 particle radii wide), per 0.1 um^2."""
    rng = lay.rng
    for _ in range(lay.count(lay.d.pits)):
        lay.scene.pits.append((rng.uniform(0, lay.w), rng.uniform(0, lay.h), rng.uniform(2, 10) * lay.r_mean / 2,
                               rng.uniform(0.1, 0.35)))


#: every hard negative, in the order they are laid out (part of the random stream: append new kinds)
NEGATIVES = {
    "network": add_network,
    "chains": add_chains,
    "arcs": add_arcs,
    "elongated_loops": add_elongated_loops,
    "dense_clusters": add_dense_clusters,
    "scattered": add_scattered,
    "big_particles": add_big_particles,
    "debris": add_debris,
    "flakes": add_flakes,
    "pits": add_pits,
    "thick_flakes": add_thick_flakes,
    "rosettes": add_rosettes,
}


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


def _ring_extent(cx, cy, R, irr, r_mean, radial_jitter):
    """(cx, cy, inner, outer): the annulus a ring's particles can reach."""
    slack = 2 * irr * R + radial_jitter * r_mean * 2 + 2 * r_mean + 2
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
