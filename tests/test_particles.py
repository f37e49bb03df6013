"""Particle maps: synthetic particles painted as training targets, and a model's map fed to the loop finder."""

import numpy as np
import pytest

from nanoseg import io
from nanoseg.errors import NanosegError
from nanoseg.inference.loops import find_loops
from nanoseg.inference.particles import ModelParticles
from nanoseg.inference.rings import particle_map
from nanoseg.models import checkpoint, load_model
from nanoseg.synthesis import read_meta
from nanoseg.synthesis.particle_masks import paint_particles, particle_dataset
from .test_loops import micrograph


def test_every_recorded_particle_is_painted_as_a_disc_of_its_radius():
    meta = {"particles": {"columns": ["x", "y", "r", "kind", "structure_id"],
                          "rows": [[20.0, 30.0, 5.0, "ring", 0], [50.5, 10.5, 2.5, "scattered", -1]]}}
    mask = paint_particles(meta, (40, 64))
    assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 1}
    yy, xx = np.mgrid[:40, :64]
    first = np.hypot(xx - 20.0, yy - 30.0)
    assert mask[first <= 4.0].all() and not mask[(first >= 6.0) & (first <= 12.0)].any()
    assert mask[(first <= 6.0)].sum() == pytest.approx(np.pi * 5.0**2, rel=0.15)
    assert mask[10, 50] == 1 and mask[10, 56] == 0


def test_a_particle_dataset_keeps_the_images_and_paints_each_ones_particles_as_its_mask(tiny_sd, tmp_path):
    before = {p.name: p.read_bytes() for p in (tiny_sd / "masks").iterdir()}
    n = particle_dataset(tiny_sd, tmp_path / "particles")
    out = tmp_path / "particles"
    metas = read_meta(out)
    rows = io.read_csv(out / "manifest.csv")
    assert n == len(rows) == len(before) and not (out / "labelme").exists()
    for row in rows:
        image = io.read_gray(out / "images" / f"{row['id']}.png")
        assert np.array_equal(image, io.read_gray(tiny_sd / "images" / f"{row['id']}.png"))
        mask = io.read_mask(out / "masks" / f"{row['id']}.png")
        assert np.array_equal(mask, paint_particles(metas[row["id"]], image.shape))
    assert any(io.read_mask(p).any() for p in (out / "masks").iterdir())
    assert {p.name: p.read_bytes() for p in (tiny_sd / "masks").iterdir()} == before  # the source is not touched


def test_a_folder_without_particle_records_is_refused_by_name(tmp_path):
    (tmp_path / "plain").mkdir()
    with pytest.raises(NanosegError, match="plain"):
        particle_dataset(tmp_path / "plain", tmp_path / "out")


def test_the_loop_finder_builds_its_chains_from_the_particle_map_it_is_given():
    ring = micrograph(2.0)
    default, _, _ = find_loops(ring, nm_per_px=2.0)
    same, _, _ = find_loops(ring, nm_per_px=2.0, particle_finder=lambda work: particle_map(work, 2.0))
    blind, _, _ = find_loops(ring, nm_per_px=2.0, particle_finder=lambda work: np.zeros(work.shape, bool))
    assert len(default) == 1 and [r["centre_x_px"] for r in same] == [r["centre_x_px"] for r in default]
    assert blind == []
    # the map, not the pixels, makes the ring: the ring's particle map on an image with no ring
    told, _, _ = find_loops(micrograph(2.0, ring=None), nm_per_px=2.0,
                            particle_finder=lambda work: particle_map(ring, 2.0))
    assert len(told) == 1 and told[0]["mean_radius_px"] * 2.0 == pytest.approx(90.0, rel=0.1)


def test_the_particle_map_is_found_at_the_working_pixel_size():
    shapes = []

    def finder(work):
        shapes.append(work.shape)
        return particle_map(work, 2.0)
    rings, _, _ = find_loops(micrograph(1.0), nm_per_px=1.0, particle_finder=finder)
    assert shapes == [(400, 400)] and len(rings) == 1  # the 800 px micrograph at 1 nm/px, seen at 2 nm/px


def test_a_particle_model_marks_where_its_probability_reaches_the_recorded_threshold(tiny_checkpoint, tmp_path):
    model, spec = load_model(tiny_checkpoint)
    path = tmp_path / "particles.pt"
    checkpoint.save(path, dict(spec, particle_threshold=0.3), model)
    image = micrograph(2.0, size_nm=192.0, ring=(96.0, 96.0, 50.0))
    finder = ModelParticles(path)
    probs = finder.probs(image)
    assert finder.threshold == 0.3 and probs.shape == image.shape
    assert np.array_equal(finder(image), probs >= 0.3)
    assert np.array_equal(ModelParticles(path, threshold=0.7)(image), probs >= 0.7)
    with pytest.raises(NanosegError, match="particle-threshold"):
        ModelParticles(path, threshold=1.5)
