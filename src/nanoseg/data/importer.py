"""``nanoseg import``: micrographs plus labelme JSON or mask PNGs -> a dataset folder.

Every problem with one file is reported on one line naming the file; good
files still import. Large micrographs can be tiled (each tile keeps its
micrograph as ``group``), and the SEM data bar can be cut off the bottom.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from .. import imaging, io, labelme
from ..errors import NanosegError
from ..scale import resolve_scale


@dataclass
class ImportReport:
    imported: list = field(default_factory=list)
    skipped: list = field(default_factory=list)   # (file, reason)
    warnings: list = field(default_factory=list)  # (file, message)

    def nothing_imported(self, src) -> str:
        """The one-line error when no file imported: how many were skipped and the first reason."""
        first = f"; first: {self.skipped[0][0]}: {self.skipped[0][1]}" if self.skipped else ""
        return io.printable(f"{src}: nothing imported ({len(self.skipped)} file(s) skipped{first})")

    def summary(self) -> str:
        lines = [f"imported {len(self.imported)} micrograph(s), skipped {len(self.skipped)}, "
                 f"{len(self.warnings)} warning(s)"]
        for f, why in self.skipped:
            lines.append(f"  skipped {f}: {why}")
        for f, msg in self.warnings:
            lines.append(f"  warning {f}: {msg}")
        return io.printable("\n".join(lines))


def _find_annotation(img_path: Path) -> tuple[str, Path] | None:
    stem = img_path.stem
    cands = [img_path.with_suffix(".json")]
    for sib in ("labelme", "annotations", "json", "labels"):
        cands.append(img_path.parent.parent / sib / f"{stem}.json")
        cands.append(img_path.parent / sib / f"{stem}.json")
    for c in cands:
        if c.exists():
            return "labelme", c
    for sib in ("masks", "mask", "labels"):
        for base in (img_path.parent.parent, img_path.parent):
            for ext in (".png", ".tif", ".tiff", ".bmp"):
                c = base / sib / f"{stem}{ext}"
                if c.exists() and c != img_path:
                    return "mask", c
    return None


#: smallest tile ``--tile`` accepts (px)
MIN_TILE_PX = 16


def _mask_from_png(path: Path, shape) -> np.ndarray:
    m = io.read_mask(path)
    if m.shape != shape:
        raise NanosegError(f"{path}: mask size {m.shape[1]}x{m.shape[0]} differs from image {shape[1]}x{shape[0]}")
    vals = set(np.unique(m).tolist())
    if vals <= {0, 255}:
        return (m == 255).astype(np.uint8)  # binary 0/255 mask
    if vals <= {0, 1, 255}:
        return m
    raise NanosegError(f"{path}: mask values {sorted(vals)[:6]} are neither 0/255 nor class indices 0/1/255")


def import_folder(src: str | Path, out: str | Path, *, label_map: dict | None = None, line_width_px: int = 10,
                  crop_bottom: int | str | None = None, tile_px: int | None = None, overlap_px: int = 64,
                  strict: bool = False, overwrite: bool = False, progress: bool = True,
                  scale_nm_per_px: float | None = None, resample_nm_per_px: float | None = None) -> ImportReport:
    """Import labelled micrographs into a dataset folder; returns what was imported, skipped and warned.

    A file that cannot be imported is skipped with a one-line reason; the others still import.

    Parameters
    ----------
    src : str or Path
        Folder of micrographs (PNG, JPEG, TIFF; or its ``images/``) with a labelme JSON beside each
        (or in ``labelme/``, ``annotations/``, ...) or a mask PNG in ``masks/`` (0/255 or class indices).
    out : str or Path
        Dataset folder to create (``images/``, ``masks/``, ``labelme/``, ``manifest.csv``, ``import.json``).
    label_map : dict, optional
        labelme label name -> class index (default ``labelme.DEFAULT_LABEL_MAP``).
    line_width_px : int
        Width (px) painted for labelme ``line`` / ``linestrip`` shapes.
    crop_bottom : int, "auto" or None
        Rows (px) of the SEM data bar cut off the bottom; ``"auto"`` finds them; None keeps all.
    tile_px : int, optional
        Cut each micrograph into square tiles of this side (px, at least 16); a tile keeps its
        micrograph as ``group``.
    overlap_px : int
        Pixels shared by neighbouring tiles (0 <= overlap_px < tile_px).
    strict : bool
        Treat every warning as an error (the file is skipped).
    overwrite : bool
        Replace a non-empty ``out``.
    progress : bool
        Show a progress bar.
    scale_nm_per_px : float, optional
        Pixel size (nm/px) of every micrograph; otherwise read from each file's metadata or Hitachi
        ``.txt`` sidecar, as ``predict`` does. Recorded in the manifest, so a model trained on the
        folder knows its pixel sizes.
    resample_nm_per_px : float, optional
        Resample every micrograph of known pixel size to this one (nm/px) before tiling: images by
        area averaging (shrinking) or bilinear (enlarging), masks by nearest neighbour, labelme
        shapes scaled before they are painted.
    """
    src = Path(src)
    _check_import_args(src, out, tile_px=tile_px, overlap_px=overlap_px, crop_bottom=crop_bottom,
                       line_width_px=line_width_px, label_map=label_map)
    report = ImportReport()
    images = _micrographs(src, report)
    label_map = labelme.DEFAULT_LABEL_MAP if label_map is None else {k.lower(): v for k, v in label_map.items()}
    with io.atomic_dir(out, overwrite=overwrite, inputs=[("source", src)]) as tmp:
        rows = []
        for img_path in tqdm(images, desc="import", unit="img", disable=not progress):
            try:
                one = _read_labelled(img_path, label_map=label_map, line_width_px=line_width_px,
                                     crop_bottom=crop_bottom, scale_nm_per_px=scale_nm_per_px,
                                     resample_nm_per_px=resample_nm_per_px, strict=strict)
            except NanosegError as exc:
                msg = str(exc)
                report.skipped.append((str(img_path), msg.split(": ", 1)[-1] if msg.startswith(str(img_path)) else msg))
                continue
            for wmsg in one["warnings"]:
                report.warnings.append((str(img_path), wmsg))
            rows += _write_micrograph(tmp, img_path, one, tile_px=tile_px, overlap_px=overlap_px)
            report.imported.append(str(img_path))
        if not report.imported:
            raise NanosegError(report.nothing_imported(src))
        io.write_csv(tmp / "manifest.csv", rows)
        io.write_json(tmp / "import.json", {"src": str(src), "imported": report.imported,
                                            "skipped": report.skipped, "warnings": report.warnings,
                                            "crop_bottom": crop_bottom, "tile_px": tile_px,
                                            "overlap_px": overlap_px, "label_map": label_map,
                                            "scale_nm_per_px": scale_nm_per_px,
                                            "resample_nm_per_px": resample_nm_per_px})
    return report


def _check_import_args(src: Path, out, *, tile_px, overlap_px, crop_bottom, line_width_px, label_map) -> None:
    if not src.is_dir():
        raise NanosegError(f"{src}: source folder not found")
    io.check_out_separate(out, [("source", src)])
    if tile_px is not None and not MIN_TILE_PX <= tile_px:
        raise NanosegError(f"--tile: {tile_px} is below the minimum of {MIN_TILE_PX} px")
    if tile_px is not None and not 0 <= overlap_px < tile_px:
        raise NanosegError(f"--overlap: {overlap_px} must lie in 0..{tile_px - 1} (smaller than --tile {tile_px})")
    if crop_bottom not in (None, "auto") and int(crop_bottom) < 0:
        raise NanosegError(f"--crop-bottom: {crop_bottom} is negative")
    if line_width_px < 1:
        raise NanosegError(f"--line-width: must be at least 1 px (got {line_width_px})")
    if label_map is not None:
        labelme.check_label_map(label_map)


def _micrographs(src: Path, report: ImportReport) -> list[Path]:
    """The micrographs of ``src`` that can become dataset ids; the others (and JSONs without
    their image) go into ``report.skipped``."""
    img_dir = src / "images" if (src / "images").is_dir() else src
    images = [p for p in io.list_images(img_dir)]
    # mask PNGs living beside images in masks/ are not micrographs
    images = [p for p in images if p.parent.name not in ("masks", "mask")]
    # ids are file stems: a.png and a.tif would both become "a" (and share a.json), so neither
    # is imported and the report names both; a stem that is not a plain name is skipped too
    by_stem: dict[str, list[Path]] = {}
    for p in images:
        by_stem.setdefault(p.stem, []).append(p)
    kept = []
    for stem, paths in by_stem.items():
        if len(paths) > 1:
            names = " and ".join(p.name for p in paths)
            for p in paths:
                report.skipped.append((str(p), f"{names} would share the id {stem!r}; rename one"))
            continue
        try:
            io.check_name(stem, "file name")
        except NanosegError as exc:
            report.skipped.append((str(paths[0]), str(exc)))
            continue
        kept.append(paths[0])
    images = sorted(kept)
    jsons = {p.stem: p for p in list(src.glob("*.json")) + list(src.glob("*/*.json"))}
    for stem, jp in sorted(jsons.items()):
        if stem not in by_stem:
            # a JSON whose micrograph is missing
            try:
                ip = json.loads(jp.read_text()).get("imagePath", "?")
            except Exception:  # noqa: BLE001
                ip = "?"
            ip = ip if isinstance(ip, str) else "?"
            report.skipped.append((str(jp), f"image {Path(ip.replace(chr(92), '/')).name!r} not found"))
    if not images and by_stem:
        raise NanosegError(report.nothing_imported(src))
    if not images:
        raise NanosegError(f"{src}: no micrographs found (PNG, JPEG, TIFF)")
    return images


def _read_labelled(img_path: Path, *, label_map: dict, line_width_px: int, crop_bottom, scale_nm_per_px,
                   resample_nm_per_px, strict: bool) -> dict:
    """One micrograph and its class mask, data bar cut and resampled; NanosegError if it cannot import."""
    warns: list[str] = []
    img = io.read_gray(img_path)
    ann = _find_annotation(img_path)
    if ann is None:
        raise NanosegError("no labelme JSON or mask found for it")
    kind, ann_path = ann
    data = None
    if kind == "labelme":
        data = labelme.load(ann_path)
        jh, jw = data.get("imageHeight"), data.get("imageWidth")
        if jh is not None and jw is not None and (jh, jw) != img.shape:
            raise NanosegError(f"{ann_path.name} says {jw}x{jh} but the image is "
                               f"{img.shape[1]}x{img.shape[0]}")
    else:
        mask = _mask_from_png(ann_path, img.shape)
    bar = imaging.data_bar_rows(img, crop_bottom)
    nm, nm_source = resolve_scale(img_path, scale_nm_per_px, img)
    factor = nm / resample_nm_per_px if resample_nm_per_px and nm else 1.0
    img = imaging.zoom(img[:-bar] if bar else img, factor)
    if kind == "labelme":
        # shapes are scaled, then painted: thin bands stay whole at the new pixel size
        data = labelme.scaled(data, factor) if factor != 1.0 else data
        mask = labelme.rasterize(data, img.shape, label_map, line_width_px, warn=warns.append)
    else:
        mask = imaging.zoom(mask[:-bar] if bar else mask, factor, nearest=True)
    if factor != 1.0:
        nm = float(resample_nm_per_px)
    if strict and warns:
        raise NanosegError(f"--strict: {warns[0]}")
    return {"image": img, "mask": mask, "kind": kind, "annotation": ann_path, "labelme": data, "bar": bar,
            "scale_nm_per_px": nm, "scale_source": nm_source, "warnings": warns}


def _write_micrograph(tmp: Path, img_path: Path, one: dict, *, tile_px: int | None, overlap_px: int) -> list[dict]:
    """Write one imported micrograph (whole or as tiles) and its labelme file; its manifest rows."""
    img, mask, group = one["image"], one["mask"], img_path.stem
    tiles = [(0, 0, img.shape[0], img.shape[1])]
    if tile_px:
        tiles = [(y, x, tile_px, tile_px) for y, x in imaging.tile_origins(img.shape, tile_px, overlap_px)]
    rows = []
    for ti, (y, x, th, tw) in enumerate(tiles):
        sid = group if not tile_px else f"{group}__t{ti:03d}"
        timg, tmask = img[y:y + th, x:x + tw], mask[y:y + th, x:x + tw]
        if tile_px and timg.shape != (tile_px, tile_px):
            # micrograph smaller than a tile: pad, mask pad is ignored
            ph, pw = tile_px - timg.shape[0], tile_px - timg.shape[1]
            timg = np.pad(timg, ((0, ph), (0, pw)))
            tmask = np.pad(tmask, ((0, ph), (0, pw)), constant_values=io.IGNORE_INDEX)
        io.write_png(tmp / "images" / f"{sid}.png", timg)
        io.write_png(tmp / "masks" / f"{sid}.png", tmask)
        rows.append({"id": sid, "source": "ad", "group": group, "file": img_path.name,
                     "annotation": one["annotation"].name, "tile_y": y, "tile_x": x,
                     "crop_bottom": one["bar"], "height": timg.shape[0], "width": timg.shape[1],
                     "scale_nm_per_px": one["scale_nm_per_px"] or "", "scale_source": one["scale_source"]})
    if one["kind"] == "labelme" and not tile_px:
        doc = dict(one["labelme"])
        doc["imagePath"] = f"../images/{group}.png"
        doc["imageData"] = None
        doc["imageHeight"], doc["imageWidth"] = int(img.shape[0]), int(img.shape[1])
        (tmp / "labelme").mkdir(exist_ok=True)
        (tmp / "labelme" / f"{group}.json").write_text(json.dumps(doc, indent=1))
    return rows
