"""Sanity checks (Adebayo et al.): cascading randomization and label permutation (the similarity
measures they use are tested in test_metrics.py)."""

import pytest
import torch

import igospp
import igospp.studies.sanity as sanity
from igospp.methods import GradCAM

from .conftest import PatchModel, SmoothModel


def test_randomize_parameters_keeps_each_tensors_scale_and_is_seeded():
    layer = torch.nn.Linear(50, 40)
    before = [p.detach().clone() for p in layer.parameters()]
    sanity.randomize_parameters(layer, torch.Generator().manual_seed(1))
    after = [p.detach().clone() for p in layer.parameters()]
    for b, a in zip(before, after, strict=True):
        assert not torch.allclose(a, b)
        n = a.numel()                                    # tolerances: 4 sampling standard errors
        assert abs(a.mean() - b.mean()) < 4 * b.std() / n ** 0.5 and abs(a.std() / b.std() - 1) < 4 / (2 * n) ** 0.5
    again = torch.nn.Linear(50, 40)
    with torch.no_grad():
        for p, b in zip(again.parameters(), before, strict=True):
            p.copy_(b)
    sanity.randomize_parameters(again, torch.Generator().manual_seed(1))
    assert all(torch.equal(p, a) for p, a in zip(again.parameters(), after, strict=True))


def test_cascading_randomization_goes_from_the_output_down_and_leaves_the_model_alone():
    model = SmoothModel()
    original = {k: v.clone() for k, v in model.state_dict().items()}
    steps = []
    for name, randomized in sanity.cascading_randomization(model, torch.Generator().manual_seed(0)):
        changed = {k.split(".")[0] for k, v in randomized.state_dict().items() if not torch.equal(v, original[k])}
        steps.append((name, changed))
    assert steps == [("head", {"head"}), ("conv", {"head", "conv"})]
    assert all(torch.equal(v, original[k]) for k, v in model.state_dict().items())
    names = [n for n, _ in sanity.cascading_randomization(model, layers=["conv"])]
    assert names == ["conv"]


def test_cascading_randomization_rejects_unknown_layers_and_parameterless_models():
    with pytest.raises(ValueError, match="not modules of the model"):
        list(sanity.cascading_randomization(SmoothModel(), layers=["fc9"]))
    with pytest.raises(ValueError, match="no parameters"):
        list(sanity.cascading_randomization(PatchModel(slice(0, 2), slice(0, 2))))


def test_random_labels_is_a_seeded_permutation():
    y = torch.arange(100) % 7
    a = sanity.random_labels(y, torch.Generator().manual_seed(3))
    b = sanity.random_labels(y, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and torch.equal(a.sort().values, y.sort().values) and (a != y).float().mean() > 0.5


def test_model_randomization_test_compares_every_step_with_the_trained_maps():
    model = SmoothModel(dtype=torch.float32)
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    test = sanity.model_randomization_test(model, x, GradCAM("conv"), generator=torch.Generator().manual_seed(0))
    assert test.layers == ["trained", "head", "conv"]
    assert test.rank_correlation.shape == test.ssim.shape == test.score.shape == (3, 2)
    assert torch.allclose(test.rank_correlation[0], torch.ones(2, dtype=torch.float64))
    assert torch.allclose(test.ssim[0], torch.ones(2, dtype=torch.float64))
    assert torch.equal(test.target, model(x).argmax(1))
    # The trained model's score on its own top class is the largest softmax entry.
    assert torch.allclose(test.score[0], model(x).softmax(1).max(1).values, atol=1e-6)
    assert test.saliency[0].shape == (2, 1, 16, 16)          # 4 x 4 Grad-CAM maps upsampled for the SSIM window


def test_model_randomization_changes_igospp_masks():
    """iGOS++ explains the model: once the head is randomized its mask no longer points at the patch."""
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 1, 1), torch.nn.Flatten(), torch.nn.Linear(256, 2)).eval()
    patch = torch.zeros(16, 16)
    patch[2:6, 9:13] = 1.0
    with torch.no_grad():
        model[0].weight.fill_(1 / 3)
        model[0].bias.zero_()
        model[2].weight.copy_(torch.stack([patch.flatten(), -patch.flatten()]) * 0.1)
        model[2].bias.zero_()
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 0.3
    x[..., 2:6, 9:13] = 1.0
    cfg = igospp.Config.igospp(resolution=4, iterations=10, ig_steps=5, noise_std=0.0)
    test = sanity.model_randomization_test(model, x, igospp.methods.Optimized(cfg, baseline=0.0), target=0,
                                           generator=torch.Generator().manual_seed(0))
    trained = test.saliency[0][0, 0]
    assert trained[2:6, 9:13].mean() > 2 * trained.mean()          # the trained model's map finds the patch
    # As the paper observes, the randomized model's map is flat or unrelated: SSIM drops, and the
    # rank correlation is low or undefined (NaN for a constant map).
    assert test.ssim[1, 0] < 0.5 and not test.rank_correlation[1, 0] >= 0.5


def test_steps_may_group_layers_and_name_whole_blocks():
    model = SmoothModel()
    original = {k: v.clone() for k, v in model.state_dict().items()}
    (name, randomized), = list(sanity.cascading_randomization(model, layers=[["head", "conv"]]))
    assert name == "head + conv"
    assert all(not torch.equal(v, original[k]) for k, v in randomized.state_dict().items())
    net = torch.nn.Sequential(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Conv2d(2, 2, 1)),
                              torch.nn.Flatten(), torch.nn.Linear(18, 2))
    before = [p.clone() for p in net.parameters()]
    (_, block), = list(sanity.cascading_randomization(net, layers=["0"]))
    changed = [not torch.equal(p, b) for p, b in zip(block.parameters(), before, strict=True)]
    assert changed == [True, True, True, True, False, False]      # both convolutions, not the linear layer
