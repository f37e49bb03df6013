"""Figures: convergence curve (paper Fig 4), prediction panel (Fig 5), metric vs AD fraction, overlays."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

RING_RGB = (255, 64, 32)


def _save(fig, path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(path)


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
                a.imshow(np.where(cols[j] == 255, 0.5, cols[j] == 1), cmap="gray", vmin=0, vmax=1)
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
    _save(fig, path)
