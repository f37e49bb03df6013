"""``nanoseg predict``: segment micrographs of any size and measure every ring structure."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, replace
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from .. import imaging, io, labelme
from ..errors import NanosegError
from ..analysis.results import REJECTED_COLUMNS, measure_image, write_results
from ..figures import draw_overlay
from ..models import load_model, pick_device
from ..scale import resample_factor, resolve_scale, scale_from_data_bar
from .engine import Predictor
from .measure import MIN_AREA_PX, MIN_RADIUS_PX
from .loops import WORK_NM_PER_PX, LoopRules, find_loops
from .rings import RingRules, rules_dict

RING_FINDERS = ("model", "loops")
BAR_TOLERANCE = 0.1  # a flag this far from the scale bar of a micrograph gets a note (the finder's rules are in nm)

def probs_at_zoom(predictor: Predictor, image: np.ndarray, zoom: float) -> np.ndarray:
    """Class probabilities (C, H, W) at the image's own pixels, predicted at ``zoom`` times its size.

    ``zoom`` (from ``scale.resample_factor``) brings the micrograph to the pixel sizes the model was
    trained at; the probabilities are mapped back bilinearly, so masks and measurements stay in the
    micrograph's own pixels.
    """
    if abs(zoom - 1) < 1e-6:
        return predictor.probs(image)
    h, w = image.shape
    probs = predictor.probs(imaging.zoom(image, zoom))
    return np.stack([cv2.resize(p, (w, h), interpolation=cv2.INTER_LINEAR) for p in probs])


def predict(model_path: str | Path | None, inputs, out: str | Path, *, scale_nm_per_px: float | None = None,
            crop_bottom: int | str | None = None, tile_px: int | None = None, overlap_px: int | None = None,
            batch_size: int = 4, device: str = "auto", min_area_px: int = MIN_AREA_PX,
            min_coverage: float = RingRules.min_coverage, min_radius_px: float = MIN_RADIUS_PX,
            write_labelme: bool = False, overwrite: bool = False, progress: bool = True, report: bool = False,
            backend: str = "torch", memory_budget_mb: float | None = None, rules: RingRules | None = None,
            ring_finder: str = "model", loop_rules: LoopRules | None = None) -> dict:
    """Segment micrographs and measure their ring structures into the folder ``out``; returns the summary.

    Each image goes through the network whole when its activations fit ``memory_budget_mb``
    (``engine.Predictor``); ``tile_px`` forces sliding-window tiles. Micrographs of known pixel
    size are resampled into the model's trained range (``spec["scale_nm_per_px_range"]``) and the
    result mapped back; bands become rings only if they pass ``rules`` (``inference.rings``).
    ``ring_finder="loops"`` finds rings structure first instead (``inference.loops``: round empty
    loops of the particle chains, no model; the mask paints each ring's band as one annulus, as
    the references are labelled).

    Parameters
    ----------
    model_path : str, Path or None
        Checkpoint (``RUN/best.pt``); None only with ``ring_finder="loops"``.
    inputs : list of str or Path
        Micrograph files, or folders of them (a dataset folder's ``images/``). Unreadable files are
        skipped with their reason; the others still go through.
    out : str or Path
        Results folder to create: ``masks/``, ``overlays/``, ``structures.csv``, ``review.csv``,
        ``rejected.csv``, ``summary.json`` (and ``labelme/``, ``report.html``).
    scale_nm_per_px : float, optional
        Pixel size (nm/px) of every micrograph; otherwise each file's metadata or sidecar.
    crop_bottom : int, "auto" or None
        Rows (px) of the SEM data bar to cut; ``"auto"`` finds them; None keeps every row.
    tile_px, overlap_px : int, optional
        Force sliding-window tiles of this side (px, at least 16) and their overlap (px;
        default a quarter of the tile).
    batch_size : int
        Tiles per forward pass.
    device : str
        ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
    min_area_px, min_coverage, min_radius_px : int, float, float
        Fragment filters: smallest structure (px), angular coverage of the circle (0-1) and mean
        radius (px); they override the fields of ``rules``.
    write_labelme, overwrite, progress, report : bool
        Also write each micrograph (as segmented) with a labelme JSON of its mask, for correction;
        replace a non-empty ``out``; show a progress bar; also write a self-contained ``report.html``.
    backend : str
        ``torch``, or ``onnx`` (ONNX Runtime on the CPU).
    memory_budget_mb : float, optional
        Activation memory (MiB) one forward pass may take (default half the device's free memory).
    rules : RingRules, optional
        Ring rules (circularity, radial spread, interior fill, confidence) of the model finder.
    ring_finder : str
        ``model`` or ``loops``.
    loop_rules : LoopRules, optional
        Thresholds of the loop finder (``inference.loops``; default ``LoopRules()``, sizes in nm).
    """
    _check_arguments(ring_finder=ring_finder, model_path=model_path, scale_nm_per_px=scale_nm_per_px,
                     crop_bottom=crop_bottom, batch_size=batch_size, tile_px=tile_px, overlap_px=overlap_px)
    named = ([("--model", model_path)] if model_path is not None else []) + [("--input", p) for p in inputs]
    io.check_out_separate(out, named)
    predictor, spec = None, {"arch": None}  # the loop finder needs no model
    if ring_finder == "model":
        predictor, spec = _load_predictor(model_path, device=device, backend=backend, tile_px=tile_px,
                                          overlap_px=overlap_px, batch_size=batch_size, memory_budget_mb=memory_budget_mb)
    files, problems = io.collect_images(inputs)
    if not files:
        raise NanosegError(f"--input: no images found in {', '.join(map(str, inputs))}")
    trained_scale, loop_rules = spec.get("scale_nm_per_px_range"), loop_rules or LoopRules()
    rules = replace(rules or RingRules(), min_area_px=min_area_px, min_coverage=min_coverage,
                    min_radius_px=min_radius_px)
    all_rows, all_rejected, per_image, scale_log = [], [], {}, {"unknown": [], "bar_differs": []}
    with io.atomic_dir(out, overwrite=overwrite, inputs=named) as tmp:
        for path in tqdm(files, desc="predict", unit="img", disable=not progress):
            try:
                seg = _segment(path, predictor, crop_bottom=crop_bottom, scale_nm_per_px=scale_nm_per_px,
                               trained_scale=trained_scale, ring_finder=ring_finder, scale_log=scale_log,
                               loop_rules=loop_rules)
            except _Skipped as skip:
                problems.append(skip.entry)
                continue
            name, image, mask = _unique_name(path.stem, per_image), seg["image"], seg["mask"]
            rows, per_image[name] = measure_image(
                mask, name=name, file=str(path), nm_per_px=seg["nm"], scale_source=seg["source"],
                crop_bottom=seg["bar"], confidence=seg["confidence"], rules=rules, image=image, zoom=seg["zoom"],
                rejected=all_rejected, found=seg["found"][:2] if seg["found"] else None)
            per_image[name]["resample_factor"] = seg["zoom"]
            all_rows += rows
            _write_image_outputs(tmp, name, image, mask, rows, write_labelme)
        if not per_image:
            first = problems[0] if problems else ("?", "?")
            raise NanosegError(f"--input: none of {len(files)} file(s) could be used ({first[0]}: {first[1]})")
        settings = dict(_finder_settings(ring_finder, model_path, spec, rules, loop_rules),
                        backend=backend, tile_px=tile_px, overlap_px=overlap_px, min_area_px=min_area_px,
                        min_coverage=min_coverage, min_radius_px=min_radius_px,
                        notes=_scale_notes(scale_log, trained_scale, ring_finder, flag_nm_per_px=scale_nm_per_px))
        title = f"nanoseg predict: {Path(model_path).name if ring_finder == 'model' else 'structure-first rings'}"
        summary = write_results(tmp, rows=all_rows, images=per_image, skipped=problems, report=report,
                                title=title, settings=settings)
        # bands that failed a ring rule, with the rule: for review
        io.write_csv(tmp / "rejected.csv", all_rejected, REJECTED_COLUMNS)
    return summary


def _load_predictor(model_path, *, device: str, **engine) -> tuple[Predictor, dict]:
    """The checkpoint's model on ``device`` in an ``engine.Predictor`` (``engine``: its settings), and its spec."""
    model_dev = pick_device(device)
    model, spec = load_model(model_path, model_dev)
    return Predictor(model, device=model_dev, **engine), spec


def _finder_settings(ring_finder: str, model_path, spec: dict, rules: RingRules, loop_rules: LoopRules) -> dict:
    """What found the rings, for ``summary.json``: the finder, its model and the rules it judged by."""
    model = ring_finder == "model"
    return {"command": "predict", "ring_finder": ring_finder, "model": str(model_path) if model else None,
            "arch": spec["arch"], "ring_rules": rules_dict(rules) if model else asdict(loop_rules),
            "model_scale_nm_per_px_range": spec.get("scale_nm_per_px_range")}


def _check_arguments(*, ring_finder, model_path, scale_nm_per_px, crop_bottom, batch_size, tile_px, overlap_px):
    """One-line errors for arguments no micrograph can fix, before anything is read or written."""
    if ring_finder not in RING_FINDERS:
        raise NanosegError(f"--ring-finder: {ring_finder!r} is not one of {', '.join(RING_FINDERS)}")
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
    if ring_finder == "model" and model_path is None:
        raise NanosegError("--model: the model ring finder needs a checkpoint")


def _without_data_bar(image: np.ndarray, crop_bottom) -> tuple[np.ndarray, int]:
    """(the micrograph without its data bar, the rows cut)."""
    bar = imaging.data_bar_rows(image, crop_bottom)
    return (image[:-bar] if bar else image), bar


def _unique_name(stem: str, taken) -> str:
    """``stem``, or ``stem_1``, ``stem_2``, ... when taken (a.png and a.tif, or equal names in two folders)."""
    name, k = stem, 1
    while name in taken:
        name, k = f"{stem}_{k}", k + 1
    return name


class _Skipped(Exception):
    """An input that cannot be used; ``entry`` is its (file, reason) line of the skipped list."""

    def __init__(self, file: str, reason: str):
        super().__init__(reason)
        self.entry = (file, reason)


def _segment(path: Path, predictor, *, crop_bottom, scale_nm_per_px, trained_scale, ring_finder: str,
             scale_log: dict, loop_rules: LoopRules) -> dict:
    """One micrograph read, its data bar cut and its ring mask found (``_Skipped`` if it cannot be)."""
    try:
        io.check_name(path.stem, "file name")
        image = io.read_gray(path)
    except NanosegError as exc:
        raise _Skipped(io.printable(path), io.printable(str(exc).split(": ", 1)[-1])) from None
    full = image  # with its data bar, which may state the pixel size
    try:
        image, bar = _without_data_bar(image, crop_bottom)
    except NanosegError as exc:
        raise _Skipped(str(path), str(exc)) from None
    nm, source = resolve_scale(path, scale_nm_per_px, full)
    if nm is None:
        scale_log["unknown"].append(path.name)
    elif source == "flag":  # the flag wins, but a scale bar that says otherwise is worth a note
        bar_nm = scale_from_data_bar(full)
        if bar_nm and abs(math.log(bar_nm / nm)) > math.log(1 + BAR_TOLERANCE):
            scale_log["bar_differs"].append(f"{path.name}: {bar_nm:.3g}")
    if ring_finder == "loops":  # it resamples to its own working pixel size and maps rows back
        try:
            found = find_loops(image, nm_per_px=nm, rules=loop_rules)
        except NanosegError as exc:
            raise _Skipped(str(path), str(exc)) from None
        mask, confidence, zoom = found[2], None, 1.0
    else:
        zoom = resample_factor(nm, trained_scale)
        probs = probs_at_zoom(predictor, image, zoom)
        mask, confidence, found = probs.argmax(0).astype(np.uint8), probs[1], None
    return {"image": image, "mask": mask, "confidence": confidence, "found": found, "zoom": zoom, "bar": bar,
            "nm": nm, "source": source}


def _write_image_outputs(tmp: Path, name: str, image: np.ndarray, mask: np.ndarray, rows: list[dict],
                         write_labelme: bool) -> None:
    io.write_png(tmp / "masks" / f"{name}.png", mask)
    io.write_png(tmp / "overlays" / f"{name}.png", draw_overlay(image, mask, rows))
    if write_labelme:
        # the micrograph as the model saw it, so the JSON opens and re-imports as is
        io.write_png(tmp / "labelme" / f"{name}.png", image)
        doc = labelme.document(labelme.mask_to_shapes(mask), f"{name}.png", mask.shape)
        (tmp / "labelme" / f"{name}.json").write_text(json.dumps(doc, indent=1))


def _scale_notes(scale_log: dict, trained_scale, ring_finder: str = "model", *,
                 flag_nm_per_px: float | None = None) -> list[str]:
    """One note for the micrographs of unknown pixel size, one for those whose scale bar disagrees with the flag."""
    notes = []
    differs = scale_log["bar_differs"]
    if differs:
        notes.append(f"--scale-nm-per-px {flag_nm_per_px:g} differs by more than {BAR_TOLERANCE:.0%} from the scale "
                     f"bar of {len(differs)} image(s) ({_first(differs)} nm/px): the flag was used")
    unknown = scale_log["unknown"]
    if not unknown or (ring_finder == "model" and not trained_scale):
        return notes
    if ring_finder == "loops":
        return notes + [f"pixel size unknown for {len(unknown)} image(s) ({_first(unknown)}): taken to be "
                        f"{WORK_NM_PER_PX:g} nm/px, the loop finder's rules are in nm; give --scale-nm-per-px"]
    return notes + [f"pixel size unknown for {len(unknown)} image(s) ({_first(unknown)}): predicted at their own "
                    f"pixel size, but the model was trained at {trained_scale[0]:.2g}-{trained_scale[1]:.2g} nm/px; "
                    "give --scale-nm-per-px"]


def _first(items: list[str]) -> str:
    return ", ".join(items[:3]) + (", ..." if len(items) > 3 else "")
