"""labelme JSON: rasterise shapes exactly as labelme does, and write labelme files.

labelme paints every shape with PIL.ImageDraw in file order, later shapes over
earlier ones (``labelme.utils.shapes_to_label``). A ring drawn as an outer shape
labelled ``ring`` followed by an inner shape labelled ``_background_`` therefore
becomes an annulus. We reproduce that rule, so a file opens in labelme and
rasterises here to the same mask.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Iterable

import numpy as np
import cv2
from PIL import Image, ImageDraw

from .errors import NanosegError
from .io import IGNORE_INDEX

LABELME_VERSION = "5.4.1"

#: default label table: names (lower-cased) -> class index
DEFAULT_LABEL_MAP = {
    "_background_": 0,
    "background": 0,
    "ring": 1,
    "rings": 1,
    "circle": 1,
    "circular": 1,
    "circular_structure": 1,
    "ring_structure": 1,
    "structure": 1,
    # doubtful structures: excluded from loss and metrics
    "ignore": IGNORE_INDEX,
    "_ignore_": IGNORE_INDEX,
}


def shape_to_mask(shape_hw: tuple[int, int], points, shape_type: str | None,
                  line_width_px: int = 10, point_size_px: int = 5) -> np.ndarray:
    """Boolean mask of one labelme shape, drawn as labelme draws it (PIL, pixel centres)."""
    img = Image.fromarray(np.zeros(shape_hw, dtype=np.uint8))
    draw = ImageDraw.Draw(img)
    xy = [tuple(p) for p in np.asarray(points, dtype=float).reshape(-1, 2).tolist()]
    shape_type = shape_type or "polygon"
    if shape_type == "circle":
        if len(xy) != 2:
            raise ValueError("circle needs 2 points")
        (cx, cy), (px, py) = xy
        d = math.hypot(cx - px, cy - py)
        draw.ellipse([cx - d, cy - d, cx + d, cy + d], outline=1, fill=1)
    elif shape_type == "rectangle":
        if len(xy) != 2:
            raise ValueError("rectangle needs 2 points")
        (x0, y0), (x1, y1) = xy
        draw.rectangle([min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)], outline=1, fill=1)
    elif shape_type in ("line", "linestrip"):
        if len(xy) < 2:
            raise ValueError(f"{shape_type} needs at least 2 points")
        draw.line(xy=xy, fill=1, width=int(line_width_px))
    elif shape_type == "point":
        if len(xy) != 1:
            raise ValueError("point needs 1 point")
        cx, cy = xy[0]
        r = point_size_px
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=1, fill=1)
    elif shape_type == "polygon":
        if len(xy) < 3:
            raise ValueError("polygon needs at least 3 points")
        draw.polygon(xy=xy, outline=1, fill=1)
    else:
        raise ValueError(f"unsupported shape_type {shape_type!r}")
    return np.array(img, dtype=bool)


#: the classes a dataset mask holds (0 background, 1 ring structure) besides ``IGNORE_INDEX``;
#: models are built with this many classes (``models.checkpoint.CLASS_NAMES``)
NUM_CLASSES = 2


def check_label_map(label_map: dict) -> None:
    """Refuse a label table naming a class the models cannot learn (``ring: 7`` would import
    and then fail at training): every value must be a class 0..NUM_CLASSES-1 or 255 (ignore)."""
    for name, cls in label_map.items():
        if isinstance(cls, bool) or not isinstance(cls, int) or not (0 <= cls < NUM_CLASSES or cls == IGNORE_INDEX):
            raise NanosegError(f"--labels: {name!r}: {cls!r} is not a class index 0..{NUM_CLASSES - 1} "
                               f"or {IGNORE_INDEX} (ignore)")


def class_of(label: str, label_map: dict[str, int]) -> int | None:
    """Class index of a label name, or None when the table does not know it."""
    key = label.strip().lower()
    if key in label_map:
        return label_map[key]
    return None


def rasterize(data: dict, shape_hw: tuple[int, int], label_map: dict[str, int] | None = None,
              line_width_px: int = 10, warn=None, base: np.ndarray | None = None) -> np.ndarray:
    """Class-index mask (uint8) of a labelme document, shapes painted in file order.

    Unknown labels and ``point`` shapes are skipped with a warning through ``warn``;
    shapes reaching outside the image are clipped (and warned about). ``base``: a mask
    to paint over (the result of the shapes before these).
    """
    label_map = DEFAULT_LABEL_MAP if label_map is None else label_map
    warn = warn or (lambda msg: None)
    mask = np.zeros(shape_hw, dtype=np.uint8) if base is None else base.copy()
    h, w = shape_hw
    for i, shape in enumerate(data.get("shapes", [])):
        label = str(shape.get("label", ""))
        stype = shape.get("shape_type") or "polygon"
        pts = shape.get("points") or []
        if stype == "point":
            warn(f"shape {i} ({label!r}): point shapes are ignored")
            continue
        if stype == "mask":
            warn(f"shape {i} ({label!r}): mask shapes are not supported, ignored")
            continue
        cls = class_of(label, label_map)
        if cls is None:
            warn(f"shape {i}: unknown label {label!r}, ignored")
            continue
        arr = np.asarray(pts, dtype=float).reshape(-1, 2) if len(pts) else np.zeros((0, 2))
        if len(arr) and (arr[:, 0].min() < -0.5 or arr[:, 1].min() < -0.5
                         or arr[:, 0].max() > w - 0.5 or arr[:, 1].max() > h - 0.5):
            warn(f"shape {i} ({label!r}): points outside the {w}x{h} image, clipped")
        try:
            m = shape_to_mask(shape_hw, arr.tolist(), stype, line_width_px=line_width_px)
        except ValueError as exc:
            warn(f"shape {i} ({label!r}): {exc}, ignored")
            continue
        mask[m] = cls
    return mask


UNTOUCHED = 255  # marks pixels no shape painted in ``paint_in_box``


def paint_in_box(shapes: list[dict], shape_hw: tuple[int, int], label_map: dict[str, int] | None = None):
    """Polygon shapes painted in order, as labelme paints them, inside their bounding box only.

    Returns ``((y0, x0), box)`` where ``box`` (uint8) holds the class of the last shape
    painted over each pixel and ``UNTOUCHED`` elsewhere, or None when the shapes lie
    outside the ``shape_hw`` image. PIL's rasterisation does not change under integer
    shifts, so this equals the same region of ``rasterize`` at a fraction of the cost.
    """
    label_map = DEFAULT_LABEL_MAP if label_map is None else label_map
    h, w = shape_hw
    polys = [(np.asarray(sh["points"], float).reshape(-1, 2), class_of(str(sh.get("label", "")), label_map))
             for sh in shapes if (sh.get("shape_type") or "polygon") == "polygon"]
    if len(polys) != len(shapes) or any(c is None or len(p) < 3 for p, c in polys):
        raise ValueError("paint_in_box takes polygons (3+ points) with known labels only")
    pts = np.concatenate([p for p, _ in polys])
    x0, y0 = np.maximum(np.floor(pts.min(axis=0)).astype(int) - 2, 0)
    x1, y1 = np.minimum(np.ceil(pts.max(axis=0)).astype(int) + 3, [w, h])
    if x0 >= x1 or y0 >= y1:
        return None
    img = Image.new("L", (int(x1 - x0), int(y1 - y0)), UNTOUCHED)
    draw = ImageDraw.Draw(img)
    for p, cls in polys:
        draw.polygon((p - [x0, y0]).ravel().tolist(), outline=cls, fill=cls)
    return (int(y0), int(x0)), np.asarray(img)


def paint_over(mask: np.ndarray, shapes: list[dict], label_map: dict[str, int] | None = None) -> bool:
    """Paint polygon shapes over a class mask in place, in order, as labelme paints them (pixels
    no shape covers keep their class); False when the shapes lie outside the mask."""
    painted = paint_in_box(shapes, mask.shape, label_map)
    if painted is None:
        return False
    (y0, x0), drawn = painted
    box = mask[y0:y0 + drawn.shape[0], x0:x0 + drawn.shape[1]]
    box[drawn != UNTOUCHED] = drawn[drawn != UNTOUCHED]
    return True


def load(path: str | Path) -> dict:
    """A labelme document, checked: ``shapes`` a list of shapes whose ``points`` are finite
    ``[x, y]`` pairs, ``imageHeight``/``imageWidth`` positive integers when given. Anything
    else is a NanosegError naming the file (the importer then skips that file alone)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(), parse_constant=_no_constant)
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise NanosegError(f"{path}: not a readable labelme JSON ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict) or "shapes" not in data:
        raise NanosegError(f"{path}: not a labelme JSON (no 'shapes')")
    problem = _document_problem(data)
    if problem:
        raise NanosegError(f"{path}: malformed labelme JSON ({problem})")
    return data


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number in JSON")


def _document_problem(data: dict) -> str | None:
    shapes = data["shapes"]
    if not isinstance(shapes, list):
        return f"'shapes' is {type(shapes).__name__}, not a list"
    for key in ("imageHeight", "imageWidth"):
        v = data.get(key)
        integral = isinstance(v, int) or (isinstance(v, float) and v.is_integer())  # 48.0 from some tools
        if v is not None and (isinstance(v, bool) or not integral or not 0 < v <= 1_000_000):
            return f"{key!r} is {v!r}, not a positive integer"
    for i, sh in enumerate(shapes):
        if not isinstance(sh, dict):
            return f"shape {i} is {type(sh).__name__}, not an object"
        if not isinstance(sh.get("label", ""), (str, int)):
            return f"shape {i}: 'label' is {type(sh.get('label')).__name__}, not a string"
        st = sh.get("shape_type")
        if st is not None and not isinstance(st, str):
            return f"shape {i}: 'shape_type' is {st!r}, not a string"
        pts = sh.get("points")
        if pts is None and st in ("mask", "point"):
            continue
        if not isinstance(pts, list) or not all(
                isinstance(p, list) and len(p) == 2
                and all(isinstance(c, (int, float)) and not isinstance(c, bool) and math.isfinite(c)
                    and abs(c) <= 1e7 for c in p)
                for p in pts):
            return f"shape {i}: 'points' must be a list of finite [x, y] pairs"
    return None


def polygon_shape(points: Iterable, label: str) -> dict:
    return {
        "label": label,
        "points": np.round(np.asarray(points, dtype=float).reshape(-1, 2), 2).tolist(),
        "group_id": None,
        "description": "",
        "shape_type": "polygon",
        "flags": {},
        "mask": None,
    }


def document(shapes: list[dict], image_path: str, shape_hw: tuple[int, int]) -> dict:
    """A labelme document (no embedded image data: imagePath points to the micrograph)."""
    return {
        "version": LABELME_VERSION,
        "flags": {},
        "shapes": shapes,
        "imagePath": image_path,
        "imageData": None,
        "imageHeight": int(shape_hw[0]),
        "imageWidth": int(shape_hw[1]),
    }


def scaled(data: dict, factor: float) -> dict:
    """A copy of a labelme document for the image resampled by ``factor`` (side lengths).

    Points map as pixel grids do (``(x + 0.5) * factor - 0.5``); image size and circle radii follow.
    """
    def pt(p):
        return [(float(p[0]) + 0.5) * factor - 0.5, (float(p[1]) + 0.5) * factor - 0.5]

    out = dict(data, shapes=[dict(sh, points=[pt(p) for p in sh.get("points") or []]) for sh in data.get("shapes") or []])
    for key in ("imageHeight", "imageWidth"):
        if data.get(key) is not None:
            out[key] = max(1, round(int(data[key]) * factor))
    return out


def ring_groups(data: dict, ring_label: str = "ring") -> list[tuple[int, int]]:
    """Shape index ranges ``(a, b)`` of each ring of a document: a ``ring`` shape and the
    ``_background_`` shapes after it (its hole, painted in order), as nanoseg writes rings."""
    shapes = data.get("shapes") or []
    starts = [i for i, sh in enumerate(shapes) if str(sh.get("label", "")).lower() == ring_label]
    groups = []
    for k, a in enumerate(starts):
        b = a + 1
        while b < len(shapes) and (k + 1 >= len(starts) or b < starts[k + 1]) \
                and str(shapes[b].get("label", "")).lower() == "_background_":
            b += 1
        groups.append((a, b))
    return groups


def structure_counts(data: dict) -> dict[str, int]:
    """Structures per label in a labelme document, ``_background_`` holes not counted.

    Shapes sharing a ``group_id`` are one structure (a ring whose real gaps leave it
    in several arcs); a shape without one is a structure of its own.
    """
    seen: dict[str, set] = {}
    for i, sh in enumerate(data.get("shapes", [])):
        label = str(sh.get("label", "")).strip().lower()
        if label in ("_background_", "background"):
            continue
        gid = sh.get("group_id")
        seen.setdefault(label, set()).add(("g", gid) if gid is not None else ("s", i))
    return {label: len(ids) for label, ids in seen.items()}


def ring_shapes(outer_xy: np.ndarray, inner_xy: np.ndarray) -> list[dict]:
    """An annulus as labelme expresses it: outer polygon ``ring``, then inner ``_background_``."""
    return [polygon_shape(outer_xy, "ring"), polygon_shape(inner_xy, "_background_")]


def _contour_polygons(region: np.ndarray) -> list[np.ndarray]:
    """Outer boundaries (through the region's own edge pixels) of its 8-connected parts."""
    contours, _ = cv2.findContours(region.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    return [c[:, 0, :].astype(float) for c in contours]


def _polygon_shape_or_line(pts: np.ndarray, label: str) -> dict:
    if len(pts) >= 3:
        return polygon_shape(pts, label)
    pts = np.vstack([pts, pts[-1:], pts[:1]])[:3]  # a speck: a degenerate 3-point polygon
    return polygon_shape(pts, label)


def mask_to_shapes(mask: np.ndarray, class_index: int = 1, label: str = "ring") -> list[dict]:
    """labelme shapes that paint back to ``mask == class_index`` under labelme's rules.

    Nesting is expressed by order: each region's outer boundary is painted
    ``label``, then the background inside it (its holes) is painted
    ``_background_``, then whatever lies inside those holes, and so on.
    """
    fg = (mask == class_index)
    shapes: list[dict] = []
    region = fg
    depth = 0
    while region.any():
        polys = _contour_polygons(region)
        name = label if depth % 2 == 0 else "_background_"
        layer = [_polygon_shape_or_line(p, name) for p in polys]
        shapes += layer
        # what the polygons painted beyond ``region`` is the next layer to paint over
        painted = np.zeros(mask.shape, bool)
        for sh in layer:
            painted |= shape_to_mask(mask.shape, sh["points"], "polygon")
        target = fg if depth % 2 == 0 else ~fg
        region = painted & ~target
        depth += 1
        if depth > 64:
            break
    return shapes
