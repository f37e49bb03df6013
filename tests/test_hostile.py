"""Hostile-but-fair input, command by command: every case either exits 2 with one line naming the
parameter or file (no traceback, inputs byte-identical) or exits 0 with a correct result.

Covers the cases of issue 13 (code execution from a checkpoint, leak check through mixes of mixes,
outputs overlapping inputs, path traversal through ids, same-stem collisions, bad numbers, malformed
labelme files, odd images, resume and metrics, interruption, permissions, symlinks) plus more found
while trying (empty and zero-byte files, absurd image headers, unicode names, outputs under a file).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from nanoseg import io
from nanoseg.errors import NanosegError

from .conftest import run_cli

SRC = str(Path(__file__).resolve().parents[1] / "src")
PROGRESS = re.compile(r"^\s*[\w ]+:\s+\d+%\|")  # a tqdm bar line (tests leave progress bars on)


# ---------------------------------------------------------------- helpers

def tree_hash(*roots) -> dict:
    """Every file (and folder) under ``roots`` with its bytes' hash: compared before and after."""
    out = {}
    for root in roots:
        root = Path(root)
        if root.is_file():
            out[str(root)] = hashlib.sha256(root.read_bytes()).hexdigest()
            continue
        for p in sorted(root.rglob("*")):
            out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
    return out


def refused(args, needle, *inputs):
    """Run the CLI; assert exit 2, one line starting ``error:`` naming ``needle``, inputs unchanged."""
    before = tree_hash(*inputs)
    code, out, err = run_cli(*args)
    err = "".join(ln + "\n" for ln in err.replace("\r", "\n").splitlines() if ln.strip() and not PROGRESS.match(ln))
    assert code == 2, (args, out, err)
    assert "Traceback" not in err + out
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
    assert needle in err, (needle, err)
    assert tree_hash(*inputs) == before, "an input changed"
    return err


def strict_json(text: str):
    def bad(name):
        raise ValueError(f"{name} is not JSON")
    return json.loads(text, parse_constant=bad)


def micrograph(h=48, w=64, seed=0):
    return np.random.default_rng(seed).integers(20, 200, (h, w)).astype(np.uint8)


def labelme_doc(w=64, h=48, image="a.png", shapes=None):
    shapes = shapes if shapes is not None else [
        {"label": "ring", "points": [[w / 2, h / 2], [w / 2, h / 2 + 10]], "shape_type": "circle"},
        {"label": "_background_", "points": [[w / 2, h / 2], [w / 2, h / 2 + 6]], "shape_type": "circle"}]
    return {"version": "5.4.1", "shapes": shapes, "imagePath": image, "imageHeight": h, "imageWidth": w,
            "imageData": None}


def labelled_folder(root: Path, names=("good",)) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(names):
        io.write_png(root / f"{name}.png", micrograph(seed=k))
        (root / f"{name}.json").write_text(json.dumps(labelme_doc(image=f"{name}.png")))
    return root


@pytest.fixture()
def ds(tmp_path, tiny_sd) -> Path:
    """A private copy of the tiny synthetic dataset (tests may try to damage it)."""
    dst = tmp_path / "ds"
    shutil.copytree(tiny_sd, dst)
    return dst


# ---------------------------------------------------------------- 1. checkpoints never run code

class _Payload:
    """Unpickling this object calls ``open(marker, 'w')``: a file appears if the pickle ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture()
def evil_checkpoint(tmp_path, tiny_checkpoint):
    obj = torch.load(tiny_checkpoint, weights_only=True)
    marker = tmp_path / "PWNED"
    obj["metrics"] = {"x": _Payload(marker)}
    path = tmp_path / "evil.pt"
    torch.save(obj, path)
    assert not marker.exists()
    return path, marker


@pytest.mark.parametrize("command", ["predict", "evaluate", "export", "resume"])
def test_a_pickle_payload_in_a_checkpoint_is_refused_not_run(command, evil_checkpoint, tmp_path, ds):
    path, marker = evil_checkpoint
    if command == "predict":
        args = ("predict", "--model", path, "--input", ds / "images", "--out", tmp_path / "p")
    elif command == "evaluate":
        args = ("evaluate", "--model", path, "--data", ds)
    elif command == "export":
        args = ("export", "--model", path, "--onnx", tmp_path / "m.onnx")
    else:
        run = tmp_path / "run"
        run.mkdir()
        shutil.copyfile(path, run / "last.pt")
        args = ("train", "--train", ds, "--model", "unet-small", "--iters", "2", "--batch-size", "2",
                "--crop", "64", "--out", run, "--resume")
    refused(args, "last.pt" if command == "resume" else path.name, ds)
    assert not marker.exists(), "the pickle payload ran"


def test_saved_checkpoints_load_with_weights_only(tiny_checkpoint):
    for name in ("best.pt", "last.pt"):
        obj = torch.load(tiny_checkpoint.parent / name, weights_only=True)
        assert obj["spec"]["arch"] == "unet-small" and obj["model_state"]
    last = torch.load(tiny_checkpoint.parent / "last.pt", weights_only=True)
    assert {"optimizer", "torch_rng", "data_pos", "loss_avg"} <= set(last)


def test_a_checkpoint_without_weights_exits_2(tmp_path, tiny_checkpoint, ds):
    obj = torch.load(tiny_checkpoint, weights_only=True)
    del obj["model_state"]
    bad = tmp_path / "noweights.pt"
    torch.save(obj, bad)
    refused(("predict", "--model", bad, "--input", ds / "images", "--out", tmp_path / "p"), "no model weights", ds)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint at all")
    refused(("export", "--model", tmp_path / "junk.pt", "--onnx", tmp_path / "m.onnx"), "junk.pt")


@pytest.mark.parametrize("content", ["tensor", "plain-values", "payload"])
def test_bad_encoder_weights_exit_2(content, tmp_path, ds):
    path, marker = tmp_path / "enc.pt", tmp_path / "PWNED"
    obj = {"tensor": torch.zeros(3), "plain-values": {"conv.weight": 3, "x": "y"},
           "payload": {"conv.weight": _Payload(marker)}}[content]
    torch.save(obj, path)
    refused(("train", "--train", ds, "--out", tmp_path / "o", "--model", "smp:Unet:resnet18", "--iters", "1",
             "--encoder-weights", path), "--encoder-weights", ds, path)
    assert not marker.exists()


def test_resume_with_another_architecture_exits_2(tmp_path, ds):
    run = tmp_path / "run"
    base = ("train", "--train", ds, "--iters", "2", "--batch-size", "2", "--crop", "64", "--eval-every", "2",
            "--out", run, "--device", "cpu")
    code, _, err = run_cli(*base, "--model", "unet-small")
    assert code == 0, err
    refused((*base, "--model", "unet", "--resume"), "--resume", ds, run / "last.pt")


# ---------------------------------------------------------------- 2. leak check through mixes of mixes

def test_split_check_sees_leaks_through_every_mix_level(tmp_path, ds):
    m1, m2 = tmp_path / "m1", tmp_path / "m2"
    assert run_cli("mix", "--sd", ds, "--n-sd", "6", "--out", m1)[0] == 0
    assert run_cli("mix", "--ad", m1, "--n-ad", "4", "--out", m2)[0] == 0
    groups = {r["group"] for r in io.read_csv(m2 / "manifest.csv")}
    assert all(g.startswith("ad:sd:") for g in groups)
    refused(("split", m2, "--check", ds), "shares", ds, m1, m2)


# ---------------------------------------------------------------- 3. outputs never overlap inputs

def _exp_yaml(tmp_path, folder) -> Path:
    f = tmp_path / "exp.yaml"
    f.write_text(f"ad:\n  folder: {folder}\n  pool_size: 4\n  test_size: 2\ntrain_size: 4\n"
                 "mixes: [{n_ad: 4, n_sd: 0}]\nmodels: [unet-small]\ntraining: {iters: 1, batch_size: 2}\n")
    return f


@pytest.mark.parametrize("case", ["split-equal", "split-inside", "split-train-is-test", "import-equal",
                                  "import-inside", "import-contains", "augment-equal", "mix-equal",
                                  "mix-contains", "predict-equal", "predict-model-inside", "synth-config-inside",
                                  "experiment-equal", "train-inside"])
def test_an_output_overlapping_an_input_is_refused(case, tmp_path, ds, tiny_checkpoint):
    raw = labelled_folder(tmp_path / "raw", ("a", "b"))
    ow = "--overwrite"
    args, inputs, needle = {
        "split-equal": (("split", ds, "--train", ds, "--test", tmp_path / "te", ow), [ds], "--train"),
        "split-inside": (("split", ds, "--train", tmp_path / "tr", "--test", ds / "images", ow), [ds], "--test"),
        "split-train-is-test": (("split", ds, "--train", tmp_path / "t", "--test", tmp_path / "t"), [ds], "--train"),
        "import-equal": (("import", raw, "--out", raw, ow), [raw], "--out"),
        "import-inside": (("import", raw, "--out", raw / "dataset"), [raw], "--out"),
        "import-contains": (("import", raw, "--out", tmp_path, ow), [raw], "--out"),
        "augment-equal": (("augment", "--in", ds, "--out", ds, "--n", "10", ow), [ds], "--out"),
        "mix-equal": (("mix", "--ad", ds, "--n-ad", "2", "--out", ds, ow), [ds], "--out"),
        "mix-contains": (("mix", "--sd", ds, "--n-sd", "2", "--out", tmp_path, ow), [ds], "--out"),
        "predict-equal": (("predict", "--model", tiny_checkpoint, "--input", ds / "images", "--out",
                           ds / "images", ow), [ds], "--out"),
        "predict-model-inside": (("predict", "--model", tiny_checkpoint, "--input", ds / "images", "--out",
                                  tiny_checkpoint.parent, ow), [ds, tiny_checkpoint], "--model"),
        "synth-config-inside": (("synth", "--config", ds / "params.yaml", "--out", ds, "--n", "1", "--size", "64",
                                 ow), [ds], "--config"),
        "experiment-equal": (("experiment", "run", _exp_yaml(tmp_path, ds), "--out", ds), [ds], "ad.folder"),
        "train-inside": (("train", "--train", ds, "--out", ds / "run", "--iters", "1", "--model", "unet-small"),
                         [ds], "--train"),
    }[case]
    if case == "synth-config-inside":
        (ds / "params.yaml").write_text("gamma: [0.9, 1.1]\n")
    refused(args, needle, *inputs)


def test_demo_never_empties_a_folder_it_did_not_write(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    refused(("demo", "--out", mine, "--iters", "1"), "--overwrite", mine)


# ---------------------------------------------------------------- 4. ids are names, never paths

@pytest.mark.parametrize("bad_id", ["../../../escaped", "sub/dir", "..", ".hidden", "a\\b"])
@pytest.mark.parametrize("command", ["split", "augment", "mix"])
def test_manifest_ids_that_are_paths_are_refused(command, bad_id, tmp_path, ds):
    rows = io.read_csv(ds / "manifest.csv")
    rows[1]["id"] = bad_id
    io.write_csv(ds / "manifest.csv", rows)
    args = {"split": ("split", ds, "--train", tmp_path / "tr", "--test", tmp_path / "te"),
            "augment": ("augment", "--in", ds, "--out", tmp_path / "aug", "--n", "10"),
            "mix": ("mix", "--ad", ds, "--n-ad", "8", "--out", tmp_path / "mix")}[command]
    refused(args, "manifest.csv", ds)
    assert not (tmp_path / "escaped").exists() and not list(tmp_path.glob("*/escaped*"))


def test_labelme_image_path_is_never_followed(tmp_path):
    raw = labelled_folder(tmp_path / "raw", ("a",))
    doc = json.loads((raw / "a.json").read_text())
    doc["imagePath"] = "../../../../etc/passwd"
    (raw / "a.json").write_text(json.dumps(doc))
    code, out, err = run_cli("import", raw, "--out", tmp_path / "out")
    assert code == 0, err
    written = json.loads((tmp_path / "out" / "labelme" / "a.json").read_text())
    assert written["imagePath"] == "../images/a.png"


# ---------------------------------------------------------------- 5. same-stem collision

def test_two_micrographs_with_one_stem_are_both_skipped_and_named(tmp_path):
    raw = labelled_folder(tmp_path / "raw", ("a", "b"))
    tifffile.imwrite(raw / "a.tif", micrograph(seed=5))
    before = tree_hash(raw)
    code, out, err = run_cli("import", raw, "--out", tmp_path / "out")
    assert code == 0, err
    assert "a.png and a.tif would share the id 'a'" in out
    assert [r["id"] for r in io.read_csv(tmp_path / "out" / "manifest.csv")] == ["b"]
    assert tree_hash(raw) == before


# ---------------------------------------------------------------- 6. bad numbers and names

BAD_PARAMETERS = [
    # (id, args after the command, parameter named)
    ("synth-negative-seed", ("synth", "--out", "{t}/o", "--seed", "-1"), "--seed"),
    ("train-negative-seed", ("train", "--train", "{ds}", "--out", "{t}/o", "--seed", "-3"), "--seed"),
    ("split-negative-seed", ("split", "{ds}", "--train", "{t}/a", "--test", "{t}/b", "--seed", "-1"), "--seed"),
    ("mix-negative-seed", ("mix", "--ad", "{ds}", "--n-ad", "2", "--out", "{t}/o", "--seed", "-1"), "--seed"),
    ("augment-negative-seed", ("augment", "--in", "{ds}", "--out", "{t}/o", "--n", "3", "--seed", "-1"), "--seed"),
    ("train-bad-device", ("train", "--train", "{ds}", "--out", "{t}/o", "--device", "foo"), "--device"),
    ("predict-bad-device", ("predict", "--model", "{ck}", "--input", "{ds}/images", "--out", "{t}/o",
                            "--device", "cuda:x"), "--device"),
    ("predict-batch-size-0", ("predict", "--model", "{ck}", "--input", "{ds}/images", "--out", "{t}/o",
                              "--batch-size", "0", "--tile", "32"), "--batch-size"),
    ("predict-negative-tile", ("predict", "--model", "{ck}", "--input", "{ds}/images", "--out", "{t}/o",
                               "--tile", "-5"), "--tile"),
    ("import-negative-tile", ("import", "{raw}", "--out", "{t}/o", "--tile", "-5"), "--tile"),
    ("import-overlap-ge-tile", ("import", "{raw}", "--out", "{t}/o", "--tile", "32", "--overlap", "32"), "--overlap"),
    ("import-negative-overlap", ("import", "{raw}", "--out", "{t}/o", "--tile", "32", "--overlap", "-1"), "--overlap"),
    ("predict-overlap-ge-tile", ("predict", "--model", "{ck}", "--input", "{ds}/images", "--out", "{t}/o",
                                 "--tile", "32", "--overlap", "40"), "--overlap"),
    ("predict-negative-overlap", ("predict", "--model", "{ck}", "--input", "{ds}/images", "--out", "{t}/o",
                                  "--overlap", "-8"), "--overlap"),
    ("augment-negative-strength", ("augment", "--in", "{ds}", "--out", "{t}/o", "--n", "3", "--strength", "-1"),
     "--strength"),
    ("augment-nan-strength", ("augment", "--in", "{ds}", "--out", "{t}/o", "--n", "3", "--strength", "nan"),
     "--strength"),
    ("augment-huge-strength", ("augment", "--in", "{ds}", "--out", "{t}/o", "--n", "3", "--strength", "1e9"),
     "--strength"),
    ("predict-nan-scale", ("predict", "--model", "{ck}", "--input", "{ds}/images", "--out", "{t}/o",
                           "--scale-nm-per-px", "nan"), "--scale-nm-per-px"),
    ("predict-inf-scale", ("predict", "--model", "{ck}", "--input", "{ds}/images", "--out", "{t}/o",
                           "--scale-nm-per-px", "inf"), "--scale-nm-per-px"),
    ("predict-zero-scale", ("predict", "--model", "{ck}", "--input", "{ds}/images", "--out", "{t}/o",
                            "--scale-nm-per-px", "0"), "--scale-nm-per-px"),
    ("import-negative-crop-bottom", ("import", "{raw}", "--out", "{t}/o", "--crop-bottom", "-20"), "--crop-bottom"),
    ("predict-negative-crop-bottom", ("predict", "--model", "{ck}", "--input", "{ds}/images", "--out", "{t}/o",
                                      "--crop-bottom", "-20"), "--crop-bottom"),
    ("synth-absurd-size", ("synth", "--out", "{t}/o", "--size", "100000"), "--size"),
    ("synth-absurd-wxh", ("synth", "--out", "{t}/o", "--size", "64x99999"), "--size"),
    ("synth-absurd-n", ("synth", "--out", "{t}/o", "--n", "99999999999"), "--n"),
    ("synth-zero-n", ("synth", "--out", "{t}/o", "--n", "0"), "--n"),
    ("augment-absurd-n", ("augment", "--in", "{ds}", "--out", "{t}/o", "--n", "99999999999"), "--n"),
    ("evaluate-negative-classes", ("evaluate", "--pred", "{ds}", "--gt", "{ds}", "--num-classes", "-1"),
     "--num-classes"),
    ("evaluate-zero-classes", ("evaluate", "--pred", "{ds}", "--gt", "{ds}", "--num-classes", "0"), "--num-classes"),
    ("synth-zero-scale", ("synth", "--out", "{t}/o", "--set", "scale_nm_per_px=[0, 0]"), "scale_nm_per_px"),
    ("synth-zero-gamma", ("synth", "--out", "{t}/o", "--set", "gamma=[0, 0]"), "gamma"),
    ("synth-zero-cluster", ("synth", "--out", "{t}/o", "--set", "cluster_size=[0, 0]"), "cluster_size"),
    ("synth-zero-psf", ("synth", "--out", "{t}/o", "--set", "psf_sigma_nm=[0, 0]"), "psf_sigma_nm"),
    ("synth-zero-dose", ("synth", "--out", "{t}/o", "--set", "dose_e_per_px=[0, 0]"), "dose_e_per_px"),
    ("synth-nan-range", ("synth", "--out", "{t}/o", "--set", "gamma=[.nan, 1]"), "gamma"),
    ("train-config-nan-lr", ("train", "--train", "{ds}", "--out", "{t}/o", "--config", "{t}/nanlr.yaml"), "lr"),
    ("experiment-negative-seed", ("experiment", "run", "{t}/negseed.yaml", "--out", "{t}/o"), "seed"),
    ("experiment-huge-strength", ("experiment", "run", "{t}/strength.yaml", "--out", "{t}/o"), "augment_strength"),
    ("predict-out-under-a-file", ("predict", "--model", "{ck}", "--input", "{ds}/images", "--out",
                                  "{t}/afile/sub"), "afile"),
    ("synth-out-under-a-file", ("synth", "--out", "{t}/afile/sub", "--n", "1", "--size", "64"), "afile"),
    ("import-labels-class-7", ("import", "{raw}", "--out", "{t}/o", "--labels", "{t}/labels7.yaml"), "--labels"),
    ("export-out-under-a-file", ("export", "--model", "{ck}", "--onnx", "{t}/afile/m.onnx"), "afile"),
    ("export-onnx-is-a-folder", ("export", "--model", "{ck}", "--onnx", "{ds}"), "--onnx"),
    ("evaluate-json-under-a-file", ("evaluate", "--pred", "{ds}", "--gt", "{ds}", "--json", "{t}/afile/m.json"),
     "--json"),
    ("synth-gallery-under-a-file", ("synth", "--out", "{t}/o", "--n", "1", "--size", "64", "--gallery",
                                    "{t}/afile/g.png"), "--gallery"),
    ("train-mask-with-class-7", ("train", "--train", "{t}/class7", "--out", "{t}/o", "--model", "unet-small",
                                 "--iters", "1", "--batch-size", "1", "--device", "cpu"), "class(es) [7]"),
    ("evaluate-mask-with-class-7", ("evaluate", "--pred", "{ds}", "--gt", "{t}/class7"), "class(es) [7]"),
    ("synth-absurd-count", ("synth", "--out", "{t}/o", "--set", "rings_per_image=[1000000, 1000000]"),
     "rings_per_image"),
    ("synth-absurd-scatter", ("synth", "--out", "{t}/o", "--set", "scattered_per_um2=[1e8, 1e8]"),
     "scattered_per_um2"),
    ("synth-bad-size-text", ("synth", "--out", "{t}/o", "--size", "big"), "--size"),
    ("labels-empty-file", ("import", "{raw}", "--out", "{t}/o", "--labels", "{t}/empty.yaml"), "--labels"),
    ("labels-not-a-mapping", ("import", "{raw}", "--out", "{t}/o", "--labels", "{t}/list.yaml"), "--labels"),
]


@pytest.mark.parametrize("args,needle", [c[1:] for c in BAD_PARAMETERS], ids=[c[0] for c in BAD_PARAMETERS])
def test_bad_parameters_exit_2_naming_the_parameter(args, needle, tmp_path, ds, tiny_checkpoint):
    raw = labelled_folder(tmp_path / "raw", ("a", "b"))
    (tmp_path / "afile").write_text("a file, not a folder")
    (tmp_path / "nanlr.yaml").write_text("lr: .nan\n")
    (tmp_path / "labels7.yaml").write_text("ring: 7\n")
    exp = _exp_yaml(tmp_path, ds).read_text()
    (tmp_path / "negseed.yaml").write_text(exp + "seed: -4\n")
    (tmp_path / "strength.yaml").write_text(exp.replace("test_size: 2", "test_size: 2\n  augment_strength: 1e9"))
    (tmp_path / "list.yaml").write_text("- ring\n- 1\n")
    (tmp_path / "empty.yaml").write_text("")
    if "class7" in " ".join(args):
        shutil.copytree(ds, tmp_path / "class7")
        m = io.read_mask(tmp_path / "class7" / "masks" / "sd_000000.png")
        m[:4, :4] = 7
        io.write_png(tmp_path / "class7" / "masks" / "sd_000000.png", m)
    fmt = {"t": tmp_path, "ds": ds, "ck": tiny_checkpoint, "raw": raw}
    args = [a.format(**fmt) for a in args]
    refused(args, needle, ds, raw, tiny_checkpoint)
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------- 7. malformed labelme files

MALFORMED = {
    "shapes-null": lambda d: d.update(shapes=None),
    "shapes-a-string": lambda d: d.update(shapes="ring"),
    "points-abc": lambda d: d["shapes"][0].update(points="abc"),
    "points-3d": lambda d: d["shapes"][0].update(points=[[1, 2, 3], [4, 5, 6]]),
    "points-nan": lambda d: d["shapes"][0].update(points=[[float("nan"), 3], [5, 6]]),
    "points-huge": lambda d: d["shapes"][0].update(points=[[1e300, 3], [5, 6]]),
    "size-not-a-number": lambda d: d.update(imageHeight="abc"),
    "shape-not-an-object": lambda d: d["shapes"].append(17),
}


@pytest.mark.parametrize("kind", list(MALFORMED))
def test_a_malformed_labelme_file_is_skipped_and_good_files_import(kind, tmp_path):
    raw = labelled_folder(tmp_path / "raw", ("good", "bad"))
    doc = labelme_doc(image="bad.png")
    MALFORMED[kind](doc)
    (raw / "bad.json").write_text(json.dumps(doc))  # NaN goes out as the (non-JSON) token NaN
    before = tree_hash(raw)
    code, out, err = run_cli("import", raw, "--out", tmp_path / "out")
    assert code == 0 and "Traceback" not in err, err
    assert "skipped" in out and "bad.json" in out
    assert [r["id"] for r in io.read_csv(tmp_path / "out" / "manifest.csv")] == ["good"]
    assert tree_hash(raw) == before
    code, out, err = run_cli("import", raw, "--out", tmp_path / "strict", "--strict")
    assert code == 0 and [r["id"] for r in io.read_csv(tmp_path / "strict" / "manifest.csv")] == ["good"]


def test_labelme_sizes_written_as_whole_floats_are_accepted(tmp_path):
    raw = labelled_folder(tmp_path / "raw", ("a",))
    doc = json.loads((raw / "a.json").read_text())
    doc["imageHeight"], doc["imageWidth"] = 48.0, 64.0
    (raw / "a.json").write_text(json.dumps(doc))
    code, out, err = run_cli("import", raw, "--out", tmp_path / "out")
    assert code == 0 and "imported 1" in out, out + err
    assert io.read_mask(tmp_path / "out" / "masks" / "a.png").any()


def test_only_malformed_files_exit_2(tmp_path):
    raw = labelled_folder(tmp_path / "raw", ("bad",))
    doc = labelme_doc(image="bad.png")
    doc["shapes"] = None
    (raw / "bad.json").write_text(json.dumps(doc))
    refused(("import", raw, "--out", tmp_path / "out"), "nothing imported", raw)
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- 8. odd images and masks

def test_a_float_tiff_with_nan_pixels_keeps_its_contrast(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    img = np.linspace(0.0, 1.0, 48 * 64, dtype=np.float32).reshape(48, 64)
    img[5, 5] = np.nan
    img[6, 6] = np.inf
    tifffile.imwrite(raw / "a.tif", img)
    (raw / "a.json").write_text(json.dumps(labelme_doc(image="a.tif")))
    code, out, err = run_cli("import", raw, "--out", tmp_path / "out")
    assert code == 0, err
    got = io.read_gray(tmp_path / "out" / "images" / "a.png")
    assert got[0, 0] <= 2 and got[-1, -1] >= 253 and got[5, 5] == 0 and np.unique(got).size > 200


def test_an_all_nan_image_is_skipped(tmp_path):
    raw = labelled_folder(tmp_path / "raw", ("good",))
    tifffile.imwrite(raw / "nan.tif", np.full((48, 64), np.nan, np.float32))
    (raw / "nan.json").write_text(json.dumps(labelme_doc(image="nan.tif")))
    code, out, _ = run_cli("import", raw, "--out", tmp_path / "out")
    assert code == 0 and "nan.tif" in out and "no finite pixel" in out


@pytest.mark.parametrize("shape,dtype", [((48, 64, 2), np.uint16), ((48, 64, 7), np.uint8), ((48, 64), np.complex64),
                                         ((48, 64), np.bool_)])
def test_odd_tiff_layouts_import_or_are_skipped(shape, dtype, tmp_path):
    raw = labelled_folder(tmp_path / "raw", ("good",))
    arr = (np.random.default_rng(0).random(shape) * 60000).astype(dtype)
    tifffile.imwrite(raw / "odd.tif", arr)
    (raw / "odd.json").write_text(json.dumps(labelme_doc(image="odd.tif")))
    code, out, err = run_cli("import", raw, "--out", tmp_path / "out")
    assert code == 0 and "Traceback" not in err, err
    ids = [r["id"] for r in io.read_csv(tmp_path / "out" / "manifest.csv")]
    if dtype == np.bool_:
        assert ids == ["good", "odd"]
    else:
        assert ids == ["good"] and "odd.tif" in out
    # arrays in memory: gray + alpha is gray, seven samples per pixel are not an image
    assert io.to_uint8_gray(np.zeros((6, 5, 2), np.uint8)).shape == (6, 5)
    with pytest.raises(NanosegError, match="stack or volume"):
        io.to_uint8_gray(np.zeros((6, 5, 7), np.uint8))


def test_a_16bit_mask_with_class_256_is_refused_not_wrapped_to_0(tmp_path):
    raw = tmp_path / "raw"
    (raw / "images").mkdir(parents=True)
    (raw / "masks").mkdir()
    for name in ("good", "wrap"):
        io.write_png(raw / "images" / f"{name}.png", micrograph())
    m = np.zeros((48, 64), np.uint16)
    m[10:20, 10:20] = 1
    io.write_png(raw / "masks" / "good.png", m.astype(np.uint8))
    m[30:40, 30:40] = 256
    io.write_png(raw / "masks" / "wrap.png", m)
    code, out, err = run_cli("import", raw, "--out", tmp_path / "out")
    assert code == 0, err
    assert "wrap.png" in out and "0..255" in out
    assert [r["id"] for r in io.read_csv(tmp_path / "out" / "manifest.csv")] == ["good"]


def _png_header_only(path: Path, w: int, h: int):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("kind", ["zero-byte", "empty-json", "huge-header", "truncated", "text-as-png"])
def test_broken_files_are_skipped_with_their_name(kind, tmp_path, tiny_checkpoint):
    raw = labelled_folder(tmp_path / "raw", ("good",))
    bad = raw / "bad.png"
    if kind == "zero-byte":
        bad.write_bytes(b"")
    elif kind == "huge-header":
        _png_header_only(bad, 100_000, 100_000)
    elif kind == "truncated":
        bad.write_bytes((raw / "good.png").read_bytes()[:60])
    elif kind == "text-as-png":
        bad.write_text("hello")
    else:
        io.write_png(bad, micrograph())
    (raw / "bad.json").write_text("" if kind == "empty-json" else json.dumps(labelme_doc(image="bad.png")))
    before = tree_hash(raw)
    code, out, err = run_cli("import", raw, "--out", tmp_path / "out")
    assert code == 0 and "Traceback" not in err, err
    assert "skipped" in out and "bad." in out
    if kind == "huge-header":
        assert "megapixels" in out
    code, out, err = run_cli("predict", "--model", tiny_checkpoint, "--input", raw / "good.png", "--input", bad,
                             "--out", tmp_path / "pred")
    assert code == 0 and "Traceback" not in err, err[-2000:]
    summary = strict_json((tmp_path / "pred" / "summary.json").read_text())
    assert summary["n_images"] == (2 if kind == "empty-json" else 1)
    assert tree_hash(raw) == before


def test_unicode_and_space_names_import_and_predict(tmp_path, tiny_checkpoint):
    raw = labelled_folder(tmp_path / "raw µm", ("Pd 100k – éß",))
    code, out, err = run_cli("import", raw, "--out", tmp_path / "out ü")
    assert code == 0, err
    assert [r["id"] for r in io.read_csv(tmp_path / "out ü" / "manifest.csv")] == ["Pd 100k – éß"]
    code, out, err = run_cli("predict", "--model", tiny_checkpoint, "--input", raw, "--out", tmp_path / "p ü")
    assert code == 0, err
    assert (tmp_path / "p ü" / "masks" / "Pd 100k – éß.png").exists()


def test_a_hidden_file_name_is_skipped_not_imported(tmp_path):
    raw = labelled_folder(tmp_path / "raw", ("good", ".hidden"))
    code, out, _ = run_cli("import", raw, "--out", tmp_path / "out")
    assert code == 0 and ".hidden" in out
    assert [r["id"] for r in io.read_csv(tmp_path / "out" / "manifest.csv")] == ["good"]


# ---------------------------------------------------------------- 9. strict JSON, resume and metrics

def test_json_outputs_are_strict(tmp_path, tiny_checkpoint):
    io.write_json(tmp_path / "x.json", {"a": float("nan"), "b": [np.float32("inf"), 1.5], "c": np.int64(3)})
    assert strict_json((tmp_path / "x.json").read_text()) == {"a": None, "b": [None, 1.5], "c": 3}
    raw = tmp_path / "raw"
    raw.mkdir()
    io.write_png(raw / "flat.png", np.zeros((64, 64), np.uint8))
    code, _, err = run_cli("predict", "--model", tiny_checkpoint, "--input", raw, "--out", tmp_path / "p")
    assert code == 0, err
    summary = strict_json((tmp_path / "p" / "summary.json").read_text())
    conf = summary["images"]["flat"]["mean_confidence"]
    assert conf is None or 0 <= conf <= 1
    for line in (tiny_checkpoint.parent / "metrics.jsonl").read_text().splitlines():
        strict_json(line)


def _train(ds, out, **kw):
    from nanoseg.training.config import TrainConfig
    from nanoseg.training.train import train

    stop = kw.pop("stop_after", None)
    resume = kw.pop("resume", False)
    cfg = TrainConfig(train=str(ds), val=str(ds), model="unet-small", batch_size=2, crop=64, seed=0,
                      device="cpu", augment=False, threads=1, **kw)
    return train(cfg, out, resume=resume, progress=False, stop_after=stop)


def test_a_run_killed_before_its_first_checkpoint_resumes_without_duplicate_rows(tmp_path, tiny_sd):
    run = tmp_path / "run"
    _train(tiny_sd, run, iters=3, eval_every=1, save_every=3, stop_after=2)
    assert not (run / "last.pt").exists() and len((run / "metrics.jsonl").read_text().splitlines()) == 2
    _train(tiny_sd, run, iters=3, eval_every=1, save_every=3, resume=True)
    iters = [json.loads(x)["iteration"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert iters == [1, 2, 3]


def test_a_resumed_run_has_the_uninterrupted_loss_column(tmp_path, tiny_sd):
    _train(tiny_sd, tmp_path / "full", iters=4, eval_every=1, save_every=2)
    _train(tiny_sd, tmp_path / "cut", iters=4, eval_every=1, save_every=2, stop_after=2)
    _train(tiny_sd, tmp_path / "cut", iters=4, eval_every=1, save_every=2, resume=True)
    full = [json.loads(x) for x in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    cut = [json.loads(x) for x in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in cut] == [1, 2, 3, 4]
    assert np.allclose([r["loss"] for r in cut], [r["loss"] for r in full], rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- 10. interruption, permissions, links

def _nanoseg(*args, **kw):
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), TQDM_DISABLE="1")
    return subprocess.Popen([sys.executable, "-m", "nanoseg", *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def _children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _wait_for(cond, timeout_s=60.0):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        if cond():
            return True
        time.sleep(0.1)
    return False


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_kill_9_of_synth_leaves_no_workers_and_the_next_run_cleans_up(tmp_path):
    out = tmp_path / "sd"
    proc = _nanoseg("synth", "--out", out, "--n", "5000", "--size", "64", "--workers", "2")
    assert _wait_for(lambda: any(tmp_path.glob(".sd.tmp-*/images/*.png"))), proc.stderr.read().decode()
    workers = _children(proc.pid)
    assert workers
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert _wait_for(lambda: not any(_alive(p) for p in workers), 15), "workers outlived their parent"
    assert list(tmp_path.glob(".sd.tmp-*"))  # kill -9 gives no chance to clean up ...
    code, _, err = run_cli("synth", "--out", out, "--n", "2", "--size", "64", "--workers", "1")
    assert code == 0, err
    assert not list(tmp_path.glob(".sd.tmp-*"))  # ... the next run of the same command does


def test_sigterm_cleans_up_like_ctrl_c(tmp_path):
    out = tmp_path / "sd"
    proc = _nanoseg("synth", "--out", out, "--n", "5000", "--size", "64", "--workers", "1")
    assert _wait_for(lambda: any(tmp_path.glob(".sd.tmp-*/images/*.png"))), proc.stderr.read().decode()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and b"Traceback" not in err, err
    assert not out.exists() and not list(tmp_path.glob(".sd*"))


def test_an_interrupted_write_leaves_the_old_output_untouched(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with io.atomic_dir(out, overwrite=True) as tmp:
            (tmp / "half.txt").write_text("half")
            raise KeyboardInterrupt
    assert [p.name for p in tmp_path.iterdir()] == ["out"] and (out / "old.txt").read_text() == "old"


def test_outputs_get_normal_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        code, _, err = run_cli("synth", "--out", tmp_path / "sd", "--n", "1", "--size", "64", "--workers", "1")
    finally:
        os.umask(old)
    assert code == 0, err
    assert (tmp_path / "sd").stat().st_mode & 0o777 == 0o755


def test_a_symlinked_out_is_written_through(tmp_path):
    target = tmp_path / "disk" / "sd"
    target.parent.mkdir()
    link = tmp_path / "link"
    link.symlink_to(target, target_is_directory=True)
    code, _, err = run_cli("synth", "--out", link, "--n", "1", "--size", "64", "--workers", "1")
    assert code == 0, err
    assert link.is_symlink() and (target / "manifest.csv").exists()
    code, _, err = run_cli("synth", "--out", link, "--n", "2", "--size", "64", "--workers", "1", "--overwrite")
    assert code == 0, err
    assert link.is_symlink() and len(io.read_csv(target / "manifest.csv")) == 2


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_output_place_exits_2(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        refused(("synth", "--out", ro / "sd", "--n", "1", "--size", "64"), "not writable")
    finally:
        ro.chmod(0o755)


def test_an_output_holding_the_current_folder_is_refused(tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    (work / "notes.txt").write_text("mine")
    monkeypatch.chdir(work)
    refused(("synth", "--out", ".", "--n", "1", "--size", "64", "--overwrite"), "current folder", work)
    refused(("synth", "--out", "..", "--n", "1", "--size", "64", "--overwrite"), "current folder", work)
    refused(("synth", "--out", "", "--n", "1", "--size", "64"), "--out", work)


def test_a_file_name_that_is_not_utf8_is_skipped_not_a_crash(tmp_path, tiny_checkpoint):
    raw = labelled_folder(tmp_path / "raw", ("good",))
    odd = os.fsdecode(os.fsencode(str(raw)) + b"/\xff\xfe.png")
    shutil.copyfile(raw / "good.png", odd)
    shutil.copyfile(raw / "good.json", odd[:-4] + ".json")
    code, out, err = run_cli("import", raw, "--out", tmp_path / "out")
    assert code == 0 and "not valid UTF-8" in out, err
    assert [r["id"] for r in io.read_csv(tmp_path / "out" / "manifest.csv")] == ["good"]
    code, out, err = run_cli("predict", "--model", tiny_checkpoint, "--input", raw, "--out", tmp_path / "p")
    assert code == 0 and "not valid UTF-8" in err
    assert strict_json((tmp_path / "p" / "summary.json").read_text())["n_images"] == 1


def test_a_corrupt_run_result_is_named_not_a_crash(tmp_path):
    run = tmp_path / "exp" / "runs" / "r1"
    run.mkdir(parents=True)
    (tmp_path / "exp" / "experiment.yaml").write_text("name: x\nmodels: [unet]\n")
    (run / "result.json").write_text('{"model": "unet", "n_ad": 1')  # cut short
    refused(("experiment", "report", tmp_path / "exp"), "result.json", run)


def test_name_and_overlap_helpers():
    assert io.check_name("sd_000001", "id") == "sd_000001"
    for bad in ("", "..", "a/b", "../x", ".x", "a\x00b"):
        with pytest.raises(NanosegError):
            io.check_name(bad, "id")
