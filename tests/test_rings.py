"""Ring rules: round, closed, empty, confident loops are rings; look-alikes are rejected, each by its rule."""

from __future__ import annotations

import cv2
import numpy as np

from nanoseg.inference.rings import RingRules, find_rings, particle_map


def _band(shape=(200, 200)):
    return np.zeros(shape, np.uint8)


def test_a_round_closed_loop_is_a_ring_and_an_arc_is_not():
    m = _band()
    cv2.circle(m, (60, 60), 35, 1, 6)
    cv2.ellipse(m, (150, 150), (35, 35), 0, 0, 120, 1, 6)  # a third of a circle
    rings, rejected = find_rings(m)
    assert len(rings) == 1 and abs(rings[0]["centre_x_px"] - 60) < 2
    assert [r["rejected_by"] for r in rejected] == ["coverage"]


def test_an_elongated_loop_is_rejected_for_its_shape():
    m = _band()
    cv2.ellipse(m, (100, 100), (80, 30), 20, 0, 360, 1, 5)
    rings, rejected = find_rings(m)
    assert not rings and rejected[0]["rejected_by"] == "circularity"


def test_a_kinked_loop_is_rejected_by_its_radial_spread():
    m = _band()
    star = np.array([[100 + (85 if k % 2 == 0 else 22) * np.cos(k * np.pi / 4),
                      100 + (85 if k % 2 == 0 else 22) * np.sin(k * np.pi / 4)] for k in range(8)], np.int32)
    cv2.polylines(m, [star], True, 1, 5)
    rings, rejected = find_rings(m)
    assert not rings and rejected[0]["rejected_by"] == "radial_cv"


def test_a_loop_around_a_crowded_interior_is_rejected_and_an_empty_one_kept():
    img = np.full((200, 200), 40, np.uint8)
    m = _band()
    for cx in (50, 150):
        cv2.circle(m, (cx, 100), 35, 1, 6)
        cv2.circle(img, (cx, 100), 35, 200, 6)
    rng = np.random.default_rng(0)
    for _ in range(40):  # particles inside the right-hand loop only
        x, y = rng.uniform(130, 170), rng.uniform(80, 120)
        cv2.circle(img, (int(x), int(y)), 3, 220, -1)
    assert particle_map(img).mean() > 0.02
    rings, rejected = find_rings(m, image=img)
    assert len(rings) == 1 and rings[0]["centre_x_px"] < 100
    assert rejected[0]["rejected_by"] == "interior_fill" and rejected[0]["interior_fill"] > 0.12


def test_a_half_hearted_band_is_rejected_for_low_confidence():
    m = _band()
    cv2.circle(m, (100, 100), 40, 1, 6)
    conf = np.where(m == 1, 0.52, 0.1).astype(np.float32)
    rings, rejected = find_rings(m, confidence=conf)
    assert not rings and rejected[0]["rejected_by"] == "confidence"
    rings, _ = find_rings(m, confidence=conf, rules=RingRules(min_confidence=0.5))
    assert len(rings) == 1


def test_size_rules_follow_the_working_scale():
    m = _band()
    cv2.circle(m, (100, 100), 12, 1, 3)  # radius 12 px: a ring at zoom 1 (min 8 px), a clump at zoom 0.5
    assert len(find_rings(m)[0]) == 1
    assert len(find_rings(m, zoom=2.0)[0]) == 1
    assert find_rings(m, zoom=0.5)[0] == []
