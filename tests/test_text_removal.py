"""Text removal: only the detected boxes change, no text means no change, CRAFT finds printed markers offline."""

import numpy as np
import pytest
import torch

import igospp.studies.text_removal as tr
import igospp.studies.xray as xray


def test_only_the_padded_boxes_are_inpainted_and_types_round_trip():
    img = np.random.default_rng(0).uniform(0.2, 0.4, (40, 40))
    img[5:12, 6:20] = 1.0
    out = tr.remove_text(img, detector=lambda u8: [(6, 5, 20, 12)], radius=4, pad=1)
    assert out.boxes == [(6, 5, 20, 12)] and out.mask[4:13, 5:21].all() and out.mask.sum() == 9 * 16
    assert np.array_equal(out.image[~out.mask], img[~out.mask]) and out.image[out.mask].max() < 0.6
    t = torch.from_numpy(img).float().unsqueeze(0)
    out_t = tr.remove_text(t, detector=lambda u8: [(6, 5, 20, 12)])
    assert isinstance(out_t.image, torch.Tensor) and out_t.image.shape == (1, 40, 40)
    u8 = (img * 255).astype(np.uint8)
    assert tr.remove_text(u8, detector=lambda u: [(6, 5, 20, 12)]).image.dtype == np.uint8


def test_an_image_without_text_is_returned_unchanged():
    img = np.random.default_rng(1).uniform(0, 1, (24, 24))
    out = tr.remove_text(img, detector=lambda u8: [])
    assert out.boxes == [] and not out.mask.any() and np.array_equal(out.image, img)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match=r"one grey image of shape \(H, W\)"):
        tr.remove_text(np.zeros((3, 8, 8)), detector=lambda u: [])
    with pytest.raises(ValueError, match=r"finite values in \[0, 1\]"):
        tr.remove_text(np.full((8, 8), 2.0), detector=lambda u: [])
    with pytest.raises(TypeError, match="uint8 or floating point"):
        tr.remove_text(np.zeros((8, 8), dtype=np.int32), detector=lambda u: [])
    with pytest.raises(ValueError, match="radius must be a positive integer"):
        tr.remove_text(np.zeros((8, 8)), detector=lambda u: [], radius=0)
    with pytest.raises(ValueError, match=r"confidence must be in \(0, 1\)"):
        tr.easyocr_detector(confidence=1.5)


@pytest.fixture(scope="module")
def craft():
    return tr.easyocr_detector()


def _overlap(a, b):
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    return ix * iy / ((b[2] - b[0]) * (b[3] - b[1]))


def test_craft_finds_printed_markers_offline_and_nothing_on_clean_films(craft):
    data = xray.synthetic_xrays(8, size=192, split="test", test_text_rate=0.5,
                                generator=torch.Generator().manual_seed(3))
    checked = 0
    for img, truth in zip(data.images, data.boxes, strict=True):
        out = tr.remove_text(img, craft)
        if truth and truth[0][3] - truth[0][1] >= 10:       # glyphs of 10 px and more are found
            assert any(_overlap(found, truth[0]) > 0.8 for found in out.boxes), (truth, out.boxes)
            x0, y0, x1, y1 = truth[0]
            assert out.image[0, y0:y1, x0:x1].max() < img[0, y0:y1, x0:x1].max()
            checked += 1
        elif not truth:
            assert out.boxes == [] and torch.equal(out.image, img)
    assert checked >= 2


def test_boxes_larger_than_max_box_fraction_are_ignored():
    img = np.full((20, 20), 0.3)
    img[2:5, 2:6] = 1.0
    boxes = [(2, 2, 6, 5), (0, 0, 20, 15)]                  # a label, and a "text block" over 75 % of the film
    kept = tr.remove_text(img, detector=lambda u: boxes, radius=2, pad=0, max_box_fraction=0.1)
    assert kept.boxes == [(2, 2, 6, 5)] and kept.mask.sum() == 12
    assert tr.remove_text(img, detector=lambda u: boxes, radius=2, pad=0).mask.sum() == 300
    with pytest.raises(ValueError, match=r"max_box_fraction must be in \(0, 1\]"):
        tr.remove_text(img, detector=lambda u: boxes, max_box_fraction=0)


def test_boxes_mask_is_clipped_and_padded():
    m = tr.boxes_mask([(-3, 1, 2, 2), (4, 4, 9, 9)], (5, 5), pad=1)
    assert m.shape == (5, 5) and m.dtype == bool
    assert m[0:3, 0:3].all() and m[3:, 3:].all() and m.sum() == 9 + 4
    with pytest.raises(ValueError, match=r"each box must be \(x0, y0, x1, y1\)"):
        tr.boxes_mask([(1, 2, 3)], (5, 5))


def test_clean_images_matches_remove_text_image_by_image():
    x = torch.rand(3, 1, 16, 16, generator=torch.Generator().manual_seed(0)) * 0.5
    x[1, 0, 3:7, 3:9] = 1.0
    detector = lambda u8: [(3, 3, 9, 7)] if u8.max() > 200 else []
    out = tr.clean_images(x, detector, radius=3)
    assert out.has_text.tolist() == [False, True, False] and out.masks.shape == (3, 1, 16, 16)
    assert torch.equal(out.images[0], x[0]) and torch.equal(out.images[2], x[2])
    assert torch.equal(out.images[1], tr.remove_text(x[1], detector, radius=3).image)
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\) tensor of grey images"):
        tr.clean_images(torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1)), detector)
