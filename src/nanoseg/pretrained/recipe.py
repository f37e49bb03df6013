"""The recipe of the model nanoseg ships, top to bottom (``make model`` runs it).

1. AD: the four labelled reference micrographs (``references/boiko2020``), imported at 4 nm/px,
   augmented into a pool of ``N_AD`` samples.
2. SD: ``realistic`` and ``simple`` images rendered at 3.2-4.0 nm/px with the rings and the
   network as dense as in the references at that pixel size (``SD_OVERRIDES``; the generator YAML of
   ``experiments/default-model/generator.yaml`` when present, e.g. from ``nanoseg calibrate``).
3. Half AD, half SD; ``nanoseg train`` with ``experiments/default-model/train.yaml``.
4. The last checkpoint, weights only, becomes ``src/nanoseg/pretrained/rings-unet-small.pt``;
   its SHA-256, settings and training log go beside it (``rings-unet-small.json``).

Every random choice flows from the seeds below, so the recipe reproduces its model up to the
non-determinism of the CPU's floating-point kernels.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import yaml

from .. import io
from ..data.augment import augment_pool
from ..data.importer import import_folder
from ..data.mix import merge_pools, mix
from ..models import checkpoint, load_model
from ..synthesis import load_params, synthesize_dataset
from ..training.config import load_train_config
from ..training.train import read_metrics, train
from . import DEFAULT_MODEL, sha256

ROOT = Path(__file__).resolve().parents[3]
REFERENCES = ROOT / "references" / "boiko2020"
RECIPE = ROOT / "experiments" / "default-model"
# 4 nm/px: a labelled ring (radius 55-150 nm) spans 14-37 px, within what a small U-Net sees at
# once; at 2 nm/px the same model, trained as long, marked chain pieces and no ring.
WORK_NM_PER_PX = 4.0
SD_SCALE_NM_PER_PX = (3.2, 4.0)
SD_OVERRIDES = {"ring_radius_px": (12.0, 45.0), "rings_per_image": (1, 4), "network_prob": 0.9,
                "network_cells": (8, 20), "chains": (1, 5), "arcs": (1, 4)}
N_AD, N_SD_REALISTIC, N_SD_SIMPLE = 240, 200, 40


def build_data(run: Path) -> Path:
    """Steps 1-2 and the mix; returns the training folder."""
    import_folder(REFERENCES, run / "references", crop_bottom="auto", resample_nm_per_px=WORK_NM_PER_PX,
                  overwrite=True)
    augment_pool(run / "references", run / "ad_pool", n=N_AD, seed=0, overwrite=True)
    generator = RECIPE / "generator.yaml"
    parts = []
    for name, n, seed in (("realistic", N_SD_REALISTIC, 1), ("simple", N_SD_SIMPLE, 2)):
        params = load_params(name, config=generator if generator.exists() and name == "realistic" else None,
                             overrides={"scale_nm_per_px": SD_SCALE_NM_PER_PX,
                                        **(SD_OVERRIDES if name == "realistic" else {"ring_radius_px": (12.0, 45.0)})})
        synthesize_dataset(run / f"sd_{name}", n=n, seed=seed, params=params, preset=name, size_hw=(256, 256), workers=0, overwrite=True)
        parts.append(run / f"sd_{name}")
    if (run / "sd_pool").exists():
        shutil.rmtree(run / "sd_pool")
    merge_pools(run / "sd_pool", parts)
    mix(run / "ad_pool", run / "sd_pool", n_ad=N_AD, n_sd=N_SD_REALISTIC + N_SD_SIMPLE, seed=3, out=run / "train",
        overwrite=True)
    return run / "train"


def package(run_dir: Path, dest: Path = DEFAULT_MODEL) -> dict:
    """Step 4: the run's last checkpoint, weights only, with its record beside it."""
    model, spec = load_model(run_dir / "last.pt")
    checkpoint.save(dest, spec, model)  # atomic: a kill leaves the previous file
    training = yaml.safe_load((run_dir / "config.yaml").read_text())
    for key in ("train", "val"):  # folders of the recipe's --run, recorded relative to it
        if training.get(key):
            p = Path(training[key])
            training[key] = str(p.relative_to(run_dir.parent)) if p.is_relative_to(run_dir.parent) else p.name
    record = {"file": dest.name, "sha256": sha256(dest), "spec": spec, "paths_relative_to": "the recipe's --run folder",
              "training": training,
              "metrics": read_metrics(run_dir / "metrics.jsonl") if (run_dir / "metrics.jsonl").exists() else []}
    io.write_json(dest.with_suffix(".json"), record)
    return record


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default="runs/default-model", help="working folder (data and the training run)")
    ap.add_argument("--package-only", action="store_true", help="package RUN/run/last.pt without training")
    args = ap.parse_args(argv)
    run = Path(args.run)
    if not args.package_only:
        train_dir = build_data(run)
        cfg = load_train_config(RECIPE / "train.yaml", {"train": str(train_dir)})
        train(cfg, run / "run", resume=(run / "run" / "last.pt").exists())
    record = package(run / "run")
    print(json.dumps({"model": record["file"], "sha256": record["sha256"]}))


if __name__ == "__main__":
    main()
