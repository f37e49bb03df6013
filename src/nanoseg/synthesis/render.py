"""SEM image formation for a scene, after Cizmar et al., Scanning 30(5), 2008.

The scene becomes a surface height map and a secondary-electron yield map
(material contrast). The signal is brightened where the surface is steep
(SE edge effect), blurred by a Gaussian beam, counted with Poisson shot noise
at a chosen dose, given detector noise, scan-line gain jitter and slow drift,
then mapped to 8-bit through brightness, contrast and gamma.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from .draw import DrawnParams
from .scene import Scene

SUPPORT_YIELD = 0.3   # carbon; Pd particles have yield 1.0
MAX_SECANT = 2.0      # caps the edge brightening at grazing slopes
INSTRUMENT_FRAME_PX = (960, 1280)  # a full SEM frame (Hitachi SU8000 images of the source dataset)
EXACT_SHOT_NOISE_BELOW = 4.0  # expected counts under which the fast sampler defers to exact sampling
GRAIN_OCTAVES_NM = (5.0, 10.0, 20.0, 40.0)  # feature spacings of the support's grain
FINE_GRAIN_NM = 15.0  # the grain's octaves below this are its fine ones (grain_fine_ratio)
FACET_NM = 2.5        # crystallite size within a Pd particle


def shot_noise_counts(mean_counts: np.ndarray, rng: np.random.Generator, exact: bool = False) -> np.ndarray:
    """Poisson-distributed electron counts per pixel, ``mean_counts`` = dose x yield (float32 out).

    ``exact``: numpy's Poisson sampler (about 5 ms for 321x321, a quarter of the
    generator's per-image budget). Otherwise each count is the third-order
    Cornish-Fisher quantile of Poisson(lam) at a standard normal draw,
    ``lam + sqrt(lam) z + (z^2 - 1)/6 + (z - z^3)/(72 sqrt(lam))``, rounded to a whole
    count. That matches the Poisson mean, variance and skewness, and its total
    variation distance to the exact Poisson pmf is below 0.01 (checked in the tests);
    pixels with lam < 4, where the expansion degrades, are sampled exactly. Cost:
    about 1 ms.
    """
    lam = np.maximum(np.asarray(mean_counts, np.float32), 0)
    if exact:
        return rng.poisson(lam).astype(np.float32)
    z = rng.standard_normal(lam.shape, dtype=np.float32)
    root = np.sqrt(lam)
    zz = z * z
    x = zz - 1
    x *= np.float32(1 / 6)
    x += lam
    tmp = root * z
    x += tmp
    # + z (1 - z^2) / (72 max(root, 1)), in place in the buffers above (the same float32 operations)
    np.subtract(1, zz, out=zz)
    zz *= z
    np.maximum(root, np.float32(1), out=tmp)
    tmp *= 72
    zz /= tmp
    x += zz
    counts = np.rint(x, out=x)
    np.maximum(counts, 0, out=counts)
    low = lam < EXACT_SHOT_NOISE_BELOW
    if low.any():
        counts[low] = rng.poisson(lam[low])
    return counts


def low_frequency_noise(shape, cells: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth zero-mean, unit-std noise with about ``cells`` features across the image."""
    h, w = shape
    gh = max(2, int(round(cells * h / max(h, w)))) + 1
    gw = max(2, int(round(cells * w / max(h, w)))) + 1
    grid = rng.standard_normal((gh, gw)).astype(np.float32)
    grid = (grid - grid.mean()) / (grid.std() + 1e-6)  # normalise the few grid values, not the image
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)


def smooth_field(shape, feature_px: float, rng: np.random.Generator) -> np.ndarray:
    """Smooth zero-mean, unit-variance random field whose features are about ``feature_px`` apart.

    Features smaller than the frame: a random grid at that spacing, resized (bicubic). Larger
    ones (a x200k frame sees only part of a 500 nm patch): Gaussian bumps on a grid of that
    spacing that reaches beyond the frame, summed as two small matrix products and normalised
    to unit variance at every pixel, so the field does not shrink to the frame.
    """
    h, w = shape
    if 3 * feature_px < max(h, w):
        return low_frequency_noise(shape, max(2, int(round(max(h, w) / feature_px))), rng)
    gy = np.arange(-1, math.ceil(h / feature_px) + 2) * feature_px + rng.uniform(0, feature_px)
    gx = np.arange(-1, math.ceil(w / feature_px) + 2) * feature_px + rng.uniform(0, feature_px)
    sig = 0.6 * feature_px
    ay = np.exp(-((np.arange(h)[:, None] - gy[None, :]) ** 2) / (2 * sig * sig)).astype(np.float32)
    ax = np.exp(-((np.arange(w)[:, None] - gx[None, :]) ** 2) / (2 * sig * sig)).astype(np.float32)
    grid = rng.standard_normal((len(gy), len(gx))).astype(np.float32)
    out = ay @ grid @ ax.T
    out /= np.sqrt((ay * ay).sum(axis=1))[:, None] * np.sqrt((ax * ax).sum(axis=1))[None, :]
    return out


def support_texture(shape, d: DrawnParams, rng: np.random.Generator) -> np.ndarray:
    """Multiplicative brightness of the support, physical in nm so it looks alike at every magnification.

    ``texture_strength`` x (0.7 features of ~350 nm + 0.3 of ~70 nm), ``grain_strength`` x the
    carbon's grain (octaves of 5-40 nm, ``GRAIN_OCTAVES_NM``; those under ``FINE_GRAIN_NM`` times
    ``grain_fine_ratio``: the spectrum's slope), and ``region_contrast`` x regions of ~600 nm with soft borders
    (a tanh of a smooth field: plateaus of different brightness, as neighbouring patches of the
    support differ in real micrographs). Returns 1 + their sum.
    """
    s = d.scale_nm_per_px
    tex = smooth_field(shape, 350 / s, rng)
    tex *= np.float32(0.7 * d.texture_strength)
    tex += _scaled(smooth_field(shape, 70 / s, rng), 0.3 * d.texture_strength)
    if d.grain_strength > 0:
        # the carbon's grain: octaves of GRAIN_OCTAVES_NM with equal amplitude (unit variance in all; the
        # fine ones times grain_fine_ratio), a rough surface whose power falls off like the references'
        # between 4 and 64 nm
        k = d.grain_strength / math.sqrt(len(GRAIN_OCTAVES_NM))
        for feature_nm in GRAIN_OCTAVES_NM:
            tex += _scaled(smooth_field(shape, max(2.0, feature_nm / s), rng),
                           k * (d.grain_fine_ratio if feature_nm < FINE_GRAIN_NM else 1.0))
    if d.region_contrast > 0:
        regions = smooth_field(shape, 600 / s, rng)
        regions *= 3
        tex += _scaled(np.tanh(regions, out=regions), d.region_contrast / 2)
    tex += 1
    return tex


def _scaled(field: np.ndarray, factor: float) -> np.ndarray:
    """``field`` times ``factor`` (float32), in place."""
    field *= np.float32(factor)
    return field


def particle_facets(yld: np.ndarray, d: DrawnParams, rng: np.random.Generator) -> None:
    """Crystallites within the particles, in place: the metal's share of the SE yield (above the
    support's) varies by ``particle_facets`` x a smooth field of FACET_NM features, so a particle
    reads as a lumpy cluster of grains as in the references (soft at x50k, where a grain is about
    a pixel; resolved at x200k)."""
    field = smooth_field(yld.shape, max(2.0, FACET_NM / d.scale_nm_per_px), rng)
    field *= np.float32(d.particle_facets)
    field += 1
    np.maximum(field, 0.2, out=field)
    # on the bare support yld - SUPPORT_YIELD is 0, so the whole-image pass leaves it as it is
    yld -= SUPPORT_YIELD
    yld *= field
    yld += SUPPORT_YIELD


def contaminate(yld: np.ndarray, d: DrawnParams) -> None:
    """The beam's carbonaceous contamination film, in place: everything brighter than the support
    keeps ``(1 - contamination_loss) ** (1 nm / scale_nm_per_px)`` of its yield above the support's.

    The film grows where the beam scans, fed by hydrocarbons diffusing in across the frame's
    edge: the supply per area goes as edge over area, 1 / frame side, i.e. 1 / pixel size at a
    fixed pixel count, so the loss compounds once per nm/px step below 1 (about 0.8 of the
    contrast kept at x100k, 0.6 at x200k, 0.9 at x50k for a loss of 0.2), as the dimmer particles
    of the x100k and x200k references show against their support texture and noise.
    """
    keep = np.float32((1.0 - d.contamination_loss) ** (1.0 / d.scale_nm_per_px))
    yld -= SUPPORT_YIELD
    yld *= keep
    yld += SUPPORT_YIELD


def smooth_glow(metal: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian blur of ``metal``; wide kernels run at half resolution (4x fewer taps, same look)."""
    if sigma_px < 3:
        return cv2.GaussianBlur(metal, (0, 0), sigma_px)
    h, w = metal.shape
    half = cv2.resize(metal, ((w + 1) // 2, (h + 1) // 2), interpolation=cv2.INTER_AREA)
    half = cv2.GaussianBlur(half, (0, 0), sigma_px / 2)
    return cv2.resize(half, (w, h), interpolation=cv2.INTER_LINEAR)


def surface_slope_secant(height: np.ndarray) -> np.ndarray:
    """sqrt(1 + |grad h|^2) (central differences, one-sided at the border), capped at MAX_SECANT."""
    g2 = np.zeros_like(height)
    d = np.empty_like(height)
    d[:, 1:-1] = height[:, 2:] - height[:, :-2]
    d[:, 1:-1] *= 0.5
    d[:, 0] = height[:, 1] - height[:, 0]
    d[:, -1] = height[:, -1] - height[:, -2]
    g2 += d * d
    d[1:-1] = height[2:] - height[:-2]
    d[1:-1] *= 0.5
    d[0] = height[1] - height[0]
    d[-1] = height[-1] - height[-2]
    g2 += d * d
    g2 += 1
    np.sqrt(g2, out=g2)
    return np.minimum(g2, np.float32(MAX_SECANT), out=g2)


def _stamp_spheres(height: np.ndarray, yld: np.ndarray, particles: np.ndarray) -> None:
    """Sphere caps sqrt(r^2 - d^2) of all particles (rows x, y, r, kind, id, yield), highest wins."""
    if not len(particles):
        return
    h, w = height.shape
    arr = np.asarray(particles, np.float64)[:, [0, 1, 2, 5]]
    size_class = np.ceil(arr[:, 2]).astype(np.int64)
    hflat, yflat = height.reshape(-1), yld.reshape(-1)
    for rc in np.unique(size_class):  # one window size per whole-pixel radius keeps the windows small
        sel = arr[size_class == rc]
        k = int(rc) * 2 + 2
        grid = np.arange(k)
        gx = np.floor(sel[:, 0] - sel[:, 2]).astype(np.int64)[:, None] + grid   # (N, k)
        gy = np.floor(sel[:, 1] - sel[:, 2]).astype(np.int64)[:, None] + grid
        dx2 = (gx - sel[:, 0:1]) ** 2
        dy2 = (gy - sel[:, 1:2]) ** 2
        cap = sel[:, 2, None, None] ** 2 - dy2[:, :, None] - dx2[:, None, :]   # (N, k, k)
        inside = cap > 0
        inside &= ((gy >= 0) & (gy < h))[:, :, None]
        inside &= ((gx >= 0) & (gx < w))[:, None, :]
        flat = ((gy * w)[:, :, None] + gx[:, None, :])[inside]
        vals = np.sqrt(cap[inside]).astype(np.float32)
        before = hflat[flat]
        np.maximum.at(hflat, flat, vals)
        # the particle whose cap is the new maximum sets the yield there
        won = (vals >= hflat[flat]) & (vals > before)
        yflat[flat[won]] = np.broadcast_to(sel[:, 3, None, None].astype(np.float32), cap.shape)[inside][won]


def scene_surface(scene: Scene, rng: np.random.Generator):
    """Height map (px) and SE yield map of a scene."""
    h, w = scene.shape
    support_h = np.zeros((h, w), np.float32)
    yld = np.full((h, w), SUPPORT_YIELD, np.float32)
    for poly, height_px, gain in scene.flakes:
        m = np.zeros((h, w), np.uint8)
        cv2.fillPoly(m, [np.round(poly * 4).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=2)
        soft = cv2.GaussianBlur(m.astype(np.float32), (0, 0), 0.7)
        support_h += soft * height_px
        yld *= 1.0 + gain * soft
    for poly, height_px, yl, lumps in scene.debris:
        # work in the debris' bounding box only
        x0, y0 = np.maximum(np.floor(poly.min(axis=0)).astype(int) - 1, 0)
        x1, y1 = np.minimum(np.ceil(poly.max(axis=0)).astype(int) + 2, [w, h])
        if x0 >= x1 or y0 >= y1:
            continue
        m = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillPoly(m, [np.round((poly - [x0, y0]) * 4).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=2)
        if not m.any():
            continue
        d = cv2.distanceTransform(m, cv2.DIST_L2, 3)
        if lumps > 0:  # debris: rounded cap, flat top, lumpy
            bump = np.sqrt(np.minimum(d, height_px) * height_px)
            bump *= 1.0 + lumps * low_frequency_noise(m.shape, max(2, round(24 * max(m.shape) / max(h, w))), rng)
        else:          # faceted flake: a steep 3 px bevel to a flat top
            bump = np.minimum(d, 3.0) * np.float32(height_px / 3.0)
        support_h[y0:y1, x0:x1] += bump * (m > 0)
        yld[y0:y1, x0:x1][m > 0] = yl
    height = np.zeros((h, w), np.float32)
    _stamp_spheres(height, yld, scene.particles)
    height += support_h
    return height, yld


def render_micrograph(scene: Scene, d: DrawnParams, rng: np.random.Generator) -> np.ndarray:
    """The 8-bit SEM image of ``scene`` with the drawn imaging parameters ``d``.

    Operations run in place on float32 images: at 321x321 each whole-image pass
    costs ~50 us, and the generator's budget is ~20 ms per image.
    """
    h, w = scene.shape
    height, yld = scene_surface(scene, rng)
    if d.particle_facets > 0:
        particle_facets(yld, d, rng)
    if d.contamination_loss > 0:
        contaminate(yld, d)
    # SE edge effect: yield x (1 + edge_gain (sec(slope) - 1))
    signal = surface_slope_secant(height)
    signal -= 1
    signal *= np.float32(d.edge_gain)
    signal += 1
    signal *= yld
    # diffuse glow: electrons backscattered by the metal raise the SE yield of the support nearby
    metal = yld  # the yield map is not needed again: its buffer becomes the metal map
    metal -= SUPPORT_YIELD
    np.maximum(metal, 0, out=metal)
    glow = smooth_glow(metal, d.halo_sigma_px)
    glow *= np.float32(d.halo_strength)
    signal += glow
    # support texture and a light-to-dark ramp (a sum of a row and a column vector)
    signal *= support_texture((h, w), d, rng)
    ang = rng.uniform(0, 2 * np.pi)
    ys = np.arange(h, dtype=np.float32)[:, None]
    xs = np.arange(w, dtype=np.float32)[None, :]
    # the ramp is the detector's, across the instrument's whole frame (INSTRUMENT_FRAME_PX): a
    # crop sees its share of it
    k = d.gradient_strength / (0.5 * math.hypot(*INSTRUMENT_FRAME_PX))
    signal *= (xs - w / 2) * np.float32(k * math.cos(ang)) + (1 + (ys - h / 2) * np.float32(k * math.sin(ang)))
    for px, py, pr, depth in scene.pits:
        # a Gaussian dip, evaluated only where it matters (4 sigma)
        y0, y1 = max(0, int(py - 4 * pr)), min(h, int(py + 4 * pr) + 1)
        x0, x1 = max(0, int(px - 4 * pr)), min(w, int(px + 4 * pr) + 1)
        if y0 < y1 and x0 < x1:
            d2 = (xs[:, x0:x1] - px) ** 2 + (ys[y0:y1] - py) ** 2
            signal[y0:y1, x0:x1] *= 1.0 - depth * np.exp(-d2 / (2 * pr * pr))
    np.maximum(signal, 0, out=signal)
    # beam blur, then shot noise at the dose, then detector noise
    signal = cv2.GaussianBlur(signal, (0, 0), d.psf_sigma_px)
    dose = np.float32(d.dose_e_per_px)
    signal *= dose
    signal = shot_noise_counts(signal, rng, exact=d.shot_noise == "exact")
    signal /= dose
    noise = rng.standard_normal(signal.shape, dtype=np.float32)
    noise *= np.float32(d.detector_noise)
    signal += noise
    # the detector chain low-passes the signal along the scan line (x)
    signal = cv2.GaussianBlur(signal, (0, 0), sigmaX=d.scan_blur_px, sigmaY=1e-3)
    # scan lines: per-line gain jitter plus a slow drift down the frame
    drift = np.cumsum(rng.normal(0, 1, h))
    drift = (drift - drift.mean()) / (np.abs(drift - drift.mean()).max() + 1e-6)
    gain = 1.0 + d.line_jitter * rng.normal(0, 1, h) + d.line_drift * drift
    signal *= gain[:, None].astype(np.float32)
    # brightness/contrast/gamma: support -> background_level, particle centre -> particle_level
    g = d.gamma
    np.maximum(signal, 0, out=signal)
    t = np.power(signal, np.float32(g), out=signal)
    t_bg = SUPPORT_YIELD**g
    scale = (d.particle_level - d.background_level) / (1.0 - t_bg)
    t *= np.float32(scale)
    t += np.float32(d.background_level - t_bg * scale + 0.5)  # + 0.5: truncation below rounds
    np.clip(t, 0, 255, out=t)
    return t.astype(np.uint8)
