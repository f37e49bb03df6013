"""The generator's fast kernels against slow references: shot noise, batched particle
placement, Voronoi edges, band painting and PNG writing."""

import numpy as np
import pytest
from PIL import Image
from scipy import stats
from scipy.spatial import Voronoi

from nanoseg import io
from nanoseg import labelme
from nanoseg.synthesis import load_params, synthesize_sample
from nanoseg.synthesis.render import shot_noise_counts
from nanoseg.synthesis.scene import particles_along_many, voronoi_edges


def _tv_to_poisson(counts: np.ndarray, lam: float) -> float:
    k = np.arange(int(lam + 12 * np.sqrt(lam) + 20))
    emp = np.bincount(counts.astype(np.int64), minlength=len(k))[: len(k)] / len(counts)
    return 0.5 * float(np.abs(emp - stats.poisson.pmf(k, lam)).sum())


@pytest.mark.parametrize("lam", [1.0, 4.0, 10.0, 40.0])
def test_shot_noise_is_poisson_at_the_dose(lam):
    rng = np.random.default_rng(0)
    counts = shot_noise_counts(np.full(1_000_000, lam, np.float32), rng)
    assert counts.dtype == np.float32 and np.all(counts == np.round(counts)) and counts.min() >= 0
    assert counts.mean() == pytest.approx(lam, rel=0.01)
    assert counts.var() == pytest.approx(lam, rel=0.03)
    # third moment too: a plain rounded normal has skewness 0 and fails this at low counts
    assert stats.skew(counts) == pytest.approx(1 / np.sqrt(lam), abs=0.03)
    assert _tv_to_poisson(counts, lam) < 0.01
    exact = shot_noise_counts(np.full(1_000_000, lam, np.float32), rng, exact=True)
    assert _tv_to_poisson(exact, lam) < 0.01


def test_rounded_normal_would_fail_the_same_check():
    """The check above can fail: the naive normal approximation misses it at 4 electrons."""
    rng = np.random.default_rng(0)
    naive = np.maximum(np.rint(4.0 + 2.0 * rng.standard_normal(1_000_000)), 0)
    assert _tv_to_poisson(naive, 4.0) > 0.03


def _distance_to_polyline(p: np.ndarray, line: np.ndarray) -> float:
    a, b = line[:-1], line[1:]
    ab = b - a
    t = np.clip(((p - a) * ab).sum(axis=1) / np.maximum((ab * ab).sum(axis=1), 1e-12), 0, 1)
    return float(np.hypot(*(a + t[:, None] * ab - p).T).min())


def test_batched_particles_sit_on_their_own_curve():
    rng = np.random.default_rng(3)
    v = dict(cluster_size=(2, 6), cluster_gap=0.8, size_spread=0.2, width_jitter=0.6)
    curves = [np.cumsum(rng.normal(0, 4, (n, 2)), axis=0) + rng.uniform(0, 300, 2) for n in (2, 5, 40, 80)]
    parts, cid = particles_along_many(curves, False, 2.0, rng, **v)
    assert len(parts) == len(cid) and set(np.unique(cid)) <= {0, 1, 2, 3} and {2, 3} <= set(np.unique(cid))
    for (x, y, r), k in zip(parts, cid):
        # sideways scatter is at most line_width_jitter radii
        assert _distance_to_polyline(np.array([x, y]), curves[k]) <= 0.6 * r + 1e-6
    # the particles of each curve are laid out in order along it, clusters of touching particles
    for k in np.unique(cid):
        own = parts[cid == k]
        d = np.hypot(*np.diff(own[:, :2], axis=0).T)
        assert (d > 0).all()
    none, none_ids = particles_along_many([], True, 2.0, rng, **v)
    assert none.shape == (0, 3) and none_ids.shape == (0,)


def test_voronoi_edges_are_the_finite_ridges():
    rng = np.random.default_rng(5)
    for _ in range(20):
        seeds = np.column_stack([rng.uniform(-900, 900, 30), rng.uniform(-300, 300, 30)])
        vor = Voronoi(seeds)
        ridges = np.array([ab for ab in vor.ridge_vertices if min(ab) >= 0])
        lo, hi = seeds.min(axis=0) - 1, seeds.max(axis=0) + 1
        near = np.all(np.abs(vor.vertices[ridges] - (lo + hi) / 2).max(axis=2) < 2 * (hi - lo).max(), axis=1)
        p, q = voronoi_edges(seeds)
        assert len(p) == near.sum()
        ref = np.hstack([vor.vertices[ridges[near, 0]], vor.vertices[ridges[near, 1]]])
        ref = np.vstack([ref, ref[:, [2, 3, 0, 1]]])
        for e in np.hstack([p, q]):
            assert np.abs(ref - e).max(axis=1).min() < 0.05  # OpenCV works in float32


def test_written_labelme_files_rasterise_to_the_masks_at_full_size():
    for preset in ("realistic", "simple"):
        p = load_params(preset)
        for i in range(6):
            s = synthesize_sample(p, 21, i, (321, 321))
            assert np.array_equal(labelme.rasterize({"shapes": s["shapes"]}, (321, 321)), s["mask"]), (preset, i)


def test_paint_in_box_equals_labelme_rasterisation():
    shapes = labelme.ring_shapes(
        np.column_stack([50 + 20 * np.cos(t := np.linspace(0, 2 * np.pi, 90, endpoint=False)), 40 + 20 * np.sin(t)]),
        np.column_stack([50 + 12 * np.cos(t), 40 + 12 * np.sin(t)]))
    for hw in ((100, 120), (50, 60)):  # the second clips the ring at the frame edge
        (y0, x0), box = labelme.paint_in_box(shapes, hw)
        full = np.full(hw, labelme.UNTOUCHED, np.uint8)
        full[y0:y0 + box.shape[0], x0:x0 + box.shape[1]] = box
        ref = labelme.rasterize({"shapes": shapes}, hw, base=np.full(hw, labelme.UNTOUCHED, np.uint8))
        assert np.array_equal(full, ref)
    assert labelme.paint_in_box(shapes, (10, 10)) is None  # entirely outside


@pytest.mark.parametrize("arr", [
    np.random.default_rng(0).integers(0, 256, (31, 47), dtype=np.uint8),
    np.random.default_rng(1).integers(0, 256, (31, 47, 3), dtype=np.uint8),
    np.random.default_rng(2).integers(0, 256, (31, 47, 4), dtype=np.uint8),
    np.random.default_rng(3).integers(0, 65536, (31, 47), dtype=np.uint16),
])
def test_png_writing_is_lossless(tmp_path, arr):
    io.write_png(tmp_path / "x.png", arr)
    with Image.open(tmp_path / "x.png") as im:
        back = np.array(im)
    assert back.dtype == arr.dtype and np.array_equal(back, arr)


def test_exact_shot_noise_can_be_chosen_and_is_validated():
    from nanoseg.errors import NanosegError

    p = load_params("realistic", overrides={"shot_noise": "exact"})
    a = synthesize_sample(p, 4, 0, (96, 96))
    b = synthesize_sample(load_params("realistic"), 4, 0, (96, 96))
    assert a["values"]["shot_noise"] == "exact" and b["values"]["shot_noise"] == "cornish-fisher"
    assert np.array_equal(a["mask"], b["mask"]) and not np.array_equal(a["image"], b["image"])
    with pytest.raises(NanosegError, match="shot_noise"):
        load_params("realistic", overrides={"shot_noise": "gaussian"})
