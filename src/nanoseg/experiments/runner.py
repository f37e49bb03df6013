"""``nanoseg experiment run``: data preparation, every training run, then the report.

Layout of an experiment folder::

    DIR/experiment.yaml     the validated file, as run
    DIR/data/               AD split by group, AD pools, SD pool, test set (shared by all runs)
    DIR/runs/<run_id>/      one training run (config.yaml, metrics.jsonl, best.pt, last.pt)
    DIR/runs/<run_id>/result.json   written last: a run with it is finished and skipped
    DIR/results.csv, summary.md, report.html, figures/   from ``report``

Every random choice flows from the experiment seed: pools, splits and mixes
are identical in every shard, so shards can run on different machines.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import click
import yaml

from .. import io
from ..data.augment import augment_pool
from ..data.dataset import read_manifest
from ..data.mix import check_disjoint, merge_pools, mix, split
from ..errors import NanosegError
from ..synthesis import load_params, synthesize_dataset
from .config import ExperimentConfig, load_experiment


def folds(cfg: ExperimentConfig) -> list[str | None]:
    """The held-out micrograph (group) of each fold; [None] for a single random hold-out."""
    if cfg.ad.holdout != "leave-one-out":
        return [None]
    groups = sorted({r.get("group", r["id"]) for r in read_manifest(cfg.ad.folder)})
    if len(groups) < 2:
        raise NanosegError(f"{cfg.ad.folder}: leave-one-out needs at least 2 micrographs (groups), found {len(groups)}")
    return groups


def run_list(cfg: ExperimentConfig) -> list[dict]:
    """Every run of the study, in a fixed order (the order sharding uses)."""
    runs = []
    for fold in folds(cfg):
        for model in cfg.models:
            for m in cfg.mixes:
                for r in range(m.repeats or cfg.repeats):
                    seed = cfg.seed + r
                    slug = model.replace(":", "-").replace("/", "-")
                    run = {"run_id": f"{slug}__ad{m.n_ad}_sd{m.n_sd}__s{seed}", "model": model,
                           "n_ad": m.n_ad, "n_sd": m.n_sd, "seed": seed}
                    if fold is not None:
                        run.update(run_id=f"{run['run_id']}__test-{fold}", fold=fold)
                    runs.append(run)
    return runs


def parse_shard(shard: str | None) -> tuple[int, int]:
    if not shard:
        return 0, 1
    try:
        i, n = (int(x) for x in shard.split("/"))
    except ValueError:
        raise NanosegError(f"--shard: {shard!r} must read i/n, e.g. 0/4") from None
    if n < 1 or not 0 <= i < n:
        raise NanosegError(f"--shard: {shard!r} needs 0 <= i < n")
    return i, n


def _once(folder: Path, build) -> Path:
    """Build ``folder`` unless it exists (another shard may be building it at the same time)."""
    if (folder / "manifest.csv").exists():
        return folder
    try:
        build(folder)
    except NanosegError:
        if not (folder / "manifest.csv").exists():
            raise
    return folder


def _standin_ad(folder: Path, s, *, seed: int, size_hw: tuple[int, int]) -> None:
    """A synthetic stand-in for authentic data, labelled as such in its manifest (source ``ad``, a note)."""
    synthesize_dataset(folder, n=s.n, seed=seed, params=load_params(s.preset, config=s.config, overrides=s.overrides),
                       preset=f"standin-{s.preset}", size_hw=size_hw, workers=0, start_index=1_000_000)
    rows = io.read_csv(folder / "manifest.csv")
    for r in rows:
        r["source"] = "ad"
        r["note"] = "synthetic stand-in for authentic data"
    io.write_csv(folder / "manifest.csv", rows)


def prepare_data(cfg: ExperimentConfig, out: Path) -> dict:
    data = out / "data"
    data.mkdir(parents=True, exist_ok=True)
    size = (cfg.size, cfg.size)
    if cfg.ad.standin is not None:
        s = cfg.ad.standin
        ad_src = _once(data / "ad_source", lambda f: _standin_ad(f, s, seed=cfg.seed + 1000, size_hw=size))
    else:
        ad_src = Path(cfg.ad.folder)
    pools = {fold: _prepare_ad(cfg, ad_src, data if fold is None else data / "folds" / fold, fold)
             for fold in folds(cfg)}
    sd_pool = None
    if cfg.sd is not None:
        if cfg.sd.folder:
            sd_pool = Path(cfg.sd.folder)
        else:
            parts = []
            for k, s in enumerate(cfg.sd.synth):
                parts.append(_once(data / f"sd_{k}_{s.preset}", lambda f, s=s, k=k: synthesize_dataset(
                    f, n=s.n, seed=cfg.seed + 2000 + k,
                    params=load_params(s.preset, config=s.config, overrides=s.overrides), preset=s.preset,
                    size_hw=size, workers=0, start_index=k * 10_000_000)))
            sd_pool = _once(data / "sd_pool", lambda f: merge_pools(f, parts))
    return {"folds": pools, "sd_pool": sd_pool}


def _prepare_ad(cfg: ExperimentConfig, ad_src: Path, data: Path, fold: str | None) -> dict:
    """AD split by group, the augmented training pool and the test set of one fold."""
    _once(data / "ad_train_groups", lambda f: split(ad_src, f, data / "ad_test_groups",
                                                    test_fraction=cfg.ad.test_fraction, seed=cfg.seed,
                                                    test_groups=None if fold is None else {fold}))
    leaks = check_disjoint(data / "ad_train_groups", data / "ad_test_groups")
    if leaks:
        raise NanosegError(f"{data}: AD train and test share groups {sorted(leaks)[:3]}")
    _once(data / "ad_pool", lambda f: augment_pool(data / "ad_train_groups", f, n=cfg.ad.pool_size, seed=cfg.seed,
                                                   strength=cfg.ad.augment_strength))
    if fold is not None:  # leave-one-out: the held-out micrograph as it is
        return {"ad_pool": data / "ad_pool", "test": data / "ad_test_groups"}
    _once(data / "ad_test_pool", lambda f: augment_pool(data / "ad_test_groups", f, n=cfg.ad.test_size,
                                                        seed=cfg.seed + 1, strength=cfg.ad.augment_strength))
    _once(data / "test", lambda f: mix(data / "ad_test_pool", None, n_ad=cfg.ad.test_size, n_sd=0, seed=cfg.seed,
                                       out=f))
    return {"ad_pool": data / "ad_pool", "test": data / "test"}


def execute_run(cfg_dict: dict, out: str, run: dict, pools: dict, threads: int | None, progress: bool) -> dict:
    """One training run (resumable) and its evaluation on the test set; writes result.json last."""
    import torch

    from ..evaluation.evaluate import evaluate_checkpoint
    from ..inference.rings import RingRules
    from ..training.config import TrainConfig
    from ..training.train import train

    cfg = ExperimentConfig(**cfg_dict)
    out = Path(out)
    run_dir = out / "runs" / run["run_id"]
    result_path = run_dir / "result.json"
    if result_path.exists():
        from .report import read_result

        return read_result(result_path)
    if threads:
        torch.set_num_threads(threads)
    fold = pools["folds"][run.get("fold")]
    # without AD a fold's training set is every fold's; with the last checkpoint reported the
    # weights do not depend on the fold either, so the folds share one training run
    shared = run.get("fold") is not None and run["n_ad"] == 0 and cfg.report_checkpoint == "last"
    per_fold = run.get("fold") is not None and not shared
    train_dir = out / "data" / "mixes" / (f"ad{run['n_ad']}_sd{run['n_sd']}__s{run['seed']}"
                                          + (f"__test-{run['fold']}" if per_fold else ""))
    train_run = run_dir if not shared else out / "runs" / run["run_id"].rsplit("__test-", 1)[0]
    _once(train_dir, lambda f: mix(fold["ad_pool"] if run["n_ad"] else None,
                                   pools["sd_pool"] if run["n_sd"] else None,
                                   n_ad=run["n_ad"], n_sd=run["n_sd"], seed=run["seed"], out=f))
    settings = dict(cfg.training)
    settings.update(train=str(train_dir), val=str(fold["test"]), model=run["model"], seed=run["seed"])
    if threads:
        settings["threads"] = threads
    tcfg = TrainConfig(**settings)
    t0 = time.time()
    resume = (train_run / "last.pt").exists()
    if train_run.exists() and not resume:
        shutil.rmtree(train_run)  # killed before its first checkpoint: start again
    train(tcfg, train_run, resume=resume, progress=progress)  # a finished shared run returns at once
    seconds = time.time() - t0
    ckpt = train_run / ("best.pt" if cfg.report_checkpoint == "best" else "last.pt")
    metrics = evaluate_checkpoint(ckpt, fold["test"], structures=cfg.structures, device=tcfg.device,
                                  ring_rules=RingRules())
    result = dict(run, ad_fraction=run["n_ad"] / cfg.n_train, checkpoint=ckpt.name,
                  miou=metrics["miou"], acc=metrics["acc"], kappa=metrics["kappa"], dice=metrics["dice"],
                  iou_ring=metrics["class_iou"][1], train_seconds=round(seconds, 1))
    if "structures" in metrics:
        s = metrics["structures"]
        result.update(ring_precision=s["precision"], ring_recall=s["recall"], ring_f1=s["f1"],
                      radius_rel_err=s["radius_rel_err"], count_abs_err=s["count_abs_err"],
                      ring_tp=sum(i["tp"] for i in s["per_image"]), ring_fp=sum(i["fp"] for i in s["per_image"]),
                      ring_fn=sum(i["fn"] for i in s["per_image"]), n_test_images=s["n_images"])
    io.write_json(result_path, result)
    return result


def _recorded(path: Path) -> dict | None:
    """The experiment a folder records, as the current schema reads it (None if it no longer validates)."""
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # folders recorded before n_train was renamed
            return ExperimentConfig(**yaml.safe_load(path.read_text())).model_dump()
    except (ValueError, TypeError, yaml.YAMLError):
        return None


def run_experiment(experiment: str | Path | ExperimentConfig, out: str | Path, *, jobs: int = 1,
                   shard: str | None = None, progress: bool = True) -> list[dict]:
    """Run a whole study: prepare the data, train and evaluate every run not yet finished, write the report.

    Returns the results of the runs done now. Resumable: finished runs (``result.json``) are
    skipped, a killed one continues from its last checkpoint.

    Parameters
    ----------
    experiment : str, Path or ExperimentConfig
        The experiment file (YAML; relative folders are relative to it), or its validated content.
    out : str or Path
        Experiment folder (``experiment.yaml``, ``data/``, ``runs/``, ``results.csv``,
        ``summary.md``, ``report.html``, ``figures/``); one that records another experiment is refused.
    jobs : int
        Runs trained in parallel processes (the cores are shared between them).
    shard : str, optional
        ``i/n``: run only every n-th run, starting at i (0-based), e.g. on n machines.
    progress : bool
        Show progress bars.
    """
    cfg = experiment if isinstance(experiment, ExperimentConfig) else load_experiment(experiment)
    i, n = parse_shard(shard)
    out = Path(out)
    io.check_out_separate(out, [("ad.folder", cfg.ad.folder), ("sd.folder", cfg.sd.folder if cfg.sd else None)])
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NanosegError(f"--out: cannot create {out} ({exc.strerror or exc})") from None
    recorded = out / "experiment.yaml"
    text = yaml.safe_dump(cfg.model_dump(), sort_keys=False)
    if recorded.exists() and _recorded(recorded) != cfg.model_dump():
        raise NanosegError(f"{out}: holds a different experiment (see {recorded}); use another --out")
    if not recorded.exists():
        io.atomic_write_text(recorded, text)
    if jobs < 1:
        raise NanosegError(f"--jobs: must be at least 1 (got {jobs})")
    click.echo(f"experiment {cfg.name}: preparing data in {out / 'data'}")
    pools = prepare_data(cfg, out)
    runs = run_list(cfg)[i::n]
    todo = [r for r in runs if not (out / "runs" / r["run_id"] / "result.json").exists()]
    click.echo(f"{len(runs)} run(s) in this shard, {len(runs) - len(todo)} already finished, {len(todo)} to do")
    threads = max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else None
    results = []
    if jobs == 1:
        for k, r in enumerate(todo, 1):
            click.echo(f"[{k}/{len(todo)}] {r['run_id']}")
            results.append(execute_run(cfg.model_dump(), str(out), r, pools, threads, progress))
    else:
        with io.process_pool(jobs) as ex:
            futs = [ex.submit(execute_run, cfg.model_dump(), str(out), r, pools, threads, False) for r in todo]
            for k, f in enumerate(futs, 1):
                results.append(f.result())
                click.echo(f"[{k}/{len(todo)}] {results[-1]['run_id']}: mIoU {results[-1]['miou']:.4f}")
    from .report import write_report

    write_report(out)
    click.echo(f"results: {out / 'results.csv'}  summary: {out / 'summary.md'}  report: {out / 'report.html'}")
    return results
