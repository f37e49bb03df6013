"""The pixel size read from the scale bar a micrograph carries in its data bar (``scale.scale_from_data_bar``)."""

import csv
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from nanoseg import io
from nanoseg._bar_glyphs import GLYPHS
from nanoseg.scale import read_pixel_size, resolve_scale, scale_from_data_bar

REF = Path(__file__).resolve().parents[1] / "references" / "boiko2020"
BAR_TOP = 890  # the references' data bar: rows 890-1023; the label's characters stand in its rows 27-53
LABEL_ROWS = slice(BAR_TOP + 27, BAR_TOP + 54)


def _reference(name: str = "2-S1-no_area-100k-ordered") -> np.ndarray:
    return io.read_gray(REF / f"{name}.png").copy()


def _relabel(image: np.ndarray, text: str) -> np.ndarray:
    """The micrograph with its scale-bar label replaced by ``text`` set in the known glyphs."""
    image[LABEL_ROWS, 1000:] = 0
    x = 1112
    for ch in text:
        glyph = np.array([[c == "#" for c in row] for row in GLYPHS[ch]])
        image[LABEL_ROWS, x:x + glyph.shape[1]][glyph] = 255
        x += glyph.shape[1] + 5
    return image


def test_the_scale_bar_of_each_reference_gives_the_pixel_size_measured_on_it():
    with open(REF / "scales.csv", newline="") as f:
        measured = {Path(r["file"]).stem: float(r["scale_nm_per_px"]) for r in csv.DictReader(f)}
    assert len(measured) == 4
    for name, nm in measured.items():
        assert scale_from_data_bar(_reference(name)) == pytest.approx(nm, rel=0.005), name


def test_a_label_is_read_character_by_character_and_must_be_a_1_2_5_step():
    assert scale_from_data_bar(_relabel(_reference(), "100nm")) == pytest.approx(100 / 504)
    assert scale_from_data_bar(_relabel(_reference(), "2.00um")) == pytest.approx(2000 / 504)
    assert scale_from_data_bar(_relabel(_reference(), "250nm")) is None  # no instrument draws 250 nm
    assert scale_from_data_bar(_relabel(_reference(), "nm")) is None


def test_a_data_bar_without_a_readable_scale_gives_no_pixel_size():
    image = _reference()
    assert scale_from_data_bar(image[:BAR_TOP]) is None  # no data bar
    blank = _reference()
    blank[LABEL_ROWS, 1000:] = 0
    assert scale_from_data_bar(blank) is None  # ticks but no label
    other_font = _reference()
    other_font[LABEL_ROWS, 1000:] = 0
    cv2.putText(other_font, "500nm", (1112, BAR_TOP + 53), cv2.FONT_HERSHEY_SIMPLEX, 1.0, 255, 2)
    assert scale_from_data_bar(other_font) is None  # a label in another font is not guessed at
    gap = _reference()
    bar = gap[BAR_TOP:BAR_TOP + 20]
    bar[:, 795:805] = 0  # the second tick gone: the ticks are no longer evenly spaced
    assert scale_from_data_bar(gap) is None


def test_metadata_and_the_flag_come_before_the_data_bar(tmp_path):
    png = tmp_path / "a.png"
    shutil.copy(REF / "2-S1-no_area-100k-ordered.png", png)
    assert read_pixel_size(png) == (pytest.approx(500 / 504), "databar")
    image = io.read_gray(png)
    assert read_pixel_size(png, image) == (pytest.approx(500 / 504), "databar")
    (tmp_path / "a.txt").write_text("PixelSize=1.5\n")
    assert read_pixel_size(png, image) == (pytest.approx(1.5), "metadata:hitachi-txt")
    assert resolve_scale(png, 0.7, image) == (0.7, "flag")


def test_predict_takes_the_pixel_size_of_a_micrograph_without_metadata_from_its_data_bar(tmp_path):
    from nanoseg.inference.predict import predict

    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(REF / "2-S1-no_area-100k-ordered.png", src / "m.png")  # no sidecar beside it
    summary = predict(None, [src], tmp_path / "out", crop_bottom="auto", ring_finder="loops", progress=False)
    assert summary["images"]["m"]["scale_source"] == "databar"
    assert summary["images"]["m"]["nm_per_px"] == pytest.approx(500 / 504)
    assert not any("unknown" in n for n in summary["notes"])
    rows = io.read_csv(tmp_path / "out" / "structures.csv")
    assert rows and {r["scale_source"] for r in rows} == {"databar"}
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["images"]["m"]["scale_source"] == "databar"


def test_measure_takes_the_pixel_size_of_a_micrograph_without_metadata_from_its_data_bar(tmp_path):
    from nanoseg.analysis.measure_masks import measure_masks

    (tmp_path / "img").mkdir()
    (tmp_path / "masks").mkdir()
    shutil.copy(REF / "2-S1-no_area-100k-ordered.png", tmp_path / "img" / "m.png")
    mask = np.zeros((1024, 1280), np.uint8)
    cv2.circle(mask, (400, 300), 60, 1, 12)  # one ring, 60 px = 60 nm in radius
    io.write_png(tmp_path / "masks" / "m.png", mask)
    summary = measure_masks(tmp_path / "masks", tmp_path / "out", images=tmp_path / "img", crop_bottom="auto",
                            progress=False)
    assert summary["images"]["m"]["scale_source"] == "databar"
    row, = io.read_csv(tmp_path / "out" / "structures.csv")
    assert float(row["mean_radius_nm"]) == pytest.approx(60 * 500 / 504, rel=0.05)


def test_a_flag_that_disagrees_with_a_scale_bar_is_used_and_noted(tmp_path):
    from nanoseg.inference.predict import predict

    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(REF / "2-S1-no_area-100k-ordered.png", src / "m.png")  # its bar says 0.992 nm/px
    shutil.copy(REF / "569-S1-A64-200k-ordered.png", src / "n.png")  # 0.496 nm/px
    summary = predict(None, [src], tmp_path / "out", scale_nm_per_px=0.992, crop_bottom="auto",
                      ring_finder="loops", progress=False)
    assert {k: v["nm_per_px"] for k, v in summary["images"].items()} == {"m": 0.992, "n": 0.992}
    notes = [n for n in summary["notes"] if "scale bar" in n]
    assert len(notes) == 1 and "1 image(s) (n.png: 0.496 nm/px)" in notes[0], summary["notes"]
