"""`fairmed data`: look at any data source, generate the built-in data set, build image caches."""

from __future__ import annotations

import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import click
import numpy as np
import yaml
from PIL import Image
from pydantic import ValidationError

from fairmed.data.cohort import Cohort
from fairmed.data.groups import GroupSpec
from fairmed.data.images import load_images
from fairmed.data.sources import DESCRIPTIONS, KINDS, load_source
from fairmed.data.synth import SynthConfig, generate
from fairmed.errors import SpecError
from fairmed.io import atomic_write, write_table, write_text
from fairmed.progress import bar
from fairmed.studies.spec import deep_merge


def _parse_set(items: tuple[str, ...]) -> dict:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SpecError(
                f"--set {item!r}: expected KEY=VALUE (VALUE in YAML, e.g. contrast_by_fst={{6: 0.3}})"
            )
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = yaml.safe_load(value)
    return out


def _read_spec_file(path: Path) -> dict:
    if not path.exists():
        raise SpecError(f"{path}: spec file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if isinstance(data, dict) and isinstance(data.get("source"), dict):
        data = data["source"]  # a study spec: use its source
    if not isinstance(data, dict) or "kind" not in data:
        raise SpecError(f"{path}: expected a source spec with 'kind' (or a study spec with 'source:')")
    return data


def _study_groups(path: Path | None) -> list[str | GroupSpec]:
    """A study spec's ``groups`` (short forms kept, so two fst groupings keep their names), else []."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) if path is not None else None
    if not isinstance(data, dict) or not isinstance(data.get("source"), dict):
        return []
    groups = data.get("groups") or []
    return [g if isinstance(g, str) else GroupSpec.model_validate(g) for g in groups]


def synth_config(fields: dict) -> SynthConfig:
    """SynthConfig from CLI/YAML fields, with a one-line error for a bad field."""
    try:
        return SynthConfig(**fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "config"
        raise SpecError(f"synth setting {where}: {err['msg']}") from None


def source_options(fn):
    """The options every subcommand uses to name a source."""
    fn = click.argument("spec", required=False, type=click.Path(path_type=Path))(fn)
    fn = click.option(
        "--source", "kind", type=click.Choice(KINDS), help="source kind (instead of SPEC.yaml)"
    )(fn)
    fn = click.option("--csv", multiple=True, type=click.Path(path_type=Path), help="metadata CSV(s)")(fn)
    fn = click.option("--images", type=click.Path(path_type=Path), help="image folder")(fn)
    fn = click.option("--seed", type=int, default=None, help="generator seed (synth kinds)")(fn)
    fn = click.option(
        "--set",
        "settings",
        multiple=True,
        metavar="KEY=VALUE",
        help="any spec field, e.g. config.n=500, label=malignant",
    )(fn)
    return fn


# Which spec fields --csv and --images fill, per source kind (a trailing "*" takes a list).
CSV_FIELDS: dict[str, tuple[str, ...]] = {
    "fitzpatrick17k": ("csv",),
    "folder": ("csv",),
    "isic_archive": ("csv*",),
    "ham10000": ("metadata",),
    "isic2019": ("ground_truth", "metadata"),
    "pad_ufes20": ("csv",),
    "covid_cxr": ("csv",),
    "chexpert": ("csv*",),
    "mimic_cxr": ("metadata", "labels", "patients", "admissions"),
    "nih_cxr14": ("csv",),
    "padchest": ("csv",),
    "papila": ("od", "os"),
    "ddi": ("csv",),
}
IMAGE_FIELDS: dict[str, str] = {
    "fitzpatrick17k": "images",
    "folder": "root",
    "isic_archive": "images",
    "isic2019": "images",
    "ham10000": "images*",
    "pad_ufes20": "images",
    "covid_cxr": "images",
    "chexpert": "root",
    "mimic_cxr": "images",
    "nih_cxr14": "images",
    "padchest": "images",
    "papila": "images",
    "ddi": "images",
}


def _file_fields(kind: str, csv: tuple[Path, ...], images: Path | None) -> dict:
    """--csv/--images as the fields of ``kind``'s spec, so one pair of options serves every layout."""
    out: dict = {}
    if csv:
        fields = CSV_FIELDS.get(kind)
        if fields is None:
            raise SpecError(f"--csv: source {kind!r} takes no CSV option; use SPEC.yaml or --set")
        if fields == ("csv*",):
            out["csv"] = [str(c) for c in csv]
        elif len(csv) != len(fields):
            raise SpecError(
                f"--csv: source {kind!r} takes {len(fields)} CSV(s) in order: {', '.join(fields)}"
            )
        else:
            out.update({field: str(c) for field, c in zip(fields, csv)})
    if images is not None:
        field = IMAGE_FIELDS.get(kind)
        if field is None:
            raise SpecError(f"--images: source {kind!r} has no image folder")
        out[field.rstrip("*")] = [str(images)] if field.endswith("*") else str(images)
    return out


def cohort_from_options(spec, kind, csv, images, seed, settings) -> Cohort:
    if spec is not None and kind is not None:
        raise SpecError("give either SPEC.yaml or --source, not both")
    if spec is None and kind is None:
        raise SpecError(f"name a source: SPEC.yaml or --source {{{', '.join(KINDS)}}}")
    data = _read_spec_file(spec) if spec is not None else {"kind": kind}
    data.update(_file_fields(data["kind"], csv, images))
    if seed is not None:
        data["seed"] = seed
    data = deep_merge(data, _parse_set(settings))
    return load_source(data, base_dir=spec.parent if spec is not None else None)


def default_groups(cohort: Cohort) -> list[GroupSpec]:
    specs = []
    for attr in cohort.attributes:
        if attr == "fst":
            specs.append(GroupSpec.fitzpatrick("each", missing="group"))
        elif attr == "age":
            specs.append(GroupSpec.age_bins((40, 60), missing="group"))
        else:
            specs.append(GroupSpec.categorical(attr, missing="group"))
    return specs


@click.group()
def data() -> None:
    """Data sources: summaries, the generator, image caches."""


@data.command()
@source_options
@click.option("--group", "groups", multiple=True, help="grouping(s), e.g. fst:12-56, sex, age:60, sex*age:60")
@click.option("--out", type=click.Path(path_type=Path), help="also write the table (.csv/.parquet/.json)")
def summary(spec, kind, csv, images, seed, settings, groups, out) -> None:
    """Print the group table of a source: counts per group and class.

    \b
    Examples:
      fairmed data summary --source synth --set config.n=3000
      fairmed data summary --source fitzpatrick17k --csv fitzpatrick17k.csv --group fst:12-56
      fairmed data summary --source isic_archive --csv female.csv --csv male.csv --group sex*age:60
      fairmed data summary study.yaml
    """
    cohort = cohort_from_options(spec, kind, csv, images, seed, settings)
    specs = [GroupSpec.parse(g) for g in groups] if groups else _study_groups(spec) or default_groups(cohort)
    table = cohort.describe(specs)
    click.echo(f"{cohort.name}: {len(cohort)} rows, label {cohort.label!r}, pixels: {cohort.pixel_source}")
    for key in (
        "dropped_missing_images",
        "dropped_other_labels",
        "dropped_uncertain",
        "dropped_other_views",
        "dropped_unlabelled",
        "dropped_suspect",
        "implausible_ages",
    ):
        if cohort.meta.get(key):
            click.echo(f"  {key.replace('_', ' ')}: {cohort.meta[key]}")
    click.echo(table.to_string(index=False))
    if out is not None:
        write_table(table, out)


@data.command()
@click.option("--n", type=int, default=None, help="number of images  [default: 4000, or the --config file's]")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), help="output folder")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--size", type=int, default=None, help="image size in pixels  [default: 64, or the --config file's]"
)
@click.option("--config", "config_file", type=click.Path(path_type=Path), help="YAML of SynthConfig fields")
@click.option(
    "--set", "settings", multiple=True, metavar="KEY=VALUE", help="a SynthConfig field, e.g. n_classes=4"
)
def synth(n, out_dir, seed, size, config_file, settings) -> None:
    """Write generated images (PNG) and metadata.csv in the layout the `folder` source reads.

    Also writes source.yaml, the folder spec that loads them back:
    `fairmed data summary OUT/source.yaml`.
    """
    fields = {"n": 4000, **(_read_yaml_mapping(config_file) if config_file else {})}
    fields.update({k: v for k, v in (("n", n), ("size", size)) if v is not None})
    fields = deep_merge(fields, _parse_set(settings))  # --set has the last word
    cohort = generate(synth_config(fields), seed=seed)
    write_folder(cohort, out_dir)
    click.echo(f"wrote {len(cohort)} images to {out_dir / 'images'} and {out_dir / 'metadata.csv'}")


def _read_yaml_mapping(path: Path) -> dict:
    if not path.exists():
        raise SpecError(f"{path}: file not found")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a mapping of SynthConfig fields")
    return data


def write_folder(cohort: Cohort, out_dir: Path, workers: int = 4) -> Path:
    """PNG per image + metadata.csv (label as class names) + source.yaml; returns the CSV path."""
    if cohort.images is None:
        raise SpecError(f"{cohort.name}: only cohorts with in-memory images can be written as a folder")
    images_dir = out_dir / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    ids = cohort.table["id"].astype(str).tolist()

    def save(i: int) -> None:
        atomic_write(
            images_dir / f"{ids[i]}.png", lambda p: Image.fromarray(cohort.images[i]).save(p, format="PNG")
        )

    with ThreadPoolExecutor(max_workers=workers) as pool, bar(len(ids), "writing images") as progress:
        for _ in pool.map(save, range(len(ids))):
            progress.update(1)
    table = cohort.table.copy()
    table.insert(1, "path", ["images/" + i + ".png" for i in ids])
    for label in cohort.labels:
        names = cohort.class_names.get(label)
        if names:
            table[label] = np.asarray(names, dtype=object)[cohort.y(label)]
    csv = write_table(table, out_dir / "metadata.csv")
    spec = {
        "kind": "folder",
        "csv": "metadata.csv",
        "labels": list(cohort.labels),
        "attributes": list(cohort.attributes),
        "class_names": {k: list(v) for k, v in cohort.class_names.items()},
        "keep": [
            c
            for c in table.columns
            if c not in {"id", "path", "patient_id", *cohort.labels, *cohort.attributes}
        ],
    }
    write_text(out_dir / "source.yaml", yaml.safe_dump(spec, sort_keys=False))
    return csv


@data.command()
@source_options
@click.option("--size", type=int, default=64, show_default=True, help="decoded image size")
@click.option(
    "--cache-dir",
    type=click.Path(path_type=Path),
    help="default: $FAIRMED_CACHE/images or ~/.cache/fairmed/images",
)
@click.option("--lenient", is_flag=True, help="drop unreadable images (listed) instead of failing")
@click.option("--workers", type=int, default=None, help="decoding threads")
def cache(spec, kind, csv, images, seed, settings, size, cache_dir, lenient, workers) -> None:
    """Decode and resize a source's images once into the on-disk cache."""
    cohort = cohort_from_options(spec, kind, csv, images, seed, settings)
    start = time.perf_counter()
    arr = load_images(cohort, size=size, cache_dir=cache_dir, strict=not lenient, workers=workers)
    seconds = time.perf_counter() - start
    click.echo(
        f"{len(arr)} images at {size}x{size} in {seconds:.2f} s ({len(arr) / max(seconds, 1e-9):.0f}/s);"
        f" dropped {arr.n_dropped}; cache: {arr.cache_file or 'in memory'}"
    )
    if arr.n_dropped:
        click.echo(arr.dropped.to_string(index=False))


@data.command()
def sources() -> None:
    """List the source kinds and the file layout each expects."""
    from fairmed.data.sources import layout

    for kind in KINDS:
        click.echo(f"{kind}: {DESCRIPTIONS[kind]}")
        text = layout(kind)
        click.echo(textwrap.indent(text, "    ") + "\n" if text else "")
    click.echo("Each kind's fields (csv, images, label, ...): docs/data.md.")


@data.command()
@click.option("--out", required=True, type=click.Path(path_type=Path), help="PNG file")
@click.option("--n", type=int, default=3000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--size", type=int, default=64, show_default=True)
@click.option("--per-cell", type=int, default=4, show_default=True, help="images per skin type and class")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE", help="a SynthConfig field")
def grid(out, n, seed, size, per_cell, settings) -> None:
    """Save a labelled grid of generated images: rows = Fitzpatrick type, column blocks = class."""
    from matplotlib.figure import Figure

    from fairmed.data.synth import mosaic

    fields = deep_merge({"n": n, "size": size}, _parse_set(settings))
    cohort = generate(synth_config(fields), seed=seed)
    image, rows, classes = mosaic(cohort, per_cell=per_cell)
    fig = Figure(figsize=(image.shape[1] / 96 + 1.2, image.shape[0] / 96 + 0.8), dpi=110)
    ax = fig.add_axes((0.09, 0.02, 0.9, 0.9))
    ax.imshow(image, interpolation="nearest")
    ax.set_yticks([(r + 0.5) * size for r in range(len(rows))], rows)
    ax.set_xticks([(c + 0.5) * per_cell * size for c in range(len(classes))], classes)
    ax.xaxis.tick_top()
    ax.tick_params(length=0)
    for c in range(1, len(classes)):
        ax.axvline(c * per_cell * size - 0.5, color="white", linewidth=2)
    for spine in ax.spines.values():
        spine.set_visible(False)
    atomic_write(out, lambda p: fig.savefig(p, format="png"))
    click.echo(f"wrote {out}")
