"""The synthetic chest radiographs: seeded, the shortcut planted where it should be and nowhere else."""

import numpy as np
import pytest
import torch

import igospp.studies.xray as xray


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
    with pytest.raises(ValueError, match=r"^size must be an integer >= 32, got 16\."):
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



def test_covidx_reads_16_bit_films_scaled_not_white(tmp_path):
    """X-ray PNGs are often 16-bit (PIL mode I;16): a value v is v / 257 in 8 bits, not clipped to 255."""
    from PIL import Image

    (tmp_path / "train").mkdir()
    film = np.full((40, 40), 257 * 100, dtype=np.uint16)          # 100 in 8 bits
    Image.fromarray(film).save(tmp_path / "train" / "deep.png")
    assert Image.open(tmp_path / "train" / "deep.png").mode.startswith("I;16")
    (tmp_path / "train.txt").write_text("0 deep.png normal source\n")
    images, _, _ = xray.covidx(tmp_path, "train", size=32)
    assert images.mean().item() == pytest.approx(100 / 255, abs=1e-6)
