import json
import cv2
import numpy as np
import pytest

from nanoseg import io
from nanoseg.evaluation.structures import evaluate_structure_folders, evaluate_structures, rings_from_meta
from nanoseg.synthesis import PRESETS, read_meta, synthesize_sample

from .conftest import run_cli


def _ring(m, cx, cy, r, w=5, a0=0, a1=360):
    cv2.ellipse(m, (cx, cy), (r, r), 0, a0, a1, 1, w)
    return m


def test_perfect_prediction_scores_f1_one_and_zero_error():
    masks = {}
    for i in range(4):
        s = synthesize_sample(PRESETS["simple"], 8, i, (200, 200))
        masks[f"im{i}"] = s["mask"]
    r = evaluate_structures(masks, masks)
    assert r["f1"] == 1.0 and r["precision"] == 1.0 and r["recall"] == 1.0
    assert r["radius_abs_err_px"] == 0.0 and r["coverage_err"] == 0.0 and r["count_abs_err"] == 0.0
    assert r["f1_ci95"] == [1.0, 1.0]


def test_missing_ring_added_arc_and_scaled_radius():
    gt = np.zeros((400, 400), np.uint8)
    _ring(gt, 100, 100, 60)
    _ring(gt, 290, 110, 50)
    _ring(gt, 110, 290, 40)
    pred = np.zeros_like(gt)
    _ring(pred, 100, 100, 60)             # kept exactly
    _ring(pred, 290, 110, 55)             # radius scaled by 10%
    _ring(pred, 300, 300, 45, a0=0, a1=200)  # an arc (200 deg) that is not in the ground truth
    # ring at (110, 290) removed
    r = evaluate_structures({"a": pred}, {"a": gt})
    assert r["precision"] == pytest.approx(2 / 3) and r["recall"] == pytest.approx(2 / 3)
    assert r["f1"] == pytest.approx(2 / 3)
    assert r["radius_rel_err"] == pytest.approx(0.05, abs=0.01)  # (0 + 10%) / 2
    assert r["radius_abs_err_px"] == pytest.approx(2.5, abs=0.5)
    assert r["count_abs_err"] == 0  # 3 predicted, 3 true: counts agree though the rings do not
    assert r["per_image"][0]["fp"] == 1 and r["per_image"][0]["fn"] == 1


def test_bootstrap_intervals_bracket_the_estimate():
    gts, preds = {}, {}
    for i in range(6):
        g = _ring(np.zeros((160, 160), np.uint8), 80, 80, 40)
        gts[f"i{i}"] = g
        preds[f"i{i}"] = g if i % 2 else np.zeros_like(g)
    r = evaluate_structures(preds, gts)
    lo, hi = r["recall_ci95"]
    assert lo <= r["recall"] == 0.5 <= hi and lo < hi


def test_synthetic_meta_ground_truth_and_cli(tiny_sd, tmp_path):
    rows = io.read_csv(tiny_sd / "manifest.csv")
    rid = rows[0]["id"]
    rings = rings_from_meta(read_meta(tiny_sd)[rid], tiny_sd / "labelme" / f"{rid}.json")
    assert rings and {"centre_x_px", "mean_radius_px", "coverage"} <= set(rings[0])
    r = evaluate_structure_folders(tiny_sd, tiny_sd)
    # rings touching each other merge into one mask component, so meta-vs-mask F1 may dip below 1
    assert r["recall"] > 0.8 and r["n_gt"] >= len(rings)
    code, out, err = run_cli("evaluate", "--pred", tiny_sd / "masks", "--gt", tiny_sd / "masks", "--structures")
    assert code == 0, err
    assert '"f1": 1.0' in out


def test_meta_ring_truth_is_the_rings_own_band_measured_like_a_prediction(tiny_sd):
    from nanoseg import labelme
    from nanoseg.inference.measure import measure_component

    checked = 0
    metas = read_meta(tiny_sd)
    for row in io.read_csv(tiny_sd / "manifest.csv"):
        meta = metas[row["id"]]
        doc = labelme.load(tiny_sd / "labelme" / f"{row['id']}.json")
        got = {r["ring_id"]: r for r in rings_from_meta(meta, doc, min_area_px=1, min_coverage=0.0)}
        for ring in meta["rings"]:
            a, b = ring["shapes"]
            # the ring's shapes alone, rasterised over the whole image the way labelme does it
            own = labelme.rasterize({"shapes": doc["shapes"][a:b]}, (doc["imageHeight"], doc["imageWidth"]))
            if ring["id"] in got:
                ys, xs = np.nonzero(own == 1)
                assert got[ring["id"]]["area_px"] == len(ys)
                assert got[ring["id"]] == dict(measure_component(ys, xs), ring_id=ring["id"])
                checked += 1
    assert checked >= 3


def test_per_image_meta_files_of_earlier_versions_still_give_the_truth(tiny_sd, tmp_path):
    import shutil

    old = tmp_path / "old"
    shutil.copytree(tiny_sd, old)
    (old / "meta").mkdir()
    for rid, rec in read_meta(tiny_sd).items():
        (old / "meta" / f"{rid}.json").write_text(json.dumps(rec))
    (old / "meta.jsonl").unlink()
    rid = io.read_csv(tiny_sd / "manifest.csv")[0]["id"]
    assert rings_from_meta(old / "meta" / f"{rid}.json") == \
        rings_from_meta(read_meta(tiny_sd)[rid], tiny_sd / "labelme" / f"{rid}.json")
    assert evaluate_structure_folders(old, old)["n_gt"] == evaluate_structure_folders(tiny_sd, tiny_sd)["n_gt"]


def test_a_broken_meta_line_is_named(tmp_path):
    from nanoseg.errors import NanosegError

    (tmp_path / "meta.jsonl").write_text('{"id": "a"}\n{not json\n')
    with pytest.raises(NanosegError, match=r"meta.jsonl:2"):
        read_meta(tmp_path)
