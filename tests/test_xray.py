"""The synthetic chest radiographs: seeded, the shortcut planted where it should be and nowhere else."""

import numpy as np
import pytest
import torch

import igospp.xray as xray


def draw(n, split="train", seed=0, size=32):
    return xray.synthetic_xrays(n, size=size, split=split, generator=torch.Generator().manual_seed(seed))


def test_a_seed_fixes_the_data_set():
    a, b, c = draw(8), draw(8), draw(8, seed=1)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels) and a.boxes == b.boxes
    assert not torch.equal(a.images, c.images)
    assert a.images.shape == (8, 1, 32, 32) and a.images.min() >= 0 and a.images.max() <= 1


def test_markers_follow_covid_in_training_and_nothing_in_test():
    train, test = draw(600), draw(600, "test", seed=1)
    covid = train.labels == xray.COVID
    assert train.has_text[covid].float().mean() > 0.7 and train.has_text[~covid].float().mean() < 0.1
    rates = [test.has_text[test.labels == c].float().mean().item() for c in range(3)]
    assert max(rates) - min(rates) < 0.15 and 0.2 < sum(rates) / 3 < 0.4
    assert not draw(50, "clean").has_text.any()
    assert set(train.labels.tolist()) == {0, 1, 2}


def test_boxes_hold_the_printed_text():
    data = draw(40, size=96)
    for img, has, boxes in zip(data.images, data.has_text, data.boxes, strict=True):
        assert bool(has) == bool(boxes)
        for x0, y0, x1, y1 in boxes:
            assert 0 <= x0 < x1 <= 96 and 0 <= y0 < y1 <= 96
            assert img[0, y0:y1, x0:x1].max() > 0.85            # white glyphs


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="size must be an integer >= 32"):
        xray.synthetic_xrays(2, size=16)
    with pytest.raises(ValueError, match="split must be 'train', 'test' or 'clean'"):
        xray.synthetic_xrays(2, split="val")
    with pytest.raises(ValueError, match="covid_text_rate must be in"):
        xray.synthetic_xrays(2, covid_text_rate=1.5)
    with pytest.raises(ValueError, match="class_weights must be three"):
        xray.synthetic_xrays(2, class_weights=(1, 1))


def test_covidx_layout_is_read_with_its_labels_and_errors_name_the_line(tmp_path):
    from PIL import Image

    (tmp_path / "train").mkdir()
    lines = []
    for i, label in enumerate(["normal", "pneumonia", "COVID-19", "COVID-19"]):
        Image.fromarray(np.full((50, 40, 3), 60 * i, dtype=np.uint8)).save(tmp_path / "train" / f"p{i}.png")
        lines.append(f"{i} p{i}.png {label} source")
    (tmp_path / "train.txt").write_text("\n".join(lines) + "\n")
    images, labels, names = xray.covidx(tmp_path, "train", size=32)
    assert images.shape == (4, 1, 32, 32) and labels.tolist() == [0, 1, 2, 2] and names[0] == "p0.png"
    assert images[2].mean().item() == pytest.approx(120 / 255, abs=1e-6)
    sub = xray.covidx(tmp_path, "train", size=32, n=2, generator=torch.Generator().manual_seed(0))
    assert sub[0].shape[0] == 2
    (tmp_path / "bad.txt").write_text("0 p0.png positive\n")
    with pytest.raises(ValueError, match="bad.txt, line 1: unknown label 'positive'"):
        xray.covidx(tmp_path, "train", split_file=tmp_path / "bad.txt")
    with pytest.raises(FileNotFoundError, match="no split file for split='test'"):
        xray.covidx(tmp_path, "test")


@pytest.mark.parametrize("shape", [(1, 1, 4, 4), (3, 1, 7, 5)])
@pytest.mark.parametrize("fraction", [0.06, 0.12, 0.5, 1.0])
def test_top_fraction_keeps_exactly_the_highest_pixels(shape, fraction):
    sal = torch.rand(shape, generator=torch.Generator().manual_seed(1))
    keep = xray.top_fraction(sal, fraction)
    k = max(1, round(fraction * shape[2] * shape[3]))
    assert keep.shape == sal.shape and (keep.flatten(1).sum(1) == k).all()
    for b in range(shape[0]):                                 # every kept pixel outranks every dropped one
        kept, dropped = sal[b][keep[b] == 1], sal[b][keep[b] == 0]
        assert dropped.numel() == 0 or kept.min() > dropped.max()


def test_top_fraction_rejects_bad_input():
    with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\]"):
        xray.top_fraction(torch.rand(1, 1, 4, 4), 0.0)
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        xray.top_fraction(torch.rand(4, 4), 0.5)
