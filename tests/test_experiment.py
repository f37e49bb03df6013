import json

import pytest
import yaml

from nanoseg import io
from nanoseg.errors import NanosegError
from nanoseg.experiments.config import load_experiment
from nanoseg.experiments.report import group_stats
from nanoseg.experiments.runner import run_experiment, run_list

from .conftest import run_cli

TINY = {
    "name": "tiny",
    "seed": 0,
    "size": 64,
    "ad": {"standin": {"preset": "realistic", "n": 6}, "test_fraction": 0.34, "pool_size": 8, "test_size": 3},
    "sd": {"synth": [{"preset": "simple", "n": 4}, {"preset": "realistic", "n": 3}]},
    "n_train": 4,
    "mixes": [{"n_ad": 4, "n_sd": 0}, {"n_ad": 1, "n_sd": 3}],
    "repeats": 2,
    "models": ["unet-small"],
    "training": {"iters": 2, "batch_size": 2, "eval_every": 2},
    "structures": True,
}


def write(tmp_path, cfg, name="exp.yaml"):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(cfg))
    return p


@pytest.mark.parametrize("patch, needle", [
    ({"mixes": [{"n_ad": 3, "n_sd": 3}]}, "does not add up to n_train"),
    ({"models": ["resnet"]}, "models"),
    ({"training": {"iters": 0}}, "training.iters"),
    ({"training": {"warmup": 3}}, "warmup"),
    ({"ad": {"standin": {"preset": "fancy", "n": 3}}}, "unknown preset"),
    ({"ad": {"folder": "missing_folder"}}, "missing_folder"),
    ({"sd": None}, "needs SD"),
    ({"mixes": [{"n_ad": 0, "n_sd": 4}], "sd": {"synth": [{"preset": "simple", "n": 2}]}}, "pool holds 2"),
    ({"bogus": 1}, "bogus"),
])
def test_config_validation_errors(tmp_path, patch, needle):
    cfg = dict(TINY, **patch)
    path = write(tmp_path, cfg)
    with pytest.raises(NanosegError, match=needle):
        load_experiment(path)
    code, _, err = run_cli("experiment", "run", path, "--out", tmp_path / "out")
    assert code == 2 and str(path) in err
    assert not (tmp_path / "out" / "runs").exists()


def test_run_resume_and_shards_merge_to_the_same_results(tmp_path):
    path = write(tmp_path, TINY)
    cfg = load_experiment(path)
    assert len(run_list(cfg)) == 4
    full = tmp_path / "full"
    run_experiment(path, full, progress=False)
    for f in ("results.csv", "summary.md", "summary.csv", "report.html", "figures/miou_vs_ad_fraction.png",
              "figures/convergence_best_run.png", "figures/predictions_best_run.png"):
        assert (full / f).exists(), f
    rows = io.read_csv(full / "results.csv")
    assert len(rows) == 4 and {r["seed"] for r in rows} == {"0", "1"}
    html = (full / "report.html").read_text()
    assert html.count("data:image/png;base64") == 3 and "<table>" in html
    # resume: finished runs are skipped, an unfinished one is redone
    victim = full / "runs" / rows[0]["run_id"]
    (victim / "result.json").unlink()
    mtimes = {r["run_id"]: (full / "runs" / r["run_id"] / "result.json").stat().st_mtime
              for r in rows[1:]}
    again = run_experiment(path, full, progress=False)
    assert [r["run_id"] for r in again] == [rows[0]["run_id"]]
    for rid, t in mtimes.items():
        assert (full / "runs" / rid / "result.json").stat().st_mtime == t
    # two shards in one folder give the same results.csv as the unsharded run
    sharded = tmp_path / "sharded"
    run_experiment(path, sharded, shard="0/2", progress=False)
    assert len(io.read_csv(sharded / "results.csv")) == 2
    run_experiment(path, sharded, shard="1/2", progress=False)
    code, _, err = run_cli("experiment", "report", sharded)
    assert code == 0, err

    def table(folder):
        return [{k: v for k, v in r.items() if k != "train_seconds"} for r in io.read_csv(folder / "results.csv")]

    assert table(sharded) == table(full)
    # a different experiment in the same folder is refused
    other = write(tmp_path, dict(TINY, seed=5), "other.yaml")
    with pytest.raises(NanosegError, match="different experiment"):
        run_experiment(other, full, progress=False)


def test_summary_statistics_mean_and_std_per_group():
    rows = [dict(model="m", n_ad=4, n_sd=0, ad_fraction=1.0, seed=s, miou=v, acc=0.9, kappa=0.5, dice=0.7,
                 ring_f1=None, radius_rel_err=None) for s, v in ((0, 0.6), (1, 0.8))]
    rows.append(dict(model="m", n_ad=1, n_sd=3, ad_fraction=0.25, seed=0, miou=0.5, acc=0.9, kappa=0.5, dice=0.7,
                     ring_f1=0.5, radius_rel_err=0.1))
    stats = {(g["n_ad"], g["n_sd"]): g for g in group_stats(rows)}
    g = stats[(4, 0)]
    assert g["n_runs"] == 2 and g["miou_mean"] == pytest.approx(0.7)
    assert g["miou_std"] == pytest.approx(0.1414213, abs=1e-6)  # sample std, as over repeats
    assert stats[(1, 3)]["miou_std"] == 0.0 and stats[(1, 3)]["ring_f1_mean"] == 0.5


def test_bad_shard_spec(tmp_path):
    path = write(tmp_path, TINY)
    code, _, err = run_cli("experiment", "run", path, "--out", tmp_path / "o", "--shard", "2/2")
    assert code == 2 and "--shard" in err


def test_bundled_experiment_files_validate(tmp_path):
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "experiments"
    assert load_experiment(root / "cpu-quick.yaml").models == ["unet-small"]
    for name in ("paper.yaml", "models.yaml"):
        data = yaml.safe_load((root / name).read_text())
        data["ad"]["folder"] = str(tmp_path)  # the user's imported AD goes here
        cfg = load_experiment(write(tmp_path, data, name))
        assert cfg.size == 321 and cfg.n_train == 400 and cfg.ad.test_size == 100
    paper = load_experiment(write(tmp_path, {**yaml.safe_load((root / "paper.yaml").read_text()),
                                             "ad": {"folder": str(tmp_path), "pool_size": 510, "test_size": 100}}))
    mixes = {(m.n_ad, m.n_sd): m.repeats for m in paper.mixes}
    assert mixes[(60, 340)] == 5 and mixes[(400, 0)] == 5 and (85, 315) in mixes and (90, 310) in mixes
    assert paper.training["iters"] == 100000 and paper.training["batch_size"] == 16
    assert json.dumps(paper.models) == '["unet"]'


def test_parallel_jobs_finish_every_run(tmp_path):
    cfg = dict(TINY, mixes=[{"n_ad": 1, "n_sd": 3}], structures=False)
    path = write(tmp_path, cfg)
    results = run_experiment(path, tmp_path / "par", jobs=2, progress=False)
    assert sorted(r["run_id"] for r in results) == ["unet-small__ad1_sd3__s0", "unet-small__ad1_sd3__s1"]
    rows = io.read_csv(tmp_path / "par" / "results.csv")
    assert len(rows) == 2 and all(0 <= float(r["miou"]) <= 1 for r in rows)


def test_leave_one_out_tests_each_micrograph_once_on_itself(tmp_path):
    from nanoseg.synthesis import load_params, synthesize_dataset

    ad = tmp_path / "ad"  # three "micrographs", each its own group
    synthesize_dataset(ad, n=3, seed=5, params=load_params("realistic"), preset="realistic", size_hw=(64, 64), workers=1, progress=False)
    cfg = dict(TINY, ad={"folder": str(ad), "holdout": "leave-one-out", "pool_size": 4},
               mixes=[{"n_ad": 4, "n_sd": 0}, {"n_ad": 0, "n_sd": 4}], repeats=1, report_checkpoint="last")
    path = write(tmp_path, cfg)
    runs = run_list(load_experiment(path))
    groups = sorted(r["group"] for r in io.read_csv(ad / "manifest.csv"))
    assert sorted({r["fold"] for r in runs}) == groups and len(runs) == 6
    out = tmp_path / "loo"
    run_experiment(path, out, progress=False)
    for g in groups:
        fold = out / "data" / "folds" / g
        assert [r["group"] for r in io.read_csv(fold / "ad_test_groups" / "manifest.csv")] == [g]
        assert (fold / "ad_test_groups" / "labelme" / f"{g}.json").exists()  # the ring truth travels along
        assert g not in {r["group"] for r in io.read_csv(fold / "ad_pool" / "manifest.csv")}
    rows = io.read_csv(out / "results.csv")
    assert sorted(r["fold"] for r in rows) == sorted(groups * 2)
    assert "leave-one-out over 3 micrographs" in (out / "summary.md").read_text()
    # SD-only runs do not depend on the fold: one training serves the three
    trained = sorted(p.parent.name for p in (out / "runs").glob("*/last.pt"))
    assert trained == sorted([f"unet-small__ad4_sd0__s0__test-{g}" for g in groups] + ["unet-small__ad0_sd4__s0"])


def test_leave_one_out_needs_an_imported_folder(tmp_path):
    cfg = dict(TINY, ad={"standin": {"preset": "realistic", "n": 6}, "holdout": "leave-one-out"})
    with pytest.raises(NanosegError, match="leave-one-out needs an imported folder"):
        load_experiment(write(tmp_path, cfg))


def test_old_train_size_key_is_read_as_n_train_with_a_deprecation_message(tmp_path):
    cfg = {k: v for k, v in TINY.items() if k != "n_train"}
    path = write(tmp_path, dict(cfg, train_size=4))
    with pytest.warns(FutureWarning, match="n_train"):
        assert load_experiment(path).n_train == 4
    with pytest.raises(NanosegError, match="n_train only"):
        load_experiment(write(tmp_path, dict(cfg, train_size=4, n_train=4), "both.yaml"))
