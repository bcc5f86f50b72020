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


def test_unknown_model_and_device():
    with pytest.raises(ValueError, match="unknown model 'resnet5'.*efficientnet_lite0"):
        igospp.load_model("resnet5")
    with pytest.raises(ValueError, match="device"):
        igospp.load_model(device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            igospp.load_model(device="cuda")


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
    x = torch.randn(1, 3, 224, 224)
    cam = igospp.baselines.GradCAM()(bundle.model, x, target=0)
    assert cam.shape == ((1, 1, 7, 7) if name == "resnet50" else (1, 1, 14, 14))


def test_timm_models(monkeypatch):
    import timm

    with pytest.raises(ValueError, match="unknown timm model"):
        igospp.load_model("timm:not_a_model")
    real = timm.create_model

    def offline(name, pretrained=False, **kw):
        raise OSError("We couldn't connect to 'https://huggingface.co'")

    monkeypatch.setattr(timm, "create_model", offline)
    with pytest.raises(igospp.WeightsUnavailableError, match="timm:resnet18.*Hugging Face"):
        igospp.load_model("timm:resnet18", device="cpu")
    monkeypatch.setattr(timm, "create_model", lambda name, pretrained=False, **kw: real(name, pretrained=False))
    bundle = igospp.load_model("timm:resnet18", device="cpu")
    assert bundle.input_size == (224, 224) and bundle.mean == pytest.approx(igospp.IMAGENET_MEAN)
    assert igospp.baselines.gradcam_layer(bundle.model) is bundle.model.layer4


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


# ----------------------------------------------------------------------------- image folders
def _write(path, size=(12, 10)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((size[1], size[0], 3), np.uint8)).save(path)


def test_image_folder_flat_and_per_class(tmp_path):
    _write(tmp_path / "flat" / "n01491361_tiger_shark.JPEG")
    _write(tmp_path / "flat" / "holiday.png")
    (tmp_path / "flat" / "README.md").write_text("not an image")
    flat = igospp.image_folder(tmp_path / "flat")
    assert [(r.name, r.synset, r.label) for r in flat] == [("holiday", None, None),
                                                           ("n01491361_tiger_shark", "n01491361", 3)]
    _write(tmp_path / "classes" / "n01530575" / "ILSVRC2012_val_00000001.JPEG")
    rec = igospp.image_folder(tmp_path / "classes")[0]
    assert (rec.synset, rec.label) == ("n01530575", 10) and rec.load().shape == (10, 12, 3)


@pytest.mark.filterwarnings("ignore:skipped 1 unreadable")
def test_image_folder_subset_is_seeded_and_unreadable_files_are_skipped(tmp_path):
    for i in range(12):
        _write(tmp_path / f"img{i:02d}.png")
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg at all")
    a = igospp.image_folder(tmp_path, n=11, seed=3)
    b = igospp.image_folder(tmp_path, n=11, seed=3)
    assert [r.name for r in a] == [r.name for r in b] and len(a) == 11
    assert [r.name for r in a] == sorted(r.name for r in a)
    assert [r.name for r in igospp.image_folder(tmp_path, n=4, seed=4)] != [r.name for r in
                                                                            igospp.image_folder(tmp_path, n=4, seed=5)]
    with pytest.warns(UserWarning, match="skipped 1 unreadable file.*broken.jpg"):
        everything = igospp.image_folder(tmp_path)
    assert len(everything) == 12 and everything.skipped[0][0].name == "broken.jpg"


def test_image_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        igospp.image_folder(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="no image files"):
        igospp.image_folder(tmp_path)
    _write(tmp_path / "a.png")
    with pytest.raises(ValueError, match="n must be a positive integer"):
        igospp.image_folder(tmp_path, n=0)
