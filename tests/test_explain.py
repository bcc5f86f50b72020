"""explain(): the whole optimizer on analytic models, every method, shape and target kind."""

import math
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import igospp

from .conftest import PatchModel, SingleLogitModel, SmoothModel

QUIET = dict(low_score_threshold=None)


def _patch_problem(batch=1):
    """64 x 64 images equal to their baseline except in the patch rows 24:32, cols 40:48."""
    g = torch.Generator().manual_seed(0)
    images = torch.randn(batch, 3, 64, 64, generator=g, dtype=torch.float64) * 0.1
    baseline = images.clone()
    images[:, :, 24:32, 40:48] = 1.0                       # bright patch: raises p(class 0)
    baseline[:, :, 24:32, 40:48] = -1.0
    return PatchModel(slice(24, 32), slice(40, 48), weight=1.0), images, baseline


def _cells_touching_patch(size=16, pixels=64, rows=(24, 32), cols=(40, 48)):
    """Cell ranges ``[r0, r1) x [c0, c1)`` whose bilinear (align_corners) footprint covers a patch pixel."""
    scale = (size - 1) / (pixels - 1)
    r0, r1 = math.floor(rows[0] * scale), math.ceil((rows[1] - 1) * scale) + 1
    c0, c1 = math.floor(cols[0] * scale), math.ceil((cols[1] - 1) * scale) + 1
    return r0, r1, c0, c1


@pytest.mark.parametrize("method", igospp.METHODS)
def test_cells_out_of_reach_of_the_patch_stay_exactly_one(method):
    """Outside the patch I == B, so the integrated gradient of every cell whose footprint misses the
    patch is exactly 0 whatever the noise (the gradient of the path score, khorrams/IGOS_pp at bbd49e3,
    methods_helper.py:98-124), and the regularizer's gradient is exactly 0 at M = 1.
    Only the first iteration moves the cells touching the patch; after that the smoothness term
    spreads the change by at most one cell per iteration for TV (mask-resolution neighbours) and
    two for BTV (a pixel pair straddling a cell centre involves three cells)."""
    model, images, baseline = _patch_problem()
    iterations = 3
    cfg = igospp.Config.preset(method, resolution=16, iterations=iterations, ig_steps=4, **QUIET)
    exp = igospp.explain(model, images, target=0, config=cfg, baseline=baseline)
    r0, r1, c0, c1 = _cells_touching_patch()
    reach = (iterations - 1) * (2 if cfg.smoothness == "btv" else 1)
    masks = [exp.mask] + [m for m in (exp.deletion_mask, exp.insertion_mask) if m is not None]
    for m in masks:
        far = torch.ones(16, 16, dtype=torch.bool)
        far[max(0, r0 - reach):r1 + reach, max(0, c0 - reach):c1 + reach] = False
        assert torch.equal(m[0, 0][far], torch.ones_like(m[0, 0][far]))
    assert (exp.mask[0, 0] < 1).sum() > (r1 - r0) * (c1 - c0) / 2       # not vacuous: the patch region moved
    assert exp.mask[0, 0, r0:r1, c0:c1].mean() < 0.9                    # the patch is found
    assert exp.saliency[0, 0, 24:32, 40:48].mean() > exp.saliency[0, 0, :8, :8].mean()


def test_deletion_mask_drops_where_image_minus_baseline_raises_the_score():
    # dDel/dm = Up^T[(1/S) sum_k a_k sum_c (I - B) grad p_c] (khorrams/IGOS_pp at bbd49e3, methods_helper.py:98-124)
    model, images, baseline = _patch_problem()
    cfg = igospp.Config.igos(resolution=16, iterations=1, ig_steps=4, noise_std=0.0, **QUIET)
    exp = igospp.explain(model, images, target=0, config=cfg, baseline=baseline)
    r0, r1, c0, c1 = _cells_touching_patch()
    assert (exp.mask[0, 0, r0 + 1:r1 - 1, c0 + 1:c1 - 1] < 1).all()
    # explaining the other class (which the patch lowers) leaves the mask untouched at 1
    other = igospp.explain(model, images, target=1, config=cfg, baseline=baseline)
    assert torch.equal(other.mask, torch.ones_like(other.mask))


def test_masks_stay_in_unit_interval_and_product_is_the_final_mask(smooth_model, images64):
    # each mask is clamped to [0, 1] after every update and the output is M_D * M_I
    # (khorrams/IGOS_pp at bbd49e3, methods.py:221-228)
    cfg = igospp.Config.igospp(resolution=(4, 5), iterations=4, ig_steps=3, **QUIET)
    exp = igospp.explain(smooth_model, images64, config=cfg)
    for m in (exp.mask, exp.deletion_mask, exp.insertion_mask):
        assert m.shape == (2, 1, 4, 5) and m.min() >= 0 and m.max() <= 1
    assert torch.equal(exp.mask, exp.deletion_mask * exp.insertion_mask)
    assert torch.allclose(exp.saliency, 1 - igospp.upsample(exp.mask, (16, 20)))
    assert exp.history.term_names == ["Del(Mx*My)", "Ins(Mx*My)", "Del(Mx)", "Ins(My)"]


def test_history_and_stats_count_every_image(smooth_model, images64):
    T, S, B = 3, 4, 2
    cfg = igospp.Config.igospp(resolution=4, iterations=T, ig_steps=S, track_scores=True, **QUIET)
    exp = igospp.explain(smooth_model, images64, config=cfg)
    h = exp.history
    assert h.objective.shape == h.step.shape == h.trials.shape == h.accepted.shape == (T, B)
    assert h.terms.shape == (T, B, 4) and h.deletion.shape == h.insertion.shape == (T, B)
    steps_allowed = torch.tensor(igospp.step_sequence(), dtype=torch.float64)
    assert all(torch.isclose(steps_allowed, s).any() for s in h.step.flatten())
    per_eval = 4 * S
    assert exp.stats.backward_images == T * B * per_eval
    assert exp.stats.forward_images == B + T * B * per_eval + int(h.trials.sum()) * per_eval + 2 * T * B
    assert exp.stats.line_search_evaluations == int(h.trials.sum())
    assert exp.stats.iterations == T and exp.stats.seconds > 0


def test_fixed_step_takes_that_step_without_trials(smooth_model, images64):
    cfg = igospp.Config.igospp(resolution=4, iterations=2, ig_steps=2, line_search=False, step_size=3.0, **QUIET)
    exp = igospp.explain(smooth_model, images64, config=cfg)
    assert torch.equal(exp.history.step, torch.full((2, 2), 3.0, dtype=torch.float64))
    assert exp.history.trials.sum() == 0 and exp.stats.line_search_evaluations == 0
    assert exp.stats.forward_images == 2 + 2 * 2 * 4 * 2 + 2 * 2 * 2     # clean + gradient passes + tracking


def test_fresh_line_search_base_costs_one_more_pass_and_equals_without_noise(smooth_model, images64):
    T, S, B = 3, 2, 2
    cfg = igospp.Config.igospp(resolution=4, iterations=T, ig_steps=S, noise_std=0.0, track_scores=False, **QUIET)
    reuse = igospp.explain(smooth_model, images64, config=cfg)
    fresh = igospp.explain(smooth_model, images64, config=cfg.replace(ls_fresh_base=True))
    assert torch.allclose(fresh.mask, reuse.mask, rtol=0, atol=1e-14)
    assert torch.equal(fresh.history.step, reuse.history.step)
    extra = fresh.stats.forward_images - reuse.stats.forward_images
    assert extra == T * B * 4 * S
    assert reuse.history.deletion is None and reuse.history.insertion is None


def test_single_mask_methods_have_no_dual_masks(smooth_model, images64):
    for method in ("mask", "igos", "naive", "insertion"):
        exp = igospp.explain(smooth_model, images64, config=igospp.Config.preset(method, resolution=4, iterations=1,
                                                                                 **QUIET))
        assert exp.deletion_mask is None and exp.insertion_mask is None
    assert igospp.Config.mask().ig_steps == 1


def test_same_seed_same_masks_and_other_seed_other_masks(smooth_model, images64):
    cfg = igospp.Config.igospp(resolution=4, iterations=3, ig_steps=3, **QUIET)
    a = igospp.explain(smooth_model, images64, config=cfg)
    b = igospp.explain(smooth_model, images64, config=cfg)
    c = igospp.explain(smooth_model, images64, config=cfg.replace(seed=1))
    d = igospp.explain(smooth_model, images64, config=cfg, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a.mask, b.mask) and torch.equal(a.mask, d.mask)
    assert not torch.equal(a.mask, c.mask)


def test_chunk_size_does_not_change_the_result(images64):
    """Noise draws and sums follow one fixed order, so the chunk size cannot change the result. With a
    batch-invariant model the masks are bit-identical; a model whose own batched kernels round
    differently per batch size (GEMM blocking) agrees to the last bits and takes the same steps."""
    model, images, baseline = _patch_problem(batch=2)
    cfg = igospp.Config.igospp(resolution=16, iterations=3, ig_steps=5, **QUIET)
    ref = igospp.explain(model, images, target=0, config=cfg.replace(batch_size=1), baseline=baseline)
    for batch in (3, 7, 40, 1000):
        exp = igospp.explain(model, images, target=0, config=cfg.replace(batch_size=batch), baseline=baseline)
        assert torch.equal(exp.mask, ref.mask) and torch.equal(exp.history.step, ref.history.step)

    smooth = SmoothModel()
    cfg = igospp.Config.igospp(resolution=4, iterations=3, ig_steps=5, **QUIET)
    ref = igospp.explain(smooth, images64, config=cfg.replace(batch_size=1))
    for batch in (3, 7, 40, 1000):
        exp = igospp.explain(smooth, images64, config=cfg.replace(batch_size=batch))
        assert torch.allclose(exp.mask, ref.mask, rtol=0, atol=1e-13)
        assert torch.equal(exp.history.step, ref.history.step)


def test_non_square_one_channel_float32_images():
    model = SmoothModel(channels=1, dtype=torch.float32)
    x = torch.randn(2, 1, 24, 40, generator=torch.Generator().manual_seed(1))
    exp = igospp.explain(model, x, config=igospp.Config.igospp(resolution=(3, 10), iterations=2, ig_steps=3, **QUIET))
    assert exp.mask.shape == (2, 1, 3, 10) and exp.saliency.shape == (2, 1, 24, 40) and exp.mask.dtype == torch.float32


def test_batch_of_three_with_different_targets(smooth_model):
    x = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    exp = igospp.explain(smooth_model, x, target=[0, 3, 4],
                         config=igospp.Config.igos(resolution=4, iterations=2, ig_steps=2, **QUIET))
    assert exp.target.tolist() == [0, 3, 4]
    probs = smooth_model(x).softmax(1)
    assert torch.allclose(exp.clean_score, probs[[0, 1, 2], [0, 3, 4]])
    alone = igospp.explain(smooth_model, x[1:2], target=3,
                           config=igospp.Config.igos(resolution=4, iterations=2, ig_steps=2, noise_std=0.0, **QUIET))
    together = igospp.explain(smooth_model, x, target=torch.tensor([0, 3, 4]),
                              config=igospp.Config.igos(resolution=4, iterations=2, ig_steps=2, noise_std=0.0, **QUIET))
    assert torch.allclose(alone.mask[0], together.mask[1], atol=1e-12)   # images are optimized independently


def test_default_target_is_the_top_class_and_logit_scores(smooth_model, images64):
    cfg = igospp.Config.igos(resolution=4, iterations=1, ig_steps=2, **QUIET)
    exp = igospp.explain(smooth_model, images64, config=cfg)
    logits = smooth_model(images64)
    assert torch.equal(exp.target, logits.argmax(1))
    exp = igospp.explain(smooth_model, images64, config=cfg.replace(score="logit"))
    assert torch.allclose(exp.clean_score, logits.max(1).values)


def test_callable_target_on_a_single_logit_model():
    model = SingleLogitModel(channels=1)
    x = torch.randn(2, 1, 20, 20, generator=torch.Generator().manual_seed(3))
    cfg = igospp.Config.igospp(resolution=5, iterations=2, ig_steps=3, **QUIET)
    exp = igospp.explain(model, x, target=lambda out: out[:, 0].sigmoid(), config=cfg)
    assert exp.target.tolist() == [-1, -1]
    assert torch.allclose(exp.clean_score, model(x)[:, 0].sigmoid())
    mixed = igospp.explain(model, x, target=[lambda out: out[:, 0].sigmoid(), lambda out: -out[:, 0]],
                           config=cfg.replace(score="logit"))
    assert torch.allclose(mixed.clean_score, torch.stack([model(x)[0, 0].sigmoid(), -model(x)[1, 0]]))


def test_resolution_one_and_full(smooth_model, images64):
    def run(res):
        return igospp.explain(smooth_model, images64,
                              config=igospp.Config.igospp(resolution=res, iterations=2, ig_steps=2, **QUIET))

    one = run(1)                                       # one cell: the saliency is one value per image
    assert one.mask.shape == (2, 1, 1, 1) and torch.isfinite(one.mask).all()
    assert torch.equal(one.saliency, (1 - one.mask).expand(2, 1, 16, 20))
    full = run((16, 20))                               # one cell per pixel: no upsampling at all
    assert full.mask.shape == (2, 1, 16, 20) and torch.isfinite(full.mask).all()
    assert torch.equal(full.saliency, 1 - full.mask)


def test_constant_and_callable_baselines(smooth_model, images64):
    cfg = igospp.Config.igos(resolution=4, iterations=1, ig_steps=2, noise_std=0.0, **QUIET)
    a = igospp.explain(smooth_model, images64, config=cfg, baseline=0.0)
    b = igospp.explain(smooth_model, images64, config=cfg, baseline=torch.zeros(3, 16, 20))
    c = igospp.explain(smooth_model, images64, config=cfg, baseline=lambda x: torch.zeros_like(x))
    assert torch.equal(a.mask, b.mask) and torch.equal(a.mask, c.mask)


def test_works_inside_no_grad_and_inference_mode(smooth_model, images64):
    cfg = igospp.Config.igospp(resolution=4, iterations=1, ig_steps=2, **QUIET)
    ref = igospp.explain(smooth_model, images64, config=cfg)
    with torch.no_grad():
        a = igospp.explain(smooth_model, images64, config=cfg)
    with torch.inference_mode():
        inf_images = images64.clone()
        b = igospp.explain(smooth_model, inf_images, config=cfg)
    assert torch.equal(a.mask, ref.mask) and torch.equal(b.mask, ref.mask)


def test_model_parameters_get_no_gradients(images64):
    model = SmoothModel()
    for p in model.parameters():
        p.requires_grad_(True)
    igospp.explain(model, images64, config=igospp.Config.igospp(resolution=4, iterations=1, ig_steps=2, **QUIET))
    assert all(p.grad is None for p in model.parameters())


def test_low_score_warning_names_the_score(smooth_model, images64):
    probs = smooth_model(images64).softmax(1)
    worst = int(probs[0].argmin())
    with pytest.warns(igospp.LowScoreWarning, match=r"image\(s\) \[0"):
        igospp.explain(smooth_model, images64, target=worst,
                       config=igospp.Config.igos(resolution=4, iterations=1, ig_steps=2, low_score_threshold=0.9))


def test_training_mode_warns_and_still_explains(images64):
    model = torch.nn.Sequential(torch.nn.Dropout(0.1), SmoothModel()).train()
    with pytest.warns(igospp.TrainingModeWarning, match=r"training mode \(0\).*model.eval\(\)"):
        exp = igospp.explain(model, images64, config=igospp.Config.igos(resolution=4, iterations=1, **QUIET))
    assert exp.mask.shape == (2, 1, 4, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error", igospp.TrainingModeWarning)   # train() without dropout/BN layers is harmless
        igospp.explain(SmoothModel().train(), images64, config=igospp.Config.igos(resolution=4, iterations=1, **QUIET))


@settings(max_examples=12, deadline=None)
@given(b=st.integers(1, 3), c=st.integers(1, 3), h=st.integers(4, 18), w=st.integers(4, 18),
       method=st.sampled_from(igospp.METHODS), data=st.data())
def test_any_shape_any_method_property(b, c, h, w, method, data):
    rh, rw = data.draw(st.integers(1, h)), data.draw(st.integers(1, w))
    model = SmoothModel(channels=c, classes=3, dtype=torch.float32)
    x = torch.randn(b, c, h, w, generator=torch.Generator().manual_seed(4))
    cfg = igospp.Config.preset(method, resolution=(rh, rw), iterations=2, ig_steps=2, **QUIET)
    exp = igospp.explain(model, x, config=cfg)
    assert exp.mask.shape == (b, 1, rh, rw) and exp.saliency.shape == (b, 1, h, w)
    assert exp.mask.min() >= 0 and exp.mask.max() <= 1 and torch.isfinite(exp.saliency).all()
    assert exp.history.step.shape == (2, b)
