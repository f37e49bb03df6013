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

from .scene import Scene

SUPPORT_YIELD = 0.3   # carbon; Pd particles have yield 1.0
MAX_SECANT = 2.0      # caps the edge brightening at grazing slopes


def low_frequency_noise(shape, cells: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth zero-mean, unit-std noise with about ``cells`` features across the image."""
    h, w = shape
    gh = max(2, int(round(cells * h / max(h, w)))) + 1
    gw = max(2, int(round(cells * w / max(h, w)))) + 1
    grid = rng.standard_normal((gh, gw)).astype(np.float32)
    grid = (grid - grid.mean()) / (grid.std() + 1e-6)  # normalise the few grid values, not the image
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)


def _stamp_spheres(height: np.ndarray, yld: np.ndarray, particles) -> None:
    """Sphere caps sqrt(r^2 - d^2) of all particles, highest wins (vectorised over particles)."""
    if not particles:
        return
    h, w = height.shape
    arr = np.asarray([(p[0], p[1], p[2], p[5]) for p in particles], np.float64)
    for lo, hi in ((0, 3), (3, 8), (8, np.inf)):  # size classes keep the stamp windows small
        sel = arr[(arr[:, 2] >= lo) & (arr[:, 2] < hi)]
        if not len(sel):
            continue
        k = int(np.ceil(sel[:, 2].max())) * 2 + 2
        x0 = np.floor(sel[:, 0] - sel[:, 2]).astype(np.int64)
        y0 = np.floor(sel[:, 1] - sel[:, 2]).astype(np.int64)
        grid = np.arange(k)
        gx = x0[:, None] + grid[None, :]                      # (N, k)
        gy = y0[:, None] + grid[None, :]
        dx2 = (gx - sel[:, 0:1]) ** 2
        dy2 = (gy - sel[:, 1:2]) ** 2
        cap = sel[:, 2, None, None] ** 2 - dy2[:, :, None] - dx2[:, None, :]   # (N, k, k)
        inside = (cap > 0) & (gy[:, :, None] >= 0) & (gy[:, :, None] < h) & (gx[:, None, :] >= 0) \
            & (gx[:, None, :] < w)
        pi, yi, xi = np.nonzero(inside)
        flat = gy[pi, yi] * w + gx[pi, xi]
        vals = np.sqrt(cap[pi, yi, xi]).astype(np.float32)
        hflat = height.reshape(-1)
        before = hflat.copy()
        np.maximum.at(hflat, flat, vals)
        # the particle whose cap is the new maximum sets the yield there
        won = (vals >= hflat[flat]) & (vals > before[flat])
        yld.reshape(-1)[flat[won]] = sel[pi[won], 3].astype(np.float32)


def scene_surface(scene: Scene, rng: np.random.Generator, v: dict):
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
    for poly, height_px, yl in scene.debris:
        m = np.zeros((h, w), np.uint8)
        cv2.fillPoly(m, [np.round(poly * 4).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=2)
        if not m.any():
            continue
        d = cv2.distanceTransform(m, cv2.DIST_L2, 3)
        bump = np.sqrt(np.minimum(d, height_px) * height_px)  # rounded cap, flat top
        support_h += bump * (1.0 + 0.3 * low_frequency_noise((h, w), 24, rng)) * (m > 0)
        yld[m > 0] = yl
    particle_h = np.zeros((h, w), np.float32)
    _stamp_spheres(particle_h, yld, scene.particles)
    return support_h + particle_h, yld


def render_micrograph(scene: Scene, v: dict, rng: np.random.Generator) -> np.ndarray:
    """The 8-bit SEM image of ``scene`` with the drawn imaging parameters ``v``."""
    h, w = scene.shape
    height, yld = scene_surface(scene, rng, v)
    gy, gx = np.gradient(height)
    secant = np.minimum(np.sqrt(1.0 + gx * gx + gy * gy), MAX_SECANT)
    signal = yld * (1.0 + v["edge_gain"] * (secant - 1.0))
    # diffuse glow: electrons backscattered by the metal raise the SE yield of the support nearby
    metal = np.maximum(yld - SUPPORT_YIELD, 0).astype(np.float32)
    signal += v["halo_strength"] * cv2.GaussianBlur(metal, (0, 0), v["halo_sigma_px"])
    # support texture, light-to-dark ramp and pits
    signal *= 1.0 + v["texture_strength"] * (0.7 * low_frequency_noise((h, w), 4, rng)
                                             + 0.3 * low_frequency_noise((h, w), 16, rng))
    ang = rng.uniform(0, 2 * np.pi)
    ys = np.arange(h, dtype=np.float32)[:, None]
    xs = np.arange(w, dtype=np.float32)[None, :]
    ramp = ((xs - w / 2) * math.cos(ang) + (ys - h / 2) * math.sin(ang)) / (0.5 * math.hypot(h, w))
    signal *= 1.0 + v["gradient_strength"] * ramp
    for px, py, pr, depth in scene.pits:
        # a Gaussian dip, evaluated only where it matters (4 sigma)
        y0, y1 = max(0, int(py - 4 * pr)), min(h, int(py + 4 * pr) + 1)
        x0, x1 = max(0, int(px - 4 * pr)), min(w, int(px + 4 * pr) + 1)
        if y0 < y1 and x0 < x1:
            d2 = (xs[:, x0:x1] - px) ** 2 + (ys[y0:y1] - py) ** 2
            signal[y0:y1, x0:x1] *= 1.0 - depth * np.exp(-d2 / (2 * pr * pr))
    signal = np.maximum(signal, 0).astype(np.float32)
    # beam blur, then shot noise at the dose, then detector noise
    signal = cv2.GaussianBlur(signal, (0, 0), v["psf_sigma_px"])
    dose = v["dose_e_per_px"]
    signal = rng.poisson(signal * dose).astype(np.float32) / dose
    signal += np.float32(v["detector_noise"]) * rng.standard_normal(signal.shape, dtype=np.float32)
    # the detector chain low-passes the signal along the scan line (x)
    signal = cv2.GaussianBlur(signal, (0, 0), sigmaX=v["scan_blur_px"], sigmaY=1e-3)
    # scan lines: per-line gain jitter plus a slow drift down the frame
    drift = np.cumsum(rng.normal(0, 1, h))
    drift = (drift - drift.mean()) / (np.abs(drift - drift.mean()).max() + 1e-6)
    gain = 1.0 + v["line_jitter"] * rng.normal(0, 1, h) + v["line_drift"] * drift
    signal *= gain[:, None].astype(np.float32)
    # brightness/contrast/gamma: support -> background_level, particle centre -> particle_level
    g = v["gamma"]
    t = np.power(np.maximum(signal, 0), g)
    t_bg, t_p = SUPPORT_YIELD**g, 1.0
    out = v["background_level"] + (t - t_bg) * (v["particle_level"] - v["background_level"]) / (t_p - t_bg)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
