"""``nanoseg measure``: ring measurements from existing masks (hand labels, another tool's output,
``predict``'s own masks), written exactly as ``predict`` writes them.

Masks are PNG (or any image) class maps: 0 background, 1 ring (255 = ignore, counted as
background), or binary 0/255 (255 = ring). They are matched to micrographs by file stem; the
micrograph gives the overlay and, from its metadata, the pixel size (or a table of pixel sizes
per micrograph, ``--scales``). A micrograph taller than its
mask (the data bar cut before labelling or by ``predict``) is cropped to the mask.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from .. import imaging, io
from ..errors import NanosegError
from ..figures import draw_overlay
from ..inference.measure import MIN_AREA_PX, MIN_COVERAGE, MIN_RADIUS_PX
from ..scale import resolve_scale
from .results import measure_image, write_results


def mask_to_classes(mask: np.ndarray, name: str = "mask", *, ignore_255: bool = False) -> np.ndarray:
    """0/1 class map of a 0/1(/255 ignore) class mask or a 0/255 binary mask.

    ``ignore_255``: 255 always means ignore (a nanoseg dataset folder), even in a mask
    without any ring pixel; otherwise a mask holding only 0 and 255 is binary (255 = ring).
    """
    values = set(np.unique(mask).tolist())
    if values <= {0, 1}:
        return mask.astype(np.uint8)
    if values <= {0, 1, 255} and (1 in values or ignore_255):
        return (mask == 1).astype(np.uint8)  # 255 = ignore: not a ring
    if values <= {0, 255}:
        return (mask == 255).astype(np.uint8)
    shown = sorted(values - {0, 1, 255})[:5]
    if ignore_255:
        raise NanosegError(f"{name}: mask values must be 0/1 (255 ignore), found {shown}")
    raise NanosegError(f"{name}: mask values must be 0/1 (255 ignore) or 0/255, found {shown}")


def _scale_hints(masks_root: Path) -> tuple[dict[str, float], str]:
    """Pixel sizes recorded beside the masks: a synthetic dataset's ``meta.jsonl`` or the
    ``summary.json`` of an earlier predict/measure run."""
    from ..synthesis.meta import read_meta

    meta = read_meta(masks_root)
    if meta:
        return ({k: float(v["values"]["scale_nm_per_px"]) for k, v in meta.items()
                 if v.get("values", {}).get("scale_nm_per_px")}, "meta.jsonl")
    s = masks_root / "summary.json"
    if s.exists():
        import json

        try:
            images = json.loads(s.read_text()).get("images", {})
        except (OSError, ValueError):
            images = {}
        return {k: float(v["nm_per_px"]) for k, v in images.items() if v.get("nm_per_px")}, "summary.json"
    return {}, "none"


def read_scale_table(path: str | Path) -> dict[str, float]:
    """File stem -> nm per px from a CSV with a ``file`` (or ``image``) and a ``scale_nm_per_px`` column."""
    path = Path(path)
    try:
        rows = io.read_csv(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise NanosegError(f"--scales: cannot read {path} ({exc})") from None
    out = {}
    for k, r in enumerate(rows, 2):
        key = r.get("file") or r.get("image")
        value = r.get("scale_nm_per_px")
        if not key or value in (None, ""):
            raise NanosegError(f"--scales: {path}:{k} needs 'file' (or 'image') and 'scale_nm_per_px'")
        try:
            nm = float(value)
        except ValueError:
            nm = float("nan")
        if not (np.isfinite(nm) and nm > 0):
            raise NanosegError(f"--scales: {path}:{k}: scale_nm_per_px {value!r} is not a positive number")
        out[Path(key).stem] = nm
    return out


def measure_masks(masks, out, *, images=None, scale_nm_per_px: float | None = None, scales=None,
                  crop_bottom=None,
                  min_area_px: int = MIN_AREA_PX, min_coverage: float = MIN_COVERAGE,
                  min_radius_px: float = MIN_RADIUS_PX, report: bool = False, overwrite: bool = False,
                  progress: bool = True) -> dict:
    """Measure every ring of every mask in ``masks`` into the results folder ``out``.

    Parameters
    ----------
    masks : path
        Folder of masks, or a dataset / predict folder holding ``masks/`` (its ``images/``,
        ``meta.jsonl`` or ``summary.json`` are used too).
    out : path
        Results folder to create: ``masks/``, ``overlays/``, ``structures.csv``, ``review.csv``,
        ``summary.json`` (and ``report.html``).
    images : path, optional
        Folder of the micrographs, matched to masks by file stem.
    scale_nm_per_px : float, optional
        Pixel size in nm for every image; overrides metadata.
    scales : path, optional
        CSV of pixel sizes per micrograph (``file``/``image`` and ``scale_nm_per_px`` columns, matched
        by file stem); overrides metadata, not ``scale_nm_per_px``.
    crop_bottom : int or "auto", optional
        Rows of data bar to cut from the bottom of masks and micrographs (``auto``: detected on the
        micrograph).
    min_area_px, min_coverage, min_radius_px : int, float, float
        Fragment filters, as for ``predict`` (px, fraction of the circle, px).
    report : bool
        Also write ``report.html``.
    overwrite : bool
        Replace a non-empty ``out``.
    progress : bool
        Show a progress bar.
    """
    root = Path(masks)
    if not root.is_dir():
        raise NanosegError(f"--masks: {root} is not a folder")
    mask_dir = root / "masks" if (root / "masks").is_dir() else root
    if images is None and (root / "images").is_dir():
        images = root / "images"
    image_dir = Path(images) if images is not None else None
    if image_dir is not None and not image_dir.is_dir():
        raise NanosegError(f"--images: {image_dir} is not a folder")
    if crop_bottom == "auto" and image_dir is None:
        raise NanosegError("--crop-bottom auto: needs --images (the data bar is found on the micrograph)")
    mask_files = io.list_images(mask_dir)
    if not mask_files:
        raise NanosegError(f"--masks: no mask images in {mask_dir}")
    by_stem = {p.stem: p for p in io.list_images(image_dir)} if image_dir is not None else {}
    hints, hint_source = _scale_hints(root)
    table = read_scale_table(scales) if scales is not None else {}
    ignore_255 = (root / "manifest.csv").exists()  # a nanoseg dataset: 255 is ignore
    problems: list[tuple[str, str]] = []
    rows_all, per_image = [], {}
    inputs = [("--masks", root)] + ([("--images", image_dir)] if image_dir is not None else []) + \
        ([("--scales", scales)] if scales is not None else [])
    with io.atomic_dir(out, overwrite=overwrite, inputs=inputs) as tmp:
        for mpath in tqdm(mask_files, desc="measure", unit="img", disable=not progress):
            name = mpath.stem
            ipath = by_stem.get(name)
            try:
                mask, image, bar, full = _mask_and_image(mpath, ipath, crop_bottom, ignore_255=ignore_255)
            except NanosegError as exc:
                problems.append((str(mpath), str(exc).split(": ", 1)[-1]))
                continue
            nm, source = _pixel_size(name, ipath, full, scale_nm_per_px, table, hints, hint_source)
            rows, per_image[name] = measure_image(
                mask, name=name, file=str(ipath or mpath), nm_per_px=nm, scale_source=source, crop_bottom=bar,
                min_area_px=min_area_px, min_coverage=min_coverage, min_radius_px=min_radius_px)
            per_image[name]["mask_file"] = str(mpath)
            rows_all += rows
            io.write_png(tmp / "masks" / f"{name}.png", mask)
            backdrop = image if image is not None else np.full(mask.shape, 96, np.uint8)
            io.write_png(tmp / "overlays" / f"{name}.png", draw_overlay(backdrop, mask, rows))
        if not per_image:
            first = problems[0] if problems else ("?", "?")
            raise NanosegError(f"--masks: none of {len(mask_files)} mask(s) could be used ({first[0]}: {first[1]})")
        summary = write_results(tmp, rows=rows_all, images=per_image, skipped=problems, report=report,
                                title=f"nanoseg measure: {root.name}", settings={
                                    "command": "measure", "masks": str(mask_dir),
                                    "images": str(image_dir) if image_dir is not None else None,
                                    "min_area_px": min_area_px, "min_coverage": min_coverage,
                                    "min_radius_px": min_radius_px})
    return summary


def _mask_and_image(mpath: Path, ipath: Path | None, crop_bottom, *, ignore_255: bool):
    """A mask as class indices, its micrograph (or None) cut to the mask's rows, the data-bar rows,
    and the micrograph as read (its data bar may state the pixel size)."""
    mask = mask_to_classes(io.read_mask(mpath), str(mpath), ignore_255=ignore_255)
    image = full = io.read_gray(ipath) if ipath is not None else None
    bar = 0
    if crop_bottom == "auto":
        bar = imaging.detect_data_bar(image) if image is not None else 0
    elif crop_bottom:
        bar = int(crop_bottom)
    if image is not None:
        if image.shape[1] != mask.shape[1] or image.shape[0] < mask.shape[0]:
            raise NanosegError(f"{mpath}: mask {mask.shape[1]}x{mask.shape[0]} does not fit image "
                               f"{ipath.name} {image.shape[1]}x{image.shape[0]}")
        if bar and mask.shape[0] == image.shape[0]:
            mask = mask[:-bar]
        bar = image.shape[0] - mask.shape[0]  # a taller micrograph: its data bar was cut before
        image = image[:mask.shape[0]]
    elif bar:
        mask = mask[:-bar]
    if mask.shape[0] < imaging.MIN_ROWS_LEFT:
        raise NanosegError(f"{mpath}: --crop-bottom {bar} leaves no mask")
    return mask, image, bar, full


def _pixel_size(name: str, ipath: Path | None, image: np.ndarray | None, scale_nm_per_px: float | None,
                table: dict, hints: dict, hint_source: str) -> tuple[float | None, str]:
    """(nm/px or None, where it came from): the flag, then the --scales table, the image's metadata
    or data bar (``image``: the micrograph as read), and last the folder's own records."""
    if scale_nm_per_px is None and name in table:
        nm, source = table[name], "scales-table"
    elif ipath is not None:
        nm, source = resolve_scale(ipath, scale_nm_per_px, image)
    else:
        nm, source = (float(scale_nm_per_px), "flag") if scale_nm_per_px is not None else (None, "none")
    if nm is None and name in hints:
        nm, source = hints[name], hint_source
    return nm, source
