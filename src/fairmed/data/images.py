"""Pixels for a cohort: decode and resize each image once into a cached uint8 array.

Training reads the same images many times (epochs, seeds, strategies, studies), so
decoding JPEGs each time would dominate. ``load_images`` decodes every file once, in
parallel threads (Pillow releases the GIL while decoding and resizing), into a
memory-mapped ``.npy`` under the cache folder, keyed by a hash of the ids, the paths,
each file's size and modification time, and the target size: change any of them and
a new cache is made; otherwise the second call opens the array instantly.

A missing or corrupt image is reported with its id and path: ``strict=True`` raises a
one-line :class:`DataError`, ``strict=False`` drops it (``kept`` is False there, the
pixels are zero) and lists it in ``dropped``. A path whose text leaves the image root
(``..``, an absolute path) is always an error; symlinked folders and files below the
root are the user's own and are followed.

Cohorts with in-memory images (the generator) are resized with a vectorized
area/bilinear filter instead.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageOps, UnidentifiedImageError

from fairmed.data.cohort import ID, PATH, Cohort
from fairmed.errors import DataError, first_rows
from fairmed.io import atomic_path, write_json
from fairmed.progress import bar

CACHE_VERSION = "2"  # 2: alpha on white, 16-bit scaling, EXIF orientation
_BATCH = 32  # images per thread task


@dataclass
class ImageArray:
    """Decoded pixels, one slot per cohort row; rows that could not be read are not ``kept``."""

    pixels: np.ndarray  # (n, size, size, 3) uint8, memory-mapped when read from files
    kept: np.ndarray  # (n,) bool
    dropped: pd.DataFrame  # id, path, reason
    cache_file: Path | None = None

    def __len__(self) -> int:
        return len(self.pixels)

    @property
    def n_dropped(self) -> int:
        return len(self.dropped)


def default_cache_dir() -> Path:
    """``$FAIRMED_CACHE/images`` when set, else ``~/.cache/fairmed/images``."""
    root = os.environ.get("FAIRMED_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "fairmed") / "images"


# ------------------------------------------------------------------------ paths
def check_relative_paths(paths: pd.Series, where: str, column: str = PATH) -> None:
    """Refuse absolute paths and paths that climb out of the data root ('..'), naming the row."""
    text = paths.astype("string").fillna("")
    normal = text.map(lambda p: os.path.normpath(p) if p else p)
    bad = (
        text.str.startswith("/")
        | text.str.startswith("\\")
        | text.str.match(r"^[A-Za-z]:")
        | (normal == "..")
        | normal.str.startswith("../")
    ).to_numpy(dtype=bool)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{where}: column {column!r} row {row}: path {text.iloc[row]!r} is outside the data root"
            f" ({int(bad.sum())} such row(s))"
        )


def resolve_inside(root: Path, relative: str) -> Path | None:
    """``root/relative``, or None when the path *text* climbs out of ``root`` ('..', absolute).

    The rule: the CSV's own path text may not leave the image root, but symlinks on disk are the
    user's and are followed (data sets usually live on another disk behind a symlinked folder).
    """
    full = os.path.normpath(os.path.join(root, relative))
    base = os.path.normpath(root)
    if os.path.isabs(relative) or os.path.commonpath([base, full]) != base:
        return None
    return Path(full)


# ------------------------------------------------------------------ in memory
def resize_matrix(src: int, dst: int) -> np.ndarray:
    """(dst, src) weights: area averaging when shrinking, linear interpolation when growing."""
    if dst == src:
        return np.eye(dst, dtype=np.float32)
    if dst < src:
        edges = np.linspace(0.0, src, dst + 1)
        lo, hi = edges[:-1, None], edges[1:, None]
        pix = np.arange(src)[None, :]
        overlap = np.clip(np.minimum(hi, pix + 1) - np.maximum(lo, pix), 0.0, None)
        return (overlap / overlap.sum(axis=1, keepdims=True)).astype(np.float32)
    pos = (np.arange(dst) + 0.5) * src / dst - 0.5
    left = np.clip(np.floor(pos).astype(int), 0, src - 1)
    right = np.clip(left + 1, 0, src - 1)
    frac = np.clip(pos - left, 0.0, 1.0)
    out = np.zeros((dst, src), dtype=np.float32)
    np.add.at(out, (np.arange(dst), left), 1 - frac)
    np.add.at(out, (np.arange(dst), right), frac)
    return out


def resize_array(images: np.ndarray, size: int, chunk: int = 512) -> np.ndarray:
    """Resize uint8 (n, h, w, 3) images to (n, size, size, 3), vectorized over a few chunks."""
    n, h, w, _ = images.shape
    if h == size and w == size:
        return images
    rows, cols = resize_matrix(h, size), resize_matrix(w, size)
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    for start in range(0, n, chunk):
        block = images[start : start + chunk].astype(np.float32)
        res = np.einsum("hi,nijc,wj->nhwc", rows, block, cols, optimize=True)
        out[start : start + chunk] = np.clip(np.rint(res), 0, 255).astype(np.uint8)
    return out


# ---------------------------------------------------------------------- files
def _cache_key(cohort: Cohort, size: int) -> tuple[str, np.ndarray]:
    """Hash of ids, paths, file sizes/mtimes and size; also the stat array (-1 = missing)."""
    root = str(cohort.image_root)
    stats = np.full((len(cohort), 2), -1, dtype=np.int64)
    for i, rel in enumerate(cohort.table[PATH].astype(str)):
        try:
            st = os.stat(os.path.join(root, rel))
        except OSError:
            continue
        stats[i] = (st.st_size, st.st_mtime_ns)
    h = hashlib.sha256()
    h.update(f"v{CACHE_VERSION}|{size}|{os.path.realpath(root)}|".encode())
    h.update("\x00".join(cohort.table[ID].astype(str)).encode())
    h.update(b"\x01")
    h.update("\x00".join(cohort.table[PATH].astype(str)).encode())
    h.update(stats.tobytes())
    return h.hexdigest()[:24], stats


WHITE = (255, 255, 255, 255)
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N")


def _square(width: int, height: int) -> tuple[int, int, int, int]:
    """The centred square crop box of a ``width`` x ``height`` image."""
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return (left, top, left + side, top + side)


def to_rgb8(im: Image.Image) -> np.ndarray:
    """Any decoded image -> (h, w, 3) uint8 RGB.

    - alpha (RGBA, LA, a palette with transparency) is composited on white: a transparent
      background then looks like the paper it was cut from, not black (dropping alpha would keep
      whatever colour happens to sit under it);
    - 16-bit and 32-bit integer images (``I;16``, ``I``) are scaled by 255/65535 (round to
      nearest), the bit depth's full range mapped onto 0-255, and gray is copied to R, G and B;
    - CMYK (and YCbCr, LAB) go through Pillow's conversion to RGB.
    """
    if im.mode == "I" or im.mode in _SIXTEEN_BIT:
        values = np.clip(np.asarray(im, dtype=np.float64), 0, 65535)
        gray = np.floor(values * (255 / 65535) + 0.5).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in ("RGBA", "LA", "La", "RGBa", "PA"):
        rgba = im.convert("RGBA")
        im = Image.alpha_composite(Image.new("RGBA", rgba.size, WHITE), rgba)
    return np.asarray(im.convert("RGB"), dtype=np.uint8)


def _decode(path: Path, size: int) -> np.ndarray:
    """One image -> (size, size, 3) uint8: EXIF orientation applied, centre square crop, resize.

    A large image meant for a small target is decoded small: JPEGs at a reduced DCT scale
    (``draft``), any format reduced by whole factors before the final bilinear resize
    (``reducing_gap``); see benchmarks/image_cache_speed.py for the speed-up.
    """
    with Image.open(path) as im:
        if im.format == "JPEG":
            im.draft(im.mode, (size, size))  # decode at 1/2, 1/4 or 1/8 scale, still >= size
        im.load()
        ImageOps.exif_transpose(im, in_place=True)  # a no-op without an EXIF orientation
        if im.mode in _SIXTEEN_BIT:
            im = im.convert("I")  # Pillow resizes 32-bit integer images, not 16-bit ones
        elif im.mode in ("P", "1"):
            im = im.convert("RGBA" if "transparency" in im.info else "RGB")  # resize would use NEAREST
        box = _square(*im.size)
        small = im.resize((size, size), Image.Resampling.BILINEAR, box=box, reducing_gap=2.0)
        return to_rgb8(small)


def _reason(exc: Exception) -> str:
    """Why an image could not be decoded, in a few words."""
    if isinstance(exc, UnidentifiedImageError):
        return "not an image (no known image format)"
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if "truncated" in text:
        return f"truncated ({text})"
    return f"corrupt ({text})"


def _decode_batch(rows, out: np.ndarray, root: Path, size: int) -> list[tuple[int, str]]:
    failures = []
    for i, rel, exists in rows:
        full = resolve_inside(root, rel)
        if full is None:
            failures.append((i, "outside the image root"))
            continue
        if not exists:
            failures.append((i, "missing"))
            continue
        try:
            out[i] = _decode(full, size)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            failures.append((i, _reason(exc)))
    return failures


def _build_cache(cohort: Cohort, size: int, target: Path, stats: np.ndarray, workers: int) -> pd.DataFrame:
    n = len(cohort)
    rel = cohort.table[PATH].astype(str).tolist()
    exists = stats[:, 0] >= 0
    tasks = [
        [(i, rel[i], bool(exists[i])) for i in range(s, min(n, s + _BATCH))] for s in range(0, n, _BATCH)
    ]
    failures: list[tuple[int, str]] = []
    with atomic_path(target) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, size, size, 3))
        with ThreadPoolExecutor(max_workers=workers) as pool, bar(n, "decoding images") as progress:
            futures = {pool.submit(_decode_batch, t, out, cohort.image_root, size): len(t) for t in tasks}
            for fut in as_completed(futures):
                failures.extend(fut.result())
                progress.update(futures[fut])
        for i, _ in failures:
            out[i] = 0
        out.flush()
        del out
    idx = np.array(sorted(i for i, _ in failures), dtype=np.int64)
    reasons = dict(failures)
    return pd.DataFrame(
        {
            "id": cohort.table[ID].to_numpy()[idx] if len(idx) else np.array([], dtype=object),
            "path": [rel[i] for i in idx],
            "reason": [reasons[i] for i in idx],
            "row": idx,
        }
    )


def load_images(
    cohort: Cohort,
    size: int = 64,
    cache_dir: str | Path | None = None,
    strict: bool = True,
    workers: int | None = None,
) -> ImageArray:
    """Pixels of every cohort row at ``size`` x ``size``, decoded once and cached on disk."""
    if cohort.images is not None:
        pixels = resize_array(cohort.images, size)
        return ImageArray(pixels, np.ones(len(cohort), dtype=bool), _empty_dropped())
    if cohort.pixel_source != "files":
        raise DataError(f"{cohort.name}: cohort has no images (pixel source: {cohort.pixel_source})")
    if cohort.image_root is None:
        raise DataError(f"{cohort.name}: cohort has a 'path' column but no image_root")
    check_relative_paths(cohort.table[PATH], cohort.meta.get("source_file") or cohort.name)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key, stats = _cache_key(cohort, size)
    array_file = cache / f"{key}.npy"
    report_file = cache / f"{key}.dropped.json"
    if array_file.exists() and report_file.exists():
        dropped = pd.DataFrame(json.loads(report_file.read_text()), columns=["id", "path", "reason", "row"])
    else:
        dropped = _build_cache(cohort, size, array_file, stats, workers or min(8, os.cpu_count() or 1))
        write_json(
            report_file,
            {
                "id": [str(v) for v in dropped["id"]],
                "path": [str(v) for v in dropped["path"]],
                "reason": [str(v) for v in dropped["reason"]],
                "row": [int(v) for v in dropped["row"]],
            },
        )
    outside = dropped[dropped["reason"] == "outside the image root"]
    if len(outside):
        r = outside.iloc[0]
        raise DataError(
            f"{cohort.image_root}: image path {r['path']!r} of id {r['id']!r} is outside the image root"
        )
    if strict and len(dropped):
        r = dropped.iloc[0]
        raise DataError(
            f"{Path(cohort.image_root) / r['path']}: image of id {r['id']!r} is {r['reason']}"
            f" ({len(dropped)} unreadable image(s): ids {first_rows(dropped['id'])}; to drop them: strict=False,"
            " or lenient: true in a study spec, or fairmed run --lenient)"
        )
    kept = np.ones(len(cohort), dtype=bool)
    kept[dropped["row"].to_numpy(dtype=np.int64)] = False
    pixels = np.load(array_file, mmap_mode="r")
    return ImageArray(pixels, kept, dropped[["id", "path", "reason"]].reset_index(drop=True), array_file)


def readable_subset(cohort: Cohort, size: int, cache_dir: str | Path | None = None) -> Cohort:
    """The cohort without the rows whose image is missing or cannot be decoded (lenient mode).

    Decodes at ``size`` into the cache the runs read; the dropped rows (id, path, reason) are
    listed in ``meta["dropped_images"]`` for the study's output folder and report.
    """
    arr = load_images(cohort, size, cache_dir=cache_dir, strict=False)
    kept = cohort if arr.kept.all() else cohort.subset(arr.kept)
    kept.meta = {**kept.meta, "dropped_images": arr.dropped.astype(str).to_dict(orient="records")}
    return kept


def _empty_dropped() -> pd.DataFrame:
    return pd.DataFrame(
        {"id": pd.Series(dtype=object), "path": pd.Series(dtype=object), "reason": pd.Series(dtype=object)}
    )
