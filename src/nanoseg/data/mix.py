"""Leak-free AD/SD mixing and group splits.

A *group* is one original micrograph: every tile and augmented copy of it
shares the group. Splits are made by group, so no micrograph appears on both
sides; ``check_disjoint`` proves it for two folders.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from .. import io
from ..errors import NanosegError
from .dataset import read_manifest


def _copy_sample(src: Path, sid: str, dst: Path, new_id: str):
    for sub in ("images", "masks"):
        shutil.copyfile(src / sub / f"{sid}.png", dst / sub / f"{new_id}.png")
    doc = src / "labelme" / f"{sid}.json"
    if doc.exists():  # the ring truth of an imported micrograph travels with it
        (dst / "labelme").mkdir(exist_ok=True)
        shutil.copyfile(doc, dst / "labelme" / f"{new_id}.json")


def select(rows: list[dict], n: int, rng: np.random.Generator, what: str) -> list[dict]:
    if n > len(rows):
        raise NanosegError(f"{what}: asked for {n} samples but the pool holds {len(rows)}")
    idx = rng.choice(len(rows), size=n, replace=False) if n else np.array([], dtype=int)
    return [rows[i] for i in sorted(idx.tolist())]


def mix(ad: str | Path | None, sd: str | Path | None, *, n_ad: int, n_sd: int, seed: int, out: str | Path,
        overwrite: bool = False) -> list[dict]:
    """Training folder of ``n_ad`` samples from pool ``ad`` and ``n_sd`` from ``sd``, without replacement.

    Returns the manifest rows; each records its source (``ad``/``sd``), original id, group
    (prefixed with the source) and pixel size. A sample's labelme file travels with it.

    Parameters
    ----------
    ad, sd : str, Path or None
        Authentic and synthetic pools (dataset folders, read only); None where nothing is drawn.
    n_ad, n_sd : int
        Samples drawn from each pool (non-negative, positive total).
    seed : int
        Seed of the draw.
    out : str or Path
        Training folder to create.
    overwrite : bool
        Replace a non-empty ``out``.
    """
    if n_ad < 0 or n_sd < 0 or n_ad + n_sd == 0:
        raise NanosegError(f"--n-ad/--n-sd: need non-negative counts with a positive total (got {n_ad}, {n_sd})")
    rng = np.random.default_rng([seed, 7])
    picks = []
    for name, pool, n in (("ad", ad, n_ad), ("sd", sd, n_sd)):
        if n == 0:
            continue
        if pool is None:
            raise NanosegError(f"--{name}: a pool is needed for {n} samples")
        picks += [(name, Path(pool), r) for r in select(read_manifest(pool), n, rng, f"--n-{name.replace('_', '-')}")]
    with io.atomic_dir(out, overwrite=overwrite, inputs=[("--ad", ad), ("--sd", sd)]) as tmp:
        (tmp / "images").mkdir()
        (tmp / "masks").mkdir()
        rows = []
        for source, pool, r in picks:
            new_id = f"{source}__{r['id']}"
            _copy_sample(pool, r["id"], tmp, new_id)
            rows.append({"id": new_id, "source": source, "group": f"{source}:{r.get('group', r['id'])}",
                         "original_id": r.get("original_id", r["id"]), "pool": pool.name,
                         "scale_nm_per_px": r.get("scale_nm_per_px", "")})
        io.write_csv(tmp / "manifest.csv", rows)
        io.write_json(tmp / "mix.json", {"ad": str(ad) if ad else None, "sd": str(sd) if sd else None,
                                         "n_ad": n_ad, "n_sd": n_sd, "seed": seed})
    return rows


def merge_pools(dst: str | Path, parts: list[Path], source: str = "sd") -> list[dict]:
    """One pool from several dataset folders; ids (and groups) get the folder name as prefix."""
    with io.atomic_dir(dst, inputs=[("pool part", p) for p in parts]) as tmp:
        (tmp / "images").mkdir()
        (tmp / "masks").mkdir()
        rows = []
        for part in map(Path, parts):
            for r in read_manifest(part):
                new = f"{part.name}__{r['id']}"
                _copy_sample(part, r["id"], tmp, new)
                rows.append({"id": new, "source": source, "group": new, "original_id": r["id"],
                             "style": part.name, "scale_nm_per_px": r.get("scale_nm_per_px", "")})
        io.write_csv(tmp / "manifest.csv", rows)
    return rows


def split_groups(rows: list[dict], test_fraction: float, seed: int) -> tuple[set, set]:
    groups = sorted({r.get("group", r["id"]) for r in rows})
    if len(groups) < 2:
        raise NanosegError(f"split: need at least 2 groups (micrographs) to split, found {len(groups)}")
    rng = np.random.default_rng([seed, 11])
    order = rng.permutation(len(groups))
    n_test = int(np.clip(round(test_fraction * len(groups)), 1, len(groups) - 1))
    test = {groups[i] for i in order[:n_test]}
    return set(groups) - test, test


def split(src: str | Path, out_train: str | Path, out_test: str | Path, *, test_fraction: float = 0.2,
          seed: int = 0, overwrite: bool = False, test_groups: set | None = None) -> tuple[list, list]:
    """Split a folder into train/test by group (micrograph); no group appears on both sides.

    Returns the train and test manifest rows.

    Parameters
    ----------
    src : str or Path
        Dataset folder to split (read only).
    out_train, out_test : str or Path
        Folders to create (different from each other and from ``src``).
    test_fraction : float
        Share of the groups held out, in (0, 1); at least one group lands on each side.
    seed : int
        Seed of the group draw.
    overwrite : bool
        Replace non-empty output folders.
    test_groups : set of str, optional
        The held-out groups (a leave-one-out fold) instead of a draw of ``test_fraction``.
    """
    if not 0 < test_fraction < 1:
        raise NanosegError(f"--test-fraction: must lie in (0, 1) (got {test_fraction})")
    src = Path(src)
    io.check_out_separate(out_train, [("source", src), ("--test", out_test)], flag="--train")
    io.check_out_separate(out_test, [("source", src)], flag="--test")
    rows = read_manifest(src)
    if test_groups is None:
        train_g, test_g = split_groups(rows, test_fraction, seed)
    else:
        groups = {r.get("group", r["id"]) for r in rows}
        if not set(test_groups) < groups:
            raise NanosegError(f"{src}: test groups {sorted(set(test_groups) - groups)} not found or no group left "
                               "to train on")
        test_g, train_g = set(test_groups), groups - set(test_groups)
    result = []
    for out, keep in ((out_train, train_g), (out_test, test_g)):
        sel = [r for r in rows if r.get("group", r["id"]) in keep]
        with io.atomic_dir(out, overwrite=overwrite, inputs=[("source", src)]) as tmp:
            (tmp / "images").mkdir()
            (tmp / "masks").mkdir()
            for r in sel:
                _copy_sample(src, r["id"], tmp, r["id"])
            io.write_csv(tmp / "manifest.csv", sel)
            io.write_json(tmp / "split.json", {"src": str(src), "seed": seed, "test_fraction": test_fraction})
        result.append(sel)
    return result[0], result[1]


def base_group(group: str) -> str:
    """Group without the ``source:`` prefixes added by ``mix`` (every level: a mix drawn from
    a mix has ``ad:ad:...``)."""
    while ":" in group and group.split(":", 1)[0] in ("ad", "sd"):
        group = group.split(":", 1)[1]
    return group


def check_disjoint(a: str | Path, b: str | Path) -> set:
    """Groups shared by two folders (empty set: no leak)."""
    ga = {base_group(r.get("group", r["id"])) for r in read_manifest(a)}
    gb = {base_group(r.get("group", r["id"])) for r in read_manifest(b)}
    return ga & gb
