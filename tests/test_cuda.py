"""On a CUDA device the optimizer follows the model and agrees with the CPU (skipped without CUDA)."""

import pytest
import torch

import igospp

from .conftest import SmoothModel

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def test_cuda_matches_cpu_without_noise():
    model = SmoothModel(dtype=torch.float64)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    cfg = igospp.Config.igospp(resolution=8, iterations=3, ig_steps=4, noise_std=0.0, low_score_threshold=None)
    cpu = igospp.explain(model, x, config=cfg)
    gpu = igospp.explain(model.cuda(), x.cuda(), config=cfg)
    assert gpu.mask.device.type == "cuda"
    assert torch.allclose(gpu.mask.cpu(), cpu.mask, atol=1e-6)


def test_cpu_images_follow_a_cuda_model_and_come_back_on_cpu():
    model = SmoothModel(dtype=torch.float32).cuda()
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
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


def test_metric_and_baselines_on_cuda_match_cpu():
    bundle = igospp.load_model(device="cpu")
    x = bundle.preprocess(igospp.sample_images(["chelsea"])["chelsea"])
    sal = torch.rand(1, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    cpu = igospp.metrics.insertion_deletion(bundle.model, x, sal)
    gpu_model = igospp.load_model(device="cuda").model
    gpu = igospp.metrics.insertion_deletion(gpu_model, x.cuda(), sal.cuda())
    assert gpu.deletion_auc.device.type == "cuda"
    assert torch.allclose(gpu.deletion_auc.cpu(), cpu.deletion_auc, atol=2e-3)
    assert torch.allclose(gpu.insertion_auc.cpu(), cpu.insertion_auc, atol=2e-3)
    rise_cpu = igospp.methods.RISE(n_masks=64)(bundle.model, x)
    rise_gpu = igospp.methods.RISE(n_masks=64)(gpu_model, x.cuda())
    assert torch.allclose(rise_gpu.cpu(), rise_cpu, atol=2e-3)            # same seeded masks on every device
    cam = igospp.methods.GradCAM()(gpu_model, x.cuda())
    assert cam.shape == (1, 1, 7, 7) and cam.device.type == "cuda"
    ig = igospp.methods.IntegratedGrad(steps=8)(gpu_model, x.cuda())
    assert ig.shape == (1, 1, 224, 224)
