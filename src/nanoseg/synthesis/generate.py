"""Synthesize samples and whole dataset folders (``nanoseg synth``)."""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
from pathlib import Path

import numpy as np
import orjson
from tqdm import tqdm

from .. import io, labelme
from ..errors import NanosegError
from .draw import DrawnParams
from .meta import META_FILE
from .params import SynthParams
from .render import render_micrograph
from .scene import KINDS, build_scene

MIN_SIZE_PX = 64
#: largest side of a synthetic image (px): 4096 x 4096 is about 17 MP, a few seconds per image
MAX_SIZE_PX = 4096
#: most images one ``synth`` call renders
MAX_IMAGES = 1_000_000


def sample_rng(seed: int, index: int) -> np.random.Generator:
    """Image ``index`` of ``seed`` has its own stream: identical whatever the worker count."""
    return np.random.default_rng([int(seed), int(index)])


def synthesize_sample(params: SynthParams, seed: int, index: int, size_hw=(321, 321)) -> dict:
    """One synthetic micrograph with its mask, labelme shapes and ground truth.

    Returns a dict with ``image`` (uint8 HxW), ``mask`` (uint8, 1 = ring band),
    ``shapes`` (labelme), ``rings``, ``negatives``, ``particles`` and ``values``
    (the parameter values drawn for this image and the rendered particle radius and
    beam blur in px: ``DrawnParams.record``).
    """
    h, w = int(size_hw[0]), int(size_hw[1])
    check_size(h, w)
    rng = sample_rng(seed, index)
    scene_rng, render_rng = rng.spawn(2)  # stage streams: the imaging noise does not move with the scene
    d = DrawnParams.sample(params, rng, (h, w))
    scene, mask = build_scene(d, scene_rng)
    image = render_micrograph(scene, d, render_rng)
    return {
        "image": image,
        "mask": mask,
        "shapes": scene.labelme_shapes,
        "rings": scene.rings,
        "negatives": scene.negatives,
        "particles": _particle_rows(scene.particles),
        "values": d.record(),
    }


def check_size(h: int, w: int) -> None:
    if min(h, w) < MIN_SIZE_PX or max(h, w) > MAX_SIZE_PX:
        raise NanosegError(f"--size: {w}x{h} is outside {MIN_SIZE_PX}..{MAX_SIZE_PX} px per side")


def _particle_rows(particles: np.ndarray) -> list:
    """Meta rows (x, y, r, kind name, structure id) of the scene's particle table."""
    if not len(particles):
        return []
    x, y, r = np.round(particles[:, :3], 2).T.tolist()
    kinds = list(map(KINDS.__getitem__, particles[:, 3].astype(np.int64).tolist()))
    return list(map(list, zip(x, y, r, kinds, particles[:, 4].astype(np.int64).tolist())))


def sample_id(index: int) -> str:
    return f"sd_{index:06d}"


_TUNED = False


def _tune_process() -> None:
    """One-time settings for a process that renders many images.

    OpenCV runs single-threaded (the workers already use every core). glibc's
    malloc is told to keep freed memory: by default the ~1 MB image-sized
    temporaries of every render go back to the kernel and come again as fresh,
    zero-filled pages, which cost about 5 ms of system time per image.
    """
    global _TUNED
    if _TUNED:
        return
    _TUNED = True
    import ctypes
    import ctypes.util

    import cv2

    cv2.setNumThreads(1)
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        libc.mallopt(m_mmap_threshold, 32 << 20)  # blocks up to 32 MB come from the heap ...
        libc.mallopt(m_trim_threshold, 128 << 20)  # ... which keeps up to 128 MB of free memory
    except (OSError, AttributeError):  # not glibc (macOS, musl): only slower
        pass


@functools.lru_cache(maxsize=4)
def _params_from_json(params_json: str) -> SynthParams:
    return SynthParams.model_validate_json(params_json)


def _json_bytes(obj) -> bytes:
    """JSON as orjson writes it (10x faster than ``json`` on the per-image meta records)."""
    return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY, default=float)


def _write_one(args) -> dict:
    out, params_json, seed, index, size_hw, preset = args
    _tune_process()
    s = synthesize_sample(_params_from_json(params_json), seed, index, size_hw)
    sid = sample_id(index)
    out = Path(out)
    io.write_bytes(out / "images" / f"{sid}.png", io.encode_png(s["image"]))
    io.write_bytes(out / "masks" / f"{sid}.png", io.encode_png(s["mask"]))
    doc = labelme.document(s["shapes"], f"../images/{sid}.png", s["image"].shape)
    io.write_bytes(out / "labelme" / f"{sid}.json", _json_bytes(doc))
    meta = {"id": sid, "seed": seed, "index": index, "preset": preset, "values": s["values"],
            "rings": s["rings"], "negatives": s["negatives"],
            "particles": {"columns": ["x", "y", "r", "kind", "structure_id"], "rows": s["particles"]}}
    return {
        "_meta": _json_bytes(meta),  # one line of meta.jsonl, written in order by the caller
        "id": sid, "source": "sd", "group": sid, "preset": preset, "seed": seed, "index": index,
        "height": s["image"].shape[0], "width": s["image"].shape[1], "n_rings": len(s["rings"]),
        "ring_fraction": float((s["mask"] == 1).mean()),
        "scale_nm_per_px": round(float(s["values"]["scale_nm_per_px"]), 4),  # read by training (model spec)
        "params": json.dumps({k: (round(val, 4) if isinstance(val, float) else val)
                              for k, val in s["values"].items()}, separators=(",", ":")),
    }


def _openblas_threads_api():
    """(get, set) of the OpenBLAS that numpy loaded in this process, or None (not found, not Linux)."""
    try:
        with open("/proc/self/maps") as f:
            libs = sorted({line.split()[-1] for line in f if "openblas" in line.lower() and "/" in line})
    except OSError:
        return None
    import ctypes

    for path in libs:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix, suffix in (("", ""), ("scipy_", "64_"), ("scipy_", ""), ("", "64_")):
            get = getattr(lib, f"{prefix}openblas_get_num_threads{suffix}", None)
            put = getattr(lib, f"{prefix}openblas_set_num_threads{suffix}", None)
            if get is not None and put is not None:
                return get, put
    return None


@contextlib.contextmanager
def single_threaded_math():
    """OpenCV and numpy's OpenBLAS on one thread in this process inside the block (restored after).

    For rendering in the calling process (``synth --workers 1``, ``calibrate``): the generator's small
    matrix products (321x6 by 6x321) are over OpenBLAS's threading threshold, and waking its thread
    for each costs more than it saves: 20-24 ms per 321x321 image instead of 13-19 ms with one thread
    on the 2-core development machine (worker processes get one thread from their environment).
    """
    import cv2

    cv_threads = cv2.getNumThreads()
    blas = _openblas_threads_api()
    blas_threads = blas[0]() if blas else None
    cv2.setNumThreads(1)
    if blas:
        blas[1](1)
    try:
        yield
    finally:
        cv2.setNumThreads(cv_threads)
        if blas:
            blas[1](blas_threads)


@contextlib.contextmanager
def _single_threaded_children():
    """Environment for worker processes started inside the block: single-threaded math libraries."""
    names = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
    saved = {k: os.environ.get(k) for k in names}
    os.environ.update({k: "1" for k in names})
    try:
        yield
    finally:
        for k, val in saved.items():
            if val is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = val


def synthesize_dataset(out: str | Path, *, n: int, seed: int, params: SynthParams, preset: str = "realistic",
                       size_hw: tuple[int, int] = (321, 321), workers: int = 1, overwrite: bool = False,
                       progress: bool = True, start_index: int = 0) -> list[dict]:
    """Write ``n`` synthetic micrographs in the dataset folder convention; returns the manifest rows.

    The folder is built under a temporary name and moved into place at the end. Image ``i``
    depends only on (``seed``, ``start_index + i``) and ``params``, never on the worker count.

    Parameters
    ----------
    out : str or Path
        Dataset folder to create (``images/``, ``masks/``, ``labelme/``, ``meta.jsonl``,
        ``manifest.csv``, ``synth.json``).
    n : int
        Number of images (1 to ``MAX_IMAGES``).
    seed : int
        Seed of every random choice (non-negative).
    params : SynthParams
        Generator parameter ranges (``load_params``); lengths in px or nm as their names say.
    preset : str
        Name recorded with each image (the preset ``params`` came from).
    size_hw : (int, int)
        Image height and width (px, each 64 to 4096).
    workers : int
        Processes; 0 uses every core.
    overwrite : bool
        Replace a non-empty ``out``.
    progress : bool
        Show a progress bar.
    start_index : int
        Index of the first image (gives disjoint datasets from one seed).
    """
    if not 1 <= n <= MAX_IMAGES:
        raise NanosegError(f"--n: must lie in 1..{MAX_IMAGES} (got {n})")
    check_size(int(size_hw[0]), int(size_hw[1]))
    if seed < 0:
        raise NanosegError(f"--seed: must be non-negative (got {seed})")
    workers = max(1, min(int(workers or os.cpu_count() or 1), n))  # never more processes than images
    params_json = params.model_dump_json()
    with io.atomic_dir(out, overwrite=overwrite) as tmp:
        for sub in ("images", "masks", "labelme"):
            (tmp / sub).mkdir()
        jobs = ((str(tmp), params_json, seed, start_index + i, tuple(size_hw), preset) for i in range(n))
        bar = tqdm(total=n, desc="synth", unit="img", disable=not progress)
        rows = []
        with open(tmp / META_FILE, "wb") as meta_out:
            def collect(row: dict) -> None:
                meta_out.write(row.pop("_meta") + b"\n")
                rows.append(row)
                bar.update()

            if workers == 1:
                with single_threaded_math():
                    for j in jobs:
                        collect(_write_one(j))
            else:
                # spawn, not fork: a forked child deadlocks if the parent already ran OpenCV's thread
                # pool; one BLAS thread per worker: the workers fill the cores, idle BLAS threads spin
                with _single_threaded_children(), io.process_pool(workers) as ex:
                    for row in ex.map(_write_one, jobs, chunksize=max(1, min(16, math.ceil(n / (4 * workers))))):
                        collect(row)
        bar.close()
        io.write_csv(tmp / "manifest.csv", rows)
        io.write_json(tmp / "synth.json", {"seed": seed, "n": n, "preset": preset, "size": list(size_hw),
                                           "params": params.model_dump(mode="json")})
    return rows
