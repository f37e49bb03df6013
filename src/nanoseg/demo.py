"""``nanoseg demo``: the whole pipeline on CPU in a few minutes.

No authentic micrographs ship with nanoseg, so the demo's "authentic" set is a
stand-in: synthetic images in a second style (the ``realistic`` preset with
its own seed and imaging settings), labelled as such everywhere. The synthetic
training pool uses the paper's simplified style (``simple`` preset) plus the
realistic style. Then it trains ``unet-small`` on an AD/SD mix and on AD only,
evaluates both on the held-out stand-in AD test set, and segments one real
micrograph from the study's source dataset (Boiko et al. 2020, CC BY 4.0).
"""

from __future__ import annotations

import shutil
import time
from importlib import resources
from pathlib import Path

import click

from . import io
from .data.augment import augment_dataset
from .errors import NanosegError
from .data.dataset import load_arrays
from .data.mix import check_disjoint, merge_pools, mix, split
from .figures import prediction_panel
from .inference.predict import predict
from .synthesis import load_params, synthesize_dataset
from .inference.sliding import predict_mask, tile_rule
from .models import load_model
from .training.config import TrainConfig
from .training.train import train

EXAMPLE = "boiko2020_2-S1-no_area-100k-ordered.png"
EXAMPLE_DATA_BAR_PX = 134
STANDIN_AD_OVERRIDES = dict(scale_nm_per_px=(0.9, 1.4), dose_e_per_px=(30.0, 80.0), psf_sigma_nm=(0.8, 1.2),
                            background_level=(35.0, 75.0))
SIZE = 192


def example_micrograph() -> Path:
    return Path(str(resources.files("nanoseg") / "examples" / EXAMPLE))


def _step(msg):
    click.secho(f"\n== {msg}", fg="cyan", bold=True)


def run_demo(out="runs/demo", seed: int = 0, iters: int = 600, overwrite: bool = False) -> dict:
    """Run the demo into ``out``. A non-empty ``out`` is replaced only when it is an earlier
    demo's output (it holds ``demo.json``) or ``overwrite`` is set: other folders are never emptied."""
    out = Path(out)
    t0 = time.time()
    earlier_demo = (out / "demo.json").is_file()
    with io.atomic_dir(out, overwrite=overwrite or earlier_demo) as tmp:
        data = tmp / "data"
        _step("1/6 synthetic data (SD): simple + realistic styles")
        synthesize_dataset(data / "sd_simple", 60, seed, load_params("simple"), "simple", (SIZE, SIZE), workers=0)
        synthesize_dataset(data / "sd_realistic", 60, seed + 1, load_params("realistic"), "realistic",
                           (SIZE, SIZE), workers=0)
        _step("2/6 stand-in 'authentic' data (AD): synthetic, second style - NOT real micrographs")
        synthesize_dataset(data / "ad_standin", 40, seed + 100,
                           load_params("realistic", overrides=STANDIN_AD_OVERRIDES), "standin-ad",
                           (SIZE, SIZE), workers=0, start_index=100000)
        _relabel_source(data / "ad_standin", "ad")
        split(data / "ad_standin", data / "ad_train", data / "ad_test", test_fraction=0.4, seed=seed)
        leaks = check_disjoint(data / "ad_train", data / "ad_test")
        if leaks:  # cannot happen with a group split; checked because the whole comparison rests on it
            raise NanosegError(f"demo: train and test share micrographs {sorted(leaks)[:3]}")
        augment_dataset(data / "ad_train", data / "ad_pool", n=96, seed=seed)
        sd_pool = data / "sd_pool"
        merge_pools(sd_pool, [data / "sd_simple", data / "sd_realistic"])
        _step("3/6 training sets: 12 AD + 36 SD (mix) and 48 AD (control)")
        mix(data / "ad_pool", sd_pool, 12, 36, seed, data / "train_mix")
        mix(data / "ad_pool", None, 48, 0, seed, data / "train_ad")
        results = {}
        for name in ("mix", "ad_only"):
            _step(f"4/6 training unet-small on '{name}' ({iters} iterations, CPU)")
            cfg = TrainConfig(train=str(data / ("train_mix" if name == "mix" else "train_ad")),
                              val=str(data / "ad_test"), model="unet-small", iters=iters, batch_size=8, crop=128,
                              lr=0.05, loss="dice+ce", eval_every=max(1, iters // 6), seed=seed, threads=2)
            best = train(cfg, tmp / "runs" / name)
            results[name] = {k: best[k] for k in ("iteration", "miou", "acc", "kappa", "dice")}
        _step("5/6 metrics and figures")
        io.write_json(tmp / "metrics.json", results)
        lines = ["| training set | best iter | mIoU | Acc | Kappa | Dice |", "|---|---|---|---|---|---|"]
        labels = {"mix": "12 AD + 36 SD", "ad_only": "48 AD (control)"}
        for k, r in results.items():
            lines.append(f"| {labels[k]} | {r['iteration']} | {r['miou']:.4f} | {r['acc']:.4f} | "
                         f"{r['kappa']:.4f} | {r['dice']:.4f} |")
        note = ("AD here is a synthetic stand-in (second style), not real micrographs. "
                "Test set: held-out stand-in AD, split by micrograph.")
        io.atomic_write_text(tmp / "metrics.md", "# nanoseg demo\n\n" + note + "\n\n" + "\n".join(lines) + "\n")
        shutil.copyfile(tmp / "runs" / "mix" / "curve.png", tmp / "curve.png")
        model, spec = load_model(tmp / "runs" / "mix" / "best.pt")
        _, imgs, gts = load_arrays(data / "ad_test")
        preds = [predict_mask(model, im, tile_px=tile_rule(spec.get("train_size"))[0]) for im in imgs[:4]]
        prediction_panel(imgs[:4], gts[:4], preds, tmp / "predictions.png")
        _step("6/6 segmenting a real micrograph (Boiko et al. 2020, CC BY 4.0)")
        predict(tmp / "runs" / "mix" / "best.pt", [example_micrograph()], tmp / "real",
                scale_nm_per_px=1.0, crop_bottom=EXAMPLE_DATA_BAR_PX, progress=True)
        shutil.copyfile(tmp / "real" / "overlays" / f"{Path(EXAMPLE).stem}.png", tmp / "real_overlay.png")
        shutil.copyfile(example_micrograph().with_name("README.md"), tmp / "real" / "CREDIT.md")
        io.write_json(tmp / "demo.json", {"seed": seed, "iters": iters, "seconds": round(time.time() - t0, 1),
                                          "results": results})
    click.secho(f"\nDone in {time.time() - t0:.0f} s. Everything is in {out}/:", fg="green", bold=True)
    for f, what in [("metrics.md", "metrics table (mix vs AD only, held-out stand-in AD test set)"),
                    ("metrics.json", "the same as JSON"), ("curve.png", "convergence curve of the mix run"),
                    ("predictions.png", "image | ground truth | prediction | overlay"),
                    ("real_overlay.png", "the model on a real Pd/C micrograph (Boiko et al. 2020)"),
                    ("real/structures.csv", "measured ring structures of the real micrograph"),
                    ("runs/", "both training runs (config.yaml, metrics.jsonl, best.pt, last.pt)"),
                    ("data/", "every dataset the demo built")]:
        click.echo(f"  {out / f}: {what}")
    click.echo((out / "metrics.md").read_text())
    return results


def _relabel_source(folder: Path, source: str) -> None:
    rows = io.read_csv(folder / "manifest.csv")
    for r in rows:
        r["source"] = source
        r["note"] = "synthetic stand-in for authentic data"
    io.write_csv(folder / "manifest.csv", rows)
