"""Rules or learning: a loop classifier trained on synthetic micrographs, scored on the references.

    python benchmarks/loop_classifier_synthetic.py --synthetic DIR [--threshold 0.3 0.5 0.7]

The loop finder (``inference.loops``) judges each measured loop by hand-set rules. The learned
alternative: a logistic regression over the same measurements (coverage, largest gap, exterior
density, interior fill and step, band fill, circularity, log radius), trained on every loop the
finder measures inside the frame in a ``nanoseg synth`` folder, before loops around one centre are
made one (a loop is positive when it matches a ring the generator drew), then applied to the four labelled references, which it never saw. Prints the
weights (on standardised features) and the references' tp/fp/fn per probability threshold, next to
the rules' (README, "Rings on real micrographs").
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ring_finder_baseline as base  # noqa: E402

from nanoseg import io  # noqa: E402
from nanoseg.evaluation.structures import match, rings_from_meta  # noqa: E402
from nanoseg.inference import loops  # noqa: E402
from nanoseg.inference.measure import PX_LENGTH_FIELDS  # noqa: E402
from nanoseg.synthesis.meta import read_meta  # noqa: E402

FEATURES = ("coverage", "max_gap", "exterior_density", "interior_fill", "interior_step", "band_fill", "circularity")
# every loop the finder measures at its radius range, whatever the other rules say
OPEN = replace(loops.LoopRules(), min_coverage=0.0, max_gap=1.0, max_exterior_density=1.0, max_interior_fill=1.0,
               max_interior_step=math.inf, min_band_fill=0.0)


def features(row: dict, nm_per_px: float) -> list[float]:
    return [float(row[k] or 0.0) for k in FEATURES] + [math.log(row["mean_radius_px"] * nm_per_px)]


def measured(image, nm_per_px: float) -> tuple[list[dict], "np.ndarray"]:
    """Every loop measured inside the frame (before any is made distinct), in the image's pixels,
    and the mask of the loops that pass the open rules (for the ignore labels of the scoring)."""
    cands = loops.loop_candidates(image, nm_per_px=nm_per_px, rules=OPEN)
    rows = []
    for row in cands["rows"]:
        if row["in_frame"]:
            row = {k: v for k, v in row.items() if k not in ("_outline", "in_frame")}
            for k in PX_LENGTH_FIELDS:
                row[f"{k}_px"] /= cands["zoom"]
            rows.append(row)
    return rows, loops.find_loops(image, nm_per_px=nm_per_px, rules=OPEN, candidates=cands)[2]


def fit(folder: Path):
    metas, x, y = read_meta(folder), [], []
    for row in io.read_csv(folder / "manifest.csv"):
        nm = float(row["scale_nm_per_px"])
        truth = rings_from_meta(metas[row["id"]], folder / "labelme" / f"{row['id']}.json")
        for r in measured(io.read_gray(folder / "images" / f"{row['id']}.png"), nm)[0]:
            x.append(features(r, nm))
            y.append(1.0 if match([r], truth) else 0.0)
    x, y = torch.tensor(x), torch.tensor(y)
    mu, sd = x.mean(0), x.std(0) + 1e-6
    w = torch.zeros(x.shape[1], requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=200)

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits((x - mu) / sd @ w + b, y) + 1e-3 * (w ** 2).sum()
        loss.backward()
        return loss
    opt.step(closure)
    print(f"trained on {len(y)} synthetic loops ({int(y.sum())} rings); weights on standardised features:")
    print("  " + "  ".join(f"{k} {v:+.2f}" for k, v in zip(FEATURES + ("log_radius_nm",), w.detach().tolist())))
    return lambda r, nm: torch.sigmoid((torch.tensor(features(r, nm)) - mu) / sd @ w + b).item()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--synthetic", type=Path, required=True, help="`nanoseg synth` folder to train on")
    ap.add_argument("--threshold", type=float, nargs="*", default=[0.3, 0.5, 0.7])
    args = ap.parse_args()
    prob = fit(args.synthetic)
    with tempfile.TemporaryDirectory() as tmp:
        refs = base.references(Path(tmp))
    per = [base.scores(ref, *loops.find_loops(ref["image"], nm_per_px=ref["nm_per_px"])[::2]) for ref in refs]
    base.show("rules (LoopRules defaults)", refs, per)
    for t in args.threshold:
        per = []
        for ref in refs:
            rows, mask = measured(ref["image"], ref["nm_per_px"])
            per.append(base.scores(ref, loops._distinct([r for r in rows if prob(r, ref["nm_per_px"]) >= t]), mask))
        base.show(f"learned on synthetic, p >= {t}", refs, per)


if __name__ == "__main__":
    main()
