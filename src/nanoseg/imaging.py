"""Image utilities shared by the importer and inference: gray conversion, the data bar, tiling.

Pure numpy in, numpy out (no files): ``io.read_gray`` reads a file and calls
``to_uint8_gray``; ``nanoseg import`` and ``nanoseg predict`` both cut the SEM data
bar with ``data_bar_rows`` and lay tiles with ``tile_origins``.
"""

from __future__ import annotations

import numpy as np

from .errors import NanosegError

MIN_ROWS_LEFT = 8  # a data-bar crop must leave more rows than this


def to_uint8_gray(arr: np.ndarray, name: str = "image") -> np.ndarray:
    """Any 2-D gray or RGB(A) array (channels first or last; 8/16-bit, int or float) as 8-bit gray.

    Colour is converted with ITU-R 601 luma weights. 16-bit, signed and float images are
    rescaled from their own 0.1/99.9 percentiles (non-finite pixels black), booleans to 0/255;
    8-bit values are kept as they are. ``name``
    names the image in the error raised for anything that is not an image.
    """
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[0] in (3, 4) and arr.shape[-1] not in (3, 4):
        arr = np.moveaxis(arr, 0, -1)
    if arr.ndim == 3 and arr.shape[-1] not in (1, 2, 3, 4):
        raise NanosegError(f"{name}: a stack or volume of shape {arr.shape}, not a 2-D image")
    if arr.ndim == 3 and arr.dtype.kind not in "biuf":
        raise NanosegError(f"{name}: unsupported pixel type {arr.dtype}")
    if arr.ndim == 3:
        if arr.shape[-1] == 4:
            arr = arr[..., :3]
        if arr.shape[-1] in (1, 2):  # gray, or gray + alpha
            arr = arr[..., 0]
        else:
            src_dtype = arr.dtype
            arr = arr.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
            if src_dtype == np.uint8:  # 8-bit colour: keep the grey levels as they are
                arr = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
            else:
                arr = arr.astype(src_dtype) if src_dtype.kind in "iu" else arr
    if arr.ndim != 2 or arr.size == 0:
        raise NanosegError(f"{name}: not a 2-D image (shape {arr.shape})")
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    if arr.dtype == np.uint16 or arr.dtype.kind in "iuf":
        a = arr.astype(np.float64)
        finite = np.isfinite(a)
        if not finite.any():
            raise NanosegError(f"{name}: no finite pixel values (all NaN or infinite)")
        if not finite.all():  # dead pixels of a float detector image: black, the rest scaled as usual
            a = np.where(finite, a, np.nan)
            a = np.where(finite, a, np.nanpercentile(a, 0.1))
        if arr.dtype.kind == "f" or a.max() > 255 or a.min() < 0:
            lo, hi = np.percentile(a, [0.1, 99.9])
            if hi <= lo:
                hi = lo + 1
            a = (a - lo) / (hi - lo) * 255.0
        return np.clip(np.rint(a), 0, 255).astype(np.uint8)
    raise NanosegError(f"{name}: unsupported pixel type {arr.dtype}")


def detect_data_bar(img: np.ndarray, min_rows: int = 20, max_fraction: float = 0.3) -> int:
    """Rows of an instrument data bar at the bottom (0 if none).

    SEM data bars (Hitachi, FEI, Zeiss, JEOL) are a block of rows whose background is
    black or white, carrying sparse text, ticks and a scale bar: the median of every
    bar row is that background level, while micrograph rows have a median well away
    from it. We walk up from the bottom row while the row median stays at that level.
    """
    h = img.shape[0]
    med = np.median(img, axis=1)
    level = med[-1]
    if not (level <= 10 or level >= 245):
        return 0
    y = h - 1
    while y > 0 and abs(med[y - 1] - level) <= 3:
        y -= 1
    bar = h - y
    if bar < min_rows or bar > max_fraction * h or y == 0 or abs(med[y - 1] - level) < 15:
        return 0
    return int(bar)


def data_bar_rows(img: np.ndarray, crop_bottom: int | str | None) -> int:
    """Rows to cut off the bottom: ``detect_data_bar`` for ``"auto"``, else the number given (0 for None).

    Raises NanosegError when the cut would leave no image.
    """
    bar = detect_data_bar(img) if crop_bottom == "auto" else int(crop_bottom or 0)
    if bar and bar >= img.shape[0] - MIN_ROWS_LEFT:
        raise NanosegError(f"--crop-bottom {bar} leaves no image")
    return bar


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Origins of tiles covering ``length`` with at least ``overlap`` px shared by neighbours."""
    if length <= tile:
        return [0]
    step = max(1, tile - overlap)
    starts = list(range(0, length - tile + 1, step))
    if starts[-1] != length - tile:
        starts.append(length - tile)
    return starts


def tile_origins(shape_hw: tuple[int, int], tile_px: int, overlap_px: int) -> list[tuple[int, int]]:
    """(y, x) of the tiles of side ``tile_px`` covering an image, neighbours sharing ``overlap_px`` at least.

    Row-major order. Tiles are cut at ``min(tile_px, side)`` along a side shorter than a tile.
    """
    h, w = shape_hw
    return [(y, x) for y in tile_starts(h, min(tile_px, h), overlap_px)
            for x in tile_starts(w, min(tile_px, w), overlap_px)]


def zoom(img: np.ndarray, factor: float, nearest: bool = False) -> np.ndarray:
    """``img`` with its side lengths scaled by ``factor`` (to a pixel size ``1/factor`` times the old).

    Area averaging when shrinking, bilinear when enlarging; ``nearest`` for class masks.
    """
    import cv2

    if abs(factor - 1) < 1e-6:
        return img
    h, w = img.shape[:2]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    interp = cv2.INTER_NEAREST if nearest else (cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR)
    return cv2.resize(img, size, interpolation=interp)
