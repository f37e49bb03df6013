"""Pixel size (nm/px) from the micrograph's own metadata (or a flag), with its source recorded.

Read, in order: FEI/Thermo TIFF tag 34682/34680 (``[Scan] PixelWidth`` in metres),
Zeiss TIFF tag 34118 (``AP_PIXEL_SIZE`` ... ``Pixel Size = 2.5 nm``), a Hitachi
sidecar ``<name>.txt`` (``PixelSize=...`` in nm). ``--scale-nm-per-px`` overrides.
"""

from __future__ import annotations

import re
from pathlib import Path

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


def read_pixel_size(path: str | Path) -> tuple[float | None, str]:
    """(nm per px, source) from metadata; (None, 'none') when the file says nothing."""
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
    return None, "none"


def resolve_scale(path: str | Path, override_nm_per_px: float | None) -> tuple[float | None, str]:
    if override_nm_per_px is not None:
        return float(override_nm_per_px), "flag"
    return read_pixel_size(path)


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
