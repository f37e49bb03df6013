"""Figures of the models on the real reference micrographs (README and model card).

    python docs/make_real_figures.py [--loo runs/real-references] [--model src/nanoseg/pretrained/rings-unet-small.pt] [--loops]

``--loo``: a finished leave-one-out experiment (experiments/real-references.yaml). For each fold the
AD + SD model predicts its held-out micrograph at the micrograph's own pixel size (``nanoseg predict``
with the reference's pixel size, so scale-aware resampling is exercised end to end); the panel shows
the labelled rings (green), ignore loops (blue), the pixels the model marks as ring band (red tint)
and the rings predict reports after the ring rules (red circles, numbered).
Writes ``docs/real_heldout.png``; with ``--model`` also ``docs/real_default_model.png`` (the shipped
model on the same four micrographs, which it was trained on: a picture of its behaviour, not a score);
with ``--loops`` also ``docs/real_loops.png`` (the structure-first ring finder, ``nanoseg predict``
without a model, on the four micrographs whose labels its rules were chosen on).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from nanoseg import imaging, io, labelme  # noqa: E402
from nanoseg.inference.predict import predict  # noqa: E402

REF = ROOT / "references" / "boiko2020"


def _panel(stem: str, pred_dir: Path, title: str) -> np.ndarray:
    img = io.read_gray(REF / f"{stem}.png")
    bar = imaging.detect_data_bar(img)
    img = img[:-bar] if bar else img
    truth = labelme.rasterize(labelme.load(REF / f"{stem}.json"), img.shape)
    rgb = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    marked = io.read_mask(pred_dir / "masks" / f"{stem}.png") == 1  # what the model marks as ring band
    rgb[marked] = (0.4 * rgb[marked] + 0.6 * np.array([40, 40, 255])).astype(np.uint8)
    for cls, colour in ((1, (60, 220, 60)), (255, (255, 150, 40))):
        cs, _ = cv2.findContours((truth == cls).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(rgb, cs, -1, colour, 3)
    rows = [r for r in io.read_csv(pred_dir / "structures.csv") if r["image"] == stem]
    for r in rows:
        c = (int(float(r["centre_x_px"])), int(float(r["centre_y_px"])))
        cv2.circle(rgb, c, int(float(r["mean_radius_px"])), (40, 40, 255), 3)
        cv2.putText(rgb, r["structure_id"], (c[0] - 8, c[1] + 8), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (40, 40, 255), 2)
    small = cv2.resize(rgb, (640, round(640 * rgb.shape[0] / rgb.shape[1])), interpolation=cv2.INTER_AREA)
    cv2.rectangle(small, (0, 0), (640, 26), (0, 0, 0), -1)
    cv2.putText(small, title, (6, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1, cv2.LINE_AA)
    return small


def _grid(panels: list[np.ndarray]) -> np.ndarray:
    h = max(p.shape[0] for p in panels)
    panels = [np.pad(p, ((0, h - p.shape[0]), (0, 0), (0, 0))) for p in panels]
    return np.vstack([np.hstack(panels[i:i + 2]) for i in range(0, len(panels), 2)])


def _predict_one(model: Path | None, stem: str, out: Path, scales: dict) -> None:
    predict(model, [REF / f"{stem}.png"], out, scale_nm_per_px=scales[stem], crop_bottom="auto", progress=False,
            ring_finder="model" if model else "loops")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--loo", type=Path, help="finished real-references experiment folder")
    ap.add_argument("--mix", default="ad30_sd90", help="which condition's fold models to show")
    ap.add_argument("--model", type=Path, help="also draw this model on the four micrographs")
    ap.add_argument("--loops", action="store_true", help="also draw the structure-first finder on them")
    args = ap.parse_args()
    scales = {Path(r["file"]).stem: float(r["scale_nm_per_px"]) for r in io.read_csv(REF / "scales.csv")}
    with tempfile.TemporaryDirectory() as tmp:
        panels = []
        for run in sorted((args.loo / "runs").glob(f"*__{args.mix}__*__test-*")) if args.loo else []:
            stem = run.name.split("__test-", 1)[1]
            res = json.loads((run / "result.json").read_text())
            out = Path(tmp) / run.name
            _predict_one(run / "last.pt", stem, out, scales)
            note = f"  found {res['ring_tp']}/{res['ring_tp'] + res['ring_fn']}, false {res['ring_fp']}"
            panels.append(_panel(stem, out, f"held out: {stem} ({scales[stem]} nm/px){note}"))
        if panels:
            cv2.imwrite(str(ROOT / "docs" / "real_heldout.png"), _grid(panels))
        if args.model:
            panels = []
            for stem in sorted(scales):
                out = Path(tmp) / f"default_{stem}"
                _predict_one(args.model, stem, out, scales)
                panels.append(_panel(stem, out, f"shipped model (trained on it): {stem}"))
            cv2.imwrite(str(ROOT / "docs" / "real_default_model.png"), _grid(panels))
        if args.loops:
            panels = []
            for stem in sorted(scales):
                out = Path(tmp) / f"loops_{stem}"
                _predict_one(None, stem, out, scales)
                n = sum(1 for r in io.read_csv(out / "structures.csv") if r["image"] == stem)
                panels.append(_panel(stem, out, f"structure first (no model): {stem}, {n} ring(s)"))
            cv2.imwrite(str(ROOT / "docs" / "real_loops.png"), _grid(panels))


if __name__ == "__main__":
    main()
