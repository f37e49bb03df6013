"""Structure first, no learning: do round empty loops of the particle network alone find the labelled rings?

    python benchmarks/ring_finder_baseline.py [--close-nm 6 10 14]

The four labelled references are imported at 2 nm/px; particles come from the same top-hat
detector the ring rules use (``inference.rings.particle_map``); gaps between particles are bridged
by a morphological closing of ``--close-nm``; every hole of the closed chain network that does not
touch the frame becomes a candidate loop whose band is the chain within 6 px of the hole; candidates
are judged by the same ring rules as the model's (``inference.rings.find_rings``) and matched to the
labelled rings as ``nanoseg evaluate --structures`` does. Prints tp / fp / fn and F1 per setting:
the number to beat for a learned model (README, "Rings on real micrographs").
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from nanoseg import io, labelme  # noqa: E402
from nanoseg.data.importer import import_folder  # noqa: E402
from nanoseg.evaluation.structures import _mostly_ignored, image_scores, rings_from_labelme  # noqa: E402
from nanoseg.inference.rings import RingRules, find_rings, particle_map  # noqa: E402

NM_PER_PX = 2.0
BAND_PX = 6


def loop_bands(img: np.ndarray, close_nm: float) -> np.ndarray:
    """Bands of chain around every enclosed hole of the closed particle network."""
    chain_px = particle_map(img, NM_PER_PX).astype(np.uint8)
    r = max(1, round(close_nm / NM_PER_PX))
    chain_px = cv2.morphologyEx(chain_px, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1,) * 2))
    n, lab, st, _ = cv2.connectedComponentsWithStats(1 - chain_px, connectivity=4)
    h, w = img.shape
    out = np.zeros_like(chain_px)
    kb = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * BAND_PX + 1,) * 2)
    for i in range(1, n):
        x, y, bw, bh, area = st[i]
        if x == 0 or y == 0 or x + bw >= w or y + bh >= h or area < 150:
            continue
        x0, y0 = max(0, x - BAND_PX - 2), max(0, y - BAND_PX - 2)
        x1, y1 = min(w, x + bw + BAND_PX + 2), min(h, y + bh + BAND_PX + 2)
        hole = (lab[y0:y1, x0:x1] == i).astype(np.uint8)
        cs, _ = cv2.findContours(hole, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        filled = np.zeros_like(hole)
        cv2.drawContours(filled, cs, -1, 1, -1)
        out[y0:y1, x0:x1] |= cv2.dilate(filled, kb) & (1 - filled) & chain_px[y0:y1, x0:x1]
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--close-nm", type=float, nargs="+", default=[6.0, 10.0, 14.0])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / "refs"
        import_folder(ROOT / "references" / "boiko2020", d, crop_bottom="auto", resample_nm_per_px=NM_PER_PX,
                      progress=False)
        data = [(r["id"], io.read_gray(d / "images" / f"{r['id']}.png"), io.read_mask(d / "masks" / f"{r['id']}.png"),
                 rings_from_labelme(labelme.load(d / "labelme" / f"{r['id']}.json")))
                for r in io.read_csv(d / "manifest.csv")]
    print("close_nm  tp  fp  fn  precision  recall  F1")
    for close_nm in args.close_nm:
        tp = fp = fn = 0
        for _, img, mask, truth in data:
            band = loop_bands(img, close_nm)
            rings, _ = find_rings(band, image=img, nm_per_px=NM_PER_PX, rules=RingRules(min_radius_px=15))
            rings = [r for r in rings if not _mostly_ignored(r, band, mask)]
            s = image_scores(rings, truth)
            tp, fp, fn = tp + s["tp"], fp + s["fp"], fn + s["fn"]
        p = tp / (tp + fp) if tp + fp else float("nan")
        rec = tp / (tp + fn) if tp + fn else float("nan")
        f1 = 2 * p * rec / (p + rec) if tp else 0.0
        print(f"{close_nm:8.1f} {tp:3d} {fp:3d} {fn:3d} {p:10.2f} {rec:7.2f} {f1:5.2f}")


if __name__ == "__main__":
    main()
