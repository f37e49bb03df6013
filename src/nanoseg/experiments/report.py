"""``nanoseg experiment report``: merge finished runs (all shards) into tables, figures and HTML."""

from __future__ import annotations

import html
import json
import shutil
from pathlib import Path

import numpy as np
import yaml

from .. import io
from ..errors import NanosegError, brief
from .. import figures, webpage

METRICS = ("miou", "acc", "kappa", "dice")
EXTRA = ("ring_f1", "radius_rel_err")
RESULT_COLUMNS = ["run_id", "model", "n_ad", "n_sd", "ad_fraction", "seed", "fold", "checkpoint", "miou", "acc", "kappa",
                  "dice", "iou_ring", "ring_precision", "ring_recall", "ring_f1", "radius_rel_err",
                  "count_abs_err", "ring_tp", "ring_fp", "ring_fn", "n_test_images", "train_seconds"]


def read_result(path: Path) -> dict:
    """One run's ``result.json``; its run id is its folder's name (never a path from the file)."""
    try:
        r = json.loads(path.read_text())
        if not isinstance(r, dict) or not {"model", "n_ad", "n_sd", "seed", "miou"} <= set(r):
            raise ValueError("fields missing")
    except (OSError, ValueError) as exc:
        raise NanosegError(f"{path}: not a readable run result ({brief(exc)}); delete it to redo the run") from None
    r["run_id"] = path.parent.name
    return r


def collect_results(out: Path) -> list[dict]:
    rows = []
    for p in sorted((out / "runs").glob("*/result.json")):
        rows.append(read_result(p))
    rows.sort(key=lambda r: (r["model"], -r["n_ad"], r["n_sd"], r["seed"]))
    return rows


def group_stats(rows: list[dict]) -> list[dict]:
    """Mean and (sample) std over repeats, per (model, mix)."""
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["model"], r["n_ad"], r["n_sd"]), []).append(r)
    out = []
    for (model, n_ad, n_sd), rs in groups.items():
        g = {"model": model, "n_ad": n_ad, "n_sd": n_sd, "ad_fraction": rs[0]["ad_fraction"], "n_runs": len(rs)}
        for m in METRICS + EXTRA:
            vals = np.array([r[m] for r in rs if r.get(m) is not None and r.get(m) == r.get(m)], float)
            g[f"{m}_mean"] = float(vals.mean()) if len(vals) else float("nan")
            g[f"{m}_std"] = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
        g.update(pooled_ring_scores(rs))
        out.append(g)
    out.sort(key=lambda g: (g["model"], -g["n_ad"]))
    return out


def pooled_ring_scores(rows: list[dict]) -> dict:
    """Ring precision, recall and F1 from matches summed over runs (folds), and false rings per test image.

    With few rings per test micrograph a per-fold F1 is mostly 0 or 1; pooling the counts first
    weighs every ring once.
    """
    if not rows or any(r.get("ring_tp") is None for r in rows):
        return {}
    tp, fp, fn = (sum(int(r[k]) for r in rows) for k in ("ring_tp", "ring_fp", "ring_fn"))
    n_img = sum(int(r.get("n_test_images") or 1) for r in rows)
    p = tp / (tp + fp) if tp + fp else float("nan")
    rec = tp / (tp + fn) if tp + fn else float("nan")
    f1 = 2 * p * rec / (p + rec) if tp else 0.0
    return {"pooled_tp": tp, "pooled_fp": fp, "pooled_fn": fn, "pooled_ring_precision": p,
            "pooled_ring_recall": rec, "pooled_ring_f1": f1, "false_rings_per_image": fp / n_img}


def _fmt(g, m):
    mean, std = g[f"{m}_mean"], g[f"{m}_std"]
    if mean != mean:
        return "–"
    return f"{mean:.4f} ± {std:.4f}" if g["n_runs"] > 1 else f"{mean:.4f}"


def summary_markdown(cfg: dict, rows: list[dict], stats: list[dict]) -> tuple[str, dict]:
    if cfg.get("ad", {}).get("holdout") == "leave-one-out":
        where = (f"the held-out micrograph of each fold (leave-one-out over {len({r.get('fold') for r in rows})} "
                 "micrographs, whole and not augmented)")
        spread = "mean ± sample std over folds and repeats"
    else:
        where = (f"the held-out AD test set ({cfg.get('ad', {}).get('test_size')} samples from micrographs never "
                 "used for training)")
        spread = "mean ± sample std over repeats"
    lines = [f"# {cfg.get('name', 'experiment')}: results", "",
             f"{len(rows)} finished run(s). Metrics on {where}, computed as PaddleSeg 2.8 does; {spread}.", ""]
    best = {}
    models = sorted({g["model"] for g in stats})
    for model in models:
        gs = [g for g in stats if g["model"] == model]
        control = next((g for g in gs if g["n_sd"] == 0), None)
        top = max(gs, key=lambda g: g["miou_mean"])
        best[model] = top
        lines += [f"## {model}: AD/SD mixes (paper Tables 2-4)", "",
                  "| AD | SD | AD fraction | runs | mIoU | Acc | Kappa | Dice | ring F1 | radius rel. err | Δ mIoU vs control |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for g in gs:
            delta = f"{g['miou_mean'] - control['miou_mean']:+.4f}" if control and g is not control else "–"
            cells = [str(g["n_ad"]), str(g["n_sd"]), f"{g['ad_fraction']:.2f}", str(g["n_runs"])]
            cells += [_fmt(g, m) for m in METRICS + EXTRA] + [delta]
            if g is top:
                cells = [f"**{c}**" for c in cells]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        if all("pooled_ring_f1" in g for g in gs):
            lines += ["Rings, matches pooled over all runs (a ring counts once however its fold went):", "",
                      "| AD | SD | true rings | found | false rings | precision | recall | F1 | false rings per test image |",
                      "|---|---|---|---|---|---|---|---|---|"]
            for g in gs:
                lines.append(f"| {g['n_ad']} | {g['n_sd']} | {g['pooled_tp'] + g['pooled_fn']} | {g['pooled_tp']} | "
                             f"{g['pooled_fp']} | {g['pooled_ring_precision']:.2f} | {g['pooled_ring_recall']:.2f} | "
                             f"{g['pooled_ring_f1']:.2f} | {g['false_rings_per_image']:.2f} |")
            lines.append("")
        if control:
            verdict = "beats" if top is not control and top["miou_mean"] > control["miou_mean"] else "does not beat"
            lines.append(f"Best mix: **{top['n_ad']} AD + {top['n_sd']} SD** (mIoU {top['miou_mean']:.4f}); "
                         f"AD-only control ({control['n_ad']} AD): {control['miou_mean']:.4f}. "
                         f"The best mix {verdict} the control." if top is not control else
                         f"The AD-only control is the best configuration (mIoU {control['miou_mean']:.4f}).")
            lines.append("")
    if len(models) > 1:
        lines += ["## Architectures (paper Table 5)", "", "| model | AD | SD | runs | mIoU | Acc | Kappa | Dice |",
                  "|---|---|---|---|---|---|---|---|"]
        for model in models:
            g = best[model]
            lines.append(f"| {model} | {g['n_ad']} | {g['n_sd']} | {g['n_runs']} | " +
                         " | ".join(_fmt(g, m) for m in METRICS) + " |")
        lines.append("")
    lines += ["## Runs", "", "| run | mIoU | Acc | Kappa | Dice | ring F1 | training s |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        f1 = r.get("ring_f1")
        lines.append(f"| {r['run_id']} | {r['miou']:.4f} | {r['acc']:.4f} | {r['kappa']:.4f} | {r['dice']:.4f} | "
                     f"{'–' if f1 is None else f'{f1:.3f}'} | {r['train_seconds']} |")
    return "\n".join(lines) + "\n", best


def write_report(out: str | Path) -> dict:
    """Merge the finished runs of an experiment folder ``out`` (all shards) into ``results.csv``,
    ``summary.csv``, ``summary.md``, ``figures/`` and ``report.html``; returns the rows and statistics."""
    out = Path(out)
    if not (out / "experiment.yaml").exists():
        raise NanosegError(f"{out}: not an experiment folder (no experiment.yaml)")
    cfg = yaml.safe_load((out / "experiment.yaml").read_text())
    rows = collect_results(out)
    if not rows:
        raise NanosegError(f"{out}: no finished runs yet")
    io.write_csv(out / "results.csv", rows, RESULT_COLUMNS)
    stats = group_stats(rows)
    io.write_csv(out / "summary.csv", stats)
    md, best = summary_markdown(cfg, rows, stats)
    io.atomic_write_text(out / "summary.md", md)
    figs = out / "figures"
    figs.mkdir(exist_ok=True)
    primary = cfg["models"][0]
    gs = [g for g in stats if g["model"] == primary]
    control = next((g for g in gs if g["n_sd"] == 0), None)
    figures.metric_vs_fraction(gs, figs / "miou_vs_ad_fraction.png", "miou",
                               control["miou_mean"] if control else None)
    top = best[primary]
    best_run = max((r for r in rows if r["model"] == primary and r["n_ad"] == top["n_ad"]
                    and r["n_sd"] == top["n_sd"]), key=lambda r: r["miou"])
    run_dir = out / "runs" / best_run["run_id"]
    if (run_dir / "curve.png").exists():
        shutil.copyfile(run_dir / "curve.png", figs / "convergence_best_run.png")
    prediction_figure(run_dir / best_run["checkpoint"], out / "data" / "test", figs / "predictions_best_run.png")
    _html(out, md, figs)
    return {"rows": rows, "stats": stats}


def prediction_figure(ckpt: Path, test_dir: Path, path: Path) -> None:
    """Image | ground truth | prediction | overlay of up to four test images (paper Fig 5), by checkpoint ``ckpt``."""
    if not ckpt.exists() or not test_dir.exists():
        return
    from ..data.dataset import load_arrays
    from ..inference.sliding import predict_mask, tile_rule
    from ..models import load_model

    model, spec = load_model(ckpt)
    rows, imgs, gts = load_arrays(test_dir)
    idx = np.linspace(0, len(imgs) - 1, min(4, len(imgs))).astype(int)
    tile_px, _ = tile_rule(spec.get("train_size"))
    preds = [predict_mask(model, imgs[i], tile_px=tile_px) for i in idx]
    figures.prediction_panel([imgs[i] for i in idx], [gts[i] for i in idx], preds, path,
                             titles=[rows[i]["id"] for i in idx])


def _md_table_to_html(block: list[str]) -> str:
    cells = [[c.strip() for c in ln.strip().strip("|").split("|")] for ln in block if not set(ln) <= set("|-: ")]
    head, body = cells[0], cells[1:]

    def cell(c, tag):
        bold = c.startswith("**") and c.endswith("**")
        c = html.escape(c.strip("*"))
        return f"<{tag}>{'<b>' + c + '</b>' if bold else c}</{tag}>"

    rows = ["<tr>" + "".join(cell(c, "th") for c in head) + "</tr>"]
    rows += ["<tr>" + "".join(cell(c, "td") for c in r) + "</tr>" for r in body]
    return "<table>" + "".join(rows) + "</table>"


def _html(out: Path, md: str, figs: Path) -> None:
    parts, block = [], []
    for line in md.splitlines() + [""]:
        if line.startswith("|"):
            block.append(line)
            continue
        if block:
            parts.append(_md_table_to_html(block))
            block = []
        if line.startswith("## "):
            parts.append(f"<h2>{html.escape(line[3:])}</h2>")
        elif line.startswith("# "):
            parts.append(f"<h1>{html.escape(line[2:])}</h1>")
        elif line.strip():
            text = html.escape(line)
            while "**" in text:
                text = text.replace("**", "<b>", 1).replace("**", "</b>", 1)
            parts.append(f"<p>{text}</p>")
    captions = {"miou_vs_ad_fraction.png": "mIoU against the AD fraction (mean ± std over repeats)",
                "convergence_best_run.png": "Convergence of the best run (paper Fig 4)",
                "predictions_best_run.png": "Test images, ground truth, prediction, overlay (paper Fig 5)"}
    for name, cap in captions.items():
        p = figs / name
        if p.exists():
            parts.append(webpage.figure(p, cap))
    io.atomic_write_text(out / "report.html", webpage.page("nanoseg report", "".join(parts)))
