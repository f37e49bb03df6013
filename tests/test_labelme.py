import numpy as np

from nanoseg import labelme


def shape(points, stype, label="ring"):
    return {"label": label, "points": points, "shape_type": stype}


def test_rectangle_matches_hand_computed_mask():
    m = labelme.rasterize({"shapes": [shape([[2, 3], [5, 6]], "rectangle")]}, (10, 10))
    expected = np.zeros((10, 10), np.uint8)
    expected[3:7, 2:6] = 1  # PIL includes both corners
    assert np.array_equal(m, expected)


def test_polygon_matches_hand_computed_mask():
    m = labelme.rasterize({"shapes": [shape([[1, 1], [6, 1], [6, 4], [1, 4]], "polygon")]}, (8, 8))
    expected = np.zeros((8, 8), np.uint8)
    expected[1:5, 1:7] = 1
    assert np.array_equal(m, expected)


def test_circle_matches_hand_computed_disc():
    m = labelme.rasterize({"shapes": [shape([[10, 10], [10, 14]], "circle")]}, (21, 21))
    yy, xx = np.mgrid[:21, :21]
    # labelme draws the circle through PIL's ellipse in the box centre +- 4: for this radius that is
    # exactly the pixels with squared distance <= 18 (the rim points (10, 14) etc. included)
    assert np.array_equal(m.astype(bool), (xx - 10) ** 2 + (yy - 10) ** 2 <= 18)


def test_line_and_linestrip_use_the_configured_width():
    doc = {"shapes": [shape([[2, 10], [17, 10]], "line")]}
    thin = labelme.rasterize(doc, (20, 20), line_width_px=1)
    assert np.array_equal(np.nonzero(thin)[0], np.full(16, 10)) and thin.sum() == 16
    wide = labelme.rasterize(doc, (20, 20), line_width_px=5)
    assert set(np.nonzero(wide.any(axis=1))[0]) == {8, 9, 10, 11, 12}
    strip = labelme.rasterize({"shapes": [shape([[2, 2], [2, 12], [12, 12]], "linestrip")]}, (20, 20),
                              line_width_px=1)
    assert strip[2:13, 2].all() and strip[12, 2:13].all() and strip.sum() == 21


def test_outer_ring_then_inner_background_makes_an_annulus():
    doc = {"shapes": [shape([[20, 20], [20, 30]], "circle"), shape([[20, 20], [20, 25]], "circle", "_background_")]}
    m = labelme.rasterize(doc, (41, 41))
    assert m[20, 20] == 0 and m[20, 28] == 1 and m[20, 20 + 10] == 1 and m[20, 23] == 0
    reversed_doc = {"shapes": doc["shapes"][::-1]}
    assert labelme.rasterize(reversed_doc, (41, 41))[20, 20] == 1  # order matters, as in labelme


def test_points_and_unknown_labels_are_skipped_with_warnings():
    warns = []
    doc = {"shapes": [shape([[3, 3]], "point"), shape([[0, 0], [4, 4]], "rectangle", "dust")]}
    m = labelme.rasterize(doc, (8, 8), warn=warns.append)
    assert m.sum() == 0
    assert any("point" in w for w in warns) and any("dust" in w for w in warns)


def test_ignore_label_paints_the_ignore_index_and_background_cuts_its_hole():
    doc = {"shapes": [shape([[20, 20], [20, 30]], "circle", "ignore"),
                      shape([[20, 20], [20, 25]], "circle", "_background_")]}
    m = labelme.rasterize(doc, (41, 41))
    assert m[20, 28] == 255 and m[20, 20] == 0 and m[0, 0] == 0
    assert set(np.unique(m).tolist()) == {0, 255}


def test_structure_counts_count_a_group_once_and_skip_background_holes():
    doc = {"shapes": [dict(shape([[0, 0], [4, 4]], "rectangle"), group_id=1),
                      dict(shape([[6, 6], [8, 8]], "rectangle"), group_id=1),
                      shape([[1, 1], [2, 2]], "rectangle", "_background_"),
                      shape([[0, 0], [1, 1]], "rectangle", "ignore"),
                      shape([[2, 2], [3, 3]], "rectangle", "ignore")]}
    assert labelme.structure_counts(doc) == {"ring": 1, "ignore": 2}


def test_custom_label_table():
    doc = {"shapes": [shape([[0, 0], [3, 3]], "rectangle", "Loop")]}
    assert labelme.rasterize(doc, (5, 5), {"loop": 1}).sum() == 16


def test_mask_to_shapes_round_trips_nested_rings_and_specks():
    import cv2

    mask = np.zeros((120, 120), np.uint8)
    cv2.circle(mask, (60, 60), 45, 1, 6)
    cv2.circle(mask, (60, 60), 20, 1, 4)
    cv2.circle(mask, (60, 60), 3, 1, -1)
    mask[5, 5] = 1
    mask[110, 3:9] = 1
    shapes = labelme.mask_to_shapes(mask)
    assert {s["label"] for s in shapes} == {"ring", "_background_"}
    assert np.array_equal(labelme.rasterize({"shapes": shapes}, mask.shape), mask)


def test_paint_over_paints_an_annulus_into_a_mask_and_keeps_what_its_shapes_do_not_cover():
    def square(c, r):
        return np.array([[c - r, c - r], [c + r, c - r], [c + r, c + r], [c - r, c + r]], float)
    mask = np.zeros((40, 40), np.uint8)
    mask[0, 0] = 1  # painted before: outside the shapes, it stays
    assert labelme.paint_over(mask, labelme.ring_shapes(square(20, 15), square(20, 10)))
    assert labelme.paint_over(mask, labelme.ring_shapes(square(20, 6), square(20, 3)))  # a ring in its hole
    assert mask[0, 0] == 1 and mask[20, 7] == 1 and mask[20, 12] == 0 and mask[20, 15] == 1 and mask[20, 20] == 0
    assert np.array_equal(mask, mask.T)  # the squares are symmetric: so is the painting
    assert not labelme.paint_over(mask, labelme.ring_shapes(square(100, 5), square(100, 2)))  # off the mask
