"""Sanity checks (Adebayo et al.): cascading randomization, label permutation and the similarity measures."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import igospp
import igospp.sanity as sanity
from igospp.baselines import GradCAM

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


def test_rank_correlation_of_known_pairs():
    a = torch.arange(16.0).reshape(1, 1, 4, 4)
    assert sanity.rank_correlation(a, torch.exp(a)).item() == pytest.approx(1.0)
    assert sanity.rank_correlation(a, -a).item() == pytest.approx(-1.0)
    assert sanity.rank_correlation(a, -a, absolute=True).item() == pytest.approx(1.0)
    assert torch.isnan(sanity.rank_correlation(a, torch.ones_like(a))).all()


@given(st.integers(0, 10_000), st.integers(1, 3))
def test_rank_correlation_matches_scipy_with_ties(seed, batch):
    from scipy.stats import spearmanr

    g = torch.Generator().manual_seed(seed)
    a = torch.randint(0, 5, (batch, 1, 6, 5), generator=g).double()
    b = a + torch.randint(0, 3, (batch, 1, 6, 5), generator=g)
    ours = sanity.rank_correlation(a, b)
    for i in range(batch):
        ref = spearmanr(a[i].flatten(), b[i].flatten()).statistic
        assert ours[i].item() == pytest.approx(ref, nan_ok=True)


@given(st.integers(0, 10_000))
def test_ssim_matches_scikit_image(seed):
    from skimage.metrics import structural_similarity

    g = torch.Generator().manual_seed(seed)
    a = torch.rand(2, 1, 20, 17, generator=g, dtype=torch.float64)
    b = (a + 0.3 * torch.rand(2, 1, 20, 17, generator=g, dtype=torch.float64)).clamp(0, 1)
    ours = sanity.ssim(a, b, normalize=False)
    for i in range(2):
        ref = structural_similarity(a[i, 0].numpy(), b[i, 0].numpy(), gaussian_weights=True, sigma=1.5,
                                    use_sample_covariance=False, data_range=1.0)
        assert ours[i].item() == pytest.approx(ref, abs=1e-10)


def test_ssim_is_one_on_identical_maps_and_invariant_to_scale_when_normalised():
    a = torch.rand(1, 1, 12, 12, generator=torch.Generator().manual_seed(0))
    assert sanity.ssim(a, a).item() == pytest.approx(1.0)
    assert sanity.ssim(a, 5 * a + 2).item() == pytest.approx(1.0)
    assert sanity.ssim(a, 1 - a).item() < 0


def test_similarity_inputs_are_checked():
    a = torch.rand(1, 1, 12, 12)
    with pytest.raises(ValueError, match="same shape.*upsample"):
        sanity.ssim(a, torch.rand(1, 1, 11, 12))
    with pytest.raises(ValueError, match=r"\(B, 1, h, w\)"):
        sanity.rank_correlation(a[0], a[0])
    with pytest.raises(ValueError, match="smaller than the 11 x 11 window"):
        sanity.ssim(torch.rand(1, 1, 7, 7), torch.rand(1, 1, 7, 7))


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
    test = sanity.model_randomization_test(model, x, igospp.baselines.Optimized(cfg, baseline=0.0), target=0,
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
