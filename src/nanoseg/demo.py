"""``nanoseg demo``: the whole pipeline on CPU in a few minutes.

The demo is an experiment file shipped with the package (``experiments/demo.yaml``), run by
the experiment runner like any study: a synthetic pool in the paper's two styles (``simple``
and ``realistic``), a stand-in "authentic" set (no authentic micrographs ship with nanoseg, so
it is synthetic too, in a second style, and labelled as such everywhere) split by micrograph,
augmented, and drawn into 12 AD + 36 SD and 48 AD (control); both train ``unet-small`` and are
evaluated on the held-out stand-in AD. Then ``predict`` segments one real micrograph from the
study's source dataset (Boiko et al. 2020, CC BY 4.0).
"""

from __future__ import annotations

import shutil
import time
from importlib import resources
from pathlib import Path

import click

from . import io
from .experiments.config import ExperimentConfig, load_experiment
from .experiments.report import prediction_figure
from .experiments.runner import run_experiment
from .inference.predict import predict
from .models import checkpoint

EXAMPLE = "boiko2020_2-S1-no_area-100k-ordered.png"
EXAMPLE_DATA_BAR_PX = 134
EXAMPLE_NM_PER_PX = 1.0
DEMO_EXPERIMENT = "demo.yaml"
LABELS = {"mix": "12 AD + 36 SD", "ad_only": "48 AD (control)"}
NOTE = ("AD here is a synthetic stand-in (second style), not real micrographs. "
        "Test set: held-out stand-in AD, split by micrograph.")


def example_micrograph() -> Path:
    return Path(str(resources.files("nanoseg") / "examples" / EXAMPLE))


def demo_experiment(*, seed: int = 0, iters: int = 600) -> ExperimentConfig:
    """The packaged demo experiment with its seed and training budget set (evaluated 6 times)."""
    cfg = load_experiment(Path(str(resources.files("nanoseg") / "experiments" / DEMO_EXPERIMENT)))
    training = dict(cfg.training, iters=iters, eval_every=max(1, iters // 6))
    return ExperimentConfig(**dict(cfg.model_dump(), seed=seed, training=training))


def _step(msg):
    click.secho(f"\n== {msg}", fg="cyan", bold=True)


def run_demo(out: str | Path = "runs/demo", *, seed: int = 0, iters: int = 600, overwrite: bool = False) -> dict:
    """Run the demo experiment, then segment the packaged real micrograph; returns the two runs' metrics.

    Parameters
    ----------
    out : str or Path
        Demo folder to create: an experiment folder (``experiment.yaml``, ``data/``, ``runs/``,
        ``results.csv``, ``summary.md``, ``report.html``, ``figures/``) plus ``metrics.md``,
        ``metrics.json``, ``curve.png``, ``predictions.png``, ``real_overlay.png`` and ``real/``.
    seed : int
        Seed of every random choice (the experiment's ``seed``).
    iters : int
        Training iterations per model (evaluated every ``iters // 6``).
    overwrite : bool
        Replace a non-empty ``out`` that is not an earlier demo's output (an earlier demo's, which
        holds ``demo.json``, is always replaced; other folders are never emptied without it).
    """
    out = Path(out)
    t0 = time.time()
    earlier_demo = (out / "demo.json").is_file()
    with io.atomic_dir(out, overwrite=overwrite or earlier_demo) as tmp:
        _step("1/3 the demo experiment: SD (simple + realistic), stand-in AD (synthetic, second style - NOT real "
              f"micrographs), 12 AD + 36 SD vs 48 AD, unet-small for {iters} iterations each (CPU)")
        done = run_experiment(demo_experiment(seed=seed, iters=iters), tmp)
        runs = {("mix" if r["n_sd"] else "ad_only"): r for r in done}
        _step("2/3 metrics and figures")
        results = {name: _metrics(tmp / "runs" / r["run_id"], r) for name, r in runs.items()}
        _write_tables(tmp, results)
        mix_run = tmp / "runs" / runs["mix"]["run_id"]
        shutil.copyfile(mix_run / "curve.png", tmp / "curve.png")
        prediction_figure(mix_run / "best.pt", tmp / "data" / "test", tmp / "predictions.png")
        _step("3/3 segmenting a real micrograph (Boiko et al. 2020, CC BY 4.0)")
        predict(mix_run / "best.pt", [example_micrograph()], tmp / "real", scale_nm_per_px=EXAMPLE_NM_PER_PX,
                crop_bottom=EXAMPLE_DATA_BAR_PX, progress=True)
        shutil.copyfile(tmp / "real" / "overlays" / f"{Path(EXAMPLE).stem}.png", tmp / "real_overlay.png")
        shutil.copyfile(example_micrograph().with_name("README.md"), tmp / "real" / "CREDIT.md")
        io.write_json(tmp / "demo.json", {"seed": seed, "iters": iters, "seconds": round(time.time() - t0, 1),
                                          "runs": {k: r["run_id"] for k, r in runs.items()}, "results": results})
    click.secho(f"\nDone in {time.time() - t0:.0f} s. Everything is in {out}/:", fg="green", bold=True)
    for f, what in [("metrics.md", "metrics table (mix vs AD only, held-out stand-in AD test set)"),
                    ("metrics.json", "the same as JSON"), ("curve.png", "convergence curve of the mix run"),
                    ("predictions.png", "image | ground truth | prediction | overlay"),
                    ("real_overlay.png", "the model on a real Pd/C micrograph (Boiko et al. 2020)"),
                    ("real/structures.csv", "measured ring structures of the real micrograph"),
                    ("report.html", "the experiment report (summary.md, results.csv, figures/)"),
                    ("runs/", "both training runs (config.yaml, metrics.jsonl, best.pt, last.pt)"),
                    ("data/", "every dataset the demo built")]:
        click.echo(f"  {out / f}: {what}")
    click.echo((out / "metrics.md").read_text())
    return results


def _metrics(run_dir: Path, result: dict) -> dict:
    """A run's test metrics and the iteration of the checkpoint they come from."""
    iteration = checkpoint.load(run_dir / result["checkpoint"]).get("iteration")
    return {"iteration": iteration, **{k: result[k] for k in ("miou", "acc", "kappa", "dice")},
            "ring_f1": result.get("ring_f1")}


def _write_tables(folder: Path, results: dict) -> None:
    io.write_json(folder / "metrics.json", results)
    lines = ["| training set | best iter | mIoU | Acc | Kappa | Dice |", "|---|---|---|---|---|---|"]
    for k, r in results.items():
        lines.append(f"| {LABELS[k]} | {r['iteration']} | {r['miou']:.4f} | {r['acc']:.4f} | "
                     f"{r['kappa']:.4f} | {r['dice']:.4f} |")
    io.atomic_write_text(folder / "metrics.md", "# nanoseg demo\n\n" + NOTE + "\n\n" + "\n".join(lines) + "\n")
