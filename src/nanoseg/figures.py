"""Figures: convergence curve (paper Fig 4), prediction panel (Fig 5), metric vs AD fraction, overlays
(the tinted mask and the outlined, numbered structures of ``predict`` and ``measure``)."""

from __future__ import annotations

from pathlib import Path

import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .io import IGNORE_INDEX, atomic_path  # noqa: E402

RING_RGB = (255, 64, 32)


def _save(fig, path):
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)


def figure_png(fig, dpi: int = 110) -> bytes:
    """PNG bytes of a matplotlib figure (closed afterwards), for embedding in a report."""
    import io as _io

    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def smooth(values, weight: float = 0.6):
    out, last = [], None
    for v in values:
        last = v if last is None else weight * last + (1 - weight) * v
        out.append(last)
    return out


def plot_curve(rows: list[dict], path, title: str = "Validation mIoU") -> None:
    """mIoU per evaluation (light) and smoothed (dark), plus the training loss."""
    if not rows:
        return
    it = [r["iteration"] for r in rows]
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    miou = [r["miou"] for r in rows]
    ax[0].plot(it, miou, color="#9ecae1", marker="o", ms=3, label="mIoU")
    ax[0].plot(it, smooth(miou), color="#08519c", lw=2, label="smoothed")
    ax[0].set_xlabel("iteration")
    ax[0].set_ylabel("mIoU")
    ax[0].set_title(title)
    ax[0].legend()
    ax[0].grid(alpha=0.3)
    ax[1].plot(it, [r["loss"] for r in rows], color="#a63603")
    ax[1].set_xlabel("iteration")
    ax[1].set_ylabel("training loss (EMA)")
    ax[1].set_title("Training loss")
    ax[1].grid(alpha=0.3)
    _save(fig, path)


def overlay(image: np.ndarray, mask: np.ndarray, color=RING_RGB, alpha: float = 0.45) -> np.ndarray:
    """RGB image with class-1 pixels tinted."""
    rgb = np.repeat(image[..., None], 3, axis=2).astype(np.float32)
    m = mask == 1
    rgb[m] = (1 - alpha) * rgb[m] + alpha * np.array(color, np.float32)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def draw_overlay(image: np.ndarray, mask: np.ndarray, rows: list[dict]) -> np.ndarray:
    """Micrograph with structures outlined and numbered."""
    rgb = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    fg = (mask == 1).astype(np.uint8)
    tint = rgb.copy()
    tint[fg > 0] = (32, 64, 255)
    rgb = cv2.addWeighted(tint, 0.35, rgb, 0.65, 0)
    contours, _ = cv2.findContours(fg, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(rgb, contours, -1, (0, 200, 255), 1)
    scale = max(0.4, min(image.shape) / 800)
    for r in rows:
        org = (int(r["centre_x_px"]) - 6, int(r["centre_y_px"]) + 5)
        cv2.putText(rgb, str(r["structure_id"]), org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(rgb, str(r["structure_id"]), org, cv2.FONT_HERSHEY_SIMPLEX, scale, (80, 255, 80), 1, cv2.LINE_AA)
    return cv2.cvtColor(rgb, cv2.COLOR_BGR2RGB)


METRIC_LABELS = {"miou": "mIoU", "acc": "Acc", "kappa": "Kappa", "dice": "Dice"}


def prediction_panel(images, gts, preds, path, titles=None) -> None:
    """Rows of image | ground truth | prediction | overlay (paper Fig 5)."""
    n = len(images)
    if n == 0:
        return
    fig, axes = plt.subplots(n, 4, figsize=(11, 2.9 * n), squeeze=False)
    for i in range(n):
        cols = [images[i], gts[i], preds[i], overlay(images[i], preds[i])]
        names = ["image", "ground truth", "prediction", "overlay"]
        for j in range(4):
            a = axes[i, j]
            if j in (1, 2):
                a.imshow(np.where(cols[j] == IGNORE_INDEX, 0.5, cols[j] == 1), cmap="gray", vmin=0, vmax=1)
            else:
                a.imshow(cols[j], cmap="gray", vmin=0, vmax=255)
            a.set_axis_off()
            if i == 0:
                a.set_title(names[j])
        if titles:  # under the image, so it never collides with the column titles
            axes[i, 0].text(0, -0.03, titles[i], transform=axes[i, 0].transAxes, fontsize=8, va="top")
    _save(fig, path)


def metric_vs_fraction(summary_rows: list[dict], path, metric: str = "miou", control: float | None = None) -> None:
    """Mean +- std of a metric against the AD fraction of the training set."""
    if not summary_rows:
        return
    rows = sorted(summary_rows, key=lambda r: r["ad_fraction"])
    x = [r["ad_fraction"] for r in rows]
    y = [r[f"{metric}_mean"] for r in rows]
    e = [r[f"{metric}_std"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 3.8))
    ax.errorbar(x, y, yerr=e, fmt="o-", capsize=3, color="#08519c", label="AD + SD mixes")
    if control is not None:
        ax.axhline(control, color="#a63603", ls="--", label="AD-only control")
    ax.set_xlabel("fraction of authentic data in the training set")
    ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    ax.grid(alpha=0.3)
    ax.legend()
    _save(fig, path)


IGNORE_RGB = (40, 140, 255)


def reference_labels(folder, path, *, columns: int = 2) -> None:
    """Every labelme file of a labelled folder drawn over its micrograph (downscaled).

    Parameters
    ----------
    folder : path
        Folder of micrographs with a labelme JSON beside each (``references/boiko2020``).
    path : path
        PNG to write.
    columns : int
        Panels per row.

    Ring shapes (and the ``_background_`` hole that follows each) are outlined in
    ``RING_RGB``, ``ignore`` shapes and their holes in ``IGNORE_RGB``.
    """
    from . import labelme

    docs = sorted(Path(folder).glob("*.json"))
    rows = int(np.ceil(len(docs) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(6.4 * columns, 4.6 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, jp in zip(axes.ravel(), docs):
        doc = labelme.load(jp)
        img = np.asarray(plt.imread(jp.parent / doc["imagePath"]))
        ax.imshow(img, cmap="gray", vmin=0, vmax=1 if img.dtype.kind == "f" else 255)
        counts = labelme.structure_counts(doc)
        colour = RING_RGB
        for sh in doc["shapes"]:
            label = sh["label"].strip().lower()
            if label in ("ring", "ignore"):
                colour = RING_RGB if label == "ring" else IGNORE_RGB
            pts = np.asarray(sh["points"], float)
            pts = np.vstack([pts, pts[:1]])
            ax.plot(pts[:, 0], pts[:, 1], color=np.array(colour) / 255, lw=0.8)
        ax.set_title(f"{jp.stem}: {counts.get('ring', 0)} ring, {counts.get('ignore', 0)} ignore", fontsize=9)


def _log_axis(axis) -> None:
    """Log scale with plain numbers on the major ticks and no minor-tick labels."""
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    axis.axes.set_xscale("log") if axis is axis.axes.xaxis else axis.axes.set_yscale("log")
    axis.set_major_formatter(ScalarFormatter())
    axis.set_minor_formatter(NullFormatter())


def realism_panel(real, synth, result: dict, path, title: str = "") -> None:
    """Distributions of the realism statistics, real against synthetic, and each statistic's distance.

    ``real`` and ``synth`` are pooled ``realism.stats.ImageStats``; ``result`` is
    ``realism.distance.compare_matched``'s output.
    """
    from .realism.stats import SPECTRUM_BANDS

    unit = "nm" if real.units == "nm" else "px"
    fig, axes = plt.subplots(2, 3, figsize=(13, 7.2))
    colours = {"real": "#303030", "synthetic": "#d9480f"}

    def hist(ax, name, r, s, xlabel, log=True):
        r, s = np.asarray(r, float), np.asarray(s, float)
        both = np.concatenate([r, s])
        both = both[np.isfinite(both) & ((both > 0) if log else True)]
        if not len(both):
            ax.set_title(f"{name}: not measured")
            return
        lo, hi = np.percentile(both, [0.5, 99.5])
        if log:
            bins = np.geomspace(max(lo, 1e-3), max(hi, lo * 1.01 + 1e-3), 30)
        else:  # whole grey levels: one bin per level, or per few
            step = max(1.0, np.ceil((hi - lo) / 60))
            bins = np.arange(np.floor(lo) - 0.5, hi + step, step)
        for lab, arr in (("real", r), ("synthetic", s)):
            if len(arr):
                ax.hist(arr, bins=bins, density=True, histtype="step", lw=1.8, color=colours[lab],
                        label=f"{lab} (median {np.median(arr):.3g})")
        if log:
            _log_axis(ax.xaxis)
        ax.set_xlabel(xlabel)
        ax.set_title(name)
        ax.legend(fontsize=8)

    hist(axes[0, 0], "particle / cluster diameter", real.diameter_nm, synth.diameter_nm, f"equivalent diameter ({unit})")
    hist(axes[0, 1], "nearest-neighbour distance", real.nn_distance_nm, synth.nn_distance_nm, f"distance ({unit})")
    hist(axes[0, 2], "chain width", real.chain_width_nm, synth.chain_width_nm, f"width ({unit})")
    hist(axes[1, 0], "background grey levels", real.background_grey, synth.background_grey, "8-bit grey", log=False)
    ax = axes[1, 1]
    centres = [np.sqrt(lo * hi) for lo, hi in SPECTRUM_BANDS]
    for lab, st in (("real", real), ("synthetic", synth)):
        ax.plot(centres, st.texture_power, "o-", color=colours[lab], label=lab)
    _log_axis(ax.xaxis)
    ax.set_yscale("log")
    ax.set_xlabel(f"wavelength ({unit})")
    ax.set_ylabel("background power / contrast$^2$")
    ax.set_title("support texture spectrum")
    ax.legend(fontsize=8)
    ax = axes[1, 2]
    rows = result["pooled"]["rows"]
    names = [r["statistic"] for r in rows]
    groups = result["groups"]
    mat = np.array([[g["rows"][k]["distance"] for k in range(len(rows))] for g in groups], float)
    y = np.arange(len(names))
    ax.barh(y, np.nanmean(mat, axis=0), color="#d9480f", alpha=0.8, label="mean over magnifications")
    for i, g in enumerate(groups):
        ax.plot(mat[i], y, "k.", ms=4, label="one magnification" if i == 0 else None)
    ax.set_yticks(y, [f"{n} (x{r['ratio']:.2f})" if np.isfinite(r["ratio"]) else n for n, r in zip(names, rows)],
                  fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("distance (0 = same, 1 = far); label: synthetic / real")
    ax.set_title(f"overall distance {result['overall_distance']:.3f}")
    ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(title or f"realism: {real.n_images} real vs {synth.n_images} synthetic micrograph(s)")
    fig.tight_layout()
    _save(fig, path)
