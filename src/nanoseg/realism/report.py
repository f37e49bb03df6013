"""``nanoseg realism``: real micrographs against a synthetic folder, as a table, a JSON record and a figure."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import NanosegError
from .distance import compare_matched, format_table
from .sources import load_real, load_synthetic, measure_all
from .stats import pool


def realism_report(real_paths, synth_dir, *, scales=None, scale_table=None, crop_bottom=None,
                   tile_px: int | str | None = "auto", json_out=None, figure=None, progress: bool = True) -> dict:
    """Measure both sets, compare each real micrograph with the synthetic images at its scale.

    Parameters
    ----------
    real_paths : files or folders of real micrographs
    synth_dir : a synthetic dataset folder (``nanoseg synth`` output)
    scales : list of float, optional
        nm per px of the real micrographs (once for all, or once per file).
    scale_table : dict, optional
        file name -> nm per px (``sources.read_scale_csv``).
    crop_bottom : int or "auto", optional
        Data-bar rows to cut from the real micrographs.
    tile_px : int or "auto", optional
        Measure the real micrographs in tiles of this side (px; ``stats.measure_tiled``): "auto" is
        the synthetic images' (median shorter) side, so both sides are measured on fields of the
        same size; 0 or None measures them whole.
    json_out, figure : paths, optional
        Where to write the full record and the distributions figure (PNG).

    Returns the ``compare_matched`` result with ``table`` (markdown), ``skipped`` and
    ``real``/``synthetic`` (per-image name, scale and summary statistics).
    """
    real, skipped = load_real(real_paths, scales=scales, scale_table=scale_table, crop_bottom=crop_bottom)
    if not real:
        raise NanosegError(f"--real: no readable micrograph in {', '.join(map(str, real_paths))}")
    synth = load_synthetic(synth_dir)
    # nm only if every image on both sides has a pixel size; otherwise everything in px
    use_nm = all(m.scale_nm_per_px for m in real) and all(m.scale_nm_per_px for m in synth)
    if tile_px == "auto":
        tile_px = int(np.median([min(m.image.shape[:2]) for m in synth]))
    real_stats = measure_all(real, use_scale=use_nm, tile_px=tile_px or None, desc="real", progress=progress)
    synth_stats = measure_all(synth, use_scale=use_nm, desc="synthetic", progress=progress)
    result = compare_matched(real_stats, synth_stats, names=[m.name for m in real])
    result["table"] = format_table(result)
    if not use_nm:
        missing = [m.name for m in real + synth if not m.scale_nm_per_px][:3]
        result["note"] = ("pixel size unknown for " + ", ".join(missing)
                          + ": lengths and densities compared in px (give --scale-nm-per-px)")
    result["skipped"] = [{"file": f, "reason": r} for f, r in skipped]
    result["real_tile_px"] = tile_px or None
    result["real"] = [{"name": m.name, "scale_nm_per_px": m.scale_nm_per_px, "scale_source": m.scale_source,
                       "crop_bottom_px": m.crop_bottom_px, "statistics": st.summary()}
                      for m, st in zip(real, real_stats)]
    result["synthetic"] = {"folder": str(synth_dir), "n_images": len(synth),
                           "scales_nm_per_px": sorted({round(m.scale_nm_per_px, 4) for m in synth
                                                       if m.scale_nm_per_px})[:50]}
    if figure:
        from ..figures import realism_panel

        realism_panel(pool(real_stats), pool(synth_stats), result, figure)
    if json_out:
        from ..io import atomic_write_text

        atomic_write_text(json_out, json.dumps(result, indent=2, default=_json_default) + "\n")
    return result


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o))
