import json

import yaml

from nanoseg import io
from nanoseg.demo import demo_experiment, run_demo

from .conftest import run_cli


def test_demo_end_to_end_with_two_iterations(tmp_path):
    """The whole demo path (the packaged experiment through the runner, figures, the real micrograph), tiny budget."""
    out = tmp_path / "demo"
    results = run_demo(out, seed=1, iters=2)
    assert set(results) == {"mix", "ad_only"}
    runs = json.loads((out / "demo.json").read_text())["runs"]
    for f in ("metrics.json", "metrics.md", "curve.png", "predictions.png", "real_overlay.png",
              "real/structures.csv", "real/summary.json", "real/CREDIT.md", "demo.json", "summary.md",
              "report.html", f"runs/{runs['mix']}/best.pt", f"runs/{runs['ad_only']}/config.yaml"):
        assert (out / f).exists(), f
    md = (out / "metrics.md").read_text()
    assert "stand-in" in md and "12 AD + 36 SD" in md and "48 AD (control)" in md
    assert yaml.safe_load((out / "experiment.yaml").read_text())["training"]["iters"] == 2
    summary = json.loads((out / "real" / "summary.json").read_text())
    img = summary["images"]["boiko2020_2-S1-no_area-100k-ordered"]
    assert img["crop_bottom"] == 134 and img["height"] == 890 and img["scale_source"] == "flag"
    rows = io.read_csv(out / "data" / "ad_source" / "manifest.csv")
    assert {r["source"] for r in rows} == {"ad"} and all("stand-in" in r["note"] for r in rows)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".demo")]
    # a non-empty folder that is not an earlier demo's output is kept unless --overwrite
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    code, _, err = run_cli("demo", "--out", other, "--iters", "2")
    assert code == 2 and "--overwrite" in err and (other / "keep.txt").read_text() == "mine"


def test_demo_experiment_is_packaged_and_takes_seed_and_budget():
    cfg = demo_experiment(seed=3, iters=60)
    assert cfg.seed == 3 and cfg.training["iters"] == 60 and cfg.training["eval_every"] == 10
    assert [(m.n_ad, m.n_sd) for m in cfg.mixes] == [(12, 36), (48, 0)] and cfg.ad.standin is not None
