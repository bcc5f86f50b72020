"""The offline model bundle and the bundled photos."""

import igospp
import numpy as np
import pytest
import torch
from PIL import Image

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
