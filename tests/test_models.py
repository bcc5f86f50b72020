"""The offline model bundle and the bundled photos."""

import numpy as np
import pytest
import torch
from PIL import Image

import igospp

CAT_BREEDS = {"tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat"}


@pytest.fixture(scope="module")
def bundle():
    return igospp.load_model("efficientnet_lite0", device="cpu")


def test_chelsea_is_a_cat(bundle):
    x = bundle.preprocess(igospp.sample_images(["chelsea"])["chelsea"])
    top3 = bundle.top_k(x, 3)[0]
    assert {name for _, name, _ in top3} & CAT_BREEDS
    assert top3[0][1] in CAT_BREEDS


def test_bundle_is_ready_to_explain(bundle):
    assert not bundle.model.training
    assert not any(p.requires_grad for p in bundle.model.parameters())
    assert len(bundle.class_names) == 1000 and bundle.class_names[967] == "espresso"
    assert bundle.input_size == (224, 224) and bundle.device.type == "cpu"


def test_efficientnet_lite2_loads_offline_as_a_second_architecture(bundle):
    lite2 = igospp.load_model("efficientnet_lite2", device="cpu")
    assert lite2.name == "efficientnet_lite2" and lite2.input_size == (224, 224) and not lite2.model.training
    assert lite2.class_names == bundle.class_names
    size = {b.name: sum(p.numel() for p in b.model.parameters()) for b in (bundle, lite2)}
    assert size == {"efficientnet_lite0": 4_652_008, "efficientnet_lite2": 6_092_072}   # the published sizes
    x = lite2.preprocess(igospp.sample_images(["coffee", "chelsea"]).values())
    (espresso, *_), (cat, *_) = lite2.top_k(x, 1)
    assert espresso[1] == "espresso" and cat[1] in CAT_BREEDS


def test_preprocess_accepts_grey_rgba_float_and_pil(bundle):
    rgb = igospp.sample_images(["coffee"])["coffee"]
    ref = bundle.preprocess(rgb)
    assert ref.shape == (1, 3, 224, 224) and ref.dtype == torch.float32
    assert torch.allclose(bundle.preprocess(Image.fromarray(rgb)), ref)
    assert torch.allclose(bundle.preprocess(rgb.astype(np.float32) / 255), ref, atol=1e-6)
    rgba = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], axis=2)
    assert torch.allclose(bundle.preprocess(rgba), ref)
    grey = bundle.preprocess(rgb[..., 0])
    assert torch.allclose(grey[:, 0] * 0.229 + 0.485, grey[:, 1] * 0.224 + 0.456, atol=1e-6)
    assert bundle.preprocess([rgb, rgb[..., 0]]).shape == (2, 3, 224, 224)


def test_preprocess_rejects_bad_arrays(bundle):
    with pytest.raises(ValueError, match=r"images\[0\].*\[0, 1\]"):
        bundle.preprocess(np.full((8, 8, 3), 2.0))
    with pytest.raises(ValueError, match=r"\(H, W\), \(H, W, 3\)"):
        bundle.preprocess(np.zeros((8, 8, 5), np.uint8))
    with pytest.raises(TypeError, match="PIL image or a numpy array"):
        bundle.preprocess([torch.zeros(3, 8, 8)])
    with pytest.raises(ValueError, match="no images"):
        bundle.preprocess([])


def test_deprocess_inverts_preprocess(bundle):
    rgb = igospp.sample_images(["rocket"])["rocket"]
    x = bundle.preprocess(rgb)
    back = bundle.deprocess(x)
    resized = np.asarray(Image.fromarray(rgb).resize((224, 224), Image.BILINEAR)) / 255.0
    assert back.shape == (1, 224, 224, 3) and np.abs(back[0] - resized).max() < 1e-5
    assert bundle.deprocess(x[0]).shape == (224, 224, 3)


def test_unknown_model():
    with pytest.raises(ValueError, match="unknown model 'resnet5'.*efficientnet_lite0"):
        igospp.load_model("resnet5")


def _machine(monkeypatch, cuda: int = 0, mps: bool = False) -> None:
    """Pretend this machine has ``cuda`` CUDA devices and, or not, Apple's MPS backend."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)


@pytest.mark.parametrize(("device", "cuda", "mps", "expected"), [
    ("auto", 0, False, "cpu"),
    ("auto", 1, False, "cuda"),
    ("cpu", 0, False, "cpu"),
    ("cuda", 2, False, "cuda"),
    ("cuda:1", 2, False, "cuda:1"),
    ("mps", 0, True, "mps"),
    (torch.device("cpu"), 0, False, "cpu"),
])
def test_resolve_device(monkeypatch, device, cuda, mps, expected):
    _machine(monkeypatch, cuda, mps)
    assert igospp.models.resolve_device(device) == torch.device(expected)


# (case, device, CUDA devices, MPS available, error type, message)
BAD_DEVICES = [
    ("mps without Apple silicon", "mps", 0, False, ValueError, r"device 'mps'.*MPS backend.*not available here.*"
                                                               r"\['auto', 'cpu'\]"),
    ("cuda without CUDA", "cuda", 0, False, ValueError, r"device 'cuda' was asked for but CUDA is not available"),
    ("cuda:N without CUDA", "cuda:0", 0, False, ValueError, r"CUDA is not available"),
    ("cuda:N beyond the devices", "cuda:2", 2, False, ValueError,
     r"device 'cuda:2' does not exist: this machine has 2 CUDA device\(s\) \(cuda:0 to cuda:1\)"),
    ("unknown type", "tpu", 0, False, ValueError,
     r"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got 'tpu'; available here: \['auto', 'cpu'\]"),
    ("a type torch knows but we do not run on", "meta", 1, False, ValueError,
     r"got 'meta'; available here: \['auto', 'cpu', 'cuda', 'cuda:0'\]"),
    ("malformed index", "cuda:x", 1, False, ValueError, r"device must be .*got 'cuda:x'"),
    ("empty", "", 0, False, ValueError, r"device must be .*got ''"),
    ("not a string", 0, 1, False, TypeError, r"device must be a string .* or a torch.device; got int"),
]


@pytest.mark.parametrize(("device", "cuda", "mps", "error", "message"), [row[1:] for row in BAD_DEVICES],
                         ids=[row[0] for row in BAD_DEVICES])
def test_bad_devices_are_refused_naming_the_choices(monkeypatch, device, cuda, mps, error, message):
    _machine(monkeypatch, cuda, mps)
    with pytest.raises(error, match=message):
        igospp.models.resolve_device(device)
    if isinstance(device, str):
        with pytest.raises(error, match=message):
            igospp.load_model(device=device)          # refused before any weights are loaded


def test_sample_images():
    photos = igospp.sample_images()
    assert list(photos) == list(igospp.SAMPLE_IMAGES)
    assert len(photos) >= 7
    for name, image in photos.items():
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3, name
    with pytest.raises(ValueError, match="unknown sample image"):
        igospp.sample_images(["lena"])
    with pytest.raises(TypeError, match="not a string"):
        igospp.sample_images("chelsea")


def test_explain_the_cat_end_to_end(bundle):
    x = bundle.preprocess(igospp.sample_images(["chelsea"])["chelsea"])
    cfg = igospp.Config.igospp(resolution=7, iterations=2, ig_steps=2, batch_size=8)
    exp = igospp.explain(bundle.model, x, config=cfg)
    assert bundle.class_names[exp.target.item()] in CAT_BREEDS
    assert exp.mask.shape == (1, 1, 7, 7) and (exp.mask < 1).any()
    assert exp.stats.backward_images == 2 * 4 * 2


# ----------------------------------------------------------------------------- more models
def test_resnet50_offline_without_cache_says_what_to_do(monkeypatch):
    import urllib.error

    import torchvision.models._api as api

    def offline(url, *args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(api, "load_state_dict_from_url", offline)
    with pytest.raises(igospp.WeightsUnavailableError, match=r"resnet50.*download.pytorch.org.*efficientnet_lite0"):
        igospp.load_model("resnet50", device="cpu")


@pytest.mark.parametrize("name", ["resnet50", "vgg19"])
def test_torchvision_models_load_from_the_cache(monkeypatch, name):
    import torchvision
    import torchvision.models._api as api

    state = getattr(torchvision.models, name)().state_dict()      # stands in for the cached file
    monkeypatch.setattr(api, "load_state_dict_from_url", lambda url, *a, **k: state)
    bundle = igospp.load_model(name, device="cpu")
    assert bundle.name == name and len(bundle.class_names) == 1000 and not bundle.model.training
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    cam = igospp.methods.GradCAM()(bundle.model, x, target=0)
    assert cam.shape == ((1, 1, 7, 7) if name == "resnet50" else (1, 1, 14, 14))


def _no_network(monkeypatch):
    """Any attempt to reach the network fails the test."""
    import socket

    import huggingface_hub

    def refuse(*args, **kwargs):
        raise AssertionError("the network was touched")

    monkeypatch.setattr(igospp.models, "_reachable", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", refuse)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)


def test_timm_unknown_model_or_no_pretrained_weights(monkeypatch):
    import timm

    with pytest.raises(ValueError, match="unknown timm model 'not_a_model'"):
        igospp.load_model("timm:not_a_model")
    monkeypatch.setattr(timm.models, "get_pretrained_cfg", lambda name: None)
    _no_network(monkeypatch)
    with pytest.raises(ValueError, match="timm model 'resnet18' has no pretrained weights"):
        igospp.load_model("timm:resnet18", device="cpu")


@pytest.mark.parametrize("reason", ["unreachable", "HF_HUB_OFFLINE"])
def test_timm_offline_without_cache_fails_at_once(monkeypatch, reason):
    import huggingface_hub.constants
    import timm

    def must_not_run(*args, **kwargs):
        raise AssertionError("timm.create_model was called: the offline check came too late")

    monkeypatch.setattr(timm, "create_model", must_not_run)
    monkeypatch.setattr(igospp.models, "_cached_weights", lambda cfg: None)
    monkeypatch.setattr(igospp.models, "_reachable", lambda url: False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", reason == "HF_HUB_OFFLINE")
    message = "not reachable within 2 s" if reason == "unreachable" else "HF_HUB_OFFLINE is set"
    with pytest.raises(igospp.WeightsUnavailableError,
                       match=rf"timm:resnet18.*Hugging Face hub.*{message}.*not in the cache.*efficientnet_lite0"):
        igospp.load_model("timm:resnet18", device="cpu")


def test_timm_download_errors_say_what_to_do(monkeypatch):
    import timm

    def offline(name, pretrained=False, **kw):
        raise OSError("We couldn't connect to 'https://huggingface.co'")

    monkeypatch.setattr(timm, "create_model", offline)
    monkeypatch.setattr(igospp.models, "_cached_weights", lambda cfg: None)
    monkeypatch.setattr(igospp.models, "_reachable", lambda url: True)
    with pytest.raises(igospp.WeightsUnavailableError, match="timm:resnet18.*Hugging Face.*couldn't connect"):
        igospp.load_model("timm:resnet18", device="cpu")


def test_timm_model_in_the_hugging_face_cache_loads_without_network(monkeypatch, tmp_path):
    """A cache laid out as huggingface_hub writes it: the weights are read from it, the network is never tried."""
    import huggingface_hub.constants
    import safetensors.torch
    import timm

    cfg = timm.models.get_pretrained_cfg("resnet18")
    repo_id = cfg.hf_hub_id
    snapshot = tmp_path / f"models--{repo_id.replace('/', '--')}" / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0123abcd")
    torch.manual_seed(0)
    weights = timm.create_model("resnet18", pretrained=False).state_dict()
    safetensors.torch.save_file(weights, str(snapshot / "model.safetensors"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    _no_network(monkeypatch)

    assert igospp.models._cached_weights(cfg.to_dict()) == str(snapshot / "model.safetensors")
    bundle = igospp.load_model("timm:resnet18", device="cpu")
    assert torch.equal(bundle.model.conv1.weight, weights["conv1.weight"])
    assert bundle.input_size == (224, 224) and bundle.mean == pytest.approx(igospp.IMAGENET_MEAN)
    assert igospp.methods.gradcam_layer(bundle.model) is bundle.model.layer4


def test_timm_cache_lookup_finds_nothing_in_an_empty_cache(monkeypatch, tmp_path):
    import huggingface_hub.constants
    import timm

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "torch"))
    assert igospp.models._cached_weights(timm.models.get_pretrained_cfg("resnet18").to_dict()) is None


def test_any_module_with_its_own_preprocessing():
    from .conftest import SmoothModel

    model = SmoothModel(channels=1, classes=3, dtype=torch.float32)
    bundle = igospp.ModelBundle("digits", model, (8, 8), mean=(0.5,), std=(0.5,),
                                class_names=["a", "b", "c"],
                                transform=lambda img: torch.as_tensor(img, dtype=torch.float32)[None] / 16)
    x = bundle.preprocess([np.full((8, 8), 16.0), np.zeros((8, 8))])
    assert x.shape == (2, 1, 8, 8) and x.max() == 1
    exp = igospp.explain(bundle.model, x, config=igospp.Config.igospp(resolution=4, iterations=1, ig_steps=2,
                                                                      low_score_threshold=None))
    assert exp.mask.shape == (2, 1, 4, 4)
