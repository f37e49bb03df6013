"""`nanoseg predict` on one micrograph as a multiple of one bare whole-image forward pass, per back-end.

What is timed. The bare forward pass is `model(x)` under `torch.inference_mode` on the exact array
the network sees (8-bit / 255, data bar removed), for the model as `load_model` returns it (eager
PyTorch, as trained), and, for reference, for the copy predict's PyTorch back-end runs
(`engine.inference_model`: batch norms folded, channels-last on the CPU). `predict` is the library
call behind `nanoseg predict`, everything it does for one image: loading the checkpoint, reading
the micrograph, the data bar, the pixel size, setting up the back-end (the inference copy and its
memory probe, or the ONNX export and session), softmax, argmax, ring finding and measurement,
the overlay, PNG/CSV/JSON writing and the move into place. Not timed: process start-up (Python,
torch and library imports) and the first forward pass of a process at a new image size (oneDNN
builds its kernels then; one warm-up call of every variant precedes the rounds).

Two micrographs, both in one run: the packaged real example (Boiko et al. 2020, 1280x1024 with a
134-row data bar found by `--crop-bottom auto`, so 1280x890 reaches the network; its pixel size is
unknown, so it runs at its own pixels) and a synthetic 1280x960 micrograph from nanoseg's own
generator at 3.6 nm/px (the model's trained pixel size, given as `--scale-nm-per-px`, so no
resampling) where the packaged model marks a few hundred candidate bands, so ring finding has
work to do. The model is the packaged `unet-small` (the shipped model of `nanoseg predict
--ring-finder model`; the library call is given it explicitly); other `--models` names are
untrained (no such checkpoint is packaged), which changes what ring measurement finds, not the network's cost.

Each round times, back to back: the two bare passes, then `predict` with each back-end and with
the former default tiling for a model trained at 321 px (352-px tiles, 88 px of overlap). Ratios
are taken within a round and the median over rounds is reported, so other load on the machine
moves both sides of a ratio alike; the ratio of the fastest runs and the ratio of CPU times (this
process, all threads; predict has no worker processes) are shown beside it, as they hold up
better when other jobs load the machine. `--breakdown` also times predict's steps one by one.

Run: `.venv/bin/python benchmarks/bench_predict.py [--models unet-small unet] [--rounds 5] [--breakdown]`.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from nanoseg import imaging, io
from nanoseg.analysis.results import measure_image
from nanoseg.demo import example_micrograph
from nanoseg.figures import draw_overlay
from nanoseg.inference.engine import Predictor, inference_model
from nanoseg.inference.predict import predict
from nanoseg.inference.rings import RingRules
from nanoseg.models import NORMALIZE, build_model, checkpoint, load_model
from nanoseg.pretrained import default_model_path

SYNTH_SCALE_NM_PER_PX = 3.6
VARIANTS = {  # name -> predict keyword arguments
    "torch (default)": {},
    "onnx": {"backend": "onnx"},
    "torch, 352-px tiles (former default)": {"tile_px": 352, "overlap_px": 88},
}


def micrographs(tmp: Path) -> dict[str, dict]:
    """name -> {path, predict keywords, the array the network sees}."""
    from nanoseg.synthesis.generate import synthesize_sample
    from nanoseg.synthesis.params import load_params

    real = example_micrograph()
    img = io.read_gray(real)
    params = load_params("realistic").model_copy(
        update={"scale_nm_per_px": (SYNTH_SCALE_NM_PER_PX, SYNTH_SCALE_NM_PER_PX)})
    synth = synthesize_sample(params, 0, 0, (960, 1280))["image"]
    synth_path = tmp / "synthetic_1280x960.png"
    io.write_png(synth_path, synth)
    return {
        "real example, 1280x890 after its data bar": {
            "path": real, "kw": {"crop_bottom": "auto"}, "net_input": img[:-imaging.data_bar_rows(img, "auto")]},
        f"synthetic 1280x960 at {SYNTH_SCALE_NM_PER_PX} nm/px": {
            "path": synth_path, "kw": {"scale_nm_per_px": SYNTH_SCALE_NM_PER_PX}, "net_input": synth},
    }


def model_checkpoint(name: str, tmp: Path) -> Path:
    if name == "unet-small":
        return default_model_path()
    torch.manual_seed(0)
    ckpt = tmp / f"{name}.pt"
    checkpoint.save(ckpt, checkpoint.model_spec(name, 2, 128, NORMALIZE, (3.2, 4.0)), build_model(name).eval())
    return ckpt


def timed(fn) -> tuple[float, float]:
    """(wall-clock s, CPU s of this process: all its threads) of one call."""
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def ratio_line(t: list[tuple[float, float]], base: list[tuple[float, float]]) -> str:
    wall = [a[0] / b[0] for a, b in zip(t, base)]
    cpu = statistics.median(a[1] / b[1] for a, b in zip(t, base))
    best = min(a[0] for a in t) / min(b[0] for b in base)
    return (f"{statistics.median(wall):.2f}x (range {min(wall):.2f}-{max(wall):.2f}; fastest runs {best:.2f}x; "
            f"CPU time {cpu:.2f}x)")


def breakdown(ckpt: Path, image: dict) -> dict[str, float]:
    """predict's steps for one image, one by one (the same library calls, in predict's order)."""
    out: dict[str, float] = {}
    t = time.perf_counter()

    def lap(name):
        nonlocal t
        now = time.perf_counter()
        out[name] = now - t
        t = now

    model, _spec = load_model(ckpt)
    lap("load checkpoint")
    img = io.read_gray(image["path"])
    bar = imaging.data_bar_rows(img, image["kw"].get("crop_bottom"))
    img = img[:-bar] if bar else img
    lap("read micrograph, data bar")
    pred = Predictor(model)
    lap("back-end set-up (inference copy, memory probe)")
    probs = pred.probs(img)
    lap("forward pass + softmax (predict's copy)")
    mask = probs.argmax(0).astype(np.uint8)
    lap("argmax")
    rows, _ = measure_image(mask, name="x", file="x", nm_per_px=image["kw"].get("scale_nm_per_px"),
                            scale_source="flag", crop_bottom=bar, confidence=probs[1], rules=RingRules(),
                            image=img, rejected=[])
    lap(f"ring finding and measurement ({len(rows)} rings)")
    mask_png, overlay_png = io.encode_png(mask), io.encode_png(draw_overlay(img, mask, rows))
    lap("overlay + PNG encoding")
    del mask_png, overlay_png
    return out


def bench(name: str, rounds: int, tmp: Path, images: dict[str, dict], with_breakdown: bool) -> None:
    ckpt = model_checkpoint(name, tmp)
    model, _spec = load_model(ckpt)
    fast = inference_model(model)
    for label, image in images.items():
        x = torch.from_numpy(image["net_input"].astype(np.float32) / 255.0)[None, None]

        def bare(m=model):
            with torch.inference_mode():
                m(x)

        def run(kw: dict, k: int) -> None:
            predict(ckpt, [image["path"]], tmp / f"out_{name}_{k}", progress=False, overwrite=True,
                    **image["kw"], **kw)

        bare(), bare(fast)  # warm-up: allocator, oneDNN kernels for this size
        for kw in VARIANTS.values():
            run(kw, 0)
        t: dict[str, list[tuple[float, float]]] = {"bare": [], "bare, predict's copy": [],
                                                   **{v: [] for v in VARIANTS}}
        for r in range(rounds):
            t["bare"].append(timed(bare))
            t["bare, predict's copy"].append(timed(lambda: bare(fast)))
            for v, kw in VARIANTS.items():
                t[v].append(timed(lambda: run(kw, r + 1)))
        base = t["bare"]
        h, w = image["net_input"].shape
        print(f"\n{name} on the {label} ({w}x{h} into the network), {rounds} interleaved rounds:")
        print(f"  bare whole-image forward pass, model as trained: "
              f"median {statistics.median(a[0] for a in base):.2f} s")
        for v in t:
            if v != "bare":
                print(f"  {v}: median {statistics.median(a[0] for a in t[v]):.2f} s = {ratio_line(t[v], base)}")
        own = ratio_line(t["torch (default)"], t["bare, predict's copy"])
        print(f"  predict [torch (default)] against the bare pass of its own copy: {own}")
        if with_breakdown:
            steps = breakdown(ckpt, image)
            total = sum(steps.values())
            print(f"  predict's steps, one run ({total:.2f} s in all; file writing, CSV/JSON not included):")
            for step, sec in steps.items():
                print(f"    {step:48s} {sec * 1000:7.0f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["unet-small"])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--breakdown", action="store_true", help="also time predict's steps one by one")
    args = ap.parse_args()
    warnings.filterwarnings("ignore", category=UserWarning)  # ONNX export chatter
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    with tempfile.TemporaryDirectory() as tmp:
        images = micrographs(Path(tmp))
        for name in args.models:
            bench(name, args.rounds, Path(tmp), images, args.breakdown)


if __name__ == "__main__":
    main()
