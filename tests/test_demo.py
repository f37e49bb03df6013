import json

from nanoseg import io
from nanoseg.demo import run_demo


def test_demo_end_to_end_with_two_iterations(tmp_path):
    """The whole demo path (data, split, pools, two trainings, figures, the real micrograph), tiny budget."""
    out = tmp_path / "demo"
    results = run_demo(out, seed=1, iters=2)
    assert set(results) == {"mix", "ad_only"}
    for f in ("metrics.json", "metrics.md", "curve.png", "predictions.png", "real_overlay.png",
              "real/structures.csv", "real/summary.json", "real/CREDIT.md", "demo.json",
              "runs/mix/best.pt", "runs/ad_only/config.yaml"):
        assert (out / f).exists(), f
    md = (out / "metrics.md").read_text()
    assert "stand-in" in md and "12 AD + 36 SD" in md and "48 AD (control)" in md
    summary = json.loads((out / "real" / "summary.json").read_text())
    img = summary["images"]["boiko2020_2-S1-no_area-100k-ordered"]
    assert img["crop_bottom"] == 134 and img["height"] == 890 and img["scale_source"] == "flag"
    rows = io.read_csv(out / "data" / "ad_standin" / "manifest.csv")
    assert {r["source"] for r in rows} == {"ad"} and all("stand-in" in r["note"] for r in rows)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".demo")]
