import json

import numpy as np
import tifffile
from PIL import Image

from nanoseg import io
from nanoseg.data.importer import import_folder
from nanoseg.imaging import detect_data_bar

from .conftest import run_cli


def _labelme(path, w, h, image_name, shapes=None):
    shapes = shapes if shapes is not None else [
        {"label": "ring", "points": [[w / 2, h / 2], [w / 2, h / 2 + 10]], "shape_type": "circle"},
        {"label": "_background_", "points": [[w / 2, h / 2], [w / 2, h / 2 + 6]], "shape_type": "circle"}]
    path.write_text(json.dumps({"version": "5.4.1", "shapes": shapes, "imagePath": image_name,
                                "imageHeight": h, "imageWidth": w, "imageData": None}))


def _micrograph(h, w, seed=0):
    return np.random.default_rng(seed).integers(20, 200, (h, w)).astype(np.uint8)


def test_16bit_and_rgb_micrographs_import(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    a16 = (np.linspace(1000, 50000, 48 * 64).reshape(48, 64)).astype(np.uint16)
    tifffile.imwrite(src / "a.tif", a16)
    _labelme(src / "a.json", 64, 48, "a.tif")
    rgb = np.stack([_micrograph(48, 64)] * 3, -1)
    Image.fromarray(rgb).save(src / "b.png")
    _labelme(src / "b.json", 64, 48, "b.png")
    rep = import_folder(src, tmp_path / "out", progress=False)
    assert len(rep.imported) == 2 and not rep.skipped
    img = io.read_gray(tmp_path / "out" / "images" / "a.png")
    assert img.dtype == np.uint8 and img.min() <= 1 and img.max() >= 254
    assert np.array_equal(io.read_gray(tmp_path / "out" / "images" / "b.png"), rgb[..., 0])
    mask = io.read_mask(tmp_path / "out" / "masks" / "a.png")
    assert mask[24, 32] == 0 and mask[24, 32 + 8] == 1
    rows = io.read_csv(tmp_path / "out" / "manifest.csv")
    assert {r["group"] for r in rows} == {"a", "b"} and {r["source"] for r in rows} == {"ad"}


def test_mask_pngs_in_sibling_folder_0_255(tmp_path):
    src = tmp_path / "src"
    (src / "images").mkdir(parents=True)
    (src / "masks").mkdir()
    io.write_png(src / "images" / "m.png", _micrograph(40, 40))
    m = np.zeros((40, 40), np.uint8)
    m[10:20, 10:20] = 255
    io.write_png(src / "masks" / "m.png", m)
    import_folder(src, tmp_path / "out", progress=False)
    assert io.read_mask(tmp_path / "out" / "masks" / "m.png").sum() == 100


def test_data_bar_cropping_explicit_and_auto(tmp_path):
    img = _micrograph(200, 160)
    img[170:] = 0
    img[172:180, 20:60] = 255  # text in the bar
    assert detect_data_bar(img) == 30
    src = tmp_path / "src"
    src.mkdir()
    io.write_png(src / "x.png", img)
    _labelme(src / "x.json", 160, 200, "x.png")
    import_folder(src, tmp_path / "auto", crop_bottom="auto", progress=False)
    assert io.read_gray(tmp_path / "auto" / "images" / "x.png").shape == (170, 160)
    import_folder(src, tmp_path / "fixed", crop_bottom=50, progress=False)
    assert io.read_mask(tmp_path / "fixed" / "masks" / "x.png").shape == (150, 160)


def test_data_bar_of_a_real_hitachi_micrograph_is_found():
    from nanoseg.demo import example_micrograph

    img = io.read_gray(example_micrograph())
    assert img.shape == (1024, 1280)
    assert detect_data_bar(img) == 134          # rows 890-1023
    assert detect_data_bar(img[:890]) == 0      # nothing left to cut


def test_tiling_round_trip(tmp_path):
    img = _micrograph(300, 420, seed=3)
    src = tmp_path / "src"
    src.mkdir()
    io.write_png(src / "big.png", img)
    _labelme(src / "big.json", 420, 300, "big.png")
    import_folder(src, tmp_path / "tiles", tile_px=128, overlap_px=32, progress=False)
    rows = io.read_csv(tmp_path / "tiles" / "manifest.csv")
    assert len(rows) > 4 and {r["group"] for r in rows} == {"big"}
    rebuilt = np.full_like(img, 0)
    for r in rows:
        t = io.read_gray(tmp_path / "tiles" / "images" / f"{r['id']}.png")
        assert t.shape == (128, 128)
        y, x = int(r["tile_y"]), int(r["tile_x"])
        rebuilt[y:y + 128, x:x + 128] = t
    assert np.array_equal(rebuilt, img)


def test_bad_inputs_are_reported_and_good_files_still_import(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    io.write_png(src / "good.png", _micrograph(40, 50))
    _labelme(src / "good.json", 50, 40, "good.png")
    (src / "corrupt.png").write_bytes(b"not a png at all")
    _labelme(src / "corrupt.json", 50, 40, "corrupt.png")
    io.write_png(src / "wrongsize.png", _micrograph(40, 50))
    _labelme(src / "wrongsize.json", 99, 40, "wrongsize.png")
    _labelme(src / "orphan.json", 50, 40, "orphan.png")
    io.write_png(src / "outside.png", _micrograph(40, 50))
    _labelme(src / "outside.json", 50, 40, "outside.png",
             [{"label": "ring", "points": [[-20, -20], [30, 30]], "shape_type": "rectangle"}])
    io.write_png(src / "unknown.png", _micrograph(40, 50))
    _labelme(src / "unknown.json", 50, 40, "unknown.png",
             [{"label": "smudge", "points": [[1, 1], [5, 5]], "shape_type": "rectangle"}])
    io.write_png(src / "nolabel.png", _micrograph(40, 50))
    rep = import_folder(src, tmp_path / "out", progress=False)
    imported = {p.split("/")[-1] for p in rep.imported}
    assert imported == {"good.png", "outside.png", "unknown.png"}
    skipped = {f.split("/")[-1]: why for f, why in rep.skipped}
    assert "cannot read image" in skipped["corrupt.png"]
    assert "99x40" in skipped["wrongsize.png"]
    assert "not found" in skipped["orphan.json"]
    assert "no labelme JSON" in skipped["nolabel.png"]
    warned = {f.split("/")[-1]: m for f, m in rep.warnings}
    assert "outside" in warned["outside.png"] and "smudge" in warned["unknown.png"]
    assert "imported 3 micrograph(s), skipped 4" in rep.summary()
    # clipped rectangle: rows/cols 0..30
    assert io.read_mask(tmp_path / "out" / "masks" / "outside.png")[:31, :31].all()
    # --strict: warnings become errors, those files are skipped
    rep2 = import_folder(src, tmp_path / "strict", strict=True, progress=False)
    assert {p.split("/")[-1] for p in rep2.imported} == {"good.png"}


def test_nothing_imported_exits_2_and_writes_nothing(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "bad.png").write_bytes(b"xx")
    _labelme(src / "bad.json", 5, 5, "bad.png")
    code, _, err = run_cli("import", src, "--out", tmp_path / "out")
    assert code == 2 and "nothing imported" in err
    assert not (tmp_path / "out").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run_cli("import", empty, "--out", tmp_path / "out2")
    assert code == 2 and "no micrographs" in err and str(empty) in err


def test_real_micrograph_with_labelme_json_imports_cropped_and_tiled(tmp_path):
    """The packaged Hitachi micrograph as it comes from the microscope, with a labelme ring."""
    import shutil

    from nanoseg.demo import example_micrograph

    src = tmp_path / "src"
    src.mkdir()
    shutil.copyfile(example_micrograph(), src / "mic.png")
    _labelme(src / "mic.json", 1280, 1024, "mic.png", [
        {"label": "ring", "points": [[640, 400], [640, 460]], "shape_type": "circle"},
        {"label": "_background_", "points": [[640, 400], [640, 450]], "shape_type": "circle"}])
    rep = import_folder(src, tmp_path / "out", crop_bottom="auto", tile_px=321, overlap_px=64, progress=False)
    assert len(rep.imported) == 1
    rows = io.read_csv(tmp_path / "out" / "manifest.csv")
    assert {r["crop_bottom"] for r in rows} == {"134"} and {r["group"] for r in rows} == {"mic"}
    assert len(rows) == 4 * 5   # 890 rows: tiles at 0, 257, 514, 569; 1280 columns: 5 tiles
    ring_px = sum(int((io.read_mask(tmp_path / "out" / "masks" / f"{r['id']}.png") == 1).sum()) for r in rows)
    assert ring_px > 0
