"""Backtracking line search (eq. 8) with the authors' constants (khorrams/IGOS_pp at bbd49e3,
methods_helper.py:127-177)."""

import pytest
import torch

import igospp


def test_step_sequence_is_the_official_one():
    seq = igospp.step_sequence()
    assert len(seq) == 13
    assert seq == pytest.approx([1000 * 0.2**k for k in range(13)])
    assert seq[-1] == pytest.approx(4.096e-6)
    # the original I-GOS starts at 200 (zhongangqi/IGOS at 541e440, IGOS_generate_video.py:255-307)
    assert igospp.step_sequence(200.0) == pytest.approx([200 * 0.2**k for k in range(12)])


def _quadratic(target):
    """Loss ``sum (m - target)^2`` per image; its gradient is ``2 (m - target)``."""
    def loss(ms, idx):
        return (ms[0] - target[idx]).pow(2).flatten(1).sum(1)
    return loss


def test_accepted_step_satisfies_armijo_and_is_the_largest_tried():
    m = torch.full((3, 1, 4, 4), 0.9, dtype=torch.float64)
    target = torch.rand(3, 1, 4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 0.8
    loss = _quadratic(target)
    d = 2 * (m - target)
    base = loss([m], torch.arange(3))
    r = igospp.backtracking_line_search(loss, [m], [d], base)
    seq = igospp.step_sequence()
    for b in range(3):
        step = r.step[b].item()
        assert r.accepted[b]
        k = min(range(len(seq)), key=lambda i: abs(seq[i] - step))
        assert step == pytest.approx(seq[k]) and r.trials[b] == k + 1
        trial = (m[b:b + 1] - step * d[b:b + 1]).clamp(0, 1)
        value = loss([trial], torch.tensor([b])).item()
        assert value <= base[b].item() - 1e-4 * step * d[b].pow(2).sum().item()
        assert r.loss[b].item() == pytest.approx(value)
        if k > 0:  # the previous, larger step failed the condition
            prev = (m[b:b + 1] - seq[k - 1] * d[b:b + 1]).clamp(0, 1)
            bound = base[b].item() - 1e-4 * seq[k - 1] * d[b].pow(2).sum().item()
            assert loss([prev], torch.tensor([b])).item() > bound


def test_first_trial_accepted_gives_1000():
    m = torch.ones(1, 1, 2, 2, dtype=torch.float64)
    d = torch.full_like(m, 1e-6)
    r = igospp.backtracking_line_search(lambda ms, idx: ms[0].flatten(1).sum(1), [m], [d], torch.tensor([4.0]))
    assert r.step.item() == 1000.0 and r.trials.item() == 1 and r.accepted.item()


def test_floor_step_is_taken_when_nothing_satisfies_armijo():
    m = torch.full((2, 1, 3, 3), 0.5, dtype=torch.float64)
    d = torch.ones_like(m)
    calls = []

    def increasing(ms, idx):
        calls.append(idx.tolist())
        return torch.full((idx.numel(),), 10.0, dtype=torch.float64)   # always worse than the base

    r = igospp.backtracking_line_search(increasing, [m], [d], torch.zeros(2, dtype=torch.float64))
    assert r.step.tolist() == pytest.approx([4.096e-6, 4.096e-6])
    assert r.trials.tolist() == [13, 13] and not r.accepted.any()
    assert len(calls) == 13


def test_only_images_still_searching_are_evaluated_and_steps_are_per_image():
    m = torch.full((2, 1, 1, 1), 0.5, dtype=torch.float64)
    d = torch.ones_like(m)
    seen = []

    def loss(ms, idx):
        seen.append(idx.tolist())
        # image 0 is fine at any step; image 1 only once the step is below 1
        steps = (0.5 - ms[0].flatten()) / 1.0
        out = torch.where(idx == 0, torch.full_like(steps, -1.0), torch.where(steps < 0.5, -1.0, 5.0))
        return out.double()

    r = igospp.backtracking_line_search(loss, [m], [d], torch.zeros(2, dtype=torch.float64))
    assert seen[0] == [0, 1] and all(s == [1] for s in seen[1:])
    assert r.step[0].item() == 1000.0 and r.trials.tolist()[0] == 1
    assert r.step[1].item() == pytest.approx(0.32) and r.trials.tolist()[1] == 6


def test_trials_clamp_and_norm_covers_every_mask():
    mx = torch.full((1, 1, 2, 2), 0.5, dtype=torch.float64)
    my = torch.full((1, 1, 2, 2), 0.5, dtype=torch.float64)
    dx, dy = torch.ones_like(mx), -torch.ones_like(my)
    seen = []

    def loss(ms, idx):
        seen.append([m.clone() for m in ms])
        return torch.tensor([-1e9], dtype=torch.float64)

    igospp.backtracking_line_search(loss, [mx, my], [dx, dy], torch.zeros(1, dtype=torch.float64))
    assert torch.equal(seen[0][0], torch.zeros_like(mx)) and torch.equal(seen[0][1], torch.ones_like(my))
    # The Armijo slope sums ||d||^2 over both masks: with a loss just above that bound the step fails.
    bound = -1e-4 * 1000 * 8

    def just_above(ms, idx):
        return torch.tensor([bound + 1e-9], dtype=torch.float64)

    r = igospp.backtracking_line_search(just_above, [mx, my], [dx, dy], torch.zeros(1, dtype=torch.float64))
    assert r.trials.item() > 1
