"""A small CNN taught the particle map, for the loop finder (issue 15's chains-by-CNN experiment).

    python benchmarks/particle_model.py [--run runs/particle-model] [--n-train 320] [--n-val 32]
    python benchmarks/particle_model.py --figure docs/particle_maps.png [--run runs/particle-model]

The loop finder (``inference.loops``) finds rings structure first from a particle map; by default
that map comes from a white top-hat (``rings.particle_map``), which detector noise breaks up. This
recipe trains ``unet-small`` to draw the particle map instead, on synthetic images whose target is
every particle the generator placed, painted as a disc (``synthesis.particle_masks``):

1. ``realistic`` images of 320 px at 1.8-2.2 nm/px (around the loop finder's working 2 nm/px),
   seed 31 for training, seed 32 for validation; their masks replaced by the particle maps;
2. ``nanoseg train`` with ``experiments/particle-model/train.yaml``;
3. the probability threshold that gives the best pixel F1 of the particle class on the
   validation images (never on the references), 0.05-0.95 in steps of 0.05; the white top-hat's
   pixel precision, recall and F1 on the same images beside it (``RUN/threshold.json``);
4. ``RUN/particles.pt``: the last checkpoint with that threshold and its F1 in the spec
   (``particle_threshold``), the class named ``particle``.

``--figure PNG`` draws the four references at the loop finder's 2 nm/px beside the top-hat's
particle map and the model's. ``ring_finder_baseline.py --particle-model RUN/particles.pt`` then scores the loop finder on that
map against the top-hat one. Every step skips what a previous run of the same ``--run`` finished.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402

from nanoseg import io  # noqa: E402
from nanoseg.models import checkpoint, load_model  # noqa: E402
from nanoseg.synthesis import load_params, synthesize_dataset  # noqa: E402
from nanoseg.synthesis.particle_masks import particle_dataset  # noqa: E402
from nanoseg.training.config import load_train_config  # noqa: E402
from nanoseg.training.train import train  # noqa: E402

RECIPE = ROOT / "experiments" / "particle-model"
SCALE_NM_PER_PX = (1.8, 2.2)
SIZE_PX = 320
THRESHOLDS = np.round(np.arange(0.05, 0.951, 0.05), 2)


def build(run: Path, name: str, n: int, seed: int) -> Path:
    out = run / name
    if not (out / "manifest.csv").exists():
        params = load_params("realistic", overrides={"scale_nm_per_px": SCALE_NM_PER_PX})
        synthesize_dataset(run / f"{name}_rings", n=n, seed=seed, params=params, preset="realistic",
                           size_hw=(SIZE_PX, SIZE_PX), workers=0, overwrite=True)
        particle_dataset(run / f"{name}_rings", out, overwrite=True)
    return out


def choose_threshold(model_path: Path, val: Path) -> dict:
    """Pixel precision, recall and F1 of the particle class at every threshold, over the validation images."""
    from nanoseg.inference.particles import ModelParticles
    from nanoseg.inference.rings import particle_map

    cnn = ModelParticles(model_path)
    tp = np.zeros(len(THRESHOLDS))
    fp = np.zeros(len(THRESHOLDS))
    fn = np.zeros(len(THRESHOLDS))
    hat = np.zeros(3)  # the white top-hat's tp, fp, fn on the same images, for comparison
    for row in io.read_csv(val / "manifest.csv"):
        image = io.read_gray(val / "images" / f"{row['id']}.png")
        p = cnn.probs(image)
        truth = io.read_mask(val / "masks" / f"{row['id']}.png") == 1
        top = particle_map(image, float(row["scale_nm_per_px"]))
        hat += [(top & truth).sum(), (top & ~truth).sum(), (~top & truth).sum()]
        for k, t in enumerate(THRESHOLDS):
            pred = p >= t
            tp[k] += (pred & truth).sum()
            fp[k] += (pred & ~truth).sum()
            fn[k] += (~pred & truth).sum()
    f1 = 2 * tp / np.maximum(2 * tp + fp + fn, 1)
    best = int(np.argmax(f1))
    table = [{"threshold": float(t), "precision": float(tp[k] / max(tp[k] + fp[k], 1)),
              "recall": float(tp[k] / max(tp[k] + fn[k], 1)), "f1": float(f1[k])} for k, t in enumerate(THRESHOLDS)]
    return {"threshold": float(THRESHOLDS[best]), "f1": float(f1[best]), "table": table,
            "tophat": {"precision": float(hat[0] / max(hat[0] + hat[1], 1)),
                       "recall": float(hat[0] / max(hat[0] + hat[2], 1)),
                       "f1": float(2 * hat[0] / max(2 * hat[0] + hat[1] + hat[2], 1))}}


def figure(model_path: Path, out: Path, crop_px: int = 240) -> None:
    """Each reference at 2 nm/px (a crop around its first labelled ring, else its centre): the
    micrograph, the top-hat particle map (green) and the model's (red)."""
    import tempfile

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nanoseg import imaging
    from nanoseg.inference.loops import WORK_NM_PER_PX
    from nanoseg.inference.particles import ModelParticles
    from nanoseg.inference.rings import particle_map
    from ring_finder_baseline import references

    cnn = ModelParticles(model_path)
    with tempfile.TemporaryDirectory() as tmp:
        refs = references(Path(tmp))
    fig, axes = plt.subplots(len(refs), 3, figsize=(10.5, 3.6 * len(refs)))
    for ax_row, ref in zip(axes, refs):
        zoom = ref["nm_per_px"] / WORK_NM_PER_PX
        work = imaging.zoom(ref["image"], zoom)
        h, w = work.shape
        if ref["truth"]:
            cx, cy = ref["truth"][0]["centre_x_px"] * zoom, ref["truth"][0]["centre_y_px"] * zoom
        else:
            cx, cy = w / 2, h / 2
        y0 = int(np.clip(cy - crop_px / 2, 0, max(0, h - crop_px)))
        x0 = int(np.clip(cx - crop_px / 2, 0, max(0, w - crop_px)))
        win = (slice(y0, y0 + crop_px), slice(x0, x0 + crop_px))
        maps = [("top-hat", particle_map(work, WORK_NM_PER_PX), (0, 255, 0)),
                (f"CNN p >= {cnn.threshold:g}", cnn(work), (255, 0, 0))]
        ax_row[0].imshow(work[win], cmap="gray", vmin=0, vmax=255)
        ax_row[0].set_title(f"{ref['id'][:24]} at 2 nm/px", fontsize=9)
        for ax, (name, m, colour) in zip(ax_row[1:], maps):
            rgb = np.repeat(work[win][..., None], 3, axis=2).copy()
            rgb[m[win]] = colour
            ax.imshow(rgb)
            ax.set_title(f"{name}: {m.mean():.1%} of the frame", fontsize=9)
        for ax in ax_row:
            ax.set_axis_off()
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, default=ROOT / "runs" / "particle-model")
    ap.add_argument("--n-train", type=int, default=320)
    ap.add_argument("--n-val", type=int, default=32)
    ap.add_argument("--figure", type=Path, help="draw the references' particle maps with RUN/particles.pt")
    ap.add_argument("--model", type=Path, help="with --figure: this checkpoint instead of RUN/particles.pt")
    args = ap.parse_args(argv)
    run = args.run
    if args.figure:
        figure(args.model or run / "particles.pt", args.figure)
        return
    run.mkdir(parents=True, exist_ok=True)
    train_dir = build(run, "train", args.n_train, 31)
    val_dir = build(run, "val", args.n_val, 32)
    cfg = load_train_config(RECIPE / "train.yaml", {"train": str(train_dir), "val": str(val_dir)})
    last = run / "run" / "last.pt"
    if not (run / "run" / "done").exists():
        train(cfg, run / "run", resume=last.exists())
        (run / "run" / "done").write_text("")
    chosen = choose_threshold(last, val_dir)
    io.write_json(run / "threshold.json", chosen)
    model, spec = load_model(last)
    spec = dict(spec, class_names=["background", "particle"], particle_threshold=chosen["threshold"],
                particle_threshold_source=f"best pixel F1 ({chosen['f1']:.3f}) on {args.n_val} synthetic "
                                          f"validation images (seed 32)")
    checkpoint.save(run / "particles.pt", spec, model)
    print(json.dumps({"model": str(run / "particles.pt"), "threshold": chosen["threshold"], "f1": chosen["f1"],
                      "tophat_f1": chosen["tophat"]["f1"]}))


if __name__ == "__main__":
    main()
