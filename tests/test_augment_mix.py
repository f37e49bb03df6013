import albumentations as A
import cv2
import numpy as np
import pytest

from nanoseg import io
from nanoseg.data.augment import JointTransform, augment_pool
from nanoseg.data.mix import check_disjoint, mix, split
from nanoseg.errors import NanosegError

from .conftest import run_cli


def test_augmentation_keeps_image_and_mask_aligned():
    rng = np.random.default_rng(0)
    mask = np.zeros((96, 96), np.uint8)
    cv2.circle(mask, (40, 50), 20, 1, 5)
    cv2.rectangle(mask, (60, 10), (80, 30), 1, -1)
    image = (mask * 200 + 20).astype(np.uint8)
    t = JointTransform(strength=1.0)
    for k in range(12):
        img2, m2 = t(image, mask, np.random.default_rng([1, k]))
        assert img2.shape == image.shape and set(np.unique(m2)) <= {0, 1, 255}
        valid = m2 != 255
        bright = img2 > 110
        agree = (bright == (m2 == 1))[valid].mean()
        assert agree > 0.97, (k, agree)
    # same rng seed -> same result
    a = t(image, mask, np.random.default_rng([5, 5]))
    b = t(image, mask, np.random.default_rng([5, 5]))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    del rng


def test_known_affine_moves_mask_where_expected():
    mask = np.zeros((64, 64), np.uint8)
    mask[20:30, 10:20] = 1
    shift = A.Compose([A.Affine(translate_px={"x": 7, "y": -5}, mask_interpolation=cv2.INTER_NEAREST,
                                fill_mask=255, p=1.0)])
    out = shift(image=mask * 255, mask=mask)["mask"]
    ys, xs = np.nonzero(out == 1)
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (15, 24, 17, 26)


def test_augment_pool_keeps_groups(tiny_sd, tmp_path):
    rows = augment_pool(tiny_sd, tmp_path / "pool", n=20, seed=1, progress=False)
    assert len(rows) == 20
    originals = {r["id"]: r["group"] for r in io.read_csv(tiny_sd / "manifest.csv")}
    for r in rows:
        assert r["group"] == originals[r["original_id"]]
    assert sum(r["augmentation"] == "original" for r in rows) == 8
    again = augment_pool(tiny_sd, tmp_path / "pool2", n=20, seed=1, progress=False)
    for r in again:
        assert (tmp_path / "pool" / "images" / f"{r['id']}.png").read_bytes() == \
            (tmp_path / "pool2" / "images" / f"{r['id']}.png").read_bytes()


def test_mix_counts_origin_and_reproducibility(tiny_sd, tiny_simple, tmp_path):
    rows = mix(tiny_sd, tiny_simple, n_ad=3, n_sd=4, seed=2, out=tmp_path / "m1")
    assert sum(r["source"] == "ad" for r in rows) == 3 and sum(r["source"] == "sd" for r in rows) == 4
    assert len({r["id"] for r in rows}) == 7  # without replacement
    again = mix(tiny_sd, tiny_simple, n_ad=3, n_sd=4, seed=2, out=tmp_path / "m2")
    assert [r["id"] for r in rows] == [r["id"] for r in again]
    other = mix(tiny_sd, tiny_simple, n_ad=3, n_sd=4, seed=3, out=tmp_path / "m3")
    assert [r["id"] for r in rows] != [r["id"] for r in other]
    m = io.read_csv(tmp_path / "m1" / "manifest.csv")
    assert set(m[0]) >= {"id", "source", "group", "original_id"}
    with pytest.raises(NanosegError, match="pool holds 8"):
        mix(tiny_sd, None, n_ad=9, n_sd=0, seed=0, out=tmp_path / "m4")
    code, _, err = run_cli("mix", "--ad", tiny_sd, "--n-ad", "99", "--out", tmp_path / "m5")
    assert code == 2 and "--n-ad" in err and not (tmp_path / "m5").exists()


def test_group_split_never_leaks(tiny_sd, tmp_path):
    pool = tmp_path / "pool"
    augment_pool(tiny_sd, pool, n=40, seed=0, progress=False)
    tr, te = split(pool, tmp_path / "train", tmp_path / "test", test_fraction=0.25, seed=4)
    assert len(tr) + len(te) == 40 and te
    assert not ({r["group"] for r in tr} & {r["group"] for r in te})
    assert check_disjoint(tmp_path / "train", tmp_path / "test") == set()
    code, out, _ = run_cli("split", tmp_path / "train", "--check", tmp_path / "test")
    assert code == 0 and "share no group" in out
    # a folder checked against itself shares everything
    code, _, err = run_cli("split", tmp_path / "train", "--check", pool)
    assert code == 2 and "shares" in err
