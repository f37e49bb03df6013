"""Numerical parity of nanoseg's metrics and Dice loss with PaddleSeg 2.8's own code.

Two steps, because PaddleSeg lives in its own environment (see bench_paddleseg_step.py):

    .venv/bin/python benchmarks/parity_paddleseg.py make  /tmp/parity.npz      # random cases + nanoseg values
    /tmp/paddle-venv/bin/python benchmarks/parity_paddleseg.py check /tmp/parity.npz

The second step recomputes everything with paddleseg.utils.metrics and paddleseg's DiceLoss and
prints the largest difference.
"""

import sys

import numpy as np


def make(path):
    import torch

    from nanoseg.training.losses import dice_loss
    from nanoseg.evaluation.metrics import AreaAccumulator

    rng = np.random.default_rng(0)
    preds = rng.integers(0, 2, (6, 1, 40, 50))
    labels = rng.integers(0, 2, (6, 1, 40, 50))
    labels[labels.size // 2 % 6, 0, :5] = 255
    labels[2] = (rng.random((1, 40, 50)) < 0.03)   # a rare foreground, as for rings
    acc = AreaAccumulator(2)
    for p, lab in zip(preds, labels):
        acc.update(p[0], lab[0])
    m = acc.compute()
    logits = rng.normal(size=(4, 2, 24, 30)).astype(np.float32)
    dl_labels = rng.integers(0, 2, (4, 24, 30))
    dl_labels[1, :3] = 255
    loss = float(dice_loss(torch.from_numpy(logits), torch.from_numpy(dl_labels)))
    np.savez(path, preds=preds, labels=labels, logits=logits, dl_labels=dl_labels,
             ours=np.array([m["miou"], m["acc"], m["kappa"], m["dice"], loss]))
    print("nanoseg:", dict(miou=m["miou"], acc=m["acc"], kappa=m["kappa"], dice=m["dice"], dice_loss=loss))


def check(path):
    import paddle
    from paddleseg.models.losses import DiceLoss
    from paddleseg.utils import metrics

    # paddleseg 2.8 concatenates 0-d sums, which paddle >= 2.5 refuses: stack those instead
    concat = paddle.concat
    paddle.concat = lambda xs, axis=0: paddle.stack(xs) if xs[0].ndim == 0 else concat(xs, axis)
    d = np.load(path)
    inter, pred_a, lab_a = 0, 0, 0
    for p, lab in zip(d["preds"], d["labels"]):
        i, pa, la = metrics.calculate_area(paddle.to_tensor(p), paddle.to_tensor(lab), 2)
        inter, pred_a, lab_a = inter + i, pred_a + pa, lab_a + la
    _, miou = metrics.mean_iou(inter, pred_a, lab_a)
    _, acc = metrics.accuracy(inter, pred_a)
    kappa = metrics.kappa(inter, pred_a, lab_a)
    _, mdice = metrics.dice(inter, pred_a, lab_a)
    loss = float(DiceLoss()(paddle.to_tensor(d["logits"]), paddle.to_tensor(d["dl_labels"])))
    theirs = np.array([miou, acc, kappa, mdice, loss], dtype=float)
    print("paddleseg:", dict(zip(["miou", "acc", "kappa", "dice", "dice_loss"], theirs.tolist())))
    print(f"largest difference: {np.abs(theirs - d['ours']).max():.2e}")


if __name__ == "__main__":
    {"make": make, "check": check}[sys.argv[1]](sys.argv[2])
