"""The ``nanoseg`` command line: thin wrappers over the stage functions.

Each command is a function ``<name>_command`` that calls its library function by keyword
(``synthesize_dataset``, ``import_folder``, ``augment_pool``, ``mix``, ``split``, ``train``,
``evaluate_checkpoint``, ``predict``, ``measure_masks``, ``compare_folders``, ``export_onnx``,
``run_experiment``), so library and command names never clash; every option shows its default
in ``--help`` (the group sets ``show_default``; an option whose default is decided later says how).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from .errors import NanosegError, brief
from .inference.rings import RingRules


def _train_default(name: str) -> str:
    """What a training flag left out means: the value in --config, else TrainConfig's default."""
    from .training.config import TrainConfig

    value = TrainConfig.model_fields[name].default
    return f"{'none' if value is None else value}, or from --config"


def _size(value: str) -> tuple[int, int]:
    try:
        if "x" in value.lower():
            w, h = value.lower().split("x")
            return int(h), int(w)
        return int(value), int(value)
    except ValueError:
        raise NanosegError(f"--size: {value!r} is not N or WxH") from None


class Finite(click.ParamType):
    """A finite float in [lo, hi] (``lo_open``: lo itself excluded). NaN and infinities are refused."""

    name = "float"

    def __init__(self, lo: float | None = None, hi: float | None = None, lo_open: bool = False):
        self.lo, self.hi, self.lo_open = lo, hi, lo_open

    def convert(self, value, param, ctx):
        import math

        try:
            v = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(v):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        if self.lo is not None and (v < self.lo or (self.lo_open and v == self.lo)):
            self.fail(f"{value} must be {'>' if self.lo_open else '>='} {self.lo}", param, ctx)
        if self.hi is not None and v > self.hi:
            self.fail(f"{value} must be <= {self.hi}", param, ctx)
        return v


#: seeds are 32-bit unsigned integers (numpy, torch and the YAML files all take them)
SEED = click.IntRange(0, 2**32 - 1)
#: most samples one command writes
MAX_SAMPLES = 1_000_000
COUNT = click.IntRange(1, MAX_SAMPLES)
#: augmentation strength: 0 (none) .. 2 (scale 0.5-1.5, shifts of 30%, twice the paper's noise)
STRENGTH = Finite(0.0, 2.0)


def _name_values(items, option: str) -> list[tuple[str, str]]:
    """(name, value) of repeated ``NAME=VALUE`` options (name stripped, value as written)."""
    pairs = []
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise NanosegError(f"{option}: {item!r} must read NAME=VALUE")
        pairs.append((name.strip(), value))
    return pairs


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(package_name="nanoseg")
def cli():
    """Segment nanoparticle ring structures in SEM micrographs, trained on authentic + synthetic data."""


@cli.command("demo")
@click.option("--out", default="runs/demo", show_default=True, help="demo run folder")
@click.option("--seed", default=0, show_default=True, type=SEED)
@click.option("--iters", default=600, show_default=True, type=click.IntRange(1, 10**7),
              help="training iterations per model")
@click.option("--overwrite", is_flag=True,
              help="replace a non-empty folder that is not an earlier demo's output")
def demo_command(out, seed, iters, overwrite):
    """End-to-end demo on CPU: synthesise, train AD/SD mix vs AD only, evaluate, segment a real micrograph."""
    from .demo import run_demo

    run_demo(out, seed=seed, iters=iters, overwrite=overwrite)


@cli.command("synth")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="dataset folder to create")
@click.option("--n", "n", default=100, show_default=True, type=COUNT, help="number of images")
@click.option("--seed", default=0, show_default=True, type=SEED)
@click.option("--preset", default="realistic", show_default=True, help="realistic | simple")
@click.option("--size", default="321", show_default=True, help="N or WxH in pixels (64..4096)")
@click.option("--config", type=click.Path(), help="YAML of generator parameter overrides")
@click.option("--set", "sets", multiple=True, metavar="NAME=VALUE",
              help="override one parameter, e.g. --set 'ring_radius_px=[20, 60]' (after --config)")
@click.option("--workers", default=0, type=click.IntRange(0, 256), help="processes (0: all cores)")
@click.option("--gallery", type=click.Path(dir_okay=False), help="write a PNG grid with mask overlays")
@click.option("--overwrite", is_flag=True, help="replace a non-empty output folder")
def synth_command(out, n, seed, preset, size, config, sets, workers, gallery, overwrite):
    """Render synthetic SEM micrographs with exact ring masks and labelme files."""
    import yaml

    from .synthesis import load_params, synthesize_dataset
    from .synthesis.gallery import write_gallery

    overrides = {}
    for name, value in _name_values(sets, "--set"):
        try:
            overrides[name] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise NanosegError(f"--set: cannot parse the value of {name!r}") from None
    params = load_params(preset, config, overrides)
    hw = _size(size)
    from .io import check_file_target, check_out_separate

    if config:
        check_out_separate(out, [("--config", config)])
    if gallery:
        check_file_target(gallery, "--gallery")
    synthesize_dataset(out, n=n, seed=seed, params=params, preset=preset, size_hw=hw, workers=workers,
                       overwrite=overwrite)
    if gallery:
        write_gallery(out, gallery)
        click.echo(f"gallery: {gallery}")
    click.echo(f"wrote {n} images to {out}")


@cli.command(name="import")
@click.argument("src", type=click.Path())
@click.option("--out", required=True, type=click.Path(file_okay=False))
@click.option("--crop-bottom", default=None, show_default="none: every row kept",
              help="rows of data bar to cut, or 'auto'")
@click.option("--tile", "tile_px", type=click.IntRange(16, 16384), default=None,
              show_default="none: whole micrographs", help="cut into tiles of this size (e.g. 321)")
@click.option("--overlap", "overlap_px", type=click.IntRange(0), default=64, show_default=True,
              help="px shared by neighbouring tiles (0 <= overlap < tile)")
@click.option("--line-width", "line_width_px", type=click.IntRange(1, 1000), default=10, show_default=True,
              help="width of labelme line/linestrip shapes")
@click.option("--labels", type=click.Path(), help="YAML mapping label name -> class index")
@click.option("--strict", is_flag=True, help="treat every warning as an error")
@click.option("--scale-nm-per-px", type=Finite(0.0, 1e6, lo_open=True), default=None,
              show_default="each file's metadata or data-bar scale bar", help="pixel size of every micrograph (nm/px)")
@click.option("--resample-nm-per-px", type=Finite(0.0, 1e6, lo_open=True), default=None,
              show_default="none: pixel size kept",
              help="resample micrographs of known pixel size to this one (nm/px) before tiling")
@click.option("--overwrite", is_flag=True)
def import_command(src, out, crop_bottom, tile_px, overlap_px, line_width_px, labels, strict, scale_nm_per_px,
            resample_nm_per_px, overwrite):
    """Import micrographs with labelme JSON or mask PNGs into a dataset folder."""
    import yaml

    from .data.importer import import_folder

    label_map = None
    if labels:
        try:
            loaded = yaml.safe_load(Path(labels).read_text()) or {}
            label_map = {str(k): int(v) for k, v in loaded.items()}
        except Exception as exc:  # noqa: BLE001
            raise NanosegError(f"--labels: cannot read {labels} ({brief(exc)})") from None
        if not label_map:
            raise NanosegError(f"--labels: {labels} names no label (write one 'name: class' line per label)")
    cb = _crop_bottom(crop_bottom)
    report = import_folder(src, out, label_map=label_map, line_width_px=line_width_px, crop_bottom=cb,
                           tile_px=tile_px, overlap_px=overlap_px, strict=strict, overwrite=overwrite,
                           scale_nm_per_px=scale_nm_per_px, resample_nm_per_px=resample_nm_per_px)
    click.echo(report.summary())


def _int(v, flag):
    try:
        return int(v)
    except ValueError:
        raise NanosegError(f"{flag}: {v!r} is not an integer") from None


def _crop_bottom(v):
    """``--crop-bottom``: None, 'auto' or a non-negative number of rows."""
    if v in (None, "auto"):
        return v
    rows = _int(v, "--crop-bottom")
    if rows < 0:
        raise NanosegError(f"--crop-bottom: {rows} is negative (give rows to cut, 0, or auto)")
    return rows


@cli.command("augment")
@click.option("--in", "src", required=True, type=click.Path())
@click.option("--out", required=True, type=click.Path(file_okay=False))
@click.option("--n", "n", required=True, type=COUNT, help="pool size (originals included)")
@click.option("--seed", default=0, show_default=True, type=SEED)
@click.option("--strength", default=1.0, show_default=True, type=STRENGTH, help="0 (none) .. 2")
@click.option("--overwrite", is_flag=True)
def augment_command(src, out, n, seed, strength, overwrite):
    """Offline augmentation into a pool (flips, mirror, affine, rotation, noise, contrast, scale, pan)."""
    from .data.augment import augment_pool

    rows = augment_pool(src, out, n=n, seed=seed, strength=strength, overwrite=overwrite)
    click.echo(f"wrote {len(rows)} samples to {out}")


@cli.command("mix")
@click.option("--ad", type=click.Path(), help="authentic pool")
@click.option("--sd", type=click.Path(), help="synthetic pool")
@click.option("--n-ad", default=0, show_default=True, type=click.IntRange(0, MAX_SAMPLES))
@click.option("--n-sd", default=0, show_default=True, type=click.IntRange(0, MAX_SAMPLES))
@click.option("--seed", default=0, show_default=True, type=SEED)
@click.option("--out", required=True, type=click.Path(file_okay=False))
@click.option("--overwrite", is_flag=True)
def mix_command(ad, sd, n_ad, n_sd, seed, out, overwrite):
    """Draw n_AD authentic + n_SD synthetic samples without replacement into a training folder."""
    from .data.mix import mix

    rows = mix(ad, sd, n_ad=n_ad, n_sd=n_sd, seed=seed, out=out, overwrite=overwrite)
    click.echo(f"wrote {len(rows)} samples to {out}")


@cli.command("split")
@click.argument("src", type=click.Path())
@click.option("--train", "out_train", type=click.Path(file_okay=False))
@click.option("--test", "out_test", type=click.Path(file_okay=False))
@click.option("--test-fraction", default=0.2, show_default=True, type=Finite(0.0, 1.0, lo_open=True))
@click.option("--seed", default=0, show_default=True, type=SEED)
@click.option("--check", "check_other", type=click.Path(), help="only check SRC and this folder share no group")
@click.option("--overwrite", is_flag=True)
def split_command(src, out_train, out_test, test_fraction, seed, check_other, overwrite):
    """Split a dataset into train/test by micrograph group, or --check two folders for leaks."""
    from .data.mix import check_disjoint, split

    if check_other:
        shared = check_disjoint(src, check_other)
        if shared:
            raise NanosegError(f"{check_other}: shares {len(shared)} group(s) with {src}, e.g. {sorted(shared)[0]}")
        click.echo(f"ok: {src} and {check_other} share no group")
        return
    if not out_train or not out_test:
        raise NanosegError("--train/--test: both output folders are needed (or use --check)")
    tr, te = split(src, out_train, out_test, test_fraction=test_fraction, seed=seed, overwrite=overwrite)
    click.echo(f"train: {len(tr)} samples -> {out_train}; test: {len(te)} samples -> {out_test}")


@cli.command("train")
@click.option("--train", "train_dir", type=click.Path(), help="training dataset folder")
@click.option("--val", "val_dir", type=click.Path(), help="validation dataset folder")
@click.option("--model", default=None, show_default=_train_default("model"),
              help="unet | unet-small | smp:<Arch>:<encoder>")
@click.option("--iters", type=click.IntRange(1), default=None, show_default=_train_default("iters"))
@click.option("--batch-size", type=click.IntRange(1, 4096), default=None, show_default=_train_default("batch_size"))
@click.option("--lr", type=Finite(0.0, 10.0, lo_open=True), default=None, show_default=_train_default("lr"))
@click.option("--loss", default=None, show_default=_train_default("loss"), help="dice | ce | dice+ce")
@click.option("--crop", type=click.IntRange(16, 16384), default=None, show_default=_train_default("crop"),
              help="random padding crop (px; none: whole images)")
@click.option("--eval-every", type=click.IntRange(1), default=None, show_default=_train_default("eval_every"))
@click.option("--seed", type=SEED, default=None, show_default=_train_default("seed"))
@click.option("--device", default=None, show_default=_train_default("device"), help="auto | cpu | cuda | cuda:N")
@click.option("--encoder-weights", type=click.Path(), default=None, show_default="none: random initial weights",
              help="local state dict for the encoder")
@click.option("--no-augment", is_flag=True, default=False)
@click.option("--num-workers", type=click.IntRange(0), default=None,
              show_default="from the core count, or from --config", help="data loader processes (0: none)")
@click.option("--compile", "compile_", is_flag=True, default=None, help="torch.compile the training forward")
@click.option("--config", type=click.Path(), help="YAML of training settings (flags win)")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="run folder")
@click.option("--resume", is_flag=True, help="continue a killed run from RUN/last.pt")
def train_command(train_dir, val_dir, model, iters, batch_size, lr, loss, crop, eval_every, seed, device,
          encoder_weights, no_augment, num_workers, compile_, config, out, resume):
    """Train a segmentation model with the paper's protocol (SGD, poly lr, Dice loss)."""
    from .training.config import load_train_config
    from .training.train import train

    overrides = dict(train=train_dir, val=val_dir, model=model, iters=iters, batch_size=batch_size, lr=lr,
                     loss=loss, crop=crop, eval_every=eval_every, seed=seed, device=device,
                     encoder_weights=encoder_weights, augment=False if no_augment else None,
                     num_workers=num_workers, compile=compile_)
    if resume and not config and (Path(out) / "config.yaml").exists():
        config = str(Path(out) / "config.yaml")
    cfg = load_train_config(config, overrides)
    best = train(cfg, out, resume=resume)
    if os.environ.get("RANK", "0") != "0":
        return  # under torchrun only rank 0 reports
    from .io import dumps_json

    click.echo(dumps_json({k: best.get(k) for k in ("iteration", "miou", "acc", "kappa", "dice")}))


@cli.command("evaluate")
@click.option("--pred", "pred_dir", type=click.Path(), help="folder of predicted masks")
@click.option("--gt", "gt_dir", type=click.Path(), help="folder (or dataset) of ground-truth masks")
@click.option("--model", "model_path", type=click.Path(), help="checkpoint to run on --data")
@click.option("--data", "data_dir", type=click.Path(), help="dataset folder for --model")
@click.option("--num-classes", default=2, show_default=True, type=click.IntRange(2, 256))
@click.option("--structures", is_flag=True, help="also match ring structures (precision/recall/F1, radius error)")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="write the metrics here")
def evaluate_command(pred_dir, gt_dir, model_path, data_dir, num_classes, structures, json_out):
    """mIoU, Acc, Kappa, Dice exactly as PaddleSeg computes them (and ring-level scores)."""
    from .evaluation.evaluate import evaluate_checkpoint, evaluate_folders

    if json_out:
        from .io import check_file_target

        check_file_target(json_out, "--json")
    if model_path or data_dir:
        if not (model_path and data_dir):
            raise NanosegError("--model/--data: both are needed to evaluate a model")
        result = evaluate_checkpoint(model_path, data_dir, structures=structures)
    elif pred_dir and gt_dir:
        result = evaluate_folders(pred_dir, gt_dir, num_classes=num_classes)
        if structures:
            from .evaluation.structures import evaluate_structure_folders

            result["structures"] = evaluate_structure_folders(pred_dir, gt_dir)
    else:
        raise NanosegError("--pred/--gt or --model/--data: say what to evaluate")
    from .io import dumps_json

    text = dumps_json(result, indent=2)
    click.echo(text)
    if json_out:
        from .io import atomic_write_text

        atomic_write_text(json_out, text + "\n")


@cli.command("predict")
@click.option("--model", "model_path", default=None, type=click.Path(),
              show_default="none: the loop finder runs; with --ring-finder model, the model nanoseg ships",
              help="checkpoint (RUN/best.pt)")
@click.option("--input", "inputs", required=True, multiple=True, type=click.Path(), help="files or folders")
@click.option("--out", required=True, type=click.Path(file_okay=False))
@click.option("--scale-nm-per-px", type=Finite(0.0, 1e6, lo_open=True), default=None,
              show_default="each file's metadata or data-bar scale bar", help="pixel size; overrides metadata and the data bar")
@click.option("--crop-bottom", default="auto", show_default=True,
              help="rows of data bar to cut, 'auto' (find it; 0 when there is none) or 0")
@click.option("--tile", "tile_px", type=click.IntRange(16, 16384), default=None,
              show_default="the whole image when it fits --memory-budget-mb, else the largest tiles that do",
              help="force sliding-window tiles of this side (px)")
@click.option("--overlap", "overlap_px", type=click.IntRange(0), default=None,
              show_default="a quarter of the tile", help="px shared by neighbouring tiles (0 <= overlap < tile)")
@click.option("--batch-size", default=4, show_default=True, type=click.IntRange(1, 1024),
              help="tiles per forward pass")
@click.option("--device", default="auto", show_default=True)
@click.option("--backend", type=click.Choice(["torch", "onnx"]), default="torch", show_default=True,
              help="onnx: ONNX Runtime on the CPU")
@click.option("--memory-budget-mb", type=Finite(0.0, 1e9, lo_open=True), default=None,
              show_default="half the free memory of the device", help="activation memory allowed (MiB)")
@click.option("--min-area", "min_area_px", default=30, show_default=True, type=click.IntRange(0),
              help="smallest structure (px)")
@click.option("--min-coverage", default=RingRules.min_coverage, show_default=True, type=Finite(0.0, 1.0),
              help="smallest angular coverage of a ring structure (0-1); smaller pieces are fragments")
@click.option("--min-circularity", default=RingRules.min_circularity, show_default=True, type=Finite(0.0, 1.0),
              help="ring rule: minor/major axis (0-1)")
@click.option("--max-radial-cv", default=RingRules.max_radial_cv, show_default=True, type=Finite(0.0),
              help="ring rule: spread of the radius around the loop (std/mean)")
@click.option("--max-interior-fill", default=RingRules.max_interior_fill, show_default=True, type=Finite(0.0, 1.0),
              help="ring rule: share of the interior covered by particles (0-1)")
@click.option("--min-confidence", default=RingRules.min_confidence, show_default=True, type=Finite(0.0, 1.0),
              help="ring rule: mean ring probability (0-1)")
@click.option("--min-radius", "min_radius_px", default=8.0, show_default=True, type=Finite(0.0),
              help="smallest mean radius of a ring structure (px); smaller ones are particle clumps")
@click.option("--ring-finder", type=click.Choice(["auto", "loops", "model"]), default="auto", show_default=True,
              help="loops: round empty loops of the particle chains, no model (rules in nanoseg.inference.loops); "
                   "model: the model's ring masks judged by the ring rules above; auto: model when --model "
                   "is given, else loops (it finds more of the labelled rings of the references than the "
                   "shipped model: README, 'Rings on real micrographs')")
@click.option("--loop-rule", "loop_rule_items", multiple=True, metavar="NAME=VALUE",
              show_default="the rules of nanoseg.inference.loops.LoopRules",
              help="loop finder: replace one rule's threshold, e.g. --loop-rule min_radius_nm=40 (sizes in nm)")
@click.option("--labelme", "write_labelme", is_flag=True, help="also write labelme JSON for correction")
@click.option("--report", is_flag=True, help="also write a self-contained report.html")
@click.option("--overwrite", is_flag=True)
@click.pass_context
def predict_command(ctx, model_path, inputs, out, scale_nm_per_px, crop_bottom, tile_px, overlap_px, batch_size,
                    device, backend, memory_budget_mb, min_area_px, min_coverage, min_circularity, max_radial_cv,
                    max_interior_fill, min_confidence, min_radius_px, ring_finder, loop_rule_items, write_labelme,
                    report, overwrite):
    """Segment micrographs of any size and measure every ring structure."""
    from .inference.loops import loop_rules
    from .inference.predict import predict

    cb = _crop_bottom(crop_bottom)
    if ring_finder == "auto":
        ring_finder = "model" if model_path is not None else "loops"
    if ring_finder == "loops" and model_path is not None:
        raise NanosegError("--model: the loop finder (--ring-finder loops) uses no model; drop one of the two")
    if ring_finder == "loops":  # the loop finder has its own rules (nanoseg.inference.loops)
        flags = {p.name: p.opts[0] for p in ctx.command.params}
        given = [flags[name] for name in (
            "min_area_px", "min_coverage", "min_circularity", "max_radial_cv", "max_interior_fill",
            "min_confidence", "min_radius_px", "tile_px", "overlap_px", "batch_size", "device", "backend",
            "memory_budget_mb")
            if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE]
        if given:
            raise NanosegError(f"{given[0]}: applies to the model (--model, or --ring-finder model for the shipped "
                               "one); the loop finder used without them has its own rules (--loop-rule)")
    elif loop_rule_items:
        raise NanosegError("--loop-rule: applies to the loop finder (--ring-finder loops), not to the model's masks")
    overrides = {}
    for name, value in _name_values(loop_rule_items, "--loop-rule"):
        if name in overrides:
            raise NanosegError(f"--loop-rule: {name} given twice")
        overrides[name] = value.strip()
    if model_path is None and ring_finder == "model":
        from .pretrained import default_model_path

        model_path = default_model_path()
    rules = RingRules(min_circularity=min_circularity, max_radial_cv=max_radial_cv,
                      max_interior_fill=max_interior_fill, min_confidence=min_confidence)
    s = predict(model_path, list(inputs), out, scale_nm_per_px=scale_nm_per_px, crop_bottom=cb, tile_px=tile_px,
                overlap_px=overlap_px, batch_size=batch_size, device=device, min_area_px=min_area_px,
                min_coverage=min_coverage, min_radius_px=min_radius_px, write_labelme=write_labelme,
                overwrite=overwrite, report=report, backend=backend, memory_budget_mb=memory_budget_mb, rules=rules,
                ring_finder=ring_finder, loop_rules=loop_rules(overrides))
    _echo_results(s, out, report)


def _echo_results(s: dict, out, report: bool) -> None:
    for sk in s["skipped"]:
        click.echo(f"skipped {sk['file']}: {sk['reason']}", err=True)
    for note in s.get("notes", []):
        click.echo(f"note: {note}", err=True)
    o = s["overall"]
    d = o.get("density_per_um2")
    density = f"{d['value']:.3g} rings/µm²" if d else f"{o['density_per_mpx']['value']:.3g} rings/megapixel"
    click.echo(f"{s['n_images']} image(s), {s['n_structures']} structure(s), {density} -> {out}")
    if report:
        click.echo(f"report: {Path(out) / 'report.html'}")


@cli.command("measure")
@click.option("--masks", "masks_dir", required=True, type=click.Path(),
              help="folder of masks (0/1 class maps or 0/255), or a dataset/predict folder holding masks/")
@click.option("--images", "images_dir", type=click.Path(), default=None, show_default="none: masks only",
              help="micrographs matched to masks by file stem (overlays, pixel size from metadata)")
@click.option("--out", required=True, type=click.Path(file_okay=False))
@click.option("--scale-nm-per-px", type=Finite(0.0, 1e6, lo_open=True), default=None,
              show_default="each file's metadata or data-bar scale bar", help="pixel size; overrides metadata and the data bar")
@click.option("--scales", "scales_csv", type=click.Path(dir_okay=False), default=None, show_default="none",
              help="CSV of pixel sizes per micrograph (file, scale_nm_per_px), matched by file stem")
@click.option("--crop-bottom", default=None, show_default="none: every row kept",
              help="rows of data bar to cut, or 'auto' (needs --images)")
@click.option("--min-area", "min_area_px", default=30, show_default=True, type=click.IntRange(0),
              help="smallest structure (px)")
@click.option("--min-coverage", default=0.4, show_default=True, type=Finite(0.0, 1.0),
              help="smallest angular coverage of a ring structure (0-1)")
@click.option("--min-radius", "min_radius_px", default=8.0, show_default=True, type=Finite(0.0),
              help="smallest mean radius of a ring structure (px)")
@click.option("--report", is_flag=True, help="also write a self-contained report.html")
@click.option("--overwrite", is_flag=True)
def measure_command(masks_dir, images_dir, out, scale_nm_per_px, scales_csv, crop_bottom, min_area_px, min_coverage,
            min_radius_px, report, overwrite):
    """Measure the rings of existing masks (hand labels, other tools, predict's masks) as predict does."""
    from .analysis.measure_masks import measure_masks

    cb = _crop_bottom(crop_bottom)
    s = measure_masks(masks_dir, out, images=images_dir, scale_nm_per_px=scale_nm_per_px, scales=scales_csv,
                      crop_bottom=cb,
                      min_area_px=min_area_px, min_coverage=min_coverage, min_radius_px=min_radius_px,
                      report=report, overwrite=overwrite)
    _echo_results(s, out, report)


@cli.command("compare")
@click.argument("folders", nargs=-1, required=True, type=click.Path())
@click.option("--names", default=None, show_default="the folder names", help="comma-separated sample names")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="write every number here (strict JSON)")
@click.option("--figure", "figure_out", type=click.Path(dir_okay=False),
              help="PNG: diameter histograms, ECDFs and densities with intervals")
@click.option("--seed", default=0, show_default=True, type=SEED, help="seed of the bootstrap and permutation tests")
def compare_command(folders, names, json_out, figure_out, seed):
    """Compare predict/measure folders as samples: density, diameters, band widths, with intervals and tests."""
    from .analysis.compare import compare_figure, compare_folders, write_json

    result = compare_folders(list(folders), names=names.split(",") if names else None, seed=seed)
    for line in result["lines"]:
        click.echo(line)
    if json_out:
        write_json(result, json_out)
        click.echo(f"json: {json_out}")
    if figure_out:
        compare_figure(result, figure_out)
        click.echo(f"figure: {figure_out}")


@cli.command("export")
@click.option("--model", "model_path", required=True, type=click.Path())
@click.option("--onnx", "onnx_path", required=True, type=click.Path(dir_okay=False))
@click.option("--opset", default=17, show_default=True, type=click.IntRange(11, 21))
def export_command(model_path, onnx_path, opset):
    """Export a checkpoint to ONNX (dynamic height/width), checked against PyTorch."""
    from .inference.export import export_onnx

    r = export_onnx(model_path, onnx_path, opset=opset)
    click.echo(f"wrote {r['onnx']} (max |onnx - torch| = {r['max_abs_diff']:.2e})")


def _scales(scale_nm_per_px, scale_csv):
    from .realism.sources import read_scale_csv

    if any(v <= 0 for v in scale_nm_per_px):
        raise NanosegError("--scale-nm-per-px: must be positive")
    return list(scale_nm_per_px), (read_scale_csv(scale_csv) if scale_csv else None)


@cli.command("realism")
@click.option("--real", "real_paths", required=True, multiple=True, type=click.Path(),
              help="real micrographs (files or folders): --real A B C or --real A --real B")
@click.argument("more_real", nargs=-1, type=click.Path())
@click.option("--synth", "synth_dir", required=True, type=click.Path(), help="synthetic dataset folder")
@click.option("--scale-nm-per-px", "scale_nm_per_px", type=float, multiple=True,
              help="pixel size of the real micrographs: once for all, or once per file in order")
@click.option("--scale-csv", type=click.Path(dir_okay=False), help="CSV file,scale_nm_per_px (per file)")
@click.option("--crop-bottom", default=None, show_default="none: every row kept",
              help="rows of data bar to cut from the real micrographs, or 'auto'")
@click.option("--tile-px", default="auto", show_default=True,
              help="measure the real micrographs in tiles of this side (px): 'auto' is the synthetic images' "
                   "side (like with like), 0 measures them whole")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="write the full comparison here")
@click.option("--figure", type=click.Path(dir_okay=False), help="PNG of the distributions side by side")
def realism_command(real_paths, more_real, synth_dir, scale_nm_per_px, scale_csv, crop_bottom, tile_px, json_out,
                    figure):
    """How close synthetic micrographs are to real ones: statistics, ratios and one distance."""
    from .realism.report import realism_report

    real_paths = list(real_paths) + list(more_real)

    scales, table = _scales(scale_nm_per_px, scale_csv)
    cb = crop_bottom if crop_bottom in (None, "auto") else _int(crop_bottom, "--crop-bottom")
    tile = tile_px if tile_px == "auto" else _int(tile_px, "--tile-px")
    if tile not in ("auto", 0) and tile < 32:
        raise NanosegError("--tile-px: a tile needs at least 32 px a side (0 measures whole micrographs)")
    r = realism_report(list(real_paths), synth_dir, scales=scales, scale_table=table, crop_bottom=cb,
                       tile_px=tile, json_out=json_out, figure=figure)
    for sk in r["skipped"]:
        click.echo(f"skipped {sk['file']}: {sk['reason']}", err=True)
    if r.get("note"):
        click.echo(r["note"])
    click.echo(r["table"])
    if figure:
        click.echo(f"figure: {figure}")


@cli.command("calibrate")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="YAML of calibrated parameters")
@click.option("--scale-nm-per-px", "scale_nm_per_px", type=float, multiple=True,
              help="pixel size: once for all micrographs, or once per file in order")
@click.option("--scale-csv", type=click.Path(dir_okay=False), help="CSV file,scale_nm_per_px (per file)")
@click.option("--crop-bottom", default=None, show_default="none: every row kept", help="rows of data bar to cut, or 'auto'")
@click.option("--preset", default="realistic", show_default=True, help="starting preset")
@click.option("--config", type=click.Path(), help="starting YAML on top of the preset")
@click.option("--iterations", default=8, show_default=True, help="correction steps")
@click.option("--per-image", "per_real", default=12, show_default=True,
              help="synthetic images rendered at each micrograph's pixel size per step")
@click.option("--seed", default=0, show_default=True)
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="write the before/after comparison")
def calibrate_command(paths, out, scale_nm_per_px, scale_csv, crop_bottom, preset, config, iterations, per_real, seed,
              json_out):
    """Fit the generator's ranges to unlabelled micrographs; writes a YAML for `synth --config`."""
    from .realism.calibrate import calibrate, write_params_yaml
    from .realism.distance import format_table
    from .realism.sources import load_real

    scales, table = _scales(scale_nm_per_px, scale_csv)
    cb = crop_bottom if crop_bottom in (None, "auto") else _int(crop_bottom, "--crop-bottom")
    real, skipped = load_real(list(paths), scales=scales, scale_table=table, crop_bottom=cb)
    for f, why in skipped:
        click.echo(f"skipped {f}: {why}", err=True)
    if not real:
        raise NanosegError(f"{paths[0]}: no readable micrograph to calibrate to")
    if not all(m.scale_nm_per_px for m in real):
        click.echo("pixel size unknown for some micrographs: calibrating in px (give --scale-nm-per-px)")
    r = calibrate(real, preset=preset, config=config, iterations=iterations, per_real=per_real, seed=seed)
    write_params_yaml(out, r, sources=[m.name for m in real])
    click.echo(format_table(r["comparison"]))
    click.echo(f"distance to the micrographs: {r['distance_before']:.3f} with --preset {preset}, "
               f"{r['distance_after']:.3f} calibrated -> {out}")
    if json_out:
        from .io import atomic_write_text

        import json

        keep = {k: r[k] for k in ("distance_before", "distance_after", "history", "trace", "best_iteration",
                                  "units", "preset")}
        keep["overrides"] = {k: list(v) if isinstance(v, tuple) else v for k, v in r["overrides"].items()}
        keep["before"], keep["after"] = r["before"]["pooled"], r["comparison"]["pooled"]
        atomic_write_text(json_out, json.dumps(keep, indent=2, default=float) + "\n")


@cli.group()
def experiment():
    """Run the study described by a YAML file, and report on it."""


@experiment.command("run")
@click.argument("file", type=click.Path())
@click.option("--out", required=True, type=click.Path(file_okay=False))
@click.option("--jobs", default=1, show_default=True, type=click.IntRange(1, 256), help="runs in parallel processes")
@click.option("--shard", default=None, show_default="none: every run",
              help="i/n: run only every n-th run, starting at i (0-based)")
def experiment_run_command(file, out, jobs, shard):
    """Build pools, mixes and splits, train and evaluate every run (resumable)."""
    from .experiments.runner import run_experiment

    run_experiment(file, out, jobs=jobs, shard=shard)


@experiment.command("report")
@click.argument("out", type=click.Path())
def experiment_report_command(out):
    """Merge all shards of an experiment folder into results.csv, summary.md, figures and report.html."""
    from .experiments.report import write_report

    write_report(out)
    click.echo(f"report: {Path(out) / 'report.html'}")


_TERMINATED = False


def _sigterm_as_interrupt():
    """SIGTERM (``kill``, a job scheduler) cleans up as Ctrl-C does: temporary folders are removed."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum, frame):
        global _TERMINATED
        _TERMINATED = True
        raise KeyboardInterrupt("terminated")

    try:
        if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
            signal.signal(signal.SIGTERM, handler)
    except (ValueError, OSError):
        pass


def main(argv=None):
    _sigterm_as_interrupt()
    try:
        cli.main(args=argv, prog_name="nanoseg", standalone_mode=False)
    except NanosegError as exc:
        text = str(exc).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        click.echo(f"error: {text.splitlines()[0] if text else 'bad input'}", err=True)
        rest = text.splitlines()[1:]
        if rest:
            click.echo("\n".join(rest), err=True)
        sys.exit(2)
    except click.exceptions.Abort:  # click turns KeyboardInterrupt into Abort
        click.echo("terminated" if _TERMINATED else "interrupted", err=True)
        sys.exit(143 if _TERMINATED else 130)
    except click.UsageError as exc:
        cmd = exc.ctx.command_path if exc.ctx is not None else "nanoseg"
        click.echo(f"error: {' '.join(exc.format_message().split())} (see {cmd} --help)", err=True)
        sys.exit(2)
    except click.ClickException as exc:
        click.echo(f"error: {' '.join(exc.format_message().split())}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("terminated" if _TERMINATED else "interrupted", err=True)
        sys.exit(143 if _TERMINATED else 130)


if __name__ == "__main__":
    main()
