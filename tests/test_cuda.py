"""On a CUDA device the optimizer follows the model and agrees with the CPU (skipped without CUDA)."""

import pytest
import torch

import igospp

from .conftest import SmoothModel

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def test_cuda_matches_cpu_without_noise():
    model = SmoothModel(dtype=torch.float64)
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    cfg = igospp.Config.igospp(resolution=8, iterations=3, ig_steps=4, noise_std=0.0, low_score_threshold=None)
    cpu = igospp.explain(model, x, config=cfg)
    gpu = igospp.explain(model.cuda(), x.cuda(), config=cfg)
    assert gpu.mask.device.type == "cuda"
    assert torch.allclose(gpu.mask.cpu(), cpu.mask, atol=1e-6)


def test_cpu_images_follow_a_cuda_model_and_come_back_on_cpu():
    model = SmoothModel(dtype=torch.float32).cuda()
    x = torch.randn(2, 3, 16, 16)
    cfg = igospp.Config.igospp(resolution=4, iterations=2, ig_steps=2, low_score_threshold=None)
    a = igospp.explain(model, x, config=cfg)
    b = igospp.explain(model, x, config=cfg)
    c = igospp.explain(model, x, config=cfg, generator=torch.Generator().manual_seed(0))  # a CPU generator works too
    assert a.mask.device.type == "cpu" and torch.equal(a.mask, b.mask) and c.mask.device.type == "cpu"


def test_efficientnet_on_cuda():
    bundle = igospp.load_model(device="cuda")
    x = bundle.preprocess(igospp.sample_images(["chelsea"])["chelsea"])
    exp = igospp.explain(bundle.model, x, config=igospp.Config.igospp(resolution=28, iterations=3))
    assert exp.mask.shape == (1, 1, 28, 28) and exp.mask.device.type == "cuda"
