"""Image statistics of SEM micrographs of supported nanoparticles: one implementation for real and synthetic.

``measure_image`` takes an 8-bit grayscale array (data bar already cut) and its pixel size
and returns an ``ImageStats``: particle sizes, density, area fraction, spacing, clustering,
chain width, background grey levels, texture power spectrum, noise, blur and the share of
the field covered by brighter sheets or flakes. ``pool`` merges several images' statistics
into one set (extensive counts are summed, distributions concatenated, intensive values
weighted by field area; or every member weighted the same), which is what ``distance`` compares.

How particles are found (the same on every image, so that its biases cancel in a
comparison): white top-hat with a disk of ``TOPHAT_RADIUS_NM`` (removes the support's
slow brightness changes, keeps anything narrower than a 4-particle chain), Otsu threshold,
connected components above ``MIN_PARTICLE_DIAMETER_NM``, less those lying on a bright object wider
than the disk (big particles, debris, flakes: ``_on_wide_object``). A component is one particle or a
merged cluster of touching ones: it is a cluster when it is elongated or large for one particle
(``particles_per_component``), and then holds its area over the area of a single particle (the
35th percentile of component areas, where singles dominate).

Units: lengths end in ``_nm`` when the pixel size is known. Without it every length is in
pixels (``scale_nm_per_px`` is None, the names still say ``_nm`` but ``units`` is ``"px"``):
two sets measured without scale compare in pixels, and ``distance.compare`` says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

TOPHAT_RADIUS_NM = 20.0          # disk radius of the top-hat: chains up to ~40 nm wide survive it
MIN_PARTICLE_DIAMETER_NM = 2.0    # smaller bright specks are noise
SINGLE_AREA_PERCENTILE = 35.0     # component-area percentile taken as one particle's area
CLUSTER_ELONGATION = 1.6          # axis ratio above which a component is two or more touching particles
CLUSTER_AREA = 2.2                # area (in single-particle areas) above which a compact component is a clump
CHAIN_MIN_PARTICLES = 4           # a chain is a bridged group of at least this many particles
SHEET_SMOOTH_NM = 25.0            # scale of the background smoothing for sheet coverage
SHEET_THRESHOLD = 0.2             # brighter than the bare support (after removing a tilt) by this share of the contrast
SPECTRUM_BANDS = ((4, 8), (8, 16), (16, 32), (32, 64), (64, 128))  # wavelength bands (nm, or px w/o scale)
PX_MODE_SCALE = 1.0               # lengths in px are treated as "1 nm per px" internally
N_BG_SAMPLES = 20000              # background grey values kept per image for the distribution


@dataclass
class ImageStats:
    """Statistics of one micrograph (or, after ``pool``, of a set of them).

    Extensive fields (``field_um2``, ``n_particles``, ...) add up over images;
    arrays are the pooled samples of a distribution; the rest are field-area-weighted
    means. Lengths are in nm, or in px when ``units == "px"``.
    """

    units: str                      # "nm" or "px"
    scale_nm_per_px: float | None   # None for a pooled set of several scales, or without scale
    n_images: int
    field_px: float                 # pixels analysed
    field_um2: float                # field area (um^2; px^2 / 1e6 in px mode)
    n_particles: float              # estimated particles (components split by area)
    n_components: int
    n_clustered: float              # particles in components of two or more
    particle_px: float              # foreground pixels
    diameter_nm: np.ndarray         # equivalent diameter of every component (particle or merged cluster)
    single_diameter_nm: np.ndarray  # equivalent diameter of the components that hold one particle
    nn_distance_nm: np.ndarray      # centroid to nearest other centroid
    chain_width_nm: np.ndarray      # 2 x distance to the edge, sampled along chain skeletons
    background_grey: np.ndarray     # a sample of background pixel values (8-bit)
    background_level: float         # median background grey
    particle_level: float           # median over components of the brightest (smoothed) grey
    noise_rel: float                # high-pass residual std on the background / particle contrast
    blur_edge_width_nm: float       # 10-90% edge width of single particles
    texture_power: np.ndarray       # background power per SPECTRUM_BANDS / contrast^2 (nan: band unresolved)
    sheet_coverage: float           # share of the field brighter than the bare support (sheets, flakes)
    weights: dict = field(default_factory=dict)

    @property
    def density_per_um2(self) -> float:
        return self.n_particles / max(self.field_um2, 1e-12)

    @property
    def area_fraction(self) -> float:
        return self.particle_px / max(self.field_px, 1.0)

    @property
    def clustering(self) -> float:
        return self.n_clustered / max(self.n_particles, 1e-9)

    @property
    def contrast(self) -> float:
        return self.particle_level - self.background_level

    def summary(self) -> dict:
        """The scalar values reported in tables (medians of the distributions)."""
        def med(a):
            return float(np.median(a)) if len(a) else float("nan")
        return {
            "particle_diameter_nm": med(self.diameter_nm),
            "single_particle_diameter_nm": med(self.single_diameter_nm),
            "density_per_um2": self.density_per_um2,
            "area_fraction": self.area_fraction,
            "nn_distance_nm": med(self.nn_distance_nm),
            "clustering": self.clustering,
            "chain_width_nm": med(self.chain_width_nm),
            "background_level": self.background_level,
            "particle_contrast": self.contrast,
            "noise_rel": self.noise_rel,
            "blur_edge_width_nm": self.blur_edge_width_nm,
            "sheet_coverage": self.sheet_coverage,
            "texture_power": [float(x) for x in self.texture_power],
        }


def _disk(radius_px: float) -> np.ndarray:
    r = max(1, int(round(radius_px)))
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


def _normalised_blur(img: np.ndarray, weight: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian blur of ``img`` counting only pixels where ``weight`` is 1 (normalised convolution)."""
    num = cv2.GaussianBlur(img * weight, (0, 0), sigma_px)
    den = cv2.GaussianBlur(weight, (0, 0), sigma_px)
    out = num / np.maximum(den, 1e-3)
    fallback = float(np.median(img[weight > 0])) if (weight > 0).any() else float(img.mean())
    return np.where(den > 1e-3, out, fallback).astype(np.float32)


def _plane(img: np.ndarray) -> np.ndarray:
    """Least-squares plane a + b x + c y through ``img`` (zero mean: only the tilt is removed)."""
    h, w = img.shape
    y, x = np.mgrid[0:h:8, 0:w:8]
    a = np.column_stack([np.ones(x.size), x.ravel(), y.ravel()])
    coef, *_ = np.linalg.lstsq(a, img[::8, ::8].ravel().astype(np.float64), rcond=None)
    yy, xx = np.mgrid[0:h, 0:w]
    return (coef[1] * (xx - xx.mean()) + coef[2] * (yy - yy.mean())).astype(np.float32)


def band_powers(field_img: np.ndarray, scale: float) -> np.ndarray:
    """Mean power of ``field_img`` (zero-mean, Hann-windowed) per wavelength band of SPECTRUM_BANDS."""
    h, w = field_img.shape
    win = np.outer(np.hanning(h), np.hanning(w)).astype(np.float32)
    f = field_img - field_img.mean()
    spec = np.abs(np.fft.rfft2(f * win)) ** 2 / max((win**2).sum(), 1.0)
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    freq = np.hypot(fy, fx)  # cycles per px
    out = np.full(len(SPECTRUM_BANDS), np.nan)
    for i, (lo, hi) in enumerate(SPECTRUM_BANDS):
        lo_px, hi_px = lo / scale, hi / scale          # wavelengths in px
        if lo_px < 2.0 or hi_px > 0.9 * min(h, w):   # beyond Nyquist or the field
            continue
        sel = (freq > 1.0 / hi_px) & (freq <= 1.0 / lo_px)
        if sel.any():
            out[i] = float(spec[sel].mean())
    return out


def particles_per_component(labels: np.ndarray, lab_ids: np.ndarray, areas: np.ndarray, a1: float) -> np.ndarray:
    """Particles in each component: one, unless it is elongated or large for a single particle.

    A component is a merged cluster when its second-moment ellipse has an axis ratio above
    CLUSTER_ELONGATION (two touching particles: about 2) or its area exceeds CLUSTER_AREA x the
    single-particle area ``a1`` (a compact clump); a cluster holds round(area / a1), at least 2.
    Size spread alone (singles up to 1.5-2x ``a1``) therefore does not count as touching.
    """
    ys, xs = np.nonzero(labels)
    lab = labels[ys, xs]
    n = int(labels.max()) + 1
    cnt = np.bincount(lab, minlength=n).astype(np.float64)
    mx = np.bincount(lab, xs, n) / np.maximum(cnt, 1)
    my = np.bincount(lab, ys, n) / np.maximum(cnt, 1)
    dx, dy = xs - mx[lab], ys - my[lab]
    cxx = np.bincount(lab, dx * dx, n) / np.maximum(cnt, 1) + 1 / 12
    cyy = np.bincount(lab, dy * dy, n) / np.maximum(cnt, 1) + 1 / 12
    cxy = np.bincount(lab, dx * dy, n) / np.maximum(cnt, 1)
    tr, det = cxx + cyy, cxx * cyy - cxy * cxy
    disc = np.sqrt(np.maximum(tr * tr / 4 - det, 0))
    ratio = np.sqrt((tr / 2 + disc) / np.maximum(tr / 2 - disc, 1e-6))[lab_ids]
    cluster = (ratio > CLUSTER_ELONGATION) | (areas > CLUSTER_AREA * a1)
    return np.where(cluster, np.maximum(2, np.rint(areas / a1)), 1).astype(np.float64)


def _on_wide_object(opened: np.ndarray, labels: np.ndarray, n_lab: int, thr: float) -> np.ndarray:
    """Which components (labels 1..n_lab-1) lie on a bright object wider than the top-hat's disk.

    ``opened`` is the morphological opening (the image less its top-hat): what is wider than the
    disk. Where it stands above the support by more than the particle threshold there is a big
    particle, a piece of debris or a flake (sheets are dimmer, a step of a few grey levels): the
    top-hat of such an object leaves its rim and the specks of its surface texture, or the object
    whole, and neither is a particle of the chains. Counted as particles, a whole one holds its
    area over a single particle's (60 "particles" for a 60 nm particle beside 5 nm ones), and
    specks set the single-particle area (the 35th percentile of the component areas) to a speck's:
    one 320 px x200k render with a big particle held 830 "particles" in its 27 components, which
    doubled the density of the 48 renders it was one of.
    """
    if n_lab <= 1:
        return np.zeros(0, dtype=bool)
    raised = opened - _plane(opened)
    raised -= np.median(raised)
    on = (raised > thr).astype(np.float64)
    from scipy import ndimage

    share = np.asarray(ndimage.mean(on, labels, np.arange(1, n_lab)))
    return share > 0.5


def measure_image(img: np.ndarray, scale_nm_per_px: float | None = None, *,
                  seed: int = 0) -> ImageStats:
    """Statistics of one 8-bit grayscale micrograph (data bar already removed).

    Parameters
    ----------
    img : (H, W) uint8 array
        The micrograph; at least 32 px on each side.
    scale_nm_per_px : float, optional
        Pixel size in nm. Without it every length is in px (``units == "px"``).
    seed : int
        Seed of the subsample of background grey values that is kept.
    """
    img = np.asarray(img)
    if img.ndim != 2 or min(img.shape) < 32:
        raise ValueError(f"measure_image: need a 2-D grayscale image of at least 32x32, got {img.shape}")
    units = "nm" if scale_nm_per_px else "px"
    s = float(scale_nm_per_px) if scale_nm_per_px else PX_MODE_SCALE
    f = img.astype(np.float32)
    h, w = f.shape
    # --- particles
    sm = cv2.GaussianBlur(f, (0, 0), max(0.6, 0.5 / s))
    tophat = cv2.morphologyEx(sm, cv2.MORPH_TOPHAT, _disk(np.clip(TOPHAT_RADIUS_NM / s, 4, 120)))
    th_u8 = np.clip(tophat, 0, 255).astype(np.uint8)
    thr, fg = cv2.threshold(th_u8, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    thr = max(thr, 4.0)  # a flat image has no particles, not noise ones
    fg = (tophat > thr).astype(np.uint8)
    n_lab, labels, cc, cent = cv2.connectedComponentsWithStats(fg, connectivity=8)
    min_area = max(3.0, math.pi * (MIN_PARTICLE_DIAMETER_NM / s / 2) ** 2)
    areas = cc[1:, cv2.CC_STAT_AREA].astype(np.float64)
    keep = areas >= min_area
    keep &= ~_on_wide_object(sm - tophat, labels, n_lab, thr)
    keep_lab = np.concatenate([[False], keep])
    fg = keep_lab[labels].astype(np.uint8)
    areas = areas[keep]
    cent = cent[1:][keep]
    lab_ids = np.flatnonzero(keep) + 1
    if len(areas):
        a1 = max(float(np.percentile(areas, SINGLE_AREA_PERCENTILE)), min_area)
        n_per = particles_per_component(labels, lab_ids, areas, a1)
    else:
        a1, n_per = min_area, np.zeros(0)
    diam = 2 * np.sqrt(areas / math.pi) * s
    single_diam = diam[n_per == 1]
    # nearest neighbour between component centroids
    if len(cent) >= 2:
        from scipy.spatial import cKDTree

        d, _ = cKDTree(cent).query(cent, k=2)
        nn = d[:, 1] * s
    else:
        nn = np.zeros(0)
    # --- background and particle grey levels
    near = cv2.dilate(fg, _disk(max(2.0, 1.5 / s + 1)))
    bg_mask = near == 0
    if bg_mask.sum() < 100:
        bg_mask = np.ones_like(bg_mask)
    bg_vals = f[bg_mask]
    background_level = float(np.median(bg_vals))
    rng = np.random.default_rng(seed)
    bg_sample = bg_vals if len(bg_vals) <= N_BG_SAMPLES else rng.choice(bg_vals, N_BG_SAMPLES, replace=False)
    if len(areas):
        from scipy import ndimage

        peaks = np.asarray(ndimage.maximum(sm, labels, lab_ids))
        particle_level = float(np.median(peaks))
    else:
        peaks = np.zeros(0)
        particle_level = float(np.percentile(f, 99.5))
    contrast = max(particle_level - background_level, 1.0)
    # --- noise: high-pass residual on the background, robust std, relative to the particle contrast
    resid = f - cv2.GaussianBlur(f, (0, 0), 1.5)
    inner_bg = cv2.erode(bg_mask.astype(np.uint8), _disk(2)) > 0
    rv = resid[inner_bg] if inner_bg.sum() > 100 else resid.ravel()
    noise_rel = float(1.4826 * np.median(np.abs(rv - np.median(rv)))) / contrast
    blur_nm = _blur_edge_width_nm(sm, fg, labels, keep_lab, lab_ids, n_per, peaks, background_level, contrast,
                                  s) if len(areas) else float("nan")
    d1_px = 2 * math.sqrt(a1 / math.pi)
    widths = _chain_widths_nm(fg, a1, d1_px, s) if len(areas) else np.zeros(0)
    # --- background texture: particles filled in from their surroundings, power per band
    filled = np.where(bg_mask, f, _normalised_blur(f, bg_mask.astype(np.float32), max(3.0, 2 * d1_px)))
    power = band_powers(filled, s) / contrast**2
    # --- sheets and flakes: smoothed background brighter than the bare support
    smooth_bg = cv2.GaussianBlur(filled, (0, 0), max(2.0, SHEET_SMOOTH_NM / s))
    smooth_bg = smooth_bg - _plane(smooth_bg)  # a detector ramp is shading, not a sheet
    support = float(np.percentile(smooth_bg, 20))
    sheet = float((smooth_bg > support + SHEET_THRESHOLD * contrast).mean())
    field_px = float(h * w)
    return ImageStats(
        units=units, scale_nm_per_px=float(scale_nm_per_px) if scale_nm_per_px else None, n_images=1,
        field_px=field_px, field_um2=field_px * s * s / 1e6, n_particles=float(n_per.sum()),
        n_components=int(len(areas)), n_clustered=float(n_per[n_per >= 2].sum()), particle_px=float(fg.sum()),
        diameter_nm=diam, single_diameter_nm=single_diam, nn_distance_nm=nn, chain_width_nm=widths,
        background_grey=bg_sample.astype(np.float32), background_level=background_level,
        particle_level=particle_level, noise_rel=noise_rel, blur_edge_width_nm=blur_nm,
        texture_power=power, sheet_coverage=sheet,
    )


def _blur_edge_width_nm(sm, fg, labels, keep_lab, lab_ids, n_per, peaks, background_level: float,
                        contrast: float, s: float) -> float:
    """10-90% edge width of single particles from their steepest edge (NaN with fewer than 3 singles).

    A Gaussian-blurred step of height C and width sigma has a largest slope C / (sigma sqrt(2 pi)).
    """
    from scipy import ndimage

    gx = cv2.Sobel(sm, cv2.CV_32F, 1, 0, ksize=3) / 8
    gy = cv2.Sobel(sm, cv2.CV_32F, 0, 1, ksize=3) / 8
    grad = np.hypot(gx, gy)
    # the steepest slope on each particle's rim (its outline +-1 px), not in its interior, where
    # crystallites and lumps make slopes of their own
    kept = np.where(keep_lab[labels], labels, 0)
    rim = ndimage.grey_dilation(kept, size=(3, 3))
    rim[cv2.erode(fg, np.ones((3, 3), np.uint8)) > 0] = 0
    gmax = np.asarray(ndimage.maximum(grad, rim, lab_ids))
    singles = (n_per == 1) & (peaks - background_level > 0.3 * contrast)
    if singles.sum() < 3:
        return float("nan")
    sigma_meas = (peaks[singles] - background_level) / (math.sqrt(2 * math.pi) * np.maximum(gmax[singles], 1e-3))
    smooth_px = max(0.6, 0.5 / s)
    sigma_px = np.sqrt(np.maximum(sigma_meas**2 - smooth_px**2, 0.04))
    return float(np.median(2.563 * sigma_px) * s)


def _chain_widths_nm(fg: np.ndarray, a1: float, d1_px: float, s: float) -> np.ndarray:
    """Chain widths: bridge the gaps within chains, then sample 2 x distance-to-edge on the skeleton."""
    from skimage.morphology import skeletonize

    bridged = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, _disk(max(1.0, 0.75 * d1_px)))
    nb, blab, bst, _ = cv2.connectedComponentsWithStats(bridged, connectivity=8)
    big = np.concatenate([[False], bst[1:, cv2.CC_STAT_AREA] >= CHAIN_MIN_PARTICLES * a1])
    chains = big[blab].astype(np.uint8)
    if not chains.any():
        return np.zeros(0)
    dt = cv2.distanceTransform(chains, cv2.DIST_L2, 5)
    skel = skeletonize(chains > 0)
    return 2 * dt[skel] * s


def measure_tiled(img: np.ndarray, scale_nm_per_px: float | None = None, *, tile_px: int | None = None,
                  seed: int = 0) -> ImageStats:
    """Statistics of one micrograph measured in square tiles of ``tile_px`` and pooled as one image.

    Why: the statistics depend on the field they are measured on (the Otsu threshold is chosen
    per image, particles and chains are cut at the border, a long wavelength is resolved or not),
    so a micrograph measured whole and the same micrograph measured in 320 px tiles differ (on
    the four Boiko et al. references by an overall distance of 0.03-0.11, most of it particle
    density). Measuring the real micrographs in tiles the size of the synthetic images compares
    like with like. The tiles cover the image evenly (overlapping a little where the side is not
    a multiple of ``tile_px``); an image less than 1.5 tiles on each side is measured whole.

    Parameters
    ----------
    img : (H, W) uint8 array
        The micrograph (data bar already cut).
    scale_nm_per_px : float, optional
        Pixel size in nm (None: lengths in px).
    tile_px : int, optional
        Tile side (px); None or 0 measures the whole image.
    seed : int
        Seed of the background samples (tile k uses ``seed + k``).
    """
    h, w = img.shape[:2]
    if not tile_px or tile_px < 32 or (h < 1.5 * tile_px and w < 1.5 * tile_px):
        return measure_image(img, scale_nm_per_px, seed=seed)
    t = int(tile_px)
    ys = np.linspace(0, max(h - t, 0), max(1, int(round(h / t)))).round().astype(int)
    xs = np.linspace(0, max(w - t, 0), max(1, int(round(w / t)))).round().astype(int)
    tiles = [measure_image(img[y:y + t, x:x + t], scale_nm_per_px, seed=seed + k)
             for k, (y, x) in enumerate((y, x) for y in ys for x in xs)]
    out = pool(tiles)
    out.n_images = 1
    return out


EQUAL_WEIGHT_QUANTILES = np.linspace(0.0005, 0.9995, 1000)


def _equal_weight(st: ImageStats) -> ImageStats:
    """The same statistics scaled to a field of one pixel, distributions as 1000 quantiles."""
    k = 1.0 / st.field_px

    def q(a):
        return np.quantile(a, EQUAL_WEIGHT_QUANTILES) if len(a) else a
    return ImageStats(
        units=st.units, scale_nm_per_px=st.scale_nm_per_px, n_images=st.n_images, field_px=1.0,
        field_um2=st.field_um2 * k, n_particles=st.n_particles * k, n_components=st.n_components,
        n_clustered=st.n_clustered * k, particle_px=st.particle_px * k, diameter_nm=q(st.diameter_nm),
        single_diameter_nm=q(st.single_diameter_nm), nn_distance_nm=q(st.nn_distance_nm),
        chain_width_nm=q(st.chain_width_nm), background_grey=q(st.background_grey),
        background_level=st.background_level, particle_level=st.particle_level, noise_rel=st.noise_rel,
        blur_edge_width_nm=st.blur_edge_width_nm, texture_power=st.texture_power, sheet_coverage=st.sheet_coverage)


def pool(stats: list[ImageStats], *, equal_weight: bool = False) -> ImageStats:
    """Merge several images' statistics into one set (see the module docstring).

    ``equal_weight``: every member counts the same whatever its field size (densities, shares
    and levels become means over the members, each distribution is represented by 1000 of its
    quantiles) -- how a set of micrographs at different magnifications is summarised.
    """
    if not stats:
        raise ValueError("pool: no statistics to merge")
    if equal_weight:
        stats = [_equal_weight(st) for st in stats]
    if len(stats) == 1:
        return stats[0]
    units = {st.units for st in stats}
    if len(units) > 1:
        raise ValueError("pool: cannot merge images measured in nm with images measured in px")
    wts = np.array([st.field_px for st in stats], float)

    def wmean(name):
        vals = np.array([getattr(st, name) for st in stats], float)
        ok = np.isfinite(vals)
        return float(np.average(vals[ok], weights=wts[ok])) if ok.any() else float("nan")

    powers = np.array([st.texture_power for st in stats], float)
    power = np.full(powers.shape[1], np.nan)
    for i in range(powers.shape[1]):  # geometric mean: one image with a sheet edge must not swamp a set
        ok = np.isfinite(powers[:, i]) & (powers[:, i] > 0)
        if ok.any():
            power[i] = float(np.exp(np.average(np.log(powers[ok, i]), weights=wts[ok])))
    scales = {st.scale_nm_per_px for st in stats}
    # background grey values: an equal-size share per image, so one big micrograph does not dominate
    n_each = min(len(st.background_grey) for st in stats)
    rng = np.random.default_rng(0)
    bg = np.concatenate([st.background_grey if len(st.background_grey) == n_each
                         else rng.choice(st.background_grey, n_each, replace=False) for st in stats])
    return ImageStats(
        units=units.pop(), scale_nm_per_px=scales.pop() if len(scales) == 1 else None,
        n_images=sum(st.n_images for st in stats),
        field_px=float(wts.sum()), field_um2=sum(st.field_um2 for st in stats),
        n_particles=sum(st.n_particles for st in stats), n_components=sum(st.n_components for st in stats),
        n_clustered=sum(st.n_clustered for st in stats), particle_px=sum(st.particle_px for st in stats),
        diameter_nm=np.concatenate([st.diameter_nm for st in stats]),
        single_diameter_nm=np.concatenate([st.single_diameter_nm for st in stats]),
        nn_distance_nm=np.concatenate([st.nn_distance_nm for st in stats]),
        chain_width_nm=np.concatenate([st.chain_width_nm for st in stats]),
        background_grey=bg, background_level=float(np.median(bg)),
        particle_level=wmean("particle_level"), noise_rel=wmean("noise_rel"),
        blur_edge_width_nm=wmean("blur_edge_width_nm"), texture_power=power,
        sheet_coverage=wmean("sheet_coverage"),
    )
