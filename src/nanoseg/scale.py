"""Pixel size (nm/px) from the micrograph's own metadata (or a flag), with its source recorded.

Read, in order: FEI/Thermo TIFF tag 34682/34680 (``[Scan] PixelWidth`` in metres),
Zeiss TIFF tag 34118 (``AP_PIXEL_SIZE`` ... ``Pixel Size = 2.5 nm``), a Hitachi
sidecar ``<name>.txt`` (``PixelSize=...`` in nm), and last the scale bar drawn in the image's
own data bar (``scale_from_data_bar``: the data bars of the Boiko et al. 2020 micrographs, whose
TIFFs carry no metadata). ``--scale-nm-per-px`` overrides.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np

from . import imaging
from ._bar_glyphs import GLYPHS
from .errors import NanosegError
from .io import read_gray

UNITS_TO_NM = {"m": 1e9, "mm": 1e6, "um": 1e3, "µm": 1e3, "nm": 1.0, "pm": 1e-3}


def _text(value) -> str:
    if isinstance(value, bytes):
        return value.decode("latin-1", errors="replace")
    if isinstance(value, dict):
        return "\n".join(f"{k} = {v}" for k, v in value.items())
    return str(value)


def _fei(value) -> float | None:
    if isinstance(value, dict):  # tifffile parses the FEI/Thermo INI block into sections
        scan = value.get("Scan") or {}
        pw = scan.get("PixelWidth") if isinstance(scan, dict) else None
        return float(pw) * 1e9 if pw else None
    text = _text(value)
    m = re.search(r"\[Scan\][^\[]*?PixelWidth\s*=\s*([0-9.eE+-]+)", text, re.S)
    if m:
        return float(m.group(1)) * 1e9
    return None


def _zeiss(value) -> float | None:
    if isinstance(value, dict):  # tifffile parses CZ_SEM into {'ap_pixel_size': ('Pixel Size', 1.25, 'nm')}
        v = value.get("ap_pixel_size")
        if isinstance(v, (tuple, list)) and len(v) >= 3:
            return float(v[1]) * UNITS_TO_NM.get(str(v[2]).lower(), 1.0)
    text = _text(value)
    m = re.search(r"AP_PIXEL_SIZE\W+Pixel Size\s*=\s*([0-9.eE+-]+)\s*([a-zµ]+)", text, re.I)
    if m:
        return float(m.group(1)) * UNITS_TO_NM.get(m.group(2).lower(), 1.0)
    m = re.search(r"ap_pixel_size\s*=\s*\(?'?Pixel Size'?,\s*([0-9.eE+-]+),\s*'([a-zµ]+)'", text, re.I)
    if m:
        return float(m.group(1)) * UNITS_TO_NM.get(m.group(2).lower(), 1.0)
    return None


def _hitachi(text: str) -> float | None:
    m = re.search(r"^\s*PixelSize\s*=\s*([0-9.eE+-]+)", text, re.M)
    return float(m.group(1)) if m else None


def read_pixel_size(path: str | Path, image: np.ndarray | None = None) -> tuple[float | None, str]:
    """(nm per px, source) from metadata, else from the scale bar in the micrograph's data bar;
    (None, 'none') when neither says. ``image``: the micrograph as read, data bar included (read
    from ``path`` when not given and the metadata says nothing)."""
    path = Path(path)
    if path.suffix.lower() in (".tif", ".tiff"):
        try:
            import tifffile

            with tifffile.TiffFile(str(path)) as tif:
                tags = tif.pages[0].tags
                for code in (34682, 34680):
                    if code in tags:
                        nm = _fei(tags[code].value)
                        if nm:
                            return nm, "metadata:fei"
                if 34118 in tags:
                    nm = _zeiss(tags[34118].value)
                    if nm:
                        return nm, "metadata:zeiss"
        except Exception:  # noqa: BLE001 - unreadable metadata simply means no scale
            pass
    side = path.with_suffix(".txt")
    if side.exists():
        try:
            nm = _hitachi(side.read_text(errors="replace"))
        except OSError:
            nm = None
        if nm:
            return nm, "metadata:hitachi-txt"
    if image is None:
        try:
            image = read_gray(path)
        except (NanosegError, OSError, ValueError):  # an unreadable image has no scale bar to read
            return None, "none"
    nm = scale_from_data_bar(image)
    if nm:
        return nm, "databar"
    return None, "none"


def resolve_scale(path: str | Path, override_nm_per_px: float | None,
                  image: np.ndarray | None = None) -> tuple[float | None, str]:
    if override_nm_per_px is not None:
        return float(override_nm_per_px), "flag"
    return read_pixel_size(path, image)


# the scale bar of a data bar: a row of equally spaced ticks (the first and last tick centres
# span the labelled length) over a label such as "500nm" in the glyphs of ``_bar_glyphs``
TICK_ROWS = 25  # the ticks hang from the top of the data bar
MIN_TICKS = 3
MAX_TICK_WIDTH_PX = 8
LABEL = re.compile(r"^(\d+(?:\.\d+)?)(nm|um)$")
MIN_GLYPH_IOU = 0.9  # the label's characters are drawn pixel-identically in every micrograph


def scale_from_data_bar(image: np.ndarray) -> float | None:
    """Pixel size (nm/px) read from the scale bar in a micrograph's data bar; None where there is
    no data bar, no regular row of ticks, or no label drawn in the known glyphs.

    Parameters
    ----------
    image : (H, W) uint8
        The micrograph as read, with its data bar (``imaging.detect_data_bar``).

    The label's value must be a 1-2-5 step (10.0nm, 200nm, 1.00um, ...), as instruments draw
    them, and every character must match a known glyph; anything else gives None rather than a
    guess (a wrong pixel size would move every rule in nm).
    """
    rows = imaging.detect_data_bar(image)
    if not rows:
        return None
    bar = image[-rows:] >= 128
    ticks = _ticks(bar[:TICK_ROWS])
    if ticks is None:
        return None
    first, last, bottom = ticks
    text = _label(bar[bottom:], int(first) - 4, min(bar.shape[1], int(last) + 40), _glyphs())
    m = LABEL.match(text or "")
    if not m:
        return None
    value = float(m.group(1))
    mantissa = value / 10 ** np.floor(np.log10(value)) if value > 0 else 0
    if not any(abs(mantissa - k) < 1e-6 for k in (1, 2, 5)):
        return None
    return value * {"nm": 1.0, "um": 1e3}[m.group(2)] / (last - first)


@functools.lru_cache(maxsize=1)
def _glyphs() -> dict[str, np.ndarray]:
    return {ch: np.array([[c == "#" for c in row] for row in rows]) for ch, rows in GLYPHS.items()}


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of each run of True."""
    edges = np.flatnonzero(np.diff(np.r_[0, flags.astype(np.int8), 0]))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def _ticks(top: np.ndarray) -> tuple[float, float, int] | None:
    """(first tick centre, last tick centre, first row below the ticks) of the row of ticks
    hanging from the top of the bar, px; None without at least ``MIN_TICKS`` evenly spaced ones."""
    best = None
    for y in range(top.shape[0]):
        runs = [(a, b) for a, b in _runs(top[y]) if b - a <= MAX_TICK_WIDTH_PX]
        if len(runs) >= MIN_TICKS and (best is None or len(runs) > len(best[1])):
            best = (y, runs)
    if best is None:
        return None
    y, runs = best
    centres = np.array([(a + b - 1) / 2 for a, b in runs])
    steps = np.diff(centres)
    if steps.min() < 3 * MAX_TICK_WIDTH_PX or steps.max() - steps.min() > 2.0:
        return None  # not a scale: text, or ticks unevenly spaced
    below = y
    while below < top.shape[0] and top[below, runs[0][0]:runs[0][1]].any():
        below += 1
    return float(centres[0]), float(centres[-1]), below


def _label(below: np.ndarray, x0: int, x1: int, glyphs: dict) -> str | None:
    """The text of the first line of characters under the ticks between columns x0 and x1."""
    region = below[:, max(0, x0):x1]
    lines = _runs(region.any(1))
    if not lines:
        return None
    a, b = lines[0]
    line = region[a:b]
    text = ""
    for c0, c1 in _runs(line.any(0)):
        score, ch = max((_iou(line[:, c0:c1], glyph), ch) for ch, glyph in glyphs.items())
        if score < MIN_GLYPH_IOU:
            return None
        text += ch
    return text


def _iou(g: np.ndarray, t: np.ndarray) -> float:
    """Overlap (IoU) of a cut character and a glyph, each trimmed to its bright rows and the two
    placed bottom-left on one canvas (characters stand on the base line)."""
    g, t = _trim(g), _trim(t)
    h, w = max(g.shape[0], t.shape[0]), max(g.shape[1], t.shape[1])
    pg, pt = np.zeros((h, w), bool), np.zeros((h, w), bool)
    pg[h - g.shape[0]:, :g.shape[1]] = g
    pt[h - t.shape[0]:, :t.shape[1]] = t
    union = (pg | pt).sum()
    return float((pg & pt).sum() / union) if union else 0.0


def _trim(m: np.ndarray) -> np.ndarray:
    ys = np.flatnonzero(m.any(1))
    return m[ys[0]:ys[-1] + 1] if len(ys) else m


def resample_factor(nm_per_px: float | None, trained_nm_per_px: tuple[float, float] | None) -> float:
    """Zoom that brings an image of ``nm_per_px`` into the trained range of pixel sizes.

    Parameters
    ----------
    nm_per_px : float or None
        Pixel size of the micrograph (nm/px); None when unknown.
    trained_nm_per_px : (float, float) or None
        Smallest and largest pixel size (nm/px) the model was trained at.

    Returns
    -------
    float
        Factor for the image's side lengths: 1 inside the range (or when either is unknown),
        below 1 for a micrograph with finer pixels than any training image (it is shrunk to the
        range's finest pixel size), above 1 for coarser pixels (enlarged to the coarsest).
    """
    if not nm_per_px or not trained_nm_per_px:
        return 1.0
    lo, hi = trained_nm_per_px
    if nm_per_px < lo:
        return nm_per_px / lo
    if nm_per_px > hi:
        return nm_per_px / hi
    return 1.0
