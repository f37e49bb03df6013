"""The structure-first ring finder: round empty loops of particle chains, in nm."""

import json
import math

import numpy as np
import pytest

from nanoseg import io
from nanoseg.inference.loops import LoopRules, find_loops
from .conftest import run_cli

PARTICLE_NM = 10.0


def micrograph(nm_per_px: float, size_nm: float = 800.0, seed: int = 0, *, ring=(400.0, 400.0, 90.0),
               arc=None, clump=None, sheet=False, ring_pieces: int = 1, wobble_nm: float = 0.0,
               spacing: float = 0.9) -> np.ndarray:
    """A dark noisy support with bright ~10 nm particles: a ring of touching particles at
    ``ring`` (x, y, radius in nm), optionally an open arc and a filled clump. ``wobble_nm``: the
    ring's chain wanders in and out of its circle by that much (five lobes); ``spacing``: centre
    distance of neighbouring particles in particle diameters."""
    rng = np.random.default_rng(seed)
    n = int(round(size_nm / nm_per_px))
    yy, xx = (np.mgrid[:n, :n] + 0.5) * nm_per_px
    img = np.full((n, n), 50.0)
    if sheet:  # the loop's chain runs along the edge of a brighter carbon sheet that fills it
        img[np.hypot(xx - ring[0], yy - ring[1]) < ring[2] - 6.0] += 40.0
    centres = []

    def along(cx, cy, r, start, stop, wobble=0.0):
        steps = int(abs(stop - start) * r / (spacing * PARTICLE_NM))
        for t in np.linspace(start, stop, steps, endpoint=False):
            rt = r + wobble * math.sin(5 * t)
            centres.append((cx + rt * math.cos(t), cy + rt * math.sin(t)))
    if ring:  # 92% of the circle, in ``ring_pieces`` equal arcs with equal gaps
        for k in range(ring_pieces):
            start = 2 * math.pi * k / ring_pieces
            along(*ring, start, start + 2 * math.pi * 0.92 / ring_pieces, wobble_nm)
    if arc:
        along(*arc, 0.0, 2 * math.pi * 0.35)
    if clump:
        cx, cy, r = clump
        for _ in range(60):
            a, d = rng.uniform(0, 2 * math.pi), r * math.sqrt(rng.uniform())
            centres.append((cx + d * math.cos(a), cy + d * math.sin(a)))
    for cx, cy in centres:
        img += 140.0 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * (PARTICLE_NM / 2.5) ** 2))
    img += rng.normal(0, 4.0, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def test_a_closed_round_loop_of_particles_is_a_ring_with_its_radius_in_nm():
    img = micrograph(2.0, arc=(150.0, 150.0, 70.0), clump=(650.0, 650.0, 40.0))
    rings, rejected, mask = find_loops(img, nm_per_px=2.0)
    assert len(rings) == 1
    r = rings[0]
    assert r["centre_x_px"] * 2.0 == pytest.approx(400.0, abs=10.0)
    assert r["centre_y_px"] * 2.0 == pytest.approx(400.0, abs=10.0)
    assert r["mean_radius_px"] * 2.0 == pytest.approx(90.0, rel=0.1)
    assert r["coverage"] >= 0.85 and r["interior_fill"] <= 0.05
    yy, xx = (np.mgrid[:400, :400] + 0.5) * 2.0
    on_ring = (np.abs(np.hypot(xx - 400.0, yy - 400.0) - 90.0) < 6.0) & (img > 150)
    assert mask.shape == img.shape and mask[on_ring].mean() > 0.8 and mask[img <= 150].mean() < 0.02


@pytest.mark.parametrize("nm_per_px", [2.0, 1.0])
def test_the_mask_paints_each_ring_as_one_band_across_its_gaps_as_the_references_are_labelled(nm_per_px):
    import cv2

    img = micrograph(nm_per_px, ring_pieces=3)  # the chain in three arcs with gaps between them
    rings, _, mask = find_loops(img, nm_per_px=nm_per_px)
    assert len(rings) == 1 and mask.shape == img.shape
    assert cv2.connectedComponents(mask, connectivity=8)[0] - 1 == 1  # one band, not three arcs
    r = rings[0]
    t = np.linspace(0, 2 * np.pi, 720, endpoint=False)
    xs = np.rint(r["centre_x_px"] + r["mean_radius_px"] * np.cos(t)).astype(int)
    ys = np.rint(r["centre_y_px"] + r["mean_radius_px"] * np.sin(t)).astype(int)
    assert mask[ys, xs].mean() > 0.97  # closed across the gaps
    yy, xx = (np.mgrid[:img.shape[0], :img.shape[1]] + 0.5) * nm_per_px
    assert not mask[np.hypot(xx - 400.0, yy - 400.0) < 60.0].any()  # the empty interior stays unpainted
    assert r["area_px"] == pytest.approx(int(mask.sum()), rel=0.1)


def test_the_same_ring_at_half_the_pixel_size_is_the_same_ring_in_nm():
    coarse, _, _ = find_loops(micrograph(2.0), nm_per_px=2.0)
    fine, _, _ = find_loops(micrograph(1.0), nm_per_px=1.0)
    assert len(coarse) == len(fine) == 1
    assert fine[0]["mean_radius_px"] * 1.0 == pytest.approx(coarse[0]["mean_radius_px"] * 2.0, rel=0.05)
    assert fine[0]["centre_x_px"] * 1.0 == pytest.approx(coarse[0]["centre_x_px"] * 2.0, abs=4.0)


def test_an_open_arc_a_small_loop_and_a_filled_clump_are_not_rings():
    arc_only = micrograph(2.0, ring=None, arc=(400.0, 400.0, 90.0), clump=(200.0, 200.0, 60.0))
    assert find_loops(arc_only, nm_per_px=2.0)[0] == []
    small = micrograph(2.0, ring=(400.0, 400.0, 20.0))  # a rosette-sized loop: below 30 nm
    assert find_loops(small, nm_per_px=2.0)[0] == []


def test_a_compact_ring_under_50_nm_must_be_closed_dense_and_alone():
    compact = find_loops(micrograph(2.0, ring=(400.0, 400.0, 40.0)), nm_per_px=2.0)[0]
    assert len(compact) == 1 and compact[0]["mean_radius_px"] * 2.0 == pytest.approx(40.0, rel=0.1)
    # a chain that wanders around its circle: a ring at 90 nm, turned away at 40 nm (network cells
    # of that size are common; only a closed, dense, free-standing loop counts)
    large = find_loops(micrograph(2.0, ring=(400.0, 400.0, 90.0), spacing=1.6, wobble_nm=8.0), nm_per_px=2.0)[0]
    assert len(large) == 1
    rings, rejected, _ = find_loops(micrograph(2.0, ring=(400.0, 400.0, 40.0), spacing=1.6, wobble_nm=8.0),
                                    nm_per_px=2.0)
    assert rings == [] and [r["rejected_by"] for r in rejected] == ["compact_coverage"]
    assert LoopRules().min_coverage <= rejected[0]["coverage"] < LoopRules().min_compact_coverage
    relaxed = find_loops(micrograph(2.0, ring=(400.0, 400.0, 40.0), spacing=1.6, wobble_nm=8.0), nm_per_px=2.0,
                         rules=LoopRules(max_compact_radius_nm=30.0))[0]
    assert len(relaxed) == 1  # judged by the ordinary rules once it is not "compact"


def test_a_ring_around_a_smaller_ring_is_found_with_it_and_held_to_the_compact_standard():
    # the paper's Fig. 5d: every ray from the centre first meets the inner ring
    two = np.maximum(micrograph(2.0, ring=(400.0, 400.0, 110.0)), micrograph(2.0, ring=(400.0, 400.0, 45.0), seed=1))
    rings, _, mask = find_loops(two, nm_per_px=2.0)
    assert sorted((round(r["mean_radius_px"] * 2.0 / 5) * 5, r["encloses_loop"]) for r in rings) == [(45, False), (110, True)]
    assert mask[200, 200 + 55] == 1 and mask[200, 200 + 22] == 1 and mask[200, 200 + 35] == 0  # both bands, the gap
    # a sparse, wandering outer chain: a ring on its own, not around another (closed in < 90%)
    sparse = dict(ring=(400.0, 400.0, 110.0), spacing=2.2, wobble_nm=8.0)
    assert len(find_loops(micrograph(2.0, **sparse), nm_per_px=2.0)[0]) == 1
    rings, rejected, _ = find_loops(np.maximum(micrograph(2.0, **sparse), micrograph(2.0, ring=(400.0, 400.0, 45.0), seed=1)),
                                    nm_per_px=2.0)
    assert [round(r["mean_radius_px"] * 2.0 / 5) * 5 for r in rings] == [45]
    assert [r["rejected_by"] for r in rejected if r["encloses_loop"]] == ["compact_coverage"]


def test_a_sparse_chain_that_wanders_around_its_circle_is_rejected_by_its_thin_band():
    clean = find_loops(micrograph(2.0), nm_per_px=2.0)[0]
    assert len(clean) == 1 and clean[0]["band_fill"] > 0.8
    rings, rejected, _ = find_loops(micrograph(2.0, wobble_nm=16.0, spacing=1.4), nm_per_px=2.0)
    assert rings == [] and [r["rejected_by"] for r in rejected] == ["band_fill"]
    assert rejected[0]["coverage"] >= 0.75 and rejected[0]["band_fill"] < 0.38


def test_a_rejected_loop_does_not_hide_a_ring_around_the_same_centre():
    from nanoseg.inference.loops import loop_candidates
    img = micrograph(2.0)
    cands = loop_candidates(img, nm_per_px=2.0)
    ring = max(cands["rows"], key=lambda r: r["coverage"])
    worse = dict(ring, coverage=1.0, interior_fill=0.5, centre_x_px=ring["centre_x_px"] + 3.0)  # better covered, filled
    cands["rows"] = [worse, ring]
    rings, rejected, _ = find_loops(img, nm_per_px=2.0, candidates=cands)
    assert len(rings) == 1 and rings[0]["centre_x_px"] == pytest.approx(ring["centre_x_px"])
    assert rejected == []  # the filled loop around the ring's centre is the ring's, not another candidate


def test_rings_larger_than_the_micrograph_are_looked_for_without_a_huge_filter():
    rings, rejected, mask = find_loops(micrograph(2.0), nm_per_px=2.0,
                                       rules=LoopRules(min_radius_nm=5000.0, max_radius_nm=10000.0))
    assert rings == [] and rejected == [] and not mask.any()


def test_a_loop_along_a_sheet_edge_is_rejected_by_the_brighter_support_inside():
    rings, rejected, _ = find_loops(micrograph(2.0, sheet=True), nm_per_px=2.0)
    assert rings == [] and any(r["rejected_by"] == "interior_step" for r in rejected)


def test_predict_without_a_model_finds_rings_structure_first_and_with_one_uses_it(tmp_path, tiny_checkpoint):
    src = tmp_path / "in"
    src.mkdir()
    io.write_png(src / "ring.png", micrograph(2.0))
    code, out, err = run_cli("predict", "--input", src, "--out", tmp_path / "loops", "--scale-nm-per-px", "2")
    assert code == 0, err
    summary = json.loads((tmp_path / "loops" / "summary.json").read_text())
    assert summary["ring_finder"] == "loops" and summary["model"] is None
    rows = io.read_csv(tmp_path / "loops" / "structures.csv")
    assert len(rows) == 1 and float(rows[0]["mean_radius_nm"]) == pytest.approx(90.0, rel=0.1)
    code, out, err = run_cli("predict", "--input", src, "--out", tmp_path / "model", "--model", tiny_checkpoint)
    assert code == 0, err
    assert json.loads((tmp_path / "model" / "summary.json").read_text())["ring_finder"] == "model"
    code, out, err = run_cli("predict", "--input", src, "--out", tmp_path / "shipped", "--ring-finder", "model")
    assert code == 0, err  # the model nanoseg ships, when no --model is given
    assert json.loads((tmp_path / "shipped" / "summary.json").read_text())["model"].endswith("rings-unet-small.pt")


def test_a_model_option_without_a_model_is_refused_not_ignored(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    io.write_png(src / "ring.png", micrograph(2.0))
    code, out, err = run_cli("predict", "--input", src, "--out", tmp_path / "o", "--min-confidence", "0.2")
    assert code == 2 and "--min-confidence" in err and not (tmp_path / "o").exists()
    code, out, err = run_cli("predict", "--input", src, "--out", tmp_path / "o", "--ring-finder", "loops",
                             "--model", tmp_path / "any.pt")
    assert code == 2 and err.startswith("error: --model") and not (tmp_path / "o").exists()


def test_a_loop_rule_given_on_the_command_line_changes_what_predict_finds_and_is_recorded(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    io.write_png(src / "small.png", micrograph(2.0, ring=(400.0, 400.0, 40.0)))  # a compact ring of 40 nm
    code, _, err = run_cli("predict", "--input", src, "--out", tmp_path / "default", "--scale-nm-per-px", "2")
    assert code == 0, err
    rows = io.read_csv(tmp_path / "default" / "structures.csv")
    assert len(rows) == 1 and float(rows[0]["mean_radius_nm"]) == pytest.approx(40.0, rel=0.1)
    code, _, err = run_cli("predict", "--input", src, "--out", tmp_path / "large", "--scale-nm-per-px", "2",
                           "--loop-rule", "min_radius_nm=45")
    assert code == 0, err
    assert io.read_csv(tmp_path / "large" / "structures.csv") == []
    summary = json.loads((tmp_path / "large" / "summary.json").read_text())
    assert summary["ring_rules"]["min_radius_nm"] == 45.0 and summary["ring_rules"]["min_band_fill"] == 0.38


@pytest.mark.parametrize("items, needle", [
    (["--loop-rule", "min_radius=40"], "'min_radius' is not a loop rule"),
    (["--loop-rule", "min_coverage=1.5"], "min_coverage"),
    (["--loop-rule", "max_gap=wide"], "max_gap must be a number"),
    (["--loop-rule", "min_radius_nm"], "NAME=VALUE"),
    (["--loop-rule", "min_radius_nm=400"], "above max_radius_nm"),
    (["--loop-rule", "min_radius_nm=nan"], "out of range"),
    (["--loop-rule", "max_radius_nm=inf"], "out of range"),
    (["--loop-rule", "max_radius_nm=1e9"], "out of range"),
    (["--loop-rule", "min_band_fill=-1"], "out of range"),
    (["--loop-rule", "min_radius_nm=40", "--loop-rule", "min_radius_nm=60"], "given twice"),
    (["--loop-rule", "min_radius_nm=40", "--ring-finder", "model"], "applies to the loop finder"),
])
def test_a_bad_loop_rule_is_refused_in_one_line_naming_the_option(tmp_path, items, needle):
    src = tmp_path / "in"
    src.mkdir()
    io.write_png(src / "ring.png", micrograph(2.0))
    code, out, err = run_cli("predict", "--input", src, "--out", tmp_path / "o", *items)
    assert code == 2 and err.startswith("error: --loop-rule") and needle in err, err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "o").exists()


def test_a_micrograph_too_coarse_to_resolve_particles_is_skipped_with_its_reason(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    io.write_png(src / "ring.png", micrograph(2.0))
    io.write_png(src / "coarse.png", micrograph(2.0)[::4, ::4])
    (src / "coarse.txt").write_text("[SemImageFile]\nPixelSize=8.0\n")  # a Hitachi sidecar: 8 nm/px
    code, out, err = run_cli("predict", "--input", src, "--out", tmp_path / "o")
    assert code == 0, err
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert list(summary["images"]) == ["ring"]
    assert summary["skipped"][0]["file"].endswith("coarse.png") and "8 nm/px" in summary["skipped"][0]["reason"]


def test_evaluate_scores_a_predict_folder_by_the_rings_it_reports(tmp_path):
    import cv2

    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    (data / "masks").mkdir()
    img = micrograph(2.0, ring_pieces=3)  # its chain in three arcs: three mask components, one ring
    io.write_png(data / "images" / "ring.png", img)
    truth = np.zeros(img.shape, np.uint8)
    cv2.circle(truth, (200, 200), 45, 1, 5)  # the labelled band: radius 90 nm at 2 nm/px
    io.write_png(data / "masks" / "ring.png", truth)
    code, _, err = run_cli("predict", "--input", data / "images", "--out", tmp_path / "pred", "--scale-nm-per-px", "2")
    assert code == 0, err
    code, _, err = run_cli("evaluate", "--pred", tmp_path / "pred", "--gt", data, "--structures",
                           "--json", tmp_path / "m.json")
    assert code == 0, err
    s = json.loads((tmp_path / "m.json").read_text())["structures"]
    assert s["n_gt"] == 1 and s["n_pred"] == 1 and s["f1"] == 1.0
