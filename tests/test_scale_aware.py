"""Scale-aware prediction: a micrograph of known pixel size is brought into the model's trained range."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from nanoseg import io
from nanoseg.inference import predict as predict_mod
from nanoseg.scale import resample_factor
from nanoseg.models import checkpoint


def test_resample_factor_brings_pixel_sizes_into_the_trained_range():
    assert resample_factor(1.0, (0.8, 1.25)) == 1.0
    assert resample_factor(0.5, (1.0, 1.25)) == pytest.approx(0.5)   # finer pixels: shrink
    assert resample_factor(2.0, (0.8, 1.0)) == pytest.approx(2.0)    # coarser pixels: enlarge
    assert resample_factor(None, (0.8, 1.0)) == 1.0
    assert resample_factor(2.0, None) == 1.0


def _scene(nm_per_px: float) -> np.ndarray:
    """Two bright rings (radius 50 and 70 nm, band 10 nm) on a dark 320 nm field."""
    side = round(320 / nm_per_px)
    img = np.full((side, side), 20, np.uint8)
    for (cx, cy, r) in ((90, 90, 50), (225, 220, 70)):
        cv2.circle(img, (round(cx / nm_per_px), round(cy / nm_per_px)), round(r / nm_per_px), 230,
                   max(1, round(10 / nm_per_px)), lineType=cv2.LINE_AA)
    return img


@pytest.fixture
def ranged_checkpoint(tiny_checkpoint, tmp_path):
    """The tiny checkpoint re-saved as if trained at 1.0-1.25 nm/px."""
    obj = checkpoint.load(tiny_checkpoint)
    spec = dict(obj["spec"], scale_nm_per_px_range=[1.0, 1.25])
    model, _ = checkpoint.load_model(tiny_checkpoint)
    path = tmp_path / "ranged.pt"
    checkpoint.save(path, spec, model)
    return path


def test_same_scene_at_half_and_two_nm_per_px_gives_the_same_rings_in_nm(ranged_checkpoint, tmp_path, monkeypatch):
    seen = []

    def bright_is_ring(self, image):  # an oracle in place of the network
        seen.append(image.shape)
        p = (image > 100).astype(np.float32)
        return np.stack([1 - p, p])

    monkeypatch.setattr(predict_mod.Predictor, "probs", bright_is_ring)
    radii = {}
    for nm in (0.5, 2.0):
        src = tmp_path / f"in_{nm}"
        io.write_png(src / "scene.png", _scene(nm))
        out = tmp_path / f"out_{nm}"
        summary = predict_mod.predict(ranged_checkpoint, [src], out, scale_nm_per_px=nm, progress=False)
        assert summary["images"]["scene"]["height"] == round(320 / nm)  # masks in the micrograph's own pixels
        rows = io.read_csv(out / "structures.csv")
        radii[nm] = sorted(float(r["mean_radius_nm"]) for r in rows)
    # both were predicted at the range's edge: 0.5 nm/px shrunk to 1.0, 2.0 enlarged to 1.25
    assert seen == [(320, 320), (256, 256)]
    assert len(radii[0.5]) == len(radii[2.0]) == 2
    np.testing.assert_allclose(radii[0.5], [50, 70], rtol=0.05)
    np.testing.assert_allclose(radii[2.0], radii[0.5], rtol=0.05)


def test_unknown_pixel_size_predicts_as_is_and_says_so(ranged_checkpoint, tmp_path):
    src = tmp_path / "in"
    io.write_png(src / "a.png", _scene(1.0)[:96, :96])
    summary = predict_mod.predict(ranged_checkpoint, [src], tmp_path / "out", progress=False)
    assert summary["images"]["a"]["resample_factor"] == 1.0
    assert len(summary["notes"]) == 1 and "pixel size unknown" in summary["notes"][0]
    json.loads((tmp_path / "out" / "summary.json").read_text())


def test_training_records_the_pixel_sizes_of_its_data(tiny_checkpoint, tiny_sd):
    spec = checkpoint.load(tiny_checkpoint)["spec"]
    scales = [float(r["scale_nm_per_px"]) for r in io.read_csv(tiny_sd / "manifest.csv")]
    assert spec["scale_nm_per_px_range"] == pytest.approx([min(scales), max(scales)])


def test_import_records_and_resamples_pixel_size(tmp_path):
    from nanoseg import labelme
    from nanoseg.data.importer import import_folder

    src = tmp_path / "src"
    img = _scene(0.5)
    io.write_png(src / "m.png", img)
    outer = [[100, 100], [300, 100], [300, 300], [100, 300]]
    inner = [[150, 150], [250, 150], [250, 250], [150, 250]]
    doc = labelme.document([labelme.polygon_shape(outer, "ring"), labelme.polygon_shape(inner, "_background_")],
                           "m.png", img.shape)
    (src / "m.json").write_text(json.dumps(doc))
    import_folder(src, tmp_path / "ds", scale_nm_per_px=0.5, resample_nm_per_px=1.0, progress=False)
    row = io.read_csv(tmp_path / "ds" / "manifest.csv")[0]
    assert float(row["scale_nm_per_px"]) == 1.0 and row["scale_source"] == "flag"
    mask = io.read_mask(tmp_path / "ds" / "masks" / "m.png")
    assert mask.shape == (320, 320)
    assert (mask == 1).sum() == pytest.approx((100 * 100 - 50 * 50), rel=0.05)


def test_a_thin_labelled_band_stays_one_ring_when_imported_at_a_coarser_pixel_size(tmp_path):
    from nanoseg import labelme
    from nanoseg.data.importer import import_folder
    from nanoseg.evaluation.structures import ground_truth_rings

    src = tmp_path / "src"
    img = _scene(1.0)
    io.write_png(src / "m.png", img)
    t = np.linspace(0, 2 * np.pi, 90, endpoint=False)
    shapes = []
    for cx, cy, r in ((90, 90, 50), (225, 220, 70)):  # bands 4 px wide: 2 px after halving
        shapes += labelme.ring_shapes(np.c_[cx + (r + 2) * np.cos(t), cy + (r + 2) * np.sin(t)],
                                      np.c_[cx + (r - 2) * np.cos(t), cy + (r - 2) * np.sin(t)])
    (src / "m.json").write_text(json.dumps(labelme.document(shapes, "m.png", img.shape)))
    import_folder(src, tmp_path / "ds", scale_nm_per_px=1.0, resample_nm_per_px=2.0, progress=False)
    mask = io.read_mask(tmp_path / "ds" / "masks" / "m.png")
    assert mask.shape == (160, 160)
    n, _ = cv2.connectedComponents((mask == 1).astype(np.uint8), connectivity=8)
    assert n - 1 == 2  # each band whole
    rings = ground_truth_rings(tmp_path / "ds", {}, "m", mask)
    assert sorted(round(r["mean_radius_px"]) for r in rings) == [25, 35]
