"""``nanoseg predict``: segment micrographs of any size and measure every ring structure."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from .. import imaging, io, labelme
from ..errors import NanosegError
from ..models import load_model, pick_device
from .measure import MIN_AREA_PX, MIN_COVERAGE, MIN_RADIUS_PX, add_physical_units, measure_structures
from .scale import resolve_scale
from .sliding import predict_probs, tile_rule

STRUCTURE_COLUMNS = [
    "image", "structure_id", "centre_x_px", "centre_y_px", "mean_radius_px", "ring_width_px",
    "ellipse_major_px", "ellipse_minor_px", "ellipse_angle_deg", "circularity", "coverage", "area_px",
    "nm_per_px", "scale_source", "centre_x_nm", "centre_y_nm", "mean_radius_nm", "ring_width_nm",
    "ellipse_major_nm", "ellipse_minor_nm", "area_nm2", "mean_confidence",
]


def collect_inputs(paths) -> tuple[list[Path], list[tuple[str, str]]]:
    files, problems = [], []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            found = io.list_images(p)
            if not found:
                problems.append((str(p), "folder holds no images"))
            files += found
        elif p.is_file():
            files.append(p)
        else:
            problems.append((str(p), "not found"))
    return files, problems


def draw_overlay(image: np.ndarray, mask: np.ndarray, rows: list[dict]) -> np.ndarray:
    """Micrograph with structures outlined and numbered."""
    rgb = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    fg = (mask == 1).astype(np.uint8)
    tint = rgb.copy()
    tint[fg > 0] = (32, 64, 255)
    rgb = cv2.addWeighted(tint, 0.35, rgb, 0.65, 0)
    contours, _ = cv2.findContours(fg, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(rgb, contours, -1, (0, 200, 255), 1)
    scale = max(0.4, min(image.shape) / 800)
    for r in rows:
        org = (int(r["centre_x_px"]) - 6, int(r["centre_y_px"]) + 5)
        cv2.putText(rgb, str(r["structure_id"]), org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(rgb, str(r["structure_id"]), org, cv2.FONT_HERSHEY_SIMPLEX, scale, (80, 255, 80), 1, cv2.LINE_AA)
    return cv2.cvtColor(rgb, cv2.COLOR_BGR2RGB)


def _stats(values):
    if not values:
        return None
    a = np.asarray(values, float)
    return {"mean": float(a.mean()), "std": float(a.std()), "median": float(np.median(a)),
            "min": float(a.min()), "max": float(a.max())}


def predict(model_path, inputs, out, scale_nm_per_px: float | None = None, crop_bottom=None,
            tile_px: int | None = None, overlap_px: int | None = None, batch_size: int = 4,
            device: str = "auto", min_area_px: int = MIN_AREA_PX, min_coverage: float = MIN_COVERAGE,
            min_radius_px: float = MIN_RADIUS_PX, write_labelme: bool = False,
            overwrite: bool = False, progress: bool = True) -> dict:
    if scale_nm_per_px is not None and not (np.isfinite(scale_nm_per_px) and scale_nm_per_px > 0):
        raise NanosegError(f"--scale-nm-per-px: must be a positive finite number (got {scale_nm_per_px})")
    if crop_bottom not in (None, "auto") and int(crop_bottom) < 0:
        raise NanosegError(f"--crop-bottom: {crop_bottom} is negative")
    if batch_size < 1:
        raise NanosegError(f"--batch-size: must be at least 1 (got {batch_size})")
    if tile_px is not None and tile_px < 16:
        raise NanosegError(f"--tile: {tile_px} is below the minimum of 16 px")
    if overlap_px is not None and overlap_px < 0:
        raise NanosegError(f"--overlap: {overlap_px} is negative")
    io.check_out_separate(out, [("--model", model_path)] + [("--input", p) for p in inputs])
    model_dev = pick_device(device)
    model, spec = load_model(model_path, model_dev)
    files, problems = collect_inputs(inputs)
    if not files:
        raise NanosegError(f"--input: no images found in {', '.join(map(str, inputs))}")
    rule_tile, _ = tile_rule(spec.get("train_size"))
    tile_px = tile_px or rule_tile
    overlap_px = tile_px // 4 if overlap_px is None else overlap_px
    if overlap_px >= tile_px:
        raise NanosegError(f"--overlap: {overlap_px} must be smaller than the tile ({tile_px})")
    all_rows, per_image, review = [], {}, []
    with io.atomic_dir(out, overwrite=overwrite, inputs=[("--model", model_path)] + [("--input", p) for p in inputs]) as tmp:
        for path in tqdm(files, desc="predict", unit="img", disable=not progress):
            try:
                io.check_name(path.stem, "file name")
                image = io.read_gray(path)
            except NanosegError as exc:
                problems.append((io.printable(path), io.printable(str(exc).split(": ", 1)[-1])))
                continue
            try:
                bar = imaging.data_bar_rows(image, crop_bottom)
            except NanosegError as exc:
                problems.append((str(path), str(exc)))
                continue
            if bar:
                image = image[:-bar]
            probs = predict_probs(model, image, tile_px, overlap_px, batch_size, model_dev)
            mask = probs.argmax(0).astype(np.uint8)
            nm, source = resolve_scale(path, scale_nm_per_px)
            rows = measure_structures(mask, min_area_px, min_coverage, min_radius_px, confidence=probs[1])
            name = path.stem
            k = 1
            while name in per_image:  # a.png and a.tif, or equal names in two folders
                name, k = f"{path.stem}_{k}", k + 1
            fg_conf = float(probs[1][mask == 1].mean()) if (mask == 1).any() else float("nan")
            for r in rows:
                add_physical_units(r, nm, source)
                r["image"] = name
            all_rows += rows
            io.write_png(tmp / "masks" / f"{name}.png", mask)
            io.write_png(tmp / "overlays" / f"{name}.png", draw_overlay(image, mask, rows))
            if write_labelme:
                # the micrograph as the model saw it, so the JSON opens and re-imports as is
                io.write_png(tmp / "labelme" / f"{name}.png", image)
                doc = labelme.document(labelme.mask_to_shapes(mask), f"{name}.png", mask.shape)
                (tmp / "labelme" / f"{name}.json").write_text(json.dumps(doc, indent=1))
            radii = [r["mean_radius_px"] for r in rows]
            per_image[name] = {
                "file": str(path), "height": int(mask.shape[0]), "width": int(mask.shape[1]), "crop_bottom": bar,
                "nm_per_px": nm, "scale_source": source, "n_structures": len(rows),
                "ring_fraction": float((mask == 1).mean()), "mean_confidence": fg_conf,
                "radius_px": _stats(radii),
                "radius_nm": _stats([x * nm for x in radii]) if nm else None,
                "coverage": _stats([r["coverage"] for r in rows]),
            }
            review.append({"image": name, "mean_confidence": fg_conf, "n_structures": len(rows),
                           "file": str(path)})
        if not per_image:
            first = problems[0] if problems else ("?", "?")
            raise NanosegError(f"--input: none of {len(files)} file(s) could be used ({first[0]}: {first[1]})")
        io.write_csv(tmp / "structures.csv", all_rows, STRUCTURE_COLUMNS)
        review.sort(key=lambda r: (np.nan_to_num(r["mean_confidence"], nan=-1.0), r["image"]))
        io.write_csv(tmp / "review.csv", review)
        summary = {
            "model": str(model_path), "arch": spec["arch"], "tile_px": tile_px, "overlap_px": overlap_px,
            "min_area_px": min_area_px, "min_coverage": min_coverage, "min_radius_px": min_radius_px,
            "n_images": len(per_image), "n_structures": len(all_rows),
            "skipped": [{"file": f, "reason": why} for f, why in problems],
            "overall": {"radius_px": _stats([r["mean_radius_px"] for r in all_rows]),
                        "coverage": _stats([r["coverage"] for r in all_rows]),
                        "structures_per_image": _stats([v["n_structures"] for v in per_image.values()])},
            "images": per_image,
        }
        io.write_json(tmp / "summary.json", summary)
    return summary
