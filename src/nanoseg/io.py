"""File helpers shared by every stage: images, dataset folders, atomic outputs."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

import cv2
import numpy as np
from PIL import Image

from .errors import NanosegError

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
IGNORE_INDEX = 255


def read_gray(path: str | Path) -> np.ndarray:
    """Read any PNG/JPEG/TIFF (8/16-bit, gray or RGB) as 8-bit grayscale.

    16-bit and float images are rescaled from their own 0.1/99.9 percentiles,
    which keeps the contrast of detector images that do not use the full range.
    """
    path = Path(path)
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            arr = tifffile.imread(str(path))
        else:
            with Image.open(path) as im:
                im.load()
                if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                    arr = np.array(im)
                else:
                    arr = np.array(im.convert("RGB") if im.mode not in ("L", "RGB") else im)
    except Exception as exc:  # noqa: BLE001 - any decoder error means unreadable
        raise NanosegError(f"{path}: cannot read image ({exc.__class__.__name__}: {exc})") from exc
    return to_uint8_gray(arr, str(path))


def to_uint8_gray(arr: np.ndarray, name: str = "image") -> np.ndarray:
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[0] in (3, 4) and arr.shape[-1] not in (3, 4):
        arr = np.moveaxis(arr, 0, -1)
    if arr.ndim == 3:
        if arr.shape[-1] == 4:
            arr = arr[..., :3]
        if arr.shape[-1] == 1:
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
    if arr.dtype == np.uint16 or arr.dtype.kind in "iuf":
        a = arr.astype(np.float64)
        if arr.dtype.kind == "f" or a.max() > 255:
            lo, hi = np.percentile(a, [0.1, 99.9])
            if hi <= lo:
                hi = lo + 1
            a = (a - lo) / (hi - lo) * 255.0
        return np.clip(np.rint(a), 0, 255).astype(np.uint8)
    raise NanosegError(f"{name}: unsupported pixel type {arr.dtype}")


#: PNG settings for 8-bit grayscale (micrographs, masks), the bulk of every dataset: the Sub
#: filter with run-length deflate. On noisy micrographs this is about 4x faster than zlib
#: level 1 with adaptive filters, and the files are smaller.
PNG_FLAGS = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]
if hasattr(cv2, "IMWRITE_PNG_FILTER"):  # OpenCV >= 4.11
    PNG_FLAGS += [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_SUB]
#: colour figures and overlays (few, with flat areas) and 16-bit images: ordinary deflate, half the size
PNG_FLAGS_OTHER = [cv2.IMWRITE_PNG_COMPRESSION, 6]


def encode_png(arr: np.ndarray) -> bytes:
    """Lossless PNG bytes of a gray (HxW) or RGB/RGBA (HxWx3/4) uint8 or uint16 array."""
    arr = np.ascontiguousarray(arr)
    if arr.ndim == 3 and arr.shape[2] == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
    elif arr.ndim == 3 and arr.shape[2] == 4:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGBA2BGRA)
    gray8 = arr.ndim == 2 and arr.dtype == np.uint8
    ok, buf = cv2.imencode(".png", arr, PNG_FLAGS if gray8 else PNG_FLAGS_OTHER)
    if not ok:
        raise ValueError(f"cannot encode a {arr.dtype} array of shape {arr.shape} as PNG")
    return buf.tobytes()


def write_bytes(path: str | Path, data: bytes) -> None:
    """Create ``path`` (its folder must exist) holding ``data``: open, write, close and nothing
    else (no buffering, isatty or seek calls); the generator writes three files per image."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def write_png(path: str | Path, arr: np.ndarray) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_bytes(path, encode_png(arr))


def read_mask(path: str | Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            arr = np.array(im)
    except Exception as exc:  # noqa: BLE001
        raise NanosegError(f"{path}: cannot read mask ({exc})") from exc
    if arr.ndim == 3:
        arr = arr[..., 0]
    return arr.astype(np.uint8)


def list_images(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Origins of tiles covering ``length`` with at least ``overlap`` px shared by neighbours."""
    if length <= tile:
        return [0]
    step = max(1, tile - overlap)
    starts = list(range(0, length - tile + 1, step))
    if starts[-1] != length - tile:
        starts.append(length - tile)
    return starts


# ---------------------------------------------------------------- atomic output

@contextlib.contextmanager
def atomic_dir(out: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it replaces ``out`` in one move.

    A crash leaves ``out`` untouched (and removes the temporary folder), so an
    output folder is never half-written.
    """
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise NanosegError(f"{out}: output folder exists and is not empty (use --overwrite)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(out)


def atomic_write_text(path: str | Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_json(path: str | Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o))


# ---------------------------------------------------------------- manifests

def write_csv(path: str | Path, rows: Iterable[dict], fieldnames: list[str] | None = None) -> None:
    rows = list(rows)
    if fieldnames is None:
        fieldnames = []
        for r in rows:
            for k in r:
                if k not in fieldnames:
                    fieldnames.append(k)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fieldnames, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: _csv_value(r.get(k, "")) for k in fieldnames})
    os.replace(tmp, path)


def _csv_value(v):
    if isinstance(v, (dict, list)):
        return json.dumps(v, default=_json_default, separators=(",", ":"))
    if isinstance(v, float):
        return repr(round(v, 6))
    return v


def read_csv(path: str | Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))
