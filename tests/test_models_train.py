import json

import numpy as np
import pytest
import torch

from nanoseg import io
from nanoseg.errors import NanosegError
from nanoseg.models import build_model
from nanoseg.training.config import TrainConfig
from nanoseg.training.train import read_metrics, train

from .conftest import run_cli

MODEL_NAMES = ["unet", "unet-small", "smp:Unet:resnet18", "smp:DeepLabV3:resnet18", "smp:PSPNet:resnet18",
               "smp:FPN:resnet18", "smp:UnetPlusPlus:resnet18", "smp:Segformer:mit_b0"]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_model_name_builds_and_trains_a_step(name):
    torch.manual_seed(0)
    model = build_model(name)
    x = torch.rand(2, 1, 70, 90)  # not a multiple of the stride: the wrapper pads and crops
    y = model(x)
    assert y.shape == (2, 2, 70, 90)
    y.logsumexp(1).mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    # (PSPNet leaves the encoder's unused deeper stages without gradients)
    have = [g for g in grads if g is not None]
    assert len(have) >= len(grads) // 2 and any(float(g.abs().sum()) > 0 for g in have)


@pytest.mark.parametrize("name", ["resnet", "smp:NoSuchArch:resnet18", "smp:Unet", "smp:Unet:nosuchencoder"])
def test_bad_model_names_are_refused(name):
    with pytest.raises(NanosegError, match="--model"):
        build_model(name)


def test_encoder_weights_from_a_local_file(tmp_path):
    src = build_model("smp:FPN:resnet18")
    path = tmp_path / "enc.pt"
    torch.save(src.net.encoder.state_dict(), path)
    dst = build_model("smp:FPN:resnet18", encoder_weights=path)
    a, b = src.net.encoder.state_dict(), dst.net.encoder.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(NanosegError, match="--encoder-weights"):
        build_model("unet-small", encoder_weights=tmp_path / "missing.pt")


def _cfg(data, **kw):
    base = dict(train=str(data), val=str(data), model="unet-small", iters=6, batch_size=2, crop=48, eval_every=2,
                seed=7)
    base.update(kw)
    return TrainConfig(**base)


def test_resume_reproduces_the_uninterrupted_run(tiny_sd, tmp_path):
    full = tmp_path / "full"
    train(_cfg(tiny_sd, num_workers=0), full, progress=False)
    part = tmp_path / "part"
    # "killed" after iteration 3, then resumed; the resumed half builds its batches in a worker process
    train(_cfg(tiny_sd, save_every=2, num_workers=0), part, progress=False, stop_after=3)
    assert json.loads((part / "metrics.jsonl").read_text().splitlines()[-1])["iteration"] == 2
    train(_cfg(tiny_sd, save_every=2, num_workers=1), part, resume=True, progress=False)
    a = torch.load(full / "last.pt", weights_only=False)
    b = torch.load(part / "last.pt", weights_only=False)
    for k in a["model_state"]:
        assert torch.allclose(a["model_state"][k].float(), b["model_state"][k].float(), atol=1e-6), k
    assert tuple(a["data_pos"]) == tuple(b["data_pos"])
    ma, mb = read_metrics(full / "metrics.jsonl"), read_metrics(part / "metrics.jsonl")
    assert [r["iteration"] for r in mb] == [2, 4, 6]
    for ra, rb in zip(ma, mb):
        assert ra["miou"] == pytest.approx(rb["miou"], abs=1e-9)
        assert ra["loss"] == pytest.approx(rb["loss"], rel=1e-6)   # the running loss survives the restart
    for f in ("config.yaml", "metrics.jsonl", "best.pt", "last.pt", "curve.png"):
        assert (part / f).exists(), f


def test_worker_count_does_not_change_the_run(tiny_sd, tmp_path):
    runs = {}
    for workers in (0, 2):
        train(_cfg(tiny_sd, iters=4, num_workers=workers), tmp_path / f"w{workers}", progress=False)
        runs[workers] = (read_metrics(tmp_path / f"w{workers}" / "metrics.jsonl"),
                         torch.load(tmp_path / f"w{workers}" / "last.pt", weights_only=False)["model_state"])
    (m0, s0), (m2, s2) = runs[0], runs[2]
    assert [r["iteration"] for r in m0] == [2, 4]
    strip = [{k: v for k, v in r.items() if k != "time_s"} for r in m0]
    assert strip == [{k: v for k, v in r.items() if k != "time_s"} for r in m2]   # identical metrics
    assert all(torch.equal(s0[k], s2[k]) for k in s0)                              # identical weights
    import yaml

    assert yaml.safe_load((tmp_path / "w2" / "config.yaml").read_text())["run"]["num_workers"] == 2


def test_batches_resume_mid_epoch_where_the_stream_left_off():
    from nanoseg.data.loader import EpochBatchSampler

    whole = EpochBatchSampler(10, 3, seed=5)
    stream = iter(whole)
    first = [next(stream) for _ in range(7)]          # 3 batches per epoch: into epoch 2
    assert [b[0][0] for b in first] == [0, 0, 0, 1, 1, 1, 2]
    assert whole.position(4) == (1, 1)
    later = iter(EpochBatchSampler(10, 3, seed=5, start=whole.position(4)))
    assert [next(later) for _ in range(3)] == first[4:]
    # a rank takes its share of every batch
    b = next(iter(EpochBatchSampler(10, 4, seed=5)))
    halves = [next(iter(EpochBatchSampler(10, 4, seed=5, rank=r, world=2))) for r in (0, 1)]
    assert halves == [b[0::2], b[1::2]]


def test_batched_evaluation_on_the_device_matches_image_by_image(tiny_sd, tiny_simple):
    from nanoseg.data.dataset import load_arrays
    from nanoseg.evaluation.evaluate import evaluate_model
    from nanoseg.evaluation.metrics import AreaAccumulator
    from nanoseg.inference.sliding import predict_mask

    torch.manual_seed(0)
    model = build_model("unet-small").eval()
    _, images, masks = load_arrays(tiny_sd)
    _, more_images, more_masks = load_arrays(tiny_simple)          # a second image size in the same set
    images, masks = images + more_images, masks + more_masks
    acc = AreaAccumulator(2)
    for img, mask in zip(images, masks):
        acc.update(predict_mask(model, img, tile_px=256), mask)
    want = acc.compute()
    preds: list = []
    got = evaluate_model(model, images, masks, tile_px=256, progress=False, batch_size=3, predictions=preds)
    assert got["n_images"] == want["n_images"] == len(images) == len(preds)
    assert [p.shape for p in preds] == [m.shape for m in masks]
    # a batched convolution may round differently from a single-image one: an argmax tie in a
    # pixel or two at most, nothing like a mismatched image
    assert got["miou"] == pytest.approx(want["miou"], abs=1e-4)
    assert got["acc"] == pytest.approx(want["acc"], abs=1e-4)
    # images larger than the tile still go through the sliding window, one by one
    tiled = evaluate_model(model, images, masks, tile_px=64, progress=False)
    assert tiled["n_images"] == len(images)


def test_divergence_stops_the_run_with_its_iteration(tiny_sd, tmp_path):
    with pytest.raises(NanosegError, match="diverged at iteration [1-4] "):
        # past the CLI's lr bound on purpose (model_copy skips validation): the weights blow up at once
        cfg = _cfg(tiny_sd, iters=4, loss="ce", num_workers=0).model_copy(update={"lr": 1e12})
        train(cfg, tmp_path / "r", progress=False)
    # no non-finite loss reached the log
    rows = read_metrics(tmp_path / "r" / "metrics.jsonl")
    assert all(np.isfinite(r["loss"]) for r in rows)


def test_adamw_option_trains(tiny_sd, tmp_path):
    best = train(_cfg(tiny_sd, iters=2, optimizer="adamw", lr=1e-3), tmp_path / "a", progress=False)
    assert best["iteration"] == 2 and 0 <= best["miou"] <= 1
    with pytest.raises(Exception):
        _cfg(tiny_sd, optimizer="lbfgs")


def test_mixed_image_sizes_need_a_crop(tiny_sd, tiny_simple, tmp_path):
    from nanoseg.data.mix import mix

    mix(tiny_sd, tiny_simple, n_ad=2, n_sd=2, seed=0, out=tmp_path / "mixed")   # 96 px and 80 px images
    with pytest.raises(NanosegError, match="--crop"):
        train(_cfg(tmp_path / "mixed", crop=None, iters=1), tmp_path / "r", progress=False)
    best = train(_cfg(tmp_path / "mixed", crop=64, iters=1, eval_every=1), tmp_path / "r2", progress=False)
    assert best["iteration"] == 1


def test_run_folder_is_not_silently_reused(tiny_sd, tmp_path):
    train(_cfg(tiny_sd, iters=2), tmp_path / "r", progress=False)
    with pytest.raises(NanosegError, match="--resume"):
        train(_cfg(tiny_sd, iters=2), tmp_path / "r", progress=False)


def test_cli_train_writes_config_and_metrics(tiny_sd, tmp_path):
    code, out, err = run_cli("train", "--train", tiny_sd, "--val", tiny_sd, "--model", "unet-small", "--iters", "2",
                             "--batch-size", "2", "--crop", "48", "--eval-every", "1", "--out", tmp_path / "run")
    assert code == 0, err
    import yaml

    cfg = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert cfg["model"] == "unet-small" and cfg["iters"] == 2 and cfg["lr"] == 0.01 and cfg["loss"] == "dice"
    rows = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert [r["iteration"] for r in rows] == [1, 2]
    assert {"miou", "acc", "kappa", "dice", "class_iou", "loss"} <= set(rows[0])
    assert cfg["run"]["n_train"] == 8 and cfg["run"]["device"] == "cpu"
    # --resume from the CLI reads RUN/config.yaml; a finished run continues to a larger --iters
    code, out, err = run_cli("train", "--out", tmp_path / "run", "--resume", "--iters", "3")
    assert code == 0, err
    assert [r["iteration"] for r in read_metrics(tmp_path / "run" / "metrics.jsonl")] == [1, 2, 3]
    code, _, err = run_cli("train", "--train", tiny_sd, "--model", "unet-small", "--iters", "0", "--out",
                           tmp_path / "bad")
    assert code == 2 and "iters" in err


def test_evaluate_folders_and_refusals(tiny_sd, tmp_path):
    gt = tiny_sd / "masks"
    code, out, _ = run_cli("evaluate", "--pred", gt, "--gt", gt, "--json", tmp_path / "m.json")
    assert code == 0
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["miou"] == 1.0 and m["n_images"] == 8 and set(m) >= {"acc", "kappa", "dice", "class_iou",
                                                                   "class_dice"}
    pred = tmp_path / "pred"
    pred.mkdir()
    files = sorted(gt.iterdir())
    for f in files[1:]:
        io.write_png(pred / f.name, io.read_mask(f))
    code, _, err = run_cli("evaluate", "--pred", pred, "--gt", gt)
    assert code == 2 and files[0].name in err
    io.write_png(pred / files[0].name, np.zeros((10, 10), np.uint8))
    code, _, err = run_cli("evaluate", "--pred", pred, "--gt", gt)
    assert code == 2 and "10x10" in err
    io.write_png(pred / files[0].name, io.read_mask(files[0]))
    io.write_png(pred / "extra.png", io.read_mask(files[0]))
    code, _, err = run_cli("evaluate", "--pred", pred, "--gt", gt)
    assert code == 2 and "extra.png" in err


def test_evaluate_a_model_on_a_dataset(tiny_checkpoint, tiny_sd):
    code, out, err = run_cli("evaluate", "--model", tiny_checkpoint, "--data", tiny_sd, "--structures")
    assert code == 0, err
    m = json.loads(out)
    assert 0 <= m["miou"] <= 1 and m["n_images"] == 8 and "f1" in m["structures"]


def test_short_cpu_training_beats_the_background_baseline(tmp_path):
    """unet-small on simple synthetic rings learns something real in well under a minute
    (about 20 s on 2 cores), so it runs by default."""
    from nanoseg.synthesis import load_params, synthesize_dataset

    synthesize_dataset(tmp_path / "tr", n=24, seed=1, params=load_params("simple"), preset="simple", size_hw=(96, 96), workers=1,
                       progress=False)
    synthesize_dataset(tmp_path / "va", n=6, seed=2, params=load_params("simple"), preset="simple", size_hw=(96, 96), workers=1,
                       progress=False)
    cfg = TrainConfig(train=str(tmp_path / "tr"), val=str(tmp_path / "va"), model="unet-small", iters=120,
                      batch_size=8, crop=64, lr=0.05, loss="dice+ce", eval_every=40, seed=0)
    best = train(cfg, tmp_path / "run", progress=False)
    # predicting all background gives mIoU = (background share)/2, about 0.48 here
    baseline = 0.5 * np.mean([1 - (io.read_mask(p) == 1).mean() for p in (tmp_path / "va" / "masks").iterdir()])
    assert best["miou"] > baseline + 0.15, (best["miou"], baseline)


@pytest.mark.slow
def test_torchrun_data_parallel_on_cpu(tiny_sd, tmp_path):
    """Two ranks with the gloo backend: the same command line as a single process."""
    import subprocess
    import sys
    from pathlib import Path

    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "nanoseg.cli", "train", "--train", str(tiny_sd), "--val",
           str(tiny_sd), "--model", "unet-small", "--iters", "2", "--batch-size", "4", "--crop", "48",
           "--eval-every", "2", "--out", str(tmp_path / "ddp")]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    import yaml

    assert yaml.safe_load((tmp_path / "ddp" / "config.yaml").read_text())["run"]["world_size"] == 2
    assert (tmp_path / "ddp" / "best.pt").exists() and res.stdout.count('"iteration"') == 1


@pytest.mark.slow
def test_compiled_training_forward_trains_and_saves_plain_checkpoints(tiny_sd, tmp_path):
    best = train(_cfg(tiny_sd, iters=2, compile=True, num_workers=0), tmp_path / "c", progress=False)
    assert best["iteration"] == 2 and 0 <= best["miou"] <= 1
    state = torch.load(tmp_path / "c" / "best.pt", weights_only=False)["model_state"]
    assert not any(k.startswith("_orig_mod") for k in state)        # loads into the plain model
    build_model("unet-small").load_state_dict(state)


def test_loader_workers_start_even_after_this_process_used_opencv_threads(tiny_sd):
    # a forked worker inherits OpenCV's thread-pool lock and hangs on its first OpenCV call
    import subprocess
    import sys

    code = f"""
import cv2, numpy as np
from nanoseg.data.dataset import SegmentationDataset
from nanoseg.data.loader import EpochBatchSampler, train_loader
a = np.random.rand(1500, 1500).astype(np.float32)
for _ in range(3):
    cv2.GaussianBlur(a, (0, 0), 5); cv2.resize(a, (3000, 3000))
ds = SegmentationDataset({str(tiny_sd)!r}, crop_px=32)
x, y = next(iter(train_loader(ds, EpochBatchSampler(len(ds), 2, seed=0), num_workers=1)))
print(tuple(x.shape))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("(2, 1, 32, 32)")
