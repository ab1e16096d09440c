"""Real files break what generated ones never do: each form is written here and decoded to 8-bit RGB."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fairmed import Cohort, DataError
from fairmed.data.images import _decode, load_images, to_rgb8


def test_alpha_is_composited_on_white(tmp_path):
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[0] = (255, 0, 0, 0)  # transparent red -> white
    rgba[1] = (0, 0, 255, 255)  # opaque blue stays blue
    rgba[2] = (255, 0, 0, 128)  # half red on white: 255 - 255*128/255 for G and B
    rgba[3] = (0, 0, 0, 255)
    out = to_rgb8(Image.fromarray(rgba, "RGBA"))
    assert out[0, 0].tolist() == [255, 255, 255]
    assert out[1, 0].tolist() == [0, 0, 255]
    assert out[2, 0].tolist() == [255, 127, 127]
    la = to_rgb8(Image.fromarray(np.array([[[0, 0], [0, 255]]], dtype=np.uint8), "LA"))
    assert la[0].tolist() == [[255, 255, 255], [0, 0, 0]]
    pal = Image.new("P", (2, 1))
    pal.putpalette([0, 0, 0, 10, 20, 30])
    pal.putdata([0, 1])
    pal.info["transparency"] = 0
    assert to_rgb8(pal)[0].tolist() == [[255, 255, 255], [10, 20, 30]]


def test_grayscale_and_16_bit_scale_to_8_bit_rgb(tmp_path):
    values = np.array([[0, 257 * 100, 65535, 128]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "sixteen.png")
    with Image.open(tmp_path / "sixteen.png") as im:
        assert im.mode == "I;16"  # what a 16-bit radiograph PNG opens as
        out = to_rgb8(im)
    # round(v * 255 / 65535): 128 -> 0.498 -> 0
    assert out[0].tolist() == [[0, 0, 0], [100, 100, 100], [255, 255, 255], [0, 0, 0]]
    flat = np.full((30, 50), 257 * 200, dtype=np.uint16)
    Image.fromarray(flat).save(tmp_path / "flat16.png")
    decoded = _decode(tmp_path / "flat16.png", 8)
    assert decoded.shape == (8, 8, 3) and (decoded == 200).all()
    Image.fromarray(np.full((30, 50), 77, dtype=np.uint8), "L").save(tmp_path / "gray.png")
    assert (_decode(tmp_path / "gray.png", 8) == 77).all()


def _halves(width=40, height=20):
    """Left half red, right half blue."""
    a = np.zeros((height, width, 3), dtype=np.uint8)
    a[:, : width // 2] = (255, 0, 0)
    a[:, width // 2 :] = (0, 0, 255)
    return Image.fromarray(a)


def test_exif_orientation_is_applied(tmp_path):
    im = _halves()
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: display = rotate 90 degrees clockwise
    im.save(tmp_path / "rotated.png", exif=exif)
    im.save(tmp_path / "upright.png")
    upright = _decode(tmp_path / "upright.png", 8)  # centre square of a 40x20: red left, blue right
    assert (upright[:, :2] == (255, 0, 0)).all() and (upright[:, -2:] == (0, 0, 255)).all()
    rotated = _decode(tmp_path / "rotated.png", 8)  # rotated to 20x40: red on top, blue below
    assert (rotated[:2] == (255, 0, 0)).all() and (rotated[-2:] == (0, 0, 255)).all()


def test_cmyk_is_converted(tmp_path):
    Image.new("CMYK", (12, 12), (0, 255, 0, 0)).save(tmp_path / "cmyk.tif")
    assert (_decode(tmp_path / "cmyk.tif", 4) == (255, 0, 255)).all()
    Image.new("CMYK", (64, 64), (0, 255, 0, 0)).save(tmp_path / "cmyk.jpg", quality=95)
    assert np.abs(_decode(tmp_path / "cmyk.jpg", 4).astype(int) - (255, 0, 255)).max() <= 6


def test_large_jpeg_decoded_small_matches_the_full_decode(tmp_path):
    """draft + reducing_gap must give (nearly) the pixels of decoding everything then resizing."""
    y, x = np.mgrid[0:1600, 0:2000]
    smooth = np.stack([x * 255 // 1999, y * 255 // 1599, (x + y) * 255 // 3598], axis=-1).astype(np.uint8)
    Image.fromarray(smooth).save(tmp_path / "big.jpg", quality=95)
    fast = _decode(tmp_path / "big.jpg", 32).astype(int)
    with Image.open(tmp_path / "big.jpg") as im:
        full = np.asarray(
            im.convert("RGB").resize((32, 32), Image.Resampling.BILINEAR, box=(200, 0, 1800, 1600)), dtype=int
        )
    assert np.abs(fast - full).mean() < 1.5 and np.abs(fast - full).max() <= 6


def _cohort(root, names):
    table = pd.DataFrame({"id": [f"id{i}" for i in range(len(names))], "path": names, "y": 0})
    return Cohort(table, labels=["y"], attributes=[], image_root=root, name="t")


def test_corrupt_truncated_and_non_image_files(tmp_path):
    good = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(good).save(tmp_path / "good.png")
    data = (tmp_path / "good.png").read_bytes()
    (tmp_path / "truncated.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "notes.png").write_text("patient notes, not pixels")
    (tmp_path / "empty.jpg").write_bytes(b"")
    cohort = _cohort(tmp_path, ["good.png", "truncated.png", "notes.png", "empty.jpg"])
    with pytest.raises(DataError) as err:
        load_images(cohort, size=8, cache_dir=tmp_path / "c")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{tmp_path / 'truncated.png'}: image of id 'id1' is truncated (")
    assert "3 unreadable image(s): ids id1, id2, id3" in message
    arr = load_images(cohort, size=8, cache_dir=tmp_path / "c", strict=False)
    assert arr.kept.tolist() == [True, False, False, False]
    reasons = arr.dropped["reason"].tolist()
    assert reasons[0].startswith("truncated") and reasons[1:] == ["not an image (no known image format)"] * 2
