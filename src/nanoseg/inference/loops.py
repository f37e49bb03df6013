"""Rings found structure first: round, empty loops of the particle chains, without a network.

A ring is a topological fact about the particle chains: a closed (or nearly closed) round loop
around an empty patch of support. This finder takes that literally instead of asking a model to
recognise rings by context:

1. **chains** (``chain_map``): bright particles from the white top-hat detector the ring rules
   use (``rings.particle_map``), gaps inside a chain bridged by a closing of ``BRIDGE_NM``, and
   lone particles and specks (under ``SPECK_NM2``) dropped, so a stray particle inside a ring does
   not hide its empty interior;
2. **candidates**: every centre of a locally largest empty disc of the chain map (a maximum of
   its distance transform) with a radius of at least ``min_radius_nm`` x 0.6;
3. **the loop** (``measure_loop``): rays cast from the centre in 72 directions find where each
   first meets a chain and where it leaves it; a circle is fitted to the mid-points of those
   crossings, robustly (crossings more than 20% off the circle are not the loop). Around every
   loop the next loop out is measured too (rays from beyond its band): a ring around a smaller
   ring (the paper's Fig. 5d) or around a piece of chain, which no ray from inside reaches;
4. **rules** (``LoopRules``), each with its reason (a loop is judged before loops around the same
   centre are made one, so a loop that breaks a rule cannot hide a ring that keeps them all):

=========================  ====================================================================
rule (default)             why
=========================  ====================================================================
coverage >= 0.75           the loop is closed or nearly: chain found on the fitted circle in at
                           least 3/4 of the directions. The labels ask for ~60% of the
                           circumference of the particle band; a chain map loses some at gaps.
max_gap <= 0.25            no open side: the largest run of directions without chain is under a
                           quarter turn (an arc or a C of chain fails).
radius >= 30 nm            smaller loops are rosettes (a few particles around a dark centre) and
                           the interstices of the chain network; the labelled rings of the four
                           references have radii of 40-150 nm.
radius <= 300 nm           larger empty regions are the spaces between chain networks.
under 50 nm or around a    a compact ring must be closed, dense and alone: network interstices
loop: coverage >= 0.9,     of the Boiko Pd films are mostly under 50 nm, and a cell bounded by
band_fill >= 0.5,          sparse chains inside more network passes the ordinary rules at that
exterior_density <= 0.25   size (on the references, lowering the radius rule to 40 nm brought
                           3-6 such cells). With these three the references gain no false loop
                           in any of the nine recording variants of ``ring_finder_baseline.py
                           --perturb``, and synthetic images 39-41 rings (74 -> 113 of 516 with
                           25 false, seed 7; 88 -> 129 with 46 -> 47 false, seed 21). A loop
                           around another loop is as doubtful (judged by the ordinary rules, 7
                           more false loops over the recording variants); held to these, it
                           finds the lobed x50k reference ring around its chain piece and no
                           false one.
exterior_density <= 0.3    a ring stands clear: the share of chain pixels in the annulus from
                           1.25 to 2 radii outside the band. Cells of a dense chain network are
                           surrounded by more network (0.3-0.5 on the references).
interior_fill <= 0.05      the interior is empty support: particles cover at most 5% of the
                           disc of 0.75 x the inner radius (labelled rings: 0.00-0.02).
interior_step <= 0.1       ... and the same support as outside: the median brightness of the bare
                           support inside differs from that in the exterior annulus by at most
                           10% of the particles' contrast (labelled rings: 0.02-0.03). A loop
                           drawn along the edge of a carbon sheet or a flake has a brighter side.
band_fill >= 0.38          the ring is a dense band of touching particles that follows its circle:
                           particles cover at least 38% of the annulus of the band's width along
                           the fitted circle (labelled rings of the references: 0.40-0.57; a
                           cleanly drawn ring: 0.88). The borders of large empty network cells
                           are sparse chains that wander in and out of any circle (the false loops
                           of the references: 0.26-0.31); on synthetic images the rule removes 20
                           of 45 false loops and 2 of 76 found rings.
=========================  ====================================================================

Everything is measured at ``WORK_NM_PER_PX`` (the image is resampled when its pixel size is
known; an image of unknown pixel size is taken to be at that scale), and rows are returned in
the image's own pixels with the same fields as ``measure.measure_structures``. The class mask
paints each ring as the references are labelled (``labelme.ring_shapes``, in the image's own pixels):
the band from the inner to the outer edge of its chain in every direction the loop was found in,
straight across its gaps, so a ring is one connected band of the mask (its chain pixels alone
fall into pieces wherever the chain has a gap). How well it does
on the labelled references, against the model's masks: ``benchmarks/ring_finder_baseline.py``
and the README ("Rings on real micrographs").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import cv2
import numpy as np
from scipy import ndimage as ndi

from .. import imaging, labelme
from ..errors import NanosegError
from .measure import PX_LENGTH_FIELDS, fit_circle
from .rings import particle_map

WORK_NM_PER_PX = 2.0  # a Pd particle (~10 nm) is ~5 px: enough to see, cheap to scan
BRIDGE_NM = 8.0  # closing diameter: gaps between touching clusters of one chain
SPECK_NM2 = 160.0  # chain pieces smaller than ~2 particles are not chains
N_RAYS = 72
THETA = np.arange(N_RAYS) * 2 * np.pi / N_RAYS  # ray directions
ON_LOOP = 0.2  # a crossing within 20% of the fitted radius belongs to the loop
MAX_NM_PER_PX = 5.0  # coarser, a ~10 nm particle is under 2 px: chains cannot be told from noise
REACH = 1.6  # rays look for the loop up to 1.6 x the empty radius
NESTED_REACH = 5.0  # ... and for a loop around a loop up to 5 x the inner loop's outer edge
NESTED_RATIO = 1.4  # loops around one centre are one ring unless their radii differ by more


@dataclass(frozen=True)
class LoopRules:
    """Thresholds of the structure-first ring finder (see the module header for each reason)."""

    min_coverage: float = 0.75
    max_gap: float = 0.25
    min_radius_nm: float = 30.0
    max_radius_nm: float = 300.0
    max_exterior_density: float = 0.3
    max_interior_fill: float = 0.05
    max_interior_step: float = 0.1
    min_band_fill: float = 0.38
    max_compact_radius_nm: float = 50.0
    min_compact_coverage: float = 0.9
    min_compact_band_fill: float = 0.5
    max_compact_exterior_density: float = 0.25


UNIT_INTERVAL_RULES = ("min_coverage", "max_gap", "max_exterior_density", "max_interior_fill", "min_band_fill",
                       "min_compact_coverage", "min_compact_band_fill", "max_compact_exterior_density")
MAX_RULE_VALUE = 1e4  # nm for the radii (a 10 um ring is no nanoparticle ring), contrast units for the step


def loop_rules(overrides: dict, *, option: str = "--loop-rule") -> LoopRules:
    """``LoopRules`` with the named thresholds replaced (``{"min_radius_nm": 40}``); a name that is
    not a rule or a value out of its range is refused naming ``option``."""
    names = [f.name for f in fields(LoopRules)]
    values = {}
    for name, value in overrides.items():
        if name not in names:
            raise NanosegError(f"{option}: {name!r} is not a loop rule (one of {', '.join(names)})")
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise NanosegError(f"{option}: {name} must be a number, not {value!r}") from None
        top = 1.0 if name in UNIT_INTERVAL_RULES else MAX_RULE_VALUE
        if not (0 <= v <= top):  # NaN fails too
            raise NanosegError(f"{option}: {name} = {value!r} is out of range (0-{top:g})")
        values[name] = v
    rules = replace(LoopRules(), **values)
    if rules.min_radius_nm > rules.max_radius_nm:
        raise NanosegError(f"{option}: min_radius_nm ({rules.min_radius_nm:g}) is above max_radius_nm "
                           f"({rules.max_radius_nm:g})")
    return rules


def chain_map(image: np.ndarray, nm_per_px: float = WORK_NM_PER_PX, *,
              particles: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(chains, particles): boolean maps of particle chains (bridged, specks removed) and of particles.

    Parameters
    ----------
    image : (H, W) uint8
        Micrograph without data bar.
    nm_per_px : float
        Its pixel size (nm/px); the bridge and speck sizes are physical.
    particles : (H, W) bool, optional
        The particle map to build the chains from (e.g. a model's, ``inference.particles``);
        default: the white top-hat detector (``rings.particle_map``).
    """
    if particles is None:
        particles = particle_map(image, nm_per_px)
    elif particles.shape != image.shape[:2]:
        raise NanosegError(f"particle map of {particles.shape} px for an image of {image.shape[:2]} px")
    particles = particles.astype(bool)
    r = max(1, int(round(BRIDGE_NM / 2 / nm_per_px)))
    closed = cv2.morphologyEx(particles.astype(np.uint8), cv2.MORPH_CLOSE,
                              cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1,) * 2))
    n, lab, stats, _ = cv2.connectedComponentsWithStats(closed, connectivity=8)
    keep = np.zeros(n, bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= SPECK_NM2 / nm_per_px**2
    return keep[lab], particles


def empty_centres(chains: np.ndarray, min_radius_px: float, max_radius_px: float) -> list[tuple[int, int, float]]:
    """Centres (x, y, empty radius in px) of locally largest empty discs, largest first, none
    within half a radius of a larger one."""
    dt = cv2.distanceTransform((~chains).astype(np.uint8), cv2.DIST_L2, 5)
    if min_radius_px > dt.max():  # no empty disc that large (and no filter larger than the image)
        return []
    size = 2 * int(min_radius_px) + 1
    peak = (dt == ndi.maximum_filter(dt, size=size)) & (dt >= min_radius_px) & (dt <= max_radius_px)
    ys, xs = np.nonzero(peak)
    order = np.argsort(-dt[ys, xs], kind="stable")
    points = [(int(xs[k]), int(ys[k]), float(dt[ys[k], xs[k]])) for k in order]
    return [points[i] for i in _apart(points)]


def _apart(points: list[tuple[float, float, float]]) -> list[int]:
    """Indices of the (x, y, radius) points, in their order, that lie farther than half the larger
    radius from every point kept before them."""
    kept: list[int] = []
    for i, (x, y, r) in enumerate(points):
        if all(math.hypot(x - points[j][0], y - points[j][1]) > 0.5 * max(r, points[j][2]) for j in kept):
            kept.append(i)
    return kept


def _crossings(chains: np.ndarray, x: float, y: float, r_from: float, r_to: float,
               cap: float) -> tuple[np.ndarray, np.ndarray]:
    """Per ray from (x, y): the radius where it first meets chain between ``r_from`` and ``r_to``
    and where it leaves it (at most ``cap`` further on); NaN: no chain in reach (px)."""
    h, w = chains.shape
    rs = np.arange(r_from, r_to + cap, 0.5)
    px = np.rint(x + np.outer(np.cos(THETA), rs)).astype(int)
    py = np.rint(y + np.outer(np.sin(THETA), rs)).astype(int)
    inside = (px >= 0) & (px < w) & (py >= 0) & (py < h)
    hit = np.zeros(px.shape, bool)
    hit[inside] = chains[py[inside], px[inside]]
    any_hit = hit.any(1)
    first = hit.argmax(1)
    r_in = np.where(any_hit, rs[first], np.nan)
    # leaving the chain: the first empty sample after the first hit (capped)
    after = np.arange(len(rs))[None, :] >= first[:, None]
    gone = after & ~hit
    leave = np.where(gone.any(1), gone.argmax(1), len(rs) - 1)
    r_out = np.where(any_hit, np.minimum(rs[leave], r_in + cap), np.nan)
    far = r_in > r_to
    return np.where(far, np.nan, r_in), np.where(far, np.nan, r_out)


def _window(shape, cx: float, cy: float, r: float):
    h, w = shape
    y0, y1 = max(0, int(cy - r)), min(h, int(cy + r) + 2)
    x0, x1 = max(0, int(cx - r)), min(w, int(cx + r) + 2)
    yy, xx = np.mgrid[y0:y1, x0:x1]
    return (slice(y0, y1), slice(x0, x1)), np.hypot(yy - cy, xx - cx)


def _interior_step(image: np.ndarray, particles: np.ndarray, inside: np.ndarray, outside: np.ndarray) -> float:
    """|support inside - support outside| / (particles - support), medians of the pixels."""
    support_in = image[inside & ~particles]
    support_out = image[outside & ~particles]
    grains = image[particles]
    if not len(support_in) or not len(support_out) or not len(grains):
        return 0.0
    background = float(np.median(support_out))
    contrast = max(float(np.median(grains)) - background, 1.0)
    return abs(float(np.median(support_in)) - background) / contrast


def measure_loop(chains: np.ndarray, particles: np.ndarray, x: float, y: float, r0: float,
                 image: np.ndarray | None = None, *, around: dict | None = None) -> dict | None:
    """The loop of chain around one empty centre, measured (px of ``chains``); None: no loop.

    With ``image`` (the micrograph at the pixels of ``chains``) the row also gets
    ``interior_step``: how much brighter or darker the support inside is than outside, in units
    of the particles' contrast over the support.

    With ``around`` (a loop this function measured), the loop sought is the next one out around
    that loop's centre: the rays start beyond its band and reach ``NESTED_REACH`` times as far,
    and what it covers (band and interior) is not part of the new loop's interior. A ring
    around a smaller ring (the paper's Fig. 5d) or around a piece of chain is found only this
    way: every ray from inside first meets what is inside. Such a row has ``encloses_loop``."""
    if around is None:
        zone = None
        r_in, r_out = _crossings(chains, x, y, 0.9 * r0, REACH * r0, 0.5 * r0)
    else:
        x, y = around["centre_x_px"], around["centre_y_px"]
        zone = around["mean_radius_px"] + around["ring_width_px"] / 2 + 1.0  # px: the inner loop's outer edge
        r_in, r_out = _crossings(chains, x, y, zone, NESTED_REACH * zone, 0.5 * zone)
    ok = np.isfinite(r_in)
    if ok.sum() < 8:
        return None
    mid = (r_in + r_out) / 2
    mx, my = x + np.cos(THETA) * mid, y + np.sin(THETA) * mid
    on = ok.copy()
    for _ in range(3):  # robust circle: drop crossings off the loop, refit
        cx, cy, _ = fit_circle(mx[on], my[on])
        d = np.hypot(mx - cx, my - cy)
        radius = float(np.median(d[on]))
        new = ok & (np.abs(d - radius) <= ON_LOOP * radius)
        if new.sum() < 8:
            return None
        on = new
    radius = float(d[on].mean())
    ang = np.sort(np.mod(np.arctan2(my[on] - cy, mx[on] - cx), 2 * np.pi))
    coverage = len(np.unique((ang / (2 * np.pi) * 36).astype(int))) / 36
    max_gap = float(np.diff(np.r_[ang, ang[0] + 2 * np.pi]).max() / (2 * np.pi))
    width = float(np.median((r_out - r_in)[on]))
    pts = np.column_stack([mx[on], my[on]]).astype(np.float32)
    (_, _), (d1, d2), angle = cv2.fitEllipse(pts)
    major, minor = max(d1, d2) / 2, min(d1, d2) / 2
    if d1 < d2:
        angle += 90
    win, rr = _window(chains.shape, cx, cy, 2 * radius)
    inner = radius - width / 2
    disc = rr <= 0.75 * inner
    if zone is not None:  # the enclosed loop and what it holds were judged as a loop of their own
        yy, xx = np.mgrid[win]
        disc &= np.hypot(xx - x, yy - y) > zone
    fill = float(particles[win][disc].mean()) if inner > 2 and disc.any() else 0.0
    ext = (rr >= radius + width / 2 + 0.25 * radius) & (rr <= 2 * radius)
    exterior = float(chains[win][ext].mean()) if ext.any() else 0.0
    band = np.abs(rr - radius) <= max(width / 2, 2.0)
    # the ring as a labeller draws it: from the inner to the outer edge of the chain in every
    # direction the loop was found in, straight across its gaps (vertices in ray order: the
    # rays start inside the loop, so each outline is a simple polygon)
    # (a chain that leaves the ring outward is not the ring: no deeper than 1.5 band widths)
    cos, sin = np.cos(THETA[on]), np.sin(THETA[on])
    edge_in, edge_out = r_in[on], np.minimum(r_out[on], r_in[on] + 1.5 * width)
    centre, half = (edge_in + edge_out) / 2, np.maximum((edge_out - edge_in) / 2, 1.0)  # one band, not pieces
    inner_xy = np.column_stack([x + cos * (centre - half), y + sin * (centre - half)])
    outer_xy = np.column_stack([x + cos * (centre + half), y + sin * (centre + half)])
    h, w = chains.shape
    step = _interior_step(image[win], particles[win], disc, ext) if image is not None else None
    return {"centre_x_px": float(cx), "centre_y_px": float(cy), "mean_radius_px": radius,
            "ring_width_px": width, "ellipse_major_px": float(major), "ellipse_minor_px": float(minor),
            "ellipse_angle_deg": float(np.mod(angle, 180)), "circularity": float(minor / major) if major else 0.0,
            "coverage": coverage, "max_gap": max_gap, "exterior_density": exterior, "interior_fill": fill, "interior_step": step,
            "band_fill": float(particles[win][band].mean()) if band.any() else 0.0,
            "area_px": _polygon_area(outer_xy) - _polygon_area(inner_xy),
            "in_frame": bool(cx - radius >= 0 and cy - radius >= 0 and cx + radius <= w and cy + radius <= h),
            "encloses_loop": zone is not None, "_outline": (inner_xy, outer_xy)}


def _polygon_area(xy: np.ndarray) -> float:
    x, y = xy[:, 0], xy[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def judge_loop(row: dict, rules: LoopRules, nm_per_px: float) -> str | None:
    """The first rule a loop breaks (None: it is a ring); sizes in nm at ``nm_per_px``. A row
    without ``in_frame`` (as ``find_loops`` returns them: those cut by the frame are dropped) is
    in the frame."""
    r_nm = row["mean_radius_px"] * nm_per_px
    compact = r_nm < rules.max_compact_radius_nm or row.get("encloses_loop", False)
    checks = (("in_frame", row.get("in_frame", True)),
              ("coverage", row["coverage"] >= rules.min_coverage),
              ("max_gap", row["max_gap"] <= rules.max_gap),
              ("min_radius", r_nm >= rules.min_radius_nm),
              ("max_radius", r_nm <= rules.max_radius_nm),
              ("exterior_density", row["exterior_density"] <= rules.max_exterior_density),
              ("interior_fill", row["interior_fill"] <= rules.max_interior_fill),
              ("interior_step", row["interior_step"] is None or row["interior_step"] <= rules.max_interior_step),
              ("band_fill", row["band_fill"] >= rules.min_band_fill),
              ("compact_coverage", not compact or row["coverage"] >= rules.min_compact_coverage),
              ("compact_band_fill", not compact or row["band_fill"] >= rules.min_compact_band_fill),
              ("compact_exterior_density", not compact or row["exterior_density"] <= rules.max_compact_exterior_density))
    return next((name for name, ok in checks if not ok), None)


def _distinct(rows: list[dict], *, besides: list[dict] = ()) -> list[dict]:
    """One loop per ring: of loops that share a centre (within half the larger radius) and a size
    (radii within ``NESTED_RATIO``), the best covered; none that is one with a loop of ``besides``
    (loops already made distinct). A loop around a smaller one is a ring of its own."""
    kept: list[dict] = list(besides)
    for row in sorted(rows, key=lambda r: -r["coverage"]):
        if not any(_same_loop(row, other) for other in kept):
            kept.append(row)
    return kept[len(besides):]


def _same_loop(a: dict, b: dict) -> bool:
    ra, rb = a["mean_radius_px"], b["mean_radius_px"]
    near = math.hypot(a["centre_x_px"] - b["centre_x_px"], a["centre_y_px"] - b["centre_y_px"]) <= 0.5 * max(ra, rb)
    return near and max(ra, rb) <= NESTED_RATIO * min(ra, rb)


def loop_candidates(image: np.ndarray, *, nm_per_px: float | None = None,
                    rules: LoopRules = LoopRules(), particle_finder=None) -> dict:
    """Every loop of chain around a locally largest empty disc of the micrograph, measured but not
    judged: ``{"rows", "zoom"}`` (rows in px of the image resampled by ``zoom`` to
    ``WORK_NM_PER_PX``). Only the rules' radius range shapes the candidates, so
    ``find_loops`` can judge one set of candidates by many rules (``benchmarks/ring_finder_baseline.py``).

    Parameters
    ----------
    image : (H, W) uint8
        Micrograph without data bar.
    nm_per_px : float, optional
        Its pixel size (nm/px, at most ``MAX_NM_PER_PX``); unknown, it is taken to be ``WORK_NM_PER_PX``.
    rules : LoopRules
        Thresholds; ``min_radius_nm`` and ``max_radius_nm`` bound the empty discs looked at.
    particle_finder : callable, optional
        ``(H', W') uint8 -> (H', W') bool``: the particle map of the micrograph resampled to
        ``WORK_NM_PER_PX`` (e.g. ``inference.particles.ModelParticles``); default: the white top-hat.
    """
    if nm_per_px is not None and nm_per_px > MAX_NM_PER_PX:
        raise NanosegError(f"pixel size {nm_per_px:g} nm/px: particles of ~10 nm are under 2 px; the loop finder "
                           f"needs at most {MAX_NM_PER_PX:g} nm/px")
    zoom = (nm_per_px or WORK_NM_PER_PX) / WORK_NM_PER_PX
    work = imaging.zoom(image, zoom) if abs(zoom - 1) > 1e-6 else image
    chains, particles = chain_map(work, WORK_NM_PER_PX,
                                  particles=None if particle_finder is None else particle_finder(work))
    r_min = 0.6 * rules.min_radius_nm / WORK_NM_PER_PX
    rows = []
    for x, y, r0 in empty_centres(chains, max(4.0, r_min), rules.max_radius_nm / WORK_NM_PER_PX):
        row = measure_loop(chains, particles, x, y, r0, work)
        if row is not None:
            outer = measure_loop(chains, particles, x, y, r0, work, around=row)
            rows += [row] if outer is None else [row, outer]
    return {"rows": rows, "zoom": zoom}


def find_loops(image: np.ndarray, *, nm_per_px: float | None = None, rules: LoopRules = LoopRules(),
               candidates: dict | None = None, particle_finder=None) -> tuple[list[dict], list[dict], np.ndarray]:
    """Rings of a micrograph found structure first (no model).

    Parameters
    ----------
    image : (H, W) uint8
        Micrograph without data bar.
    nm_per_px : float, optional
        Its pixel size (nm/px, at most ``MAX_NM_PER_PX``); unknown, it is taken to be ``WORK_NM_PER_PX``.
    rules : LoopRules
        Thresholds (sizes in nm).
    candidates : dict, optional
        ``loop_candidates`` of this image at this pixel size, with the same radius range: judged
        again instead of measured again.
    particle_finder : callable, optional
        The particle map at ``WORK_NM_PER_PX`` in place of the white top-hat (see ``loop_candidates``).

    Returns
    -------
    (rings, rejected, mask) : rows in the image's pixels as ``measure.measure_structures`` writes
        them (plus ``max_gap``, ``exterior_density``, ``interior_fill``, ``interior_step``,
        ``band_fill``, ``encloses_loop``; each rejected row names its ``rejected_by`` rule), and the class mask
        (1 = each ring's band as the references are labelled: the annulus from the inner to the
        outer edge of its chain, bridged across gaps, one connected band per ring; ``area_px`` is
        its area).
    """
    if candidates is None:
        candidates = loop_candidates(image, nm_per_px=nm_per_px, rules=rules, particle_finder=particle_finder)
    zoom = candidates["zoom"]
    # judged before they are made distinct: a loop that breaks a rule must not hide a ring
    # around (nearly) the same centre that keeps them all
    verdicts = [(dict(row), judge_loop(row, rules, WORK_NM_PER_PX)) for row in candidates["rows"]]
    kept = _distinct([row for row, why in verdicts if why is None])
    rejected = [dict(row, rejected_by=why) for row, why in verdicts
                if why not in (None, "in_frame") and row["coverage"] >= 0.5]  # loop-like enough to review
    rejected = _distinct(rejected, besides=kept)
    mask = np.zeros(image.shape[:2], np.uint8)
    for row in sorted(kept, key=lambda r: -r["mean_radius_px"]):  # labelme's order: a nested ring stays
        inner_xy, outer_xy = row["_outline"]
        labelme.paint_over(mask, labelme.ring_shapes(outer_xy / zoom, inner_xy / zoom))
    for row in kept + rejected:
        del row["_outline"], row["in_frame"]
        for k in PX_LENGTH_FIELDS:
            row[f"{k}_px"] /= zoom
        row["area_px"] = int(round(row["area_px"] / zoom**2))
    kept.sort(key=lambda r: (round(r["centre_y_px"]), round(r["centre_x_px"])))
    for i, r in enumerate(kept, 1):
        r["structure_id"] = i
    return kept, rejected, mask
