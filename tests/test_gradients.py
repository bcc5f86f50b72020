"""The directions: integrated gradients against finite differences and against the authors' formulas
(khorrams/IGOS_pp at bbd49e3: methods_helper.py:98-124 for the integrated gradient, methods.py:179-228 for iGOS++)."""

import pytest
import torch

import igospp
from igospp.paths import Counter, PathEngine

from .conftest import SmoothModel


def _engine(model, images, baseline, config, generator=None, counter=None):
    clean = model(images)
    scorer = igospp.resolve_target(None, clean, config.score)
    return PathEngine(model, images, baseline, scorer, config, generator, counter)


def _finite_difference(fn, mask, eps=1e-6):
    grad = torch.zeros_like(mask)
    flat = grad.view(-1)
    for i in range(mask.numel()):
        plus, minus = mask.clone(), mask.clone()
        plus.view(-1)[i] += eps
        minus.view(-1)[i] -= eps
        flat[i] = (fn(plus) - fn(minus)).sum() / (2 * eps)
    return grad


@pytest.mark.parametrize("kind", ["deletion", "insertion"])
def test_integrated_gradient_equals_finite_differences(kind, smooth_model, images64):
    cfg = igospp.Config.igos(resolution=(3, 4), ig_steps=5, noise_std=0.0, l1=0.0, l2=0.0)
    if kind == "insertion":
        cfg = cfg.replace(method="insertion", smoothness="btv")
    baseline = igospp.blur_baseline(images64)
    masks = [torch.rand(2, 1, 3, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 0.6 + 0.2]
    objective = igospp.Objective(cfg, _engine(smooth_model, images64, baseline, cfg))
    (direction,), value, terms = objective.direction(masks)
    fn = igospp.deletion_path_score if kind == "deletion" else igospp.insertion_path_score
    sign = 1.0 if kind == "deletion" else -1.0
    path = lambda m: sign * fn(smooth_model, images64, baseline, m, steps=5)
    assert torch.allclose(direction, _finite_difference(path, masks[0]), atol=1e-8, rtol=1e-6)
    assert torch.allclose(value, path(masks[0]), atol=1e-12)
    assert torch.allclose(terms[:, 0], sign * path(masks[0]), atol=1e-12)


def test_igospp_direction_equals_the_halved_sum_of_the_authors_code(smooth_model, images64):
    """d_x = 1/2 [dDel(UxUy) - dIns(UxUy) + dDel(Ux)] + dR(MxMy), d_y likewise with -dIns(Uy).

    The four terms, the halving and the regularizer: khorrams/IGOS_pp at bbd49e3, methods.py:184-215; the
    line-search loss, not halved: methods.py:161-166.
    """
    cfg = igospp.Config.igospp(resolution=(4, 5), ig_steps=4, noise_std=0.0)
    baseline = igospp.blur_baseline(images64)
    g = torch.Generator().manual_seed(3)
    mx = torch.rand(2, 1, 4, 5, generator=g, dtype=torch.float64) * 0.5 + 0.5
    my = torch.rand(2, 1, 4, 5, generator=g, dtype=torch.float64) * 0.5 + 0.5
    objective = igospp.Objective(cfg, _engine(smooth_model, images64, baseline, cfg))
    (dx, dy), value, terms = objective.direction([mx, my])

    # independent computation: autograd through the reference path scores
    lx, ly = mx.clone().requires_grad_(True), my.clone().requires_grad_(True)
    size = images64.shape[-2:]
    uxy = igospp.upsample(lx, size) * igospp.upsample(ly, size)
    kw = dict(steps=4)
    dele = igospp.deletion_path_score(smooth_model, images64, baseline, uxy, **kw)
    ins = igospp.insertion_path_score(smooth_model, images64, baseline, uxy, **kw)
    del_x = igospp.deletion_path_score(smooth_model, images64, baseline, lx, **kw)
    ins_y = igospp.insertion_path_score(smooth_model, images64, baseline, ly, **kw)
    reg = igospp.regularizer(images64, lx * ly, l1=1.0, l2=20.0, smoothness="btv", beta=2.0, sigma=0.01)
    total = 0.5 * (dele - ins + del_x - ins_y).sum() + reg.sum()
    ref_x, ref_y = torch.autograd.grad(total, [lx, ly])
    assert torch.allclose(dx, ref_x, atol=1e-12, rtol=1e-9)
    assert torch.allclose(dy, ref_y, atol=1e-12, rtol=1e-9)
    # the objective (line-search loss) is NOT halved
    assert torch.allclose(value, (dele - ins + del_x - ins_y + reg).detach(), atol=1e-12)
    assert torch.allclose(terms, torch.stack([dele, ins, del_x, ins_y], 1).detach(), atol=1e-12)


def test_engine_with_noise_matches_reference_draw_order(smooth_model, images64):
    """With noise on, the engine draws path image by path image, image by image, like path_images."""
    cfg = igospp.Config.igos(resolution=4, ig_steps=3, batch_size=2)
    baseline = igospp.blur_baseline(images64)
    m = torch.rand(2, 1, 4, 4, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    objective = igospp.Objective(cfg, _engine(smooth_model, images64, baseline, cfg,
                                              generator=torch.Generator().manual_seed(9)))
    (d,), value, _ = objective.direction([m])
    leaf = m.clone().requires_grad_(True)
    ref = igospp.deletion_path_score(smooth_model, images64, baseline, leaf, steps=3, noise_std=0.2,
                                     generator=torch.Generator().manual_seed(9))
    (ref_d,) = torch.autograd.grad(ref.sum(), leaf)
    reg = igospp.regularizer(images64, leaf, l1=1.0, l2=20.0, smoothness="tv")
    (reg_d,) = torch.autograd.grad(reg.sum(), leaf)
    assert torch.allclose(d, ref_d + reg_d, atol=1e-12)


def test_first_direction_is_pure_integrated_gradient(smooth_model, images64):
    # at M = 1 the L1 and TV gradients are exactly 0, so the I-GOS direction grad R + grad Del
    # (khorrams/IGOS_pp at bbd49e3, methods.py:78-86) is the integrated gradient alone
    baseline = igospp.blur_baseline(images64)
    ones = torch.ones(2, 1, 4, 4, dtype=torch.float64)
    no_reg = igospp.Config.igos(resolution=4, ig_steps=3, noise_std=0.0, l1=0.0, l2=0.0)
    with_reg = no_reg.replace(l1=10.0, l2=20.0)
    d0 = igospp.Objective(no_reg, _engine(smooth_model, images64, baseline, no_reg)).direction([ones])[0][0]
    d1 = igospp.Objective(with_reg, _engine(smooth_model, images64, baseline, with_reg)).direction([ones])[0][0]
    assert torch.equal(d0, d1)


def test_engine_counts_images_and_batches_do_not_matter(images64):
    model = SmoothModel()
    baseline = igospp.blur_baseline(images64)
    m = torch.rand(2, 1, 4, 4, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    results = []
    for batch in (1, 5, 64):
        cfg = igospp.Config.igospp(resolution=4, ig_steps=3, batch_size=batch)
        counter = Counter()
        obj = igospp.Objective(cfg, _engine(model, images64, baseline, cfg, torch.Generator().manual_seed(0), counter))
        results.append(obj.direction([m, m]))
        assert (counter.forward_images, counter.backward_images) == (2 * 4 * 3, 2 * 4 * 3)
    for dirs, value, terms in results[1:]:   # equal up to the model's own batch-dependent rounding
        assert all(torch.allclose(a, b, rtol=0, atol=1e-14) for a, b in zip(dirs, results[0][0], strict=True))
        assert torch.allclose(value, results[0][1], rtol=0, atol=1e-14)
        assert torch.allclose(terms, results[0][2], rtol=0, atol=1e-14)
