"""Training the book's own classifiers: deterministic, correct scores, clear errors, offline data sets."""

import pytest
import torch

import igospp.studies.datasets as ds
import igospp.studies.training as tr


def toy(seed=0, n=96):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 8, 8, generator=g)
    y = (x[:, :, :4].mean((1, 2, 3)) > x[:, :, 4:].mean((1, 2, 3))).long()
    return x, y


def trained(seed):
    g = torch.Generator().manual_seed(seed)
    model = tr.init_parameters(tr.SmallCNN(1, 2, width=8), g)
    history = tr.train_classifier(model, *toy(), epochs=3, batch_size=16, generator=g)
    return model, history


def test_training_is_deterministic_given_the_generator():
    (a, ha), (b, hb), (c, _) = trained(0), trained(0), trained(1)
    assert ha.loss == hb.loss
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters(), strict=True))


def test_training_learns_a_separable_problem_and_reports_test_accuracy():
    g = torch.Generator().manual_seed(0)
    model = tr.init_parameters(tr.SmallCNN(1, 2, width=16), g)
    x, y = toy(n=256)
    history = tr.train_classifier(model, x, y, epochs=40, lr=3e-3, batch_size=32, generator=g, test=toy(5, 128))
    assert history.loss[-1] < history.loss[0]
    assert history.accuracy[-1] > 0.9 and history.test_accuracy[-1] > 0.75 and not model.training


def test_class_scores_agree_with_scikit_learn():
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    g = torch.Generator().manual_seed(0)
    y, p = torch.randint(0, 3, (200,), generator=g), torch.randint(0, 3, (200,), generator=g)
    ours = tr.class_scores(p, y, positive=2)
    prec, rec, f1, _ = precision_recall_fscore_support(y, p, labels=[2], zero_division=0)
    assert (ours.accuracy, ours.precision, ours.recall, ours.f1) == pytest.approx(
        (accuracy_score(y, p), prec[0], rec[0], f1[0]))
    assert tr.class_scores(torch.zeros(4, dtype=torch.long), torch.ones(4, dtype=torch.long), 2).f1 == 0.0


def test_bad_training_input_is_named():
    model, (x, y) = tr.SmallCNN(1, 2, width=4), toy()
    with pytest.raises(TypeError, match="labels must be a 1-D integer tensor"):
        tr.train_classifier(model, x, y.float())
    with pytest.raises(ValueError, match="labels has 95 entries but there are 96 images"):
        tr.train_classifier(model, x, y[:-1])
    with pytest.raises(ValueError, match="epochs must be a positive integer"):
        tr.train_classifier(model, x, y, epochs=0)
    with pytest.raises(ValueError, match="in_channels must be a positive integer"):
        tr.SmallCNN(0)


def test_one_channel_resnet18_is_built_offline():
    model = tr.resnet18_classifier(1, 3)
    tr.init_parameters(model, torch.Generator().manual_seed(0))
    assert model.eval()(torch.zeros(2, 1, 64, 64)).shape == (2, 3)


def test_digits_are_bundled_and_fashion_mnist_fails_clearly_when_absent(tmp_path):
    x, y, names = ds.digits(32)
    assert x.shape == (1797, 1, 32, 32) and 0 <= x.min() and x.max() <= 1 and names == [str(i) for i in range(10)]
    assert torch.bincount(y).min() > 170
    with pytest.raises(FileNotFoundError, match="Fashion-MNIST was not found under data_dir=.*download=True"):
        ds.fashion_mnist(tmp_path)
    with pytest.raises(ValueError, match=r"^size must be an integer >= 8, got 4\."):
        ds.digits(4)
    train, test = ds.split(100, 0.25, torch.Generator().manual_seed(0))
    assert len(test) == 25 and set(train.tolist()).isdisjoint(test.tolist())
