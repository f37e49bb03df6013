"""File helpers shared by every stage: images, dataset folders, atomic outputs."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import platform
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

import cv2
import numpy as np
from PIL import Image

from .errors import NanosegError
from .imaging import to_uint8_gray

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
IGNORE_INDEX = 255  #: mask value of unlabelled pixels: excluded from losses and metrics


def read_gray(path: str | Path) -> np.ndarray:
    """Read any PNG/JPEG/TIFF (8/16-bit, gray or RGB) as 8-bit grayscale.

    16-bit and float images are rescaled from their own 0.1/99.9 percentiles,
    which keeps the contrast of detector images that do not use the full range.
    """
    path = Path(path)
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(str(path)) as tf:
                _check_pixels(path, tf.pages[0].shape)
                arr = tf.asarray(key=0)
        else:
            with Image.open(path) as im:
                _check_pixels(path, im.size)
                im.load()
                if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                    arr = np.array(im)
                else:
                    arr = np.array(im.convert("RGB") if im.mode not in ("L", "RGB") else im)
    except NanosegError:
        raise
    except Exception as exc:  # noqa: BLE001 - any decoder error means unreadable
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise NanosegError(f"{path}: cannot read image ({exc.__class__.__name__}: {msg})") from None
    return to_uint8_gray(arr, str(path))


#: largest image read (pixels): 120 MP, e.g. 12288 x 9216; beyond it a header is more likely
#: hostile or broken than a micrograph, and decoding it would take gigabytes
MAX_IMAGE_PIXELS = 120_000_000
# PIL's own guard warns from 89 MP and refuses from 179 MP; ``_check_pixels`` replaces it with
# one limit and a one-line message naming the file
Image.MAX_IMAGE_PIXELS = None


def _check_pixels(path: Path, shape) -> None:
    dims = sorted((int(d) for d in shape), reverse=True)
    n = dims[0] * (dims[1] if len(dims) > 1 else 1)  # height x width, whatever the sample axis
    if n > MAX_IMAGE_PIXELS:
        raise NanosegError(f"{path}: {'x'.join(map(str, shape))} is over the limit of "
                           f"{MAX_IMAGE_PIXELS // 1_000_000} megapixels")


#: PNG settings for 8-bit grayscale (micrographs, masks), the bulk of every dataset: the Sub
#: filter with run-length deflate. On noisy micrographs this is about 4x faster than zlib
#: level 1 with adaptive filters, and the files are smaller.
PNG_FLAGS = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]
if hasattr(cv2, "IMWRITE_PNG_FILTER"):  # OpenCV >= 4.11
    PNG_FLAGS += [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_SUB]
#: colour figures and overlays and 16-bit images: fast deflate with the SUB filter (a 1280x890 predict
#: overlay: 45 ms and 1.26 MB, against 320 ms and 1.14 MB at the default level 6; half the size of RLE)
PNG_FLAGS_OTHER = [cv2.IMWRITE_PNG_COMPRESSION, 1]
if hasattr(cv2, "IMWRITE_PNG_FILTER"):
    PNG_FLAGS_OTHER += [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_SUB]


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
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        write_bytes(path, encode_png(arr))
    except OSError as exc:
        raise NanosegError(f"{path}: cannot write ({exc.strerror or exc})") from None


def check_file_target(path: str | Path, flag: str) -> None:
    """Refuse, before any work, an output file path that cannot be written: a folder, or a place
    under a file. (Creates its parent folders.)"""
    path = Path(path)
    if path.is_dir():
        raise NanosegError(f"{flag}: {path} is a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NanosegError(f"{flag}: cannot write {path} ({exc.strerror or exc})") from None
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise NanosegError(f"{flag}: cannot write {path} ({path.parent} is not writable)")


def read_mask(path: str | Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            _check_pixels(Path(path), im.size)
            arr = np.array(im)
    except NanosegError:
        raise
    except Exception as exc:  # noqa: BLE001
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise NanosegError(f"{path}: cannot read mask ({msg})") from None
    if arr.ndim == 3:
        arr = arr[..., 0]
    if arr.ndim != 2 or arr.size == 0:
        raise NanosegError(f"{path}: mask is not a 2-D image (shape {arr.shape})")
    if arr.dtype != np.uint8:
        if arr.dtype.kind not in "biu" or (arr.size and (arr.min() < 0 or arr.max() > 255)):
            hi = arr.max() if arr.dtype.kind in "biuf" else "?"
            raise NanosegError(f"{path}: mask values must be class indices 0..255 (found {arr.dtype} up to {hi})")
    return arr.astype(np.uint8)


def list_images(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)


# ---------------------------------------------------------------- names, paths and atomic output

def check_name(name, what: str) -> str:
    """``name`` if it is a plain file name (an id, a stem), else NanosegError naming ``what``.

    Ids in manifests and names in labelme files become file names inside a dataset
    folder; a separator, ``..``, a leading dot or a control character would let them
    reach outside it (or hide files), so they are refused rather than cleaned.
    """
    s = "" if name is None else str(name)
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        raise NanosegError(f"{what}: {printable(s)!r} is not valid UTF-8 (rename the file)") from None
    if (not s or s in (".", "..") or "/" in s or "\\" in s or s.startswith(".")
            or any(ord(c) < 32 for c in s) or len(s.encode("utf-8", "surrogateescape")) > 200):
        raise NanosegError(f"{what}: {s!r} is not a plain name (no path separators, '..', leading dot, "
                           "control characters; at most 200 bytes)")
    return s


def printable(text) -> str:
    """``text`` safe to print and to write as UTF-8: bytes of non-UTF-8 file names become U+FFFD."""
    return str(text).encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _real(p: str | Path) -> Path:
    return Path(os.path.realpath(os.path.abspath(os.fspath(p))))


def check_out_separate(out: str | Path, inputs, flag: str = "--out") -> None:
    """Refuse an output that equals, contains or lies inside one of ``inputs``.

    ``inputs``: paths, or ``(flag, path)`` pairs naming the option each came from.
    Outputs are replaced as a whole, so such an ``out`` would destroy (or read while
    writing) its own input. Symbolic links are resolved first.
    """
    o = _real(out)
    for item in inputs:
        name, path = item if isinstance(item, tuple) else ("input", item)
        if path is None:
            continue
        i = _real(path)
        if o == i:
            raise NanosegError(f"{flag}: {out} is the {name} folder itself; choose another output")
        if i.is_relative_to(o):
            raise NanosegError(f"{flag}: {out} contains the {name} {path}; choose another output")
        if o.is_relative_to(i) and not i.is_file():
            raise NanosegError(f"{flag}: {out} lies inside the {name} folder {path}; choose another output")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_HOST = "".join(c if c.isalnum() or c in "-_" else "_" for c in platform.node())[:40] or "host"


def _tmp_prefix(name: str) -> str:
    """Temporary siblings are ``.NAME.tmp-HOST.PID-xxxx``: a later run can tell a dead run's leftovers."""
    return f".{name}.tmp-{_HOST}.{os.getpid()}-"


def remove_stale_temps(folder: Path, name: str) -> None:
    """Delete ``.NAME.tmp-*`` / ``.NAME.old-*`` leftovers of killed runs on this host (dead pid only)."""
    try:
        entries = list(folder.iterdir())
    except OSError:
        return
    for e in entries:
        for kind in ("tmp", "old"):
            head = f".{name}.{kind}-{_HOST}."
            if not e.name.startswith(head):
                continue
            pid = e.name[len(head):].split("-", 1)[0]
            if pid.isdigit() and not _pid_alive(int(pid)):
                if e.is_dir() and not e.is_symlink():
                    shutil.rmtree(e, ignore_errors=True)
                else:
                    with contextlib.suppress(OSError):
                        e.unlink()


def die_with_parent(parent_pid: int) -> None:
    """Worker-pool initializer: end this process when ``parent_pid`` dies, even by ``kill -9``.

    On Linux the kernel sends SIGKILL at the parent's death (``PR_SET_PDEATHSIG``); everywhere
    a daemon thread also polls the parent's pid once a second, so no worker outlives its run.
    """
    import signal
    import threading
    import time

    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent_pid:  # the parent died before the line above ran
        os._exit(1)

    def watch():
        while True:
            time.sleep(1.0)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


@contextlib.contextmanager
def process_pool(workers: int, initializer=None, initargs=()):
    """A spawn-context ``ProcessPoolExecutor`` whose workers never outlive the run.

    Workers die with the parent (``die_with_parent``, even under ``kill -9``); when the block
    ends with an exception (Ctrl-C, SIGTERM, an error) queued work is cancelled and the workers
    are terminated at once instead of finishing the queue.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    ex = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_pool_init, initargs=(os.getpid(), initializer, initargs))
    try:
        yield ex
    except BaseException:
        procs = list((getattr(ex, "_processes", None) or {}).values())  # no public handle on the workers
        ex.shutdown(wait=False, cancel_futures=True)
        for proc in procs:
            with contextlib.suppress(Exception):
                proc.terminate()
        for proc in procs:
            with contextlib.suppress(Exception):
                proc.join(5)
        raise
    ex.shutdown(wait=True)


def _pool_init(parent_pid: int, initializer, initargs) -> None:
    die_with_parent(parent_pid)
    if initializer is not None:
        initializer(*initargs)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _check_writable_parent(out: Path) -> None:
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NanosegError(f"{out}: cannot create the output folder here ({exc.strerror or exc})") from None
    if not out.parent.is_dir():
        raise NanosegError(f"{out}: cannot create the output folder here ({out.parent} is not a folder)")
    if not os.access(out.parent, os.W_OK | os.X_OK):
        raise NanosegError(f"{out}: cannot create the output folder here ({out.parent} is not writable)")


@contextlib.contextmanager
def atomic_dir(out: str | Path, overwrite: bool = False, inputs=()) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it replaces ``out`` in one move.

    A crash, Ctrl-C or SIGTERM leaves ``out`` untouched (and removes the temporary folder),
    so an output folder is never half-written; leftovers of a ``kill -9`` are removed by
    the next run writing the same ``out``. ``inputs`` (see ``check_out_separate``) are
    refused as outputs. A symbolic link ``out`` is followed: the folder it points to is
    replaced and the link stays. The folder gets the usual permissions (umask).
    """
    if not str(out).strip():
        raise NanosegError("--out: an empty path is not a folder name")
    out = Path(out)
    check_out_separate(out, inputs)
    with contextlib.suppress(OSError):
        if _real(os.getcwd()).is_relative_to(_real(out)):
            raise NanosegError(f"--out: {out} is or contains the current folder; choose another output")
    if out.is_symlink():
        out = _real(out)
    if out.exists() and not out.is_dir():
        raise NanosegError(f"{out}: exists and is not a folder")
    try:
        non_empty = out.exists() and any(out.iterdir())
    except OSError as exc:
        raise NanosegError(f"{out}: cannot read the output folder ({exc.strerror or exc})") from None
    if non_empty and not overwrite:
        raise NanosegError(f"{out}: output folder exists and is not empty (use --overwrite)")
    _check_writable_parent(out)
    remove_stale_temps(out.parent, out.name)
    tmp = Path(tempfile.mkdtemp(prefix=_tmp_prefix(out.name), dir=out.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        if out.exists():
            old = out.with_name(f".{out.name}.old-{_HOST}.{os.getpid()}")
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` (same suffix) to write; on success it replaces ``path``
    in one move, on failure it is removed. A kill while writing leaves the previous file intact
    (and ``remove_stale_temps`` clears a ``kill -9``'s leftover on the next write). The one
    temp-then-replace helper for single files; ``atomic_dir`` is its counterpart for folders."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NanosegError(f"{path}: cannot write ({exc.strerror or exc})") from None
    remove_stale_temps(path.parent, path.stem)
    tmp = path.with_name(f"{_tmp_prefix(path.stem)}file{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError):
            raise NanosegError(f"{path}: cannot write ({exc.strerror or exc})") from None
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def json_safe(obj):
    """``obj`` with NaN and infinities replaced by None (and numpy values by Python ones), so that
    ``json.dumps(..., allow_nan=False)`` writes strict JSON that every parser reads."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def dumps_json(obj, **kwargs) -> str:
    """Strict JSON text (NaN and infinities become null)."""
    return json.dumps(json_safe(obj), default=_json_default, allow_nan=False, **kwargs)


def write_json(path: str | Path, obj) -> None:
    atomic_write_text(path, dumps_json(obj, indent=2) + "\n")


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
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fieldnames, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: _csv_value(r.get(k, "")) for k in fieldnames})


def _csv_value(v):
    if isinstance(v, (dict, list)):
        return dumps_json(v, separators=(",", ":"))
    if isinstance(v, float):
        return repr(round(v, 6))
    return v


def read_csv(path: str | Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def collect_images(paths) -> tuple[list[Path], list[tuple[str, str]]]:
    """Image files named directly or found in folders (a dataset folder's ``images/``); (path, reason)
    for each path that gave none. ``predict`` and ``realism`` read their inputs with it."""
    files, problems = [], []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            found = list_images(p / "images" if (p / "images").is_dir() else p)
            if not found:
                problems.append((str(p), "folder holds no images"))
            files += found
        elif p.is_file():
            files.append(p)
        else:
            problems.append((str(p), "not found"))
    return files, problems
