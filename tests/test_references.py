"""The shipped reference labels (references/boiko2020) import, and say what the dataset README says."""

import csv
from pathlib import Path

import numpy as np
import pytest

from nanoseg import io
from nanoseg import labelme
from nanoseg.data.importer import import_folder

REF = Path(__file__).resolve().parents[1] / "references" / "boiko2020"
NAMES = ["9-S1-no_area-50k-ordered", "2-S1-no_area-100k-ordered", "536-S1-A136-100k-ordered",
         "569-S1-A64-200k-ordered"]
#: micrographs with at least one ring by the README's definition (536 has loops, but only doubtful ones)
WITH_RINGS = {"9-S1-no_area-50k-ordered", "2-S1-no_area-100k-ordered", "569-S1-A64-200k-ordered"}


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "ref"
    report = import_folder(REF, out, crop_bottom="auto", progress=False)
    return out, report


def test_all_four_references_import_cleanly_with_the_data_bar_cropped(imported):
    out, report = imported
    assert sorted(Path(p).stem for p in report.imported) == sorted(NAMES)
    assert not report.skipped and not report.warnings
    for row in io.read_csv(out / "manifest.csv"):
        assert row["crop_bottom"] == "134" and row["height"] == "890" and row["width"] == "1280"


def test_masks_hold_only_support_ring_and_ignore_and_rings_where_the_readme_says(imported):
    out, _ = imported
    for name in NAMES:
        m = io.read_mask(out / "masks" / f"{name}.png")
        assert set(np.unique(m).tolist()) <= {0, 1, 255}
        assert ((m == 1).sum() > 0) == (name in WITH_RINGS), name
        doc = labelme.load(REF / f"{name}.json")
        counts = labelme.structure_counts(doc)
        assert (counts.get("ring", 0) > 0) == (name in WITH_RINGS), name
        assert set(counts) <= {"ring", "ignore"}


def test_labelme_files_point_at_their_png_without_embedded_data():
    for name in NAMES:
        doc = labelme.load(REF / f"{name}.json")
        img = io.read_gray(REF / doc["imagePath"])
        assert doc["imagePath"] == f"{name}.png" and doc["imageData"] is None
        assert (doc["imageHeight"], doc["imageWidth"]) == img.shape == (1024, 1280)


def test_scales_csv_lists_every_micrograph_with_its_pixel_size():
    with open(REF / "scales.csv", newline="") as f:
        rows = {r["file"]: r for r in csv.DictReader(f)}
    assert set(rows) == {f"{n}.png" for n in NAMES}
    nm_per_px = {n: float(r["scale_nm_per_px"]) for n, r in rows.items()}
    # pixel size scales inversely with magnification
    for n, r in rows.items():
        assert nm_per_px[n] * int(r["magnification"]) == pytest.approx(99_200, rel=0.01)
