"""Image decoding and the on-disk cache: placeholders written by the test, strict/lenient, cache keys."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fairmed import Cohort, DataError
from fairmed.data import images as images_mod
from fairmed.data.images import check_relative_paths, load_images, resize_array, resize_matrix


def make_cohort(root, n=20, corrupt=(), missing=(), ext="jpg"):
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        name = f"img{i:02d}.{ext}"
        if i in corrupt:
            (root / name).write_bytes(b"not an image at all")
        elif i not in missing:
            colour = np.array([10 * i, 255 - 10 * i, 100], dtype=np.uint8)
            Image.fromarray(np.broadcast_to(colour, (40, 60, 3)).copy()).save(root / name)
        rows.append({"id": f"id{i}", "path": name, "y": i % 2})
    return Cohort(pd.DataFrame(rows), labels=["y"], attributes=[], image_root=root, name="test")


def test_decodes_resizes_and_caches(tmp_path, monkeypatch):
    cohort = make_cohort(tmp_path / "imgs", ext="png")
    arr = load_images(cohort, size=16, cache_dir=tmp_path / "cache", workers=2)
    assert arr.pixels.shape == (20, 16, 16, 3) and arr.pixels.dtype == np.uint8
    assert isinstance(arr.pixels, np.memmap)
    assert arr.kept.all() and arr.n_dropped == 0
    # flat colours survive the crop + resize exactly (png is lossless)
    assert (arr.pixels[3] == [30, 225, 100]).all()

    def boom(*args, **kwargs):
        raise AssertionError("decoded again although cached")

    monkeypatch.setattr(images_mod, "_decode", boom)
    again = load_images(cohort, size=16, cache_dir=tmp_path / "cache")
    assert again.cache_file == arr.cache_file
    assert np.array_equal(np.asarray(again.pixels), np.asarray(arr.pixels))


def test_cache_key_changes_with_size_and_file_content(tmp_path):
    cohort = make_cohort(tmp_path / "imgs")
    a = load_images(cohort, size=8, cache_dir=tmp_path / "c")
    b = load_images(cohort, size=12, cache_dir=tmp_path / "c")
    assert a.cache_file != b.cache_file
    Image.fromarray(np.zeros((30, 30, 3), dtype=np.uint8)).save(tmp_path / "imgs" / "img05.jpg")
    c = load_images(cohort, size=8, cache_dir=tmp_path / "c")
    assert c.cache_file != a.cache_file
    assert c.pixels[5].max() < 10


def test_strict_names_the_first_bad_image_and_lenient_drops_it(tmp_path):
    cohort = make_cohort(tmp_path / "imgs", corrupt={4}, missing={7})
    with pytest.raises(DataError) as err:
        load_images(cohort, size=8, cache_dir=tmp_path / "c")
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(
        f"{tmp_path / 'imgs' / 'img04.jpg'}: image of id 'id4' is not an image (no known image format)"
    )
    assert "2 unreadable image(s): ids id4, id7" in msg
    arr = load_images(cohort, size=8, cache_dir=tmp_path / "c", strict=False)
    assert list(np.flatnonzero(~arr.kept)) == [4, 7]
    assert arr.dropped["id"].tolist() == ["id4", "id7"]
    assert arr.dropped["reason"].tolist()[1] == "missing"
    assert arr.dropped["reason"].tolist()[0] == "not an image (no known image format)"
    assert arr.pixels[4].max() == 0


def test_paths_may_not_leave_the_root(tmp_path):
    cohort = make_cohort(tmp_path / "imgs", n=3)
    (tmp_path / "secret.jpg").write_bytes(b"x")
    bad = cohort.with_columns(path=["img00.jpg", "../secret.jpg", "img02.jpg"])
    with pytest.raises(
        DataError, match=r"column 'path' row 1: path '../secret.jpg' is outside the data root"
    ):
        load_images(bad, size=8, cache_dir=tmp_path / "c")
    # the path text of the CSV is refused even when it would resolve back inside
    inside_again = cohort.with_columns(path=["img00.jpg", "../imgs/img01.jpg", "img02.jpg"])
    with pytest.raises(DataError, match=r"row 1: path '../imgs/img01.jpg' is outside the data root"):
        load_images(inside_again, size=8, cache_dir=tmp_path / "c")
    with pytest.raises(DataError, match="row 0: path '/etc/passwd'"):
        check_relative_paths(pd.Series(["/etc/passwd"]), "x.csv")


def test_the_users_symlinked_folders_are_followed(tmp_path):
    """Data sets live on another disk behind a symlink: a symlinked image folder (and file) below the
    root is the user's own and is read; only the CSV's path text is held to the root."""
    make_cohort(tmp_path / "other_disk" / "imgs", n=3)
    root = tmp_path / "data"
    root.mkdir()
    (root / "images").symlink_to(tmp_path / "other_disk" / "imgs", target_is_directory=True)
    (root / "one.jpg").symlink_to(tmp_path / "other_disk" / "imgs" / "img01.jpg")
    table = pd.DataFrame({"id": ["a", "b", "c"], "path": ["images/img00.jpg", "one.jpg", "images/img02.jpg"]})
    cohort = Cohort(table.assign(y=[0, 1, 0]), labels=["y"], attributes=[], image_root=root)
    arr = load_images(cohort, size=8, cache_dir=tmp_path / "c")
    assert arr.kept.all()
    # img01 is the flat colour (10, 245, 100), JPEG-compressed
    assert np.abs(arr.pixels[1].astype(int) - [10, 245, 100]).max() <= 4


def test_resize_matrices_average_and_interpolate():
    down = resize_matrix(4, 2)
    assert np.allclose(down, [[0.5, 0.5, 0, 0], [0, 0, 0.5, 0.5]])
    third = resize_matrix(3, 2)
    assert np.allclose(third, [[2 / 3, 1 / 3, 0], [0, 1 / 3, 2 / 3]])
    up = resize_matrix(2, 4)
    assert np.allclose(up.sum(axis=1), 1.0)
    assert np.allclose(up, [[1, 0], [0.75, 0.25], [0.25, 0.75], [0, 1]])
    img = np.arange(4 * 4 * 3, dtype=np.uint8).reshape(1, 4, 4, 3)
    out = resize_array(img, 2)
    expect = img.reshape(1, 2, 2, 2, 2, 3).astype(float).mean(axis=(2, 4))
    assert np.array_equal(out, np.rint(expect).astype(np.uint8))


def test_in_memory_cohorts_resize_without_a_cache(tmp_path):
    from fairmed.data.synth import SynthConfig, generate

    cohort = generate(SynthConfig(n=10, size=32), seed=0)
    arr = load_images(cohort, size=16, cache_dir=tmp_path / "never")
    assert arr.pixels.shape == (10, 16, 16, 3) and arr.kept.all()
    assert not (tmp_path / "never").exists()
    same = load_images(cohort, size=32)
    assert same.pixels is cohort.images
