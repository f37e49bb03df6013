import json

import numpy as np
import pytest

from nanoseg import io
from nanoseg import labelme
from nanoseg.errors import NanosegError
from nanoseg.synthesis import PRESETS, load_params, read_meta, synthesize_dataset, synthesize_sample

from .conftest import run_cli


def test_same_images_whatever_the_worker_count(tmp_path):
    p = load_params("realistic")
    synthesize_dataset(tmp_path / "w1", n=5, seed=11, params=p, size_hw=(80, 96), workers=1, progress=False)
    synthesize_dataset(tmp_path / "w2", n=5, seed=11, params=p, size_hw=(80, 96), workers=2, progress=False)
    for sub in ("images", "masks", "labelme"):
        a = sorted((tmp_path / "w1" / sub).iterdir())
        b = sorted((tmp_path / "w2" / sub).iterdir())
        assert [x.name for x in a] == [x.name for x in b]
        for x, y in zip(a, b):
            assert x.read_bytes() == y.read_bytes(), x.name
    assert (tmp_path / "w1" / "meta.jsonl").read_bytes() == (tmp_path / "w2" / "meta.jsonl").read_bytes()
    # and a different seed gives different images
    s1 = synthesize_sample(p, 11, 0, (80, 96))["image"]
    s2 = synthesize_sample(p, 12, 0, (80, 96))["image"]
    assert not np.array_equal(s1, s2)


@pytest.mark.parametrize("preset", ["realistic", "simple"])
def test_mask_lies_on_ring_particles_and_never_on_negatives(preset):
    params = PRESETS[preset]
    n_ring, n_neg = 0, 0
    for index in range(6):
        s = synthesize_sample(params, 5, index, (160, 160))
        mask = s["mask"]
        h, w = mask.shape
        assert set(np.unique(mask)) <= {0, 1}
        for x, y, r, kind, sid in s["particles"]:
            xi, yi = int(round(x)), int(round(y))
            if not (0 <= xi < w and 0 <= yi < h):
                continue
            if kind == "ring":
                assert mask[yi, xi] == 1, (index, x, y)
                n_ring += 1
            else:
                yy, xx = np.mgrid[:h, :w]
                disc = (xx - x) ** 2 + (yy - y) ** 2 <= r * r
                assert not mask[disc].any(), (index, kind, x, y)
                n_neg += 1
    assert n_ring > 50 and (preset == "simple" or n_neg > 50)


def test_debris_and_big_particles_stay_off_the_band():
    p = load_params("realistic", overrides={"debris": (3, 3), "big_particles": (3, 3), "network_prob": 1.0})
    for index in range(4):
        s = synthesize_sample(p, 9, index, (200, 200))
        types = {n["type"] for n in s["negatives"]}
        assert "network_edge" in types
        for n in s["negatives"]:
            if n["type"] == "big_particle":
                assert s["mask"][int(np.clip(n["y"], 0, 199)), int(np.clip(n["x"], 0, 199))] == 0


def test_labelme_json_rerasterises_to_the_mask(tiny_sd):
    for row in io.read_csv(tiny_sd / "manifest.csv"):
        doc = labelme.load(tiny_sd / "labelme" / f"{row['id']}.json")
        mask = io.read_mask(tiny_sd / "masks" / f"{row['id']}.png")
        assert (doc["imageHeight"], doc["imageWidth"]) == mask.shape
        assert doc["imagePath"] == f"../images/{row['id']}.png"
        assert np.array_equal(labelme.rasterize(doc, mask.shape), mask)


def test_manifest_and_meta_record_parameters_and_structures(tiny_sd):
    rows = io.read_csv(tiny_sd / "manifest.csv")
    assert len(rows) == 8
    r = rows[0]
    assert r["source"] == "sd" and r["group"] == r["id"]
    values = json.loads(r["params"])
    assert 0.5 <= values["scale_nm_per_px"] <= 2.0
    metas = read_meta(tiny_sd)
    # one record per image, in manifest order, one line each
    assert [json.loads(line)["id"] for line in (tiny_sd / "meta.jsonl").read_text().splitlines()] == \
        [row["id"] for row in rows]
    meta = metas[r["id"]]
    assert meta["values"].keys() == values.keys()
    assert all(meta["values"][k] == pytest.approx(v, abs=1e-4) for k, v in values.items() if isinstance(v, float))
    assert meta["particles"]["columns"] == ["x", "y", "r", "kind", "structure_id"]
    assert meta["particles"]["rows"] and all(len(p) == 5 for p in meta["particles"]["rows"])
    for ring in meta["rings"]:
        assert {"cx", "cy", "radius_px", "coverage", "shapes"} <= set(ring)
    assert json.loads((tiny_sd / "synth.json").read_text())["seed"] == 3


def test_sizes_from_64_px_up_and_large_frames_hold_more_rings():
    p = PRESETS["realistic"]
    small = synthesize_sample(p, 1, 0, (64, 64))
    assert small["image"].shape == (64, 64) and small["image"].dtype == np.uint8
    counts_small = np.mean([len(synthesize_sample(p, 1, i, (160, 160))["rings"]) for i in range(4)])
    counts_large = np.mean([len(synthesize_sample(p, 1, i, (480, 640))["rings"]) for i in range(2)])
    assert counts_large > counts_small


def test_presets_differ_in_clutter():
    def clutter(preset):
        return np.mean([len(synthesize_sample(PRESETS[preset], 2, i, (160, 160))["negatives"]) for i in range(5)])
    assert clutter("realistic") > clutter("simple")


@pytest.mark.parametrize("args, needle", [
    (["--preset", "fancy"], "--preset"),
    (["--size", "32"], "--size"),
    (["--n", "0"], "--n"),
])
def test_invalid_parameters_are_refused(tmp_path, args, needle):
    out = tmp_path / "out"
    code, _, err = run_cli("synth", "--out", out, "--n", "2", *args)
    assert code == 2
    assert needle in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize("yaml_text, needle", [
    ("ring_radius_px: [50, 20]\n", "inverted"),
    ("psf_sigma_nm: [-1, 2]\n", "negative"),
    ("no_such_param: 3\n", "no_such_param"),
])
def test_invalid_config_values_are_refused(tmp_path, yaml_text, needle):
    cfg = tmp_path / "p.yaml"
    cfg.write_text(yaml_text)
    code, _, err = run_cli("synth", "--out", tmp_path / "out", "--n", "2", "--config", cfg)
    assert code == 2 and needle in err
    assert not (tmp_path / "out").exists()
    with pytest.raises(NanosegError):
        load_params("realistic", cfg)


def test_parameters_from_the_command_line(tmp_path):
    code, _, err = run_cli("synth", "--out", tmp_path / "a", "--n", "2", "--size", "64", "--workers", "1",
                           "--set", "ring_radius_px=[20, 21]", "--set", "sheets_per_um2=[0, 0]")
    assert code == 0, err
    import json

    rows = io.read_csv(tmp_path / "a" / "manifest.csv")
    assert json.loads(rows[0]["params"])["sheets_per_um2"] == 0
    saved = json.loads((tmp_path / "a" / "synth.json").read_text())["params"]
    assert saved["ring_radius_px"] == [20.0, 21.0]
    code, _, err = run_cli("synth", "--out", tmp_path / "b", "--n", "2", "--set", "ring_radius_px=[30, 10]")
    assert code == 2 and "--set" in err and "ring_radius_px" in err and not (tmp_path / "b").exists()
    code, _, err = run_cli("synth", "--out", tmp_path / "c", "--n", "2", "--set", "oops")
    assert code == 2 and "NAME=VALUE" in err


def test_non_empty_output_needs_overwrite(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    code, _, err = run_cli("synth", "--out", out, "--n", "1", "--size", "64")
    assert code == 2 and "--overwrite" in err
    assert (out / "keep.txt").exists()
    code, _, _ = run_cli("synth", "--out", out, "--n", "1", "--size", "64", "--overwrite", "--workers", "1")
    assert code == 0 and not (out / "keep.txt").exists() and (out / "manifest.csv").exists()


def test_gallery_renders(tmp_path):
    gal = tmp_path / "g.png"
    code, _, _ = run_cli("synth", "--out", tmp_path / "ds", "--n", "3", "--size", "64", "--workers", "1",
                         "--gallery", gal)
    assert code == 0
    img = io.read_gray(gal)
    # 4 columns of (image | outline) pairs, 64 px each plus a 4 px margin
    assert img.shape == (68, 4 * (128 + 4))
    assert img.std() > 5


def test_recorded_particle_radius_is_the_rendered_one():
    # 0.3 nm/px and 6-11 nm particles ask for radii of 10-18 px; a 96 px frame holds at most 96/20 = 4.8 px
    p = load_params("realistic", overrides={"scale_nm_per_px": (0.3, 0.3)})
    s = synthesize_sample(p, 0, 0, (96, 96))
    assert s["values"]["particle_radius_px"] == pytest.approx(4.8)
    radii = np.array([r for _, _, r, kind, _ in s["particles"] if kind == "ring"])
    assert len(radii) and abs(np.median(radii) - 4.8) < 0.8
    # where nothing is clipped the record is the nm diameter over the pixel size
    big = synthesize_sample(load_params("realistic"), 0, 0, (321, 321))["values"]
    assert big["particle_radius_px"] == pytest.approx(big["particle_diameter_nm"] / big["scale_nm_per_px"] / 2)
    assert big["psf_sigma_px"] == pytest.approx(big["psf_sigma_nm"] / big["scale_nm_per_px"])


def test_drawn_parameters_are_frozen_and_cover_every_generator_parameter():
    import dataclasses

    from nanoseg.synthesis.draw import DrawnParams
    from nanoseg.synthesis.generate import sample_rng

    params = load_params("simple")
    d = DrawnParams.sample(params, sample_rng(1, 2), (128, 160))
    drawn = [name for name in type(params).model_fields if name != "by_scale"]  # by_scale holds values of the others
    assert list(d.record())[:len(drawn)] == drawn
    assert d.cluster_size_range == tuple(params.cluster_size) and d.shape_hw == (128, 160)
    assert params.ring_radius_px[0] * 128 / 321 <= d.ring_radius_lo_px <= d.ring_radius_hi_px <= 0.45 * 128
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.scale_nm_per_px = 1.0
    assert d.replace(scale_nm_per_px=2 * d.scale_nm_per_px).psf_sigma_px == pytest.approx(d.psf_sigma_px / 2)
    # the same stream gives the same draw
    assert DrawnParams.sample(params, sample_rng(1, 2), (128, 160)) == d


def test_nothing_but_loose_particles_lies_inside_a_ring():
    # a ring is a loop around empty support: chains, network edges and clusters stay out of it
    p = load_params("realistic", overrides={"network_prob": 1.0, "dense_clusters": (3, 3), "chains": (2, 2)})
    n_rings = n_outside = 0
    for index in range(6):
        s = synthesize_sample(p, 3, index, (256, 256))
        for ring in s["rings"]:
            n_rings += 1
            for x, y, r, kind, sid in s["particles"]:
                inside = (x - ring["cx"]) ** 2 + (y - ring["cy"]) ** 2 < (ring["r_inner_px"] - 1) ** 2
                assert not inside or kind in ("ring", "scattered"), (index, kind, x, y)
        n_outside += sum(1 for *_, kind, _ in s["particles"] if kind == "network")
    assert n_rings >= 6 and n_outside > 100


def test_by_scale_values_replace_the_ranges_at_their_pixel_size_only():
    from nanoseg.synthesis.draw import DrawnParams

    p = load_params("realistic", overrides={"by_scale": {0.5: {"background_level": [30, 31]},
                                                         2.0: {"dose_e_per_px": [900, 901]}}})
    at = {s: DrawnParams.sample(p.model_copy(update={"scale_nm_per_px": (s, s)}), np.random.default_rng(0), (96, 96))
          for s in (0.55, 1.9)}
    assert 30 <= at[0.55].background_level <= 31 and at[0.55].dose_e_per_px <= 250  # nearest entry: 0.5
    assert 900 <= at[1.9].dose_e_per_px <= 901 and 25 <= at[1.9].background_level <= 90  # nearest: 2.0
    for bad, needle in (({0.5: {"background_level": [50, 40]}}, "inverted"),
                        ({0.5: {"scale_nm_per_px": [1, 1]}}, "cannot be set per pixel size"),
                        ({0.5: {"no_such": [1, 2]}}, "no_such")):
        with pytest.raises(NanosegError, match=needle):
            load_params("realistic", overrides={"by_scale": bad})


def test_a_full_crop_at_x200k_renders_the_largest_preset_particles_at_their_nm_size():
    # 11 nm at 0.5 nm/px is a radius of 11 px: a 321 px frame holds it (it used to clip at 8 px, 8 nm)
    p = load_params("realistic", overrides={"scale_nm_per_px": (0.5, 0.5), "particle_diameter_nm": (11.0, 11.0)})
    s = synthesize_sample(p, 0, 0, (321, 321))
    assert s["values"]["particle_radius_px"] == pytest.approx(11.0)
    radii = np.array([r for _, _, r, kind, _ in s["particles"] if kind == "ring"])
    assert abs(np.median(radii) - 11.0) < 1.5
