"""Reading image files (read_image) and listing folders of them (image_folder): every file is read as displayed
or refused with a reason, never silently wrong."""

import io
import warnings

import numpy as np
import pytest
from PIL import Image, ImageFile

import igospp
from igospp import UnreadableImageError, read_image

#: 16-bit grey levels and their 8-bit values (value / 257, rounded): PIL's convert("RGB") made all of them 255.
GREY16 = np.array([[0, 257, 32896, 65535]], np.uint16)
GREY8 = np.array([[0, 1, 128, 255]], np.uint8)


def _grey(values: np.ndarray) -> np.ndarray:
    return np.repeat(np.asarray(values, np.uint8)[..., None], 3, axis=2)


def _palette(transparent: bool) -> Image.Image:
    image = Image.new("P", (2, 1))
    image.putpalette([255, 0, 0, 0, 255, 0])
    image.putpixel((1, 0), 1)
    if transparent:
        image.info["transparency"] = 1
    return image


def _cmyk() -> Image.Image:
    image = Image.new("CMYK", (2, 1))
    image.putpixel((0, 0), (255, 0, 0, 0))                  # pure cyan
    image.putpixel((1, 0), (0, 0, 0, 255))                  # pure black
    return image


def _with_alpha(mode: str) -> Image.Image:
    grey = Image.fromarray(np.array([[10, 200]], np.uint8))
    alpha = Image.fromarray(np.array([[0, 255]], np.uint8))  # left pixel fully transparent
    return Image.merge(mode, (grey, alpha) if mode == "LA" else (grey, grey, grey, alpha))


# ----------------------------------------------------------------------------- every mode read as displayed
# (what the file holds, the PIL image written, the file name, the RGB uint8 array expected)
MODES = [
    ("16-bit grey PNG (I;16)", lambda: Image.fromarray(GREY16), "x.png", _grey(GREY8)),
    ("16-bit grey TIFF (I;16)", lambda: Image.fromarray(GREY16), "x.tif", _grey(GREY8)),
    ("16-bit big-endian TIFF (I;16B)",
     lambda: Image.frombytes("I;16B", (4, 1), GREY16.astype(">u2").tobytes()), "x.tif", _grey(GREY8)),
    ("32-bit integer TIFF of 16-bit data (I)", lambda: Image.fromarray(GREY16.astype(np.int32)), "x.tif",
     _grey(GREY8)),
    ("float TIFF in [0, 1] (F)", lambda: Image.fromarray(GREY16.astype(np.float32) / 65535), "x.tif", _grey(GREY8)),
    ("8-bit grey PNG (L)", lambda: Image.fromarray(GREY8), "x.png", _grey(GREY8)),
    ("1-bit PNG", lambda: Image.fromarray(np.array([[False, True]])), "x.png", _grey([[0, 255]])),
    ("palette PNG (P)", lambda: _palette(transparent=False), "x.png", np.array([[[255, 0, 0], [0, 255, 0]]])),
    ("palette PNG with a transparent color", lambda: _palette(transparent=True), "x.png",
     np.array([[[255, 0, 0], [255, 255, 255]]])),
    ("grey with alpha (LA), over white", lambda: _with_alpha("LA"), "x.png", _grey([[255, 200]])),
    ("RGBA, over white", lambda: _with_alpha("RGBA"), "x.png", _grey([[255, 200]])),
    ("CMYK TIFF", _cmyk, "x.tif", np.array([[[0, 255, 255], [0, 0, 0]]])),
]


@pytest.mark.parametrize(("image", "name", "expected"), [row[1:] for row in MODES], ids=[row[0] for row in MODES])
def test_read_image_gives_rgb_uint8_as_displayed(tmp_path, image, name, expected):
    path = tmp_path / name
    image().save(path)
    out = read_image(path)
    assert out.dtype == np.uint8 and out.shape == np.asarray(expected).shape
    np.testing.assert_array_equal(out, expected)


def test_read_image_applies_the_exif_orientation(tmp_path):
    pixels = np.zeros((2, 3, 3), np.uint8)
    pixels[0, 0], pixels[1, 2] = (255, 0, 0), (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6                                         # "rotate 90 degrees clockwise to display"
    Image.fromarray(pixels).save(tmp_path / "phone.png", exif=exif)
    np.testing.assert_array_equal(read_image(tmp_path / "phone.png"), np.rot90(pixels, k=-1))


# ----------------------------------------------------------------------------- files that are refused
def _cut_jpeg() -> bytes:
    """A JPEG cut in the middle of its pixel data: its headers are whole, so PIL's verify() passes it."""
    pixels = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG")
    data = buffer.getvalue()
    return data[:len(data) * 3 // 4]


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _write(data: bytes | Image.Image, name: str):
    def make(folder):
        path = folder / name
        if isinstance(data, Image.Image):
            data.save(path)
        else:
            path.write_bytes(data)
        return path
    return make


def _folder(folder):
    (folder / "photo.png").mkdir()
    return folder / "photo.png"


# (case, makes the file in a folder, PIL.Image.MAX_IMAGE_PIXELS during the test or None, the error's text)
BAD_FILES = [
    ("missing file", lambda folder: folder / "missing.png", None, r"missing.png' does not exist"),
    ("a folder", _folder, None, r"photo.png' is a folder, not an image file"),
    ("text with an image suffix", _write(b"hello, not a picture", "notes.jpg"), None,
     r"notes.jpg' is not an image file"),
    ("empty file", _write(b"", "empty.png"), None, r"empty.png' is not an image file"),
    ("truncated JPEG (passes PIL's verify)", _write(_cut_jpeg(), "cut.jpg"), None,
     r"cut.jpg' is truncated or corrupt.*image file is truncated"),
    ("truncated PNG", _write(_png_bytes(Image.new("RGB", (64, 64), (1, 2, 3)))[:60], "cut.png"), None,
     r"cut.png' is truncated or corrupt"),
    ("decompression bomb (over twice the limit)", _write(Image.new("L", (40, 40)), "bomb.png"), 500,
     r"bomb.png' is refused as a possible decompression bomb.*1600 pixels.*MAX_IMAGE_PIXELS = 500"),
    ("decompression bomb (over the limit)", _write(Image.new("L", (20, 30)), "bomb.png"), 500,
     r"bomb.png' is refused as a possible decompression bomb.*600 pixels.*MAX_IMAGE_PIXELS = 500"),
    ("32-bit integers beyond 16 bits", _write(Image.fromarray(np.array([[0, 70000]], np.int32)), "deep.tif"), None,
     r"deep.tif' holds 32-bit integer pixels in \[0, 70000\].*white level is unknown"),
    ("float pixels beyond [0, 255]", _write(Image.fromarray(np.array([[0, 300.0]], np.float32)), "hdr.tif"),
     None, r"hdr.tif' holds floating-point pixels in \[0, 300\].*white level"),
]


@pytest.mark.parametrize(("make", "limit", "message"), [row[1:] for row in BAD_FILES],
                         ids=[row[0] for row in BAD_FILES])
def test_read_image_refuses_unreadable_files_naming_them(tmp_path, monkeypatch, make, limit, message):
    path = make(tmp_path)
    if limit is not None:
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                       # refused, not warned about
        with pytest.raises(UnreadableImageError, match=message) as caught:
            read_image(path)
    assert isinstance(caught.value, ValueError)
    assert not ImageFile.LOAD_TRUNCATED_IMAGES              # the library never turns PIL's check off


@pytest.mark.filterwarnings("ignore:Truncated File Read")   # PIL's own note on a cut TIFF tag
def test_garbage_and_cut_files_are_read_or_refused_never_crash(tmp_path):
    """Random bytes, and valid files of every format cut at random points: an image or UnreadableImageError."""
    rng = np.random.default_rng(13)
    pixels = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    whole = {}
    for fmt, suffix in [("PNG", "png"), ("JPEG", "jpg"), ("BMP", "bmp"), ("TIFF", "tif"), ("WEBP", "webp"),
                        ("GIF", "gif")]:
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format=fmt)
        whole[suffix] = buffer.getvalue()
    files = []
    for i in range(60):
        suffix = list(whole)[i % len(whole)]
        data = whole[suffix]
        data = rng.bytes(int(rng.integers(0, 300))) if i % 5 == 0 else data[:int(rng.integers(0, len(data)))]
        path = tmp_path / f"f{i:02d}.{suffix}"
        path.write_bytes(data)
        files.append(path)
    for path in files:
        try:
            out = read_image(path)
        except UnreadableImageError as err:
            assert path.name in str(err)
        else:
            assert out.dtype == np.uint8 and out.shape == (24, 32, 3), path.name


# ----------------------------------------------------------------------------- folders
def _save(path, size=(12, 10), pixels=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((size[1], size[0], 3), np.uint8) if pixels is None else pixels).save(path)


def test_image_folder_flat_and_per_class(tmp_path):
    _save(tmp_path / "flat" / "n01491361_tiger_shark.JPEG")
    _save(tmp_path / "flat" / "holiday.png")
    (tmp_path / "flat" / "README.md").write_text("not an image")
    flat = igospp.image_folder(tmp_path / "flat")
    assert [(r.name, r.synset, r.label) for r in flat] == [("holiday", None, None),
                                                           ("n01491361_tiger_shark", "n01491361", 3)]
    _save(tmp_path / "classes" / "n01530575" / "ILSVRC2012_val_00000001.JPEG")
    rec = igospp.image_folder(tmp_path / "classes")[0]
    assert (rec.synset, rec.label) == ("n01530575", 10) and rec.load().shape == (10, 12, 3)


def test_image_folder_keys_are_paths_relative_to_the_root(tmp_path):
    for rel in ["n02123045/img1.png", "n07920052/img1.png", "n07920052/img1.jpg"]:
        _save(tmp_path / rel)
    folder = igospp.image_folder(tmp_path)
    assert [r.key for r in folder] == ["n02123045/img1.png", "n07920052/img1.jpg", "n07920052/img1.png"]
    assert {r.name for r in folder} == {"img1"}                  # the stem alone would collide
    assert igospp.ImageRecord(tmp_path / "a" / "b.png", "b", None, None).key == "b.png"


def test_image_folder_records_load_16_bit_files_scaled(tmp_path):
    Image.fromarray(GREY16).save(tmp_path / "depth.png")
    np.testing.assert_array_equal(igospp.image_folder(tmp_path)[0].load(), _grey(GREY8))


@pytest.mark.filterwarnings("ignore:skipped 1 unreadable")
def test_image_folder_subset_is_seeded_and_unreadable_files_are_skipped(tmp_path):
    for i in range(12):
        _save(tmp_path / f"img{i:02d}.png")
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


def test_image_folder_skips_a_truncated_jpeg_that_passes_verify(tmp_path):
    for i in range(3):
        _save(tmp_path / "n01530575" / f"img{i}.png")
    cut = tmp_path / "n01530575" / "cut.jpg"
    cut.write_bytes(_cut_jpeg())
    with Image.open(cut) as image:
        image.verify()                                       # what image_folder used to check: it passes
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable file\(s\).*n01530575/cut.jpg.*truncated") as caught:
        folder = igospp.image_folder(tmp_path)
    assert len(caught) == 1
    assert [r.key for r in folder] == [f"n01530575/img{i}.png" for i in range(3)]
    assert [(p, "truncated" in why) for p, why in folder.skipped] == [(cut, True)]
    with pytest.warns(UserWarning, match="cut.jpg"):
        assert len(igospp.image_folder(tmp_path, n=3, seed=0)) == 3     # the subset is refilled


# (case, folder contents, arguments, error type, message)
BAD_FOLDERS = [
    ("missing folder", None, {"path": "missing"}, FileNotFoundError, "does not exist"),
    ("no image files", [], {}, FileNotFoundError, "no image files"),
    ("n = 0", ["a.png"], {"n": 0}, ValueError, "n must be a positive integer, got 0"),
    ("n < 0", ["a.png"], {"n": -1}, ValueError, "n must be a positive integer, got -1"),
    ("n not an integer", ["a.png"], {"n": 1.5}, ValueError, "n must be a positive integer, got 1.5"),
    ("seed < 0", ["a.png"], {"n": 1, "seed": -1}, ValueError, "seed must be an integer >= 0"),
    ("seed not an integer", ["a.png"], {"seed": "7"}, ValueError, "seed must be an integer >= 0"),
]


@pytest.mark.parametrize(("files", "kwargs", "error", "message"), [row[1:] for row in BAD_FOLDERS],
                         ids=[row[0] for row in BAD_FOLDERS])
def test_image_folder_bad_arguments(tmp_path, files, kwargs, error, message):
    for name in files or []:
        _save(tmp_path / name)
    kwargs = dict(kwargs)
    path = tmp_path / kwargs.pop("path", ".")
    with pytest.raises(error, match=message):
        igospp.image_folder(path, **kwargs)
