import json

import cv2
import numpy as np
import pytest
import tifffile
import torch
from torch import nn

from nanoseg import io
from nanoseg import labelme
from nanoseg.data.importer import import_folder
from nanoseg.inference.measure import measure_structures
from nanoseg.scale import read_pixel_size, resolve_scale
from nanoseg.inference.sliding import predict_probs
from nanoseg.models import build_model

from .conftest import run_cli


class LocalNet(nn.Module):
    """A small fully convolutional net (receptive field 7 px)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1),
                                  nn.ReLU(), nn.Conv2d(4, 2, 3, padding=1))

    def forward(self, x):
        return self.body(x) * 4


def test_tiled_equals_whole_when_the_image_fits_in_one_tile():
    model = build_model("unet-small").eval()
    img = np.random.default_rng(0).integers(0, 255, (70, 90)).astype(np.uint8)
    with torch.no_grad():
        whole = torch.softmax(model(torch.from_numpy(img / 255.0).float()[None, None]), 1)[0].numpy()
    tiled = predict_probs(model, img, tile_px=96, overlap_px=24)
    assert np.allclose(whole, tiled, atol=1e-5)


def test_no_seams_on_a_larger_image():
    model = LocalNet().eval()
    img = np.random.default_rng(1).integers(0, 255, (200, 260)).astype(np.uint8)
    with torch.no_grad():
        whole = torch.softmax(model(torch.from_numpy(img / 255.0).float()[None, None]), 1)[0].numpy()
    tiled = predict_probs(model, img, tile_px=64, overlap_px=16)
    assert tiled.shape == whole.shape
    # away from tile borders the network sees the same pixels: blending must reproduce them exactly,
    # and near borders the blended result stays within a small tolerance (no visible seam)
    assert np.abs(tiled - whole).max() < 0.02
    assert np.abs(tiled - whole).mean() < 1e-3


def _annulus(shape, cx, cy, r, width, start_deg=0, end_deg=360):
    m = np.zeros(shape, np.uint8)
    cv2.ellipse(m, (cx, cy), (r, r), 0, start_deg, end_deg, 1, width)
    return m


def test_measurements_recover_known_rings():
    m = _annulus((300, 300), 120, 140, 60, 6)
    m |= _annulus((300, 300), 240, 60, 30, 4, 0, 270)
    rows = measure_structures(m)
    assert len(rows) == 2
    full = min(rows, key=lambda r: abs(r["centre_x_px"] - 120))
    part = max(rows, key=lambda r: abs(r["centre_x_px"] - 120))
    assert abs(full["centre_x_px"] - 120) < 1 and abs(full["centre_y_px"] - 140) < 1
    assert abs(full["mean_radius_px"] - 60) < 1.5 and abs(full["ring_width_px"] - 6) < 1.5
    assert full["coverage"] > 0.98 and full["circularity"] > 0.97
    assert abs(part["centre_x_px"] - 240) < 2 and abs(part["centre_y_px"] - 60) < 2
    assert abs(part["mean_radius_px"] - 30) < 1.5
    # 270 degrees of arc plus the round caps of the 4 px wide stroke (2 px of arc at each end)
    assert abs(part["coverage"] - (0.75 + 2 * np.degrees(2 / 30) / 360)) < 0.02
    ell = np.zeros((200, 200), np.uint8)
    cv2.ellipse(ell, (100, 100), (60, 30), 30, 0, 360, 1, 3)
    e = measure_structures(ell)[0]
    assert abs(e["ellipse_major_px"] - 60) < 2 and abs(e["ellipse_minor_px"] - 30) < 2
    assert abs(e["ellipse_angle_deg"] - 30) < 3 and e["circularity"] == pytest.approx(0.5, abs=0.05)


def test_each_structure_keeps_exactly_its_own_pixels_in_scan_order():
    m = _annulus((160, 200), 60, 70, 40, 5)
    m |= _annulus((160, 200), 150, 50, 25, 4, 0, 200)
    m[150:152, 0:3] = 1  # a fragment below min_area_px
    labels = cv2.connectedComponents(m, connectivity=8)[1]
    rows = measure_structures(m, min_coverage=0.0, with_pixels=True)
    assert len(rows) == 2
    for r in rows:
        ys, xs = r["_pixels"]
        k = labels[ys[0], xs[0]]
        want_ys, want_xs = np.nonzero(labels == k)
        assert np.array_equal(ys, want_ys) and np.array_equal(xs, want_xs)


def test_pixel_size_from_metadata_and_flag(tmp_path):
    img = np.zeros((32, 32), np.uint8)
    fei = tmp_path / "fei.tif"
    tifffile.imwrite(fei, img, extratags=[(34682, "s", 0, "[User]\nDate=x\n[Scan]\nPixelWidth=2.5e-09\n", True)])
    assert read_pixel_size(fei) == (pytest.approx(2.5), "metadata:fei")
    zeiss = tmp_path / "zeiss.tif"
    tifffile.imwrite(zeiss, img, extratags=[(34118, "s", 0, "0\r\nAP_PIXEL_SIZE\r\nPixel Size = 1.25 nm\r\n", True)])
    assert read_pixel_size(zeiss) == (pytest.approx(1.25), "metadata:zeiss")
    hit = tmp_path / "hitachi.tif"
    tifffile.imwrite(hit, img)
    (tmp_path / "hitachi.txt").write_text("[SemImageFile]\nInstructName=SU8000\nPixelSize=0.9921875\n")
    assert read_pixel_size(hit) == (pytest.approx(0.9921875), "metadata:hitachi-txt")
    plain = tmp_path / "plain.png"
    io.write_png(plain, img)
    assert read_pixel_size(plain) == (None, "none")
    assert resolve_scale(fei, 3.0) == (3.0, "flag")


def test_predict_end_to_end_with_labelme_round_trip(tiny_checkpoint, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    big = np.random.default_rng(2).integers(0, 255, (300, 410)).astype(np.uint8)
    big[270:] = 0
    tifffile.imwrite(src / "big.tif", big, extratags=[(34682, "s", 0, "[Scan]\nPixelWidth=1e-09\n", True)])
    io.write_png(src / "small.png", big[:50, :60])
    (src / "notes.png").write_text("this is not an image")
    code, out, err = run_cli("predict", "--model", tiny_checkpoint, "--input", src, "--out", tmp_path / "out",
                             "--tile", "128", "--crop-bottom", "30", "--labelme", "--min-area", "1",
                             "--min-coverage", "0", "--min-circularity", "0", "--max-radial-cv", "1000",
                             "--max-interior-fill", "1", "--min-confidence", "0")  # every structure measured
    assert code == 0, err
    assert "notes.png" in err
    o = tmp_path / "out"
    for name, shape in (("big", (270, 410)), ("small", (20, 60))):
        mask = io.read_mask(o / "masks" / f"{name}.png")
        assert mask.shape == shape and set(np.unique(mask)) <= {0, 1}
        assert io.read_gray(o / "overlays" / f"{name}.png").shape == shape
    summary = json.loads((o / "summary.json").read_text())
    assert summary["n_images"] == 2 and summary["images"]["big"]["scale_source"] == "metadata:fei"
    assert summary["images"]["small"]["scale_source"] == "none"
    assert summary["skipped"][0]["file"].endswith("notes.png")
    rows = io.read_csv(o / "structures.csv")
    assert set(rows[0]) >= {"image", "structure_id", "centre_x_px", "mean_radius_px", "ring_width_px",
                            "ellipse_major_px", "circularity", "coverage", "area_px", "nm_per_px",
                            "scale_source", "mean_radius_nm"}
    big_rows = [r for r in rows if r["image"] == "big"]
    assert big_rows and all(r["scale_source"] == "metadata:fei" and float(r["mean_radius_nm"]) ==
                            pytest.approx(float(r["mean_radius_px"])) for r in big_rows)
    assert all(r["mean_radius_nm"] == "" for r in rows if r["image"] == "small")
    assert all(0 <= float(r["mean_confidence"]) <= 1 for r in rows)
    review = io.read_csv(o / "review.csv")
    assert len(review) == 2
    # labelme round trip: predict --labelme -> import reproduces the predicted masks exactly
    rep = import_folder(o / "labelme", tmp_path / "reimported", progress=False)
    assert len(rep.imported) == 2
    for name in ("big", "small"):
        doc = labelme.load(o / "labelme" / f"{name}.json")
        assert doc["imagePath"] == f"{name}.png"
        assert np.array_equal(io.read_mask(tmp_path / "reimported" / "masks" / f"{name}.png"),
                              io.read_mask(o / "masks" / f"{name}.png"))


def test_predict_bad_model_and_nothing_half_written(tmp_path, tiny_sd):
    fake = tmp_path / "fake.pt"
    fake.write_bytes(b"garbage")
    code, _, err = run_cli("predict", "--model", fake, "--input", tiny_sd / "images", "--out", tmp_path / "o")
    assert code == 2 and "not a nanoseg checkpoint" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()
    torch.save({"something": 1}, tmp_path / "other.pt")
    code, _, err = run_cli("predict", "--model", tmp_path / "other.pt", "--input", tiny_sd, "--out", tmp_path / "o")
    assert code == 2 and "not a nanoseg checkpoint" in err
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".o")] == []


def test_predict_with_no_usable_input_writes_nothing(tiny_checkpoint, tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "broken.png").write_bytes(b"not an image")
    code, _, err = run_cli("predict", "--model", tiny_checkpoint, "--input", tmp_path / "in", "--out", tmp_path / "o")
    assert code == 2 and "broken.png" in err and "none of 1" in err
    assert not (tmp_path / "o").exists()


def test_incompatible_checkpoint_is_refused(tiny_checkpoint, tmp_path):
    obj = torch.load(tiny_checkpoint, weights_only=False)
    obj["spec"]["arch"] = "unet"
    torch.save(obj, tmp_path / "bad.pt")
    code, _, err = run_cli("predict", "--model", tmp_path / "bad.pt", "--input", tiny_checkpoint.parent,
                           "--out", tmp_path / "o")
    assert code == 2 and "does not fit" in err


def test_onnx_export_matches_pytorch(tiny_checkpoint, tmp_path):
    pytest.importorskip("onnxruntime")
    code, out, err = run_cli("export", "--model", tiny_checkpoint, "--onnx", tmp_path / "m.onnx")
    assert code == 0, err
    from nanoseg.inference.export import onnx_parity
    from nanoseg.models import load_model

    model, _ = load_model(tiny_checkpoint)
    assert onnx_parity(model, tmp_path / "m.onnx", shapes=((1, 1, 50, 70), (3, 1, 128, 96)), seed=3) < 1e-4


def test_fragments_are_not_counted_as_ring_structures():
    m = _annulus((200, 200), 100, 100, 60, 5, 0, 40)     # a 40 degree sliver
    m |= _annulus((200, 200), 100, 100, 25, 4)            # a full ring
    rows = measure_structures(m)
    assert len(rows) == 1 and abs(rows[0]["mean_radius_px"] - 25) < 1.5
    assert len(measure_structures(m, min_coverage=0.0)) == 2


def _same_mask_away_from_ties(a: np.ndarray, b: np.ndarray, margin: float) -> bool:
    """Argmax of two probability maps agrees wherever either map is decided by more than ``margin``."""
    decided = (np.abs(a[1] - a[0]) > margin) | (np.abs(b[1] - b[0]) > margin)
    return bool(np.array_equal(a.argmax(0)[decided], b.argmax(0)[decided]))


def test_whole_image_tiles_and_onnx_give_the_same_mask():
    pytest.importorskip("onnxruntime")
    from nanoseg.inference.engine import Predictor
    from nanoseg.models import SegmentationNet

    img = np.random.default_rng(5).integers(0, 255, (192, 256)).astype(np.uint8)
    local = SegmentationNet(LocalNet(), 16).eval()        # receptive field 7 px, inside the dead overlap band
    whole = Predictor(local)
    assert whole.tiling(img.shape) is None
    p_whole = whole.probs(img)
    forced = Predictor(local, tile_px=64, overlap_px=16)
    assert forced.tiling(img.shape) == (64, 16)
    p_tiled = forced.probs(img)
    # a budget too small for the whole image: the largest tiles that fit, batched
    budget = Predictor(local, memory_budget_mb=0.5 * img.size * whole.bytes_per_px / 2**20, batch_size=2)
    tile, _ = budget.tiling(img.shape)
    # judged by the estimate the budgeted predictor made itself (a measurement: it can differ a little per instance)
    assert tile % 32 == 0 and 2 * tile * tile * budget.bytes_per_px <= budget.budget_bytes
    p_budget = budget.probs(img)
    p_onnx = Predictor(local, backend="onnx").probs(img)
    # documented tolerances: tiles 0.02 on probabilities, ONNX Runtime 1e-4
    for p, tol in ((p_tiled, 0.02), (p_budget, 0.02), (p_onnx, 1e-4)):
        assert p.shape == p_whole.shape and np.abs(p - p_whole).max() < tol
        assert _same_mask_away_from_ties(p, p_whole, 2 * tol)
    # a real architecture on an image that is not a multiple of its stride: ONNX pads as PyTorch does
    unet = build_model("unet-small").eval()
    odd = img[:70, :90]
    a, b = Predictor(unet).probs(odd), Predictor(unet, backend="onnx").probs(odd)
    assert np.abs(a - b).max() < 1e-4 and _same_mask_away_from_ties(a, b, 2e-4)


def test_predictor_runs_a_folded_channels_last_copy_with_the_models_probabilities():
    from nanoseg.inference.engine import Predictor

    torch.manual_seed(2)
    unet = build_model("unet-small")
    for m in unet.modules():  # batch-norm statistics far from the identity, so folding them matters
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    unet.eval()
    img = np.random.default_rng(6).integers(0, 255, (70, 90)).astype(np.uint8)
    with torch.inference_mode():
        eager = torch.softmax(unet(torch.from_numpy(img / 255.0).float()[None, None]), 1)[0].numpy()
    pred = Predictor(unet)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in pred.run.modules())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in unet.modules()) == 18     # the caller's model is untouched
    p = pred.probs(img)
    assert p.shape == eager.shape and p.flags["C_CONTIGUOUS"]
    assert np.abs(p - eager).max() < 1e-4 and _same_mask_away_from_ties(p, eager, 2e-4)


def test_activation_memory_per_pixel_grows_with_the_model_and_sets_the_tile():
    from nanoseg.inference.engine import activation_bytes_per_px, largest_tile_px

    small, big = (activation_bytes_per_px(build_model(n).eval()) for n in ("unet-small", "unet"))
    assert 3 * small < big                                # 4x the channels
    assert largest_tile_px((960, 1280), small, 960 * 1280 * small) is None      # the whole image fits
    tile = largest_tile_px((960, 1280), small, 960 * 1280 * small / 2, batch_size=4)
    assert tile % 32 == 0 and 4 * tile * tile * small <= 960 * 1280 * small / 2
    assert largest_tile_px((4000, 4000), small, 1.0) == 64                       # never below 64 px


def test_predict_cli_backends_and_tiles_agree(tiny_checkpoint, tmp_path):
    pytest.importorskip("onnxruntime")
    img = np.random.default_rng(3).integers(0, 255, (150, 170)).astype(np.uint8)
    io.write_png(tmp_path / "a.png", img)
    masks = {}
    for name, extra in (("torch", []), ("onnx", ["--backend", "onnx"]), ("tiled", ["--tile", "96"])):
        code, _, err = run_cli("predict", "--model", tiny_checkpoint, "--input", tmp_path / "a.png",
                               "--out", tmp_path / name, *extra)
        assert code == 0, err
        masks[name] = io.read_mask(tmp_path / name / "masks" / "a.png")
    assert (masks["torch"] != masks["onnx"]).mean() < 1e-3
    assert masks["tiled"].shape == masks["torch"].shape
    code, _, err = run_cli("predict", "--model", tiny_checkpoint, "--input", tmp_path / "a.png", "--out",
                           tmp_path / "bad", "--backend", "onnx", "--device", "cuda")
    assert code == 2 and ("--device" in err or "--backend" in err)
