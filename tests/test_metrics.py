import numpy as np
import pytest
import torch

from nanoseg.training.losses import ce_loss, dice_loss
from nanoseg.evaluation.metrics import AreaAccumulator, calculate_area, metrics_from_areas


def test_hand_computed_confusion_matrix():
    label = np.array([[0, 0, 1, 1], [0, 1, 1, 255]])
    pred = np.array([[0, 1, 1, 0], [0, 1, 1, 1]])
    i, p, lab = calculate_area(pred, label, 2)
    # ignoring the 255 pixel: 7 pixels; TN=2 (0->0), FP=1 (0->1), TP=3 (1->1), FN=1 (1->0)
    assert i.tolist() == [2, 3] and p.tolist() == [3, 4] and lab.tolist() == [3, 4]
    m = metrics_from_areas(i, p, lab)
    assert m["class_iou"] == pytest.approx([2 / 4, 3 / 5])
    assert m["miou"] == pytest.approx((0.5 + 0.6) / 2)
    assert m["acc"] == pytest.approx(5 / 7)
    po, pe = 5 / 7, (3 * 3 + 4 * 4) / 49
    assert m["kappa"] == pytest.approx((po - pe) / (1 - pe))
    assert m["dice"] == pytest.approx((4 / 6 + 6 / 8) / 2)


def test_areas_are_accumulated_over_the_set_not_averaged_per_image():
    acc = AreaAccumulator(2)
    acc.update(np.array([[1, 1]]), np.array([[1, 1]]))          # perfect, tiny
    acc.update(np.zeros((10, 10)), np.ones((10, 10)))           # all wrong, large
    m = acc.compute()
    assert m["class_iou"][1] == pytest.approx(2 / 102)
    assert m["n_images"] == 2


def test_empty_class_scores_zero():
    m = metrics_from_areas([5, 0], [5, 0], [5, 0])
    assert m["class_iou"] == [1.0, 0.0] and m["miou"] == 0.5 and m["class_dice"] == [1.0, 0.0]
    assert m["kappa"] == 0.0  # pe == 1


def test_all_ignored_gives_zeros():
    m = AreaAccumulator(2)
    m.update(np.ones((3, 3)), np.full((3, 3), 255))
    r = m.compute()
    assert r["miou"] == 0 and r["acc"] == 0 and r["kappa"] == 0


def test_dice_loss_matches_paddleseg_definition():
    """PaddleSeg 2.8 DiceLoss: per image and class, (2I + 1) / (P + G + 1 + 1e-8), mean over images, then classes."""
    torch.manual_seed(0)
    logits = torch.randn(3, 2, 4, 5)
    labels = torch.randint(0, 2, (3, 4, 5))
    labels[0, 0, :3] = 255
    p = torch.softmax(logits, 1)
    total = 0.0
    for c in range(2):
        per_image = []
        for n in range(3):
            valid = (labels[n] != 255).float()
            g = (labels[n] == c).float() * valid
            pc = p[n, c] * valid
            per_image.append(1 - (2 * (pc * g).sum() + 1) / (pc.sum() + g.sum() + 1 + 1e-8))
        total += sum(per_image) / 3
    expected = total / 2
    assert float(dice_loss(logits, labels)) == pytest.approx(float(expected), abs=1e-6)
    perfect = torch.tensor([[[[50.0, -50.0]], [[-50.0, 50.0]]]])
    assert float(dice_loss(perfect, torch.tensor([[[0, 1]]]))) < 0.2  # smooth=1 keeps it above 0
    assert float(ce_loss(perfect, torch.tensor([[[0, 1]]]))) < 1e-6


def test_device_areas_of_a_batch_equal_the_numpy_areas_image_by_image():
    from nanoseg.evaluation.metrics import calculate_area_torch

    rng = np.random.default_rng(0)
    label = rng.integers(0, 3, (3, 17, 23)).astype(np.uint8)
    label[rng.random(label.shape) < 0.2] = 255           # ignored pixels
    pred = rng.integers(0, 3, label.shape)
    want = np.sum([np.stack(calculate_area(p, lab, 3)) for p, lab in zip(pred, label)], axis=0)
    got = calculate_area_torch(torch.from_numpy(pred), torch.from_numpy(label), 3)
    assert got.dtype == torch.int64 and got.tolist() == want.tolist()
    # a label outside the classes counts in the prediction area only, as in PaddleSeg
    i, p, lab = calculate_area(np.array([0, 1]), np.array([2, 1]), 2)
    t = calculate_area_torch(torch.tensor([0, 1]), torch.tensor([2, 1]), 2)
    assert t.tolist() == [i.tolist(), p.tolist(), lab.tolist()]
