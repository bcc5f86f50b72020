"""Speed-ups: the exact ones change nothing but float rounding, the trajectory-changing ones are options.

Exact speed-ups (on by default): vectorised noise draws and gradient accumulation (bitwise
equal to the row-by-row loops they replace), and :func:`igospp.accelerate` (a streamlined
private copy of the model in channels-last memory: equal to float rounding, so float64 models
agree to ``1e-10``). Options (off by default): warm-started line search, common random
numbers, fewer trial integration steps, autocast.
"""

from __future__ import annotations

import copy
import functools
import sys

import pytest
import torch
from torch import nn

import igospp
from igospp.explain import _show_progress
from igospp.paths import PathEngine, PathTerm, _noise_rows


class ConvBNNet(nn.Module):
    """Conv -> BN -> ReLU6 twice (the EfficientNet-Lite pattern) with residual adds, and a linear head."""

    def __init__(self, dtype: torch.dtype = torch.float64, classes: int = 4) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.conv1, self.bn1 = nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
        self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.BatchNorm2d(8)
        self.act = nn.ReLU6()
        self.head = nn.Linear(8, classes)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen))
        _random_statistics(self)
        self.to(dtype).eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.bn1(self.conv1(x)))
        c = self.bn2(self.conv2(h))
        h = h + self.act(c) + c          # c is read twice, so the shared ReLU6 must stay out of place everywhere
        return self.head(h.mean(dim=(2, 3)))


def _random_statistics(model: nn.Module) -> nn.Module:
    """Give every batch norm running statistics far from (0, 1), so that folding matters."""
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for bn in model.modules():
            if isinstance(bn, nn.BatchNorm2d):
                bn.running_mean.copy_(torch.randn(bn.num_features, generator=gen))
                bn.running_var.copy_(torch.rand(bn.num_features, generator=gen) * 4 + 0.5)
    return model


def _images(dtype: torch.dtype = torch.float64, n: int = 2) -> torch.Tensor:
    return torch.randn(n, 3, 16, 16, generator=torch.Generator().manual_seed(1), dtype=dtype)


def _state(model: nn.Module) -> list:
    """Everything about a model that a speed-up could change behind the caller's back."""
    return ([(n, p.detach().clone(), p.requires_grad, p.stride()) for n, p in model.named_parameters()]
            + [(n, b.clone()) for n, b in model.named_buffers()]
            + [(n, m.training, getattr(m, "inplace", None), type(m)) for n, m in model.named_modules()])


def _same_state(a: list, b: list) -> bool:
    return len(a) == len(b) and all(
        all(torch.equal(u, v) if isinstance(u, torch.Tensor) else u == v for u, v in zip(x, y, strict=True))
        for x, y in zip(a, b, strict=True))


# --------------------------------------------------------------------------- exact: noise and accumulation
@pytest.mark.parametrize("shape", [(3, 4, 4), (3, 5, 7), (1, 2, 8), (2, 3, 1)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_noise_rows_are_the_row_by_row_draws(shape, dtype):
    like = torch.empty(0, dtype=dtype)
    one_call = _noise_rows(6, shape, 0.2, torch.Generator().manual_seed(3), like)
    gen = torch.Generator().manual_seed(3)
    by_row = torch.stack([torch.randn(shape, generator=gen, dtype=dtype) for _ in range(6)]).mul_(0.2)
    assert torch.equal(one_call, by_row)


def test_engine_results_do_not_depend_on_batch_size(smooth_model, images64):
    """Same noise rows, same summation order: only the model's own batched arithmetic may differ."""
    terms = (PathTerm("deletion", (0,), 1.0, "Del"), PathTerm("insertion", (0,), -1.0, "Ins"))
    base = igospp.blur_baseline(images64)
    mask = torch.rand(2, 2, 1, 16, 20, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    results = []
    for batch_size in (1, 7, 80):
        engine = PathEngine(smooth_model, images64, base, igospp.resolve_target(0, smooth_model(images64), "softmax"),
                            igospp.Config(ig_steps=5, noise_std=0.2, batch_size=batch_size),
                            torch.Generator().manual_seed(0))
        results.append(engine.evaluate(terms, mask, torch.arange(2), grad=True))
    for values, grads in results[1:]:
        torch.testing.assert_close(values, results[0][0], rtol=0, atol=1e-13)
        torch.testing.assert_close(grads, results[0][1], rtol=0, atol=1e-13)


# --------------------------------------------------------------------------- exact: accelerate
def test_memory_format_choice():
    conv = nn.Sequential(nn.Conv2d(3, 2, 3), nn.Flatten())
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(12, 2))
    assert igospp.fastest_memory_format(conv, torch.zeros(1, 3, 2, 2)) is torch.channels_last
    assert igospp.fastest_memory_format(mlp, torch.zeros(1, 3, 2, 2)) is torch.contiguous_format
    assert igospp.fastest_memory_format(conv, torch.zeros(3, 2, 2)) is torch.contiguous_format


def test_streamline_folds_batch_norm_and_keeps_reused_activations_out_of_place():
    net, x = ConvBNNet(), _images()
    before = _state(net)
    fast, folded, in_place = igospp.streamline(net)
    assert folded == 2
    assert in_place == 0        # the shared ReLU6 also runs on a tensor the residual add reads
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
    assert all(not p.requires_grad for p in fast.parameters())
    torch.testing.assert_close(fast(x), net(x), rtol=1e-10, atol=1e-10)
    assert _same_state(before, _state(net))


def test_streamline_makes_a_private_activation_in_place():
    net = _random_statistics(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU6(), nn.Flatten()))
    net = net.double().eval()
    x = _images()
    fast, folded, in_place = igospp.streamline(net)
    assert (folded, in_place) == (1, 1) and not net[2].inplace
    torch.testing.assert_close(fast(x), net(x), rtol=1e-10, atol=1e-10)
    xg = x.clone().requires_grad_(True)
    (g_fast,) = torch.autograd.grad(fast(xg)[:, 0].sum(), xg)
    (g_ref,) = torch.autograd.grad(net(xg)[:, 0].sum(), xg)
    torch.testing.assert_close(g_fast, g_ref, rtol=1e-10, atol=1e-10)


class DataDependent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 2, 1), nn.BatchNorm2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.bn(self.conv(x))
        return h.flatten(1) if h.sum() > 0 else -h.flatten(1)       # fx cannot trace this


class StandardizedConv(nn.Conv2d):
    """Weight-standardised convolution: folding a batch norm into its weight would be undone."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = (self.weight - self.weight.mean(dim=(1, 2, 3), keepdim=True)) / self.weight.std(dim=(1, 2, 3), keepdim=True)
        return nn.functional.conv2d(x, w, self.bias, self.stride, self.padding)


class ViewHead(nn.Module):
    """A head that flattens with .view, which channels-last strides refuse."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).view(x.shape[0], -1)[:, :4]


@pytest.mark.parametrize("make, expected", [
    (lambda: ConvBNNet(), "channels_last, 2 batch norms folded, 0 activations in place"),
    (lambda: _random_statistics(DataDependent()).double().eval(),
     "channels_last, 0 batch norms folded, 0 activations in place"),
    (lambda: _random_statistics(nn.Sequential(StandardizedConv(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten())).double()
     .eval(),
     "channels_last, 0 batch norms folded, 0 activations in place"),
    (lambda: ViewHead().double().eval(), "contiguous, 0 batch norms folded, 0 activations in place"),
    (lambda: nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 4)).double().eval(),
     "contiguous, 0 batch norms folded, 0 activations in place"),
])
def test_accelerate_checks_its_rewrite_and_falls_back(make, expected):
    net, x = make(), _images()
    before = _state(net)
    reference = net(x).detach()
    fast = igospp.accelerate(net, x, reference)
    assert fast.description == expected
    torch.testing.assert_close(fast(x), reference, rtol=1e-10, atol=1e-10)
    assert _same_state(before, _state(net))


def test_explain_with_acceleration_equals_without_in_float64():
    net, x = ConvBNNet(), _images()
    before = _state(net)
    cfg = igospp.Config.igospp(resolution=4, iterations=3, ig_steps=4, low_score_threshold=None)
    fast = igospp.explain(net, x, config=cfg)
    slow = igospp.explain(net, x, config=cfg.replace(accelerate=False))
    assert fast.stats.acceleration.startswith("channels_last, 2 batch norms folded")
    assert slow.stats.acceleration.startswith("contiguous, 0")
    torch.testing.assert_close(fast.mask, slow.mask, rtol=0, atol=1e-10)
    torch.testing.assert_close(fast.history.objective, slow.history.objective, rtol=0, atol=1e-10)
    assert _same_state(before, _state(net))


def test_metrics_and_baselines_with_acceleration_equal_without_in_float64():
    net, x = ConvBNNet(), _images()
    sal = torch.rand(2, 1, 4, 4, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    a = igospp.metrics.insertion_deletion(net, x, sal)
    b = igospp.metrics.insertion_deletion(net, x, sal, accelerate=False)
    torch.testing.assert_close(a.deletion, b.deletion, rtol=0, atol=1e-10)
    torch.testing.assert_close(a.insertion, b.insertion, rtol=0, atol=1e-10)
    for method in (igospp.methods.RISE, igospp.methods.IntegratedGrad):
        kw = dict(n_masks=24) if method is igospp.methods.RISE else dict(steps=8)
        torch.testing.assert_close(method(**kw)(net, x), method(**kw, accelerate=False)(net, x), rtol=0, atol=1e-10)


def test_a_prepared_model_is_reused_as_it_is(monkeypatch):
    net, x = ConvBNNet(), _images()
    sal = torch.rand(2, 1, 4, 4, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    fast = igospp.accelerate(net, x, net(x))
    assert igospp.accelerate(fast, x, net(x)) is fast
    assert igospp.accelerate(fast, x, net(x), enabled=False) is fast
    off = igospp.accelerate(net, x, net(x), enabled=False)
    assert off.model is net and off.description == "contiguous, 0 batch norms folded, 0 activations in place"
    assert not fast.training and ConvBNNet().train().training and igospp.Accelerated(ConvBNNet().train()).training
    expected = igospp.metrics.insertion_deletion(net, x, sal)
    rise = igospp.methods.RISE(n_masks=24)(net, x)

    def no_second_preparation(*args, **kwargs):
        raise AssertionError("a prepared model was streamlined again")
    monkeypatch.setattr(igospp.acceleration, "streamline", no_second_preparation)
    for _ in range(2):
        again = igospp.metrics.insertion_deletion(fast, x, sal)
        torch.testing.assert_close(again.deletion, expected.deletion, rtol=0, atol=0)
    torch.testing.assert_close(igospp.methods.RISE(n_masks=24)(fast, x), rise, rtol=0, atol=0)
    exp = igospp.explain(fast, x, config=igospp.Config.igos(resolution=4, iterations=1, ig_steps=2,
                                                            low_score_threshold=None))
    assert exp.stats.acceleration == fast.description


def test_lite0_short_run_agrees_within_float_rounding():
    """EfficientNet-Lite0 in float32: one iteration, same trials, masks within 2e-3.

    The rewrite moves logits by about 1e-5 (float32 rounding in another summation order);
    the input gradients of ReLU6 networks move more where a pre-activation sits within
    rounding of the kinks at 0 and 6, and the direction is multiplied by a step of about
    1 to 40. Later iterations can flip an Armijo decision, after which masks part more, as
    they would under any change of summation order (a different thread count, say).
    """
    try:
        bundle = igospp.load_model("efficientnet_lite0", device="cpu")
    except igospp.WeightsUnavailableError as err:
        pytest.skip(str(err))
    x = bundle.preprocess(igospp.sample_images(["chelsea"])["chelsea"])
    cfg = igospp.Config.igospp(resolution=7, iterations=1, ig_steps=2, low_score_threshold=None)
    fast = igospp.explain(bundle.model, x, config=cfg)
    slow = igospp.explain(bundle.model, x, config=cfg.replace(accelerate=False))
    assert fast.stats.acceleration == "channels_last, 49 batch norms folded, 33 activations in place"
    assert torch.equal(fast.history.trials, slow.history.trials)
    torch.testing.assert_close(fast.history.objective, slow.history.objective, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(fast.mask, slow.mask, rtol=0, atol=2e-3)


def test_non_convolutional_models_run_unchanged():
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 4), nn.ReLU(), nn.Linear(4, 3)).double().eval()
    exp = igospp.explain(mlp, _images(), config=igospp.Config.igospp(resolution=4, iterations=2, ig_steps=3,
                                                                      low_score_threshold=None))
    assert exp.stats.acceleration == "contiguous, 0 batch norms folded, 0 activations in place"


# --------------------------------------------------------------------------- options that change the trajectory
def test_line_search_accepts_one_initial_step_per_image():
    m = torch.ones(3, 1, 1, 1)
    d = torch.full((3, 1, 1, 1), 1e-3)

    def loss(ms, idx):
        return ms[0].flatten(1).sum(1)

    r = igospp.backtracking_line_search(loss, [m], [d], loss([m], torch.arange(3)),
                                        initial_step=torch.tensor([1000.0, 5.0, 0.5]))
    assert r.step.tolist() == [1000.0, 5.0, 0.5] and r.trials.tolist() == [1, 1, 1]


@pytest.mark.parametrize("candidates", [2, 3, 13, 20])
@pytest.mark.parametrize("seed", range(4))
def test_batched_candidates_take_the_sequential_step(candidates, seed):
    gen = torch.Generator().manual_seed(seed)
    masks = [torch.rand(5, 1, 3, 4, generator=gen, dtype=torch.float64) for _ in range(2)]
    directions = [torch.randn(5, 1, 3, 4, generator=gen, dtype=torch.float64) * 10 ** (-seed) for _ in range(2)]
    weights = torch.randn(2, 12, generator=gen, dtype=torch.float64)

    def loss(ms, idx):   # a deterministic, non-convex loss per image
        return sum((torch.sin(3 * m.flatten(1)) * w).sum(1) for m, w in zip(ms, weights, strict=True)) + idx

    base = loss(masks, torch.arange(5))
    one = igospp.backtracking_line_search(loss, masks, directions, base)
    many = igospp.backtracking_line_search(loss, masks, directions, base, candidates=candidates)
    assert torch.equal(one.step, many.step) and torch.equal(one.accepted, many.accepted)
    assert torch.equal(one.loss, many.loss)
    assert (many.trials >= one.trials).all() and (many.trials <= one.trials + candidates - 1).all()
    assert (many.trials <= len(igospp.step_sequence())).all()


def test_batched_candidates_without_noise_give_the_same_explanation(smooth_model, images64):
    cfg = igospp.Config.igospp(resolution=4, iterations=3, ig_steps=3, noise_std=0.0, low_score_threshold=None)
    one = igospp.explain(smooth_model, images64, config=cfg)
    three = igospp.explain(smooth_model, images64, config=cfg.replace(ls_candidates=3))
    torch.testing.assert_close(three.history.step, one.history.step, rtol=1e-12, atol=0)
    torch.testing.assert_close(three.mask, one.mask, rtol=0, atol=1e-10)
    assert three.stats.forward_images >= one.stats.forward_images


def test_warm_start_begins_at_a_multiple_of_the_last_step(smooth_model, images64):
    cfg = igospp.Config.igospp(resolution=4, iterations=4, ig_steps=3, low_score_threshold=None)
    cold = igospp.explain(smooth_model, images64, config=cfg)
    warm = igospp.explain(smooth_model, images64, config=cfg.replace(ls_warm_start=5.0))
    torch.testing.assert_close(warm.history.step[0], cold.history.step[0])          # iteration 0 is the same
    for it in range(1, 4):
        cap = (warm.history.step[it - 1] * 5.0).clamp(max=1000.0)
        assert (warm.history.step[it] <= cap * (1 + 1e-12)).all()
    assert warm.history.trials[1:].sum() < cold.history.trials[1:].sum()


def test_common_noise_replays_the_gradient_pass(smooth_model, images64):
    terms = (PathTerm("deletion", (0,), 1.0, "Del"), PathTerm("insertion", (0,), -1.0, "Ins"))
    mask = torch.rand(2, 2, 1, 16, 20, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    engine = PathEngine(smooth_model, images64, igospp.blur_baseline(images64),
                        igospp.resolve_target(0, smooth_model(images64), "softmax"),
                        igospp.Config(ig_steps=4, noise_std=0.2, batch_size=3, ls_common_noise=True),
                        torch.Generator().manual_seed(0))
    values, _ = engine.evaluate(terms, mask, torch.arange(2), grad=True)
    replay, _ = engine.evaluate(terms, mask, torch.arange(2), grad=False, reuse_noise=True)
    fresh, _ = engine.evaluate(terms, mask, torch.arange(2), grad=False)
    subset, _ = engine.evaluate(terms, mask[1:], torch.tensor([1]), grad=False, reuse_noise=True)
    torch.testing.assert_close(replay, values, rtol=0, atol=1e-14)
    torch.testing.assert_close(subset, values[1:], rtol=0, atol=1e-14)
    assert not torch.allclose(fresh, values)


def test_fewer_trial_steps_are_the_shorter_riemann_sum(smooth_model, images64):
    terms = (PathTerm("deletion", (0,), 1.0, "Del"),)
    mask = torch.rand(2, 1, 1, 4, 5, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    base = igospp.blur_baseline(images64)
    engine = PathEngine(smooth_model, images64, base, igospp.resolve_target(0, smooth_model(images64), "softmax"),
                        igospp.Config(ig_steps=20, noise_std=0.0, batch_size=8))
    ups = igospp.upsample(mask[:, 0], (16, 20)).unsqueeze(1)
    values, _ = engine.evaluate(terms, ups, torch.arange(2), grad=False, steps=5)
    expected = igospp.deletion_path_score(smooth_model, images64, base, mask[:, 0], target=0, steps=5)
    torch.testing.assert_close(values[:, 0], expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("fields", [dict(ls_common_noise=True), dict(ls_common_noise=True, noise_std=0.0),
                                    dict(ls_ig_steps=2), dict(ls_warm_start=3.0),
                                    dict(autocast="bfloat16"), dict(ls_candidates=4)])
def test_each_option_runs_and_is_recorded(smooth_model, images64, fields):
    cfg = igospp.Config.igospp(resolution=4, iterations=2, ig_steps=3, low_score_threshold=None, **fields)
    exp = igospp.explain(copy.deepcopy(smooth_model).float(), images64.float(), config=cfg)
    assert torch.isfinite(exp.mask).all() and exp.mask.dtype == torch.float32
    assert all(getattr(exp.config, k) == v for k, v in fields.items())


@pytest.mark.parametrize("fields, message", [
    (dict(ls_warm_start=0.5), "ls_warm_start must be a finite number >= 1.0"),
    (dict(ls_warm_start=True), "ls_warm_start must be a finite number"),
    (dict(ls_ig_steps=0), "ls_ig_steps must be a positive integer"),
    (dict(ls_candidates=0), "ls_candidates must be a positive integer"),
    (dict(ls_candidates=2.0), "ls_candidates must be a positive integer"),
    (dict(autocast="int8"), "autocast must be one of"),
    (dict(accelerate="yes"), "accelerate must be True or False"),
    (dict(progress="auto"), "progress must be True, False or None"),
    (dict(ls_common_noise=1), "ls_common_noise must be True or False"),
    (dict(ls_common_noise=True, ls_fresh_base=True), "ls_fresh_base=True replaces"),
    (dict(ls_common_noise=True, ls_ig_steps=5), "ls_ig_steps=5 replaces"),
])
def test_bad_speed_options_are_named(fields, message):
    with pytest.raises(ValueError, match=message):
        igospp.Config.igospp(**fields)


# --------------------------------------------------------------------------- progress
def test_progress_is_automatic_and_shows_objective_and_step(smooth_model, images64, capsys, monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert _show_progress(None) is False and _show_progress(True) is True
    monkeypatch.delenv("TQDM_DISABLE")
    # tqdm redraws at most every 0.1 s by default: on a fast machine both iterations fit in one
    # interval and only the empty bar is drawn. Redraw at every iteration.
    module = sys.modules["igospp.explain"]
    monkeypatch.setattr(module, "tqdm", functools.partial(module.tqdm, mininterval=0))
    cfg = igospp.Config.igospp(resolution=4, iterations=2, ig_steps=3, low_score_threshold=None, progress=True)
    igospp.explain(smooth_model, images64, config=cfg)
    err = capsys.readouterr().err
    assert "igospp" in err and "objective=" in err and "step=" in err
    igospp.explain(smooth_model, images64, config=cfg.replace(progress=False))
    assert capsys.readouterr().err == ""


def test_a_wrong_fold_is_caught_by_the_check():
    """streamline folds into any Conv2d subclass; accelerate's comparison rejects the wrong result."""
    net = _random_statistics(nn.Sequential(StandardizedConv(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten())).double().eval()
    x = _images()
    fast, folded, _ = igospp.streamline(net)
    assert folded == 1 and not torch.allclose(fast(x), net(x), atol=1e-3)
    assert igospp.accelerate(net, x, net(x)).folded == 0
