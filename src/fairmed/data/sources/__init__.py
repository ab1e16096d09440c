"""Every data source produces a Cohort; a study names its source as data (``SourceSpec``).

``load_source({"kind": "fitzpatrick17k", "csv": "...", "images": "..."})`` or with a spec
object. Kinds: ``synth``, ``synth_embeddings``, ``fitzpatrick17k``, ``isic_archive``,
``isic2019``, ``ham10000``, ``cxr_embeddings``, ``folder``, ``pad_ufes20``, ``covid_cxr``, ``chexpert``, ``mimic_cxr``,
``nih_cxr14``, ``padchest``, ``papila``, ``ddi``, ``cohort`` (a saved Parquet
cohort). Relative paths in a spec are resolved against ``base_dir`` (the folder of the
YAML file that holds the spec) when given. Each module's docstring (and docs/data.md)
gives the exact file layout it expects.
"""

from __future__ import annotations

import inspect
import sys
import textwrap
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from fairmed.data.cohort import Cohort
from fairmed.data.sources import (
    chexpert,
    covid_cxr,
    cxr_embeddings,
    ddi,
    fitzpatrick17k,
    folder,
    generated,
    ham10000,
    isic2019,
    isic_archive,
    mimic_cxr,
    nih_cxr14,
    pad_ufes20,
    padchest,
    papila,
)
from fairmed.data.sources._common import resolve
from fairmed.errors import SpecError

SourceSpec = Annotated[
    generated.SynthSpec
    | generated.SynthEmbeddingsSpec
    | generated.SavedCohortSpec
    | fitzpatrick17k.Fitzpatrick17kSpec
    | isic_archive.IsicArchiveSpec
    | isic2019.Isic2019Spec
    | ham10000.Ham10000Spec
    | cxr_embeddings.CxrEmbeddingsSpec
    | folder.FolderSpec
    | pad_ufes20.PadUfes20Spec
    | covid_cxr.CovidCxrSpec
    | chexpert.ChexpertSpec
    | mimic_cxr.MimicCxrSpec
    | nih_cxr14.NihCxr14Spec
    | padchest.PadChestSpec
    | papila.PapilaSpec
    | ddi.DdiSpec,
    Field(discriminator="kind"),
]
_ADAPTER: TypeAdapter = TypeAdapter(SourceSpec)

LOADERS = {
    "synth": generated.load_synth,
    "synth_embeddings": generated.load_synth_embeddings,
    "cohort": generated.load_saved,
    "fitzpatrick17k": fitzpatrick17k.load,
    "isic_archive": isic_archive.load,
    "isic2019": isic2019.load,
    "ham10000": ham10000.load,
    "cxr_embeddings": cxr_embeddings.load,
    "folder": folder.load,
    "pad_ufes20": pad_ufes20.load,
    "covid_cxr": covid_cxr.load,
    "chexpert": chexpert.load,
    "mimic_cxr": mimic_cxr.load,
    "nih_cxr14": nih_cxr14.load,
    "padchest": padchest.load,
    "papila": papila.load,
    "ddi": ddi.load,
}
KINDS = tuple(LOADERS)
# the published layouts: kind -> module (its docstring: first line = description, then the layout)
MODULES = {
    "fitzpatrick17k": fitzpatrick17k,
    "isic_archive": isic_archive,
    "isic2019": isic2019,
    "ham10000": ham10000,
    "cxr_embeddings": cxr_embeddings,
    "folder": folder,
    "pad_ufes20": pad_ufes20,
    "covid_cxr": covid_cxr,
    "chexpert": chexpert,
    "mimic_cxr": mimic_cxr,
    "nih_cxr14": nih_cxr14,
    "padchest": padchest,
    "papila": papila,
    "ddi": ddi,
}
DESCRIPTIONS = {
    "synth": "the built-in skin-lesion image generator (fairmed.data.synth)",
    "synth_embeddings": "the built-in embedding generator (fairmed.data.synth_embeddings)",
    "cohort": "a cohort saved with Cohort.save (Parquet + .npy arrays)",
    **{kind: (module.__doc__ or "").strip().splitlines()[0] for kind, module in MODULES.items()},
}


def layout(kind: str) -> str:
    """The file layout a source kind expects: the literal block after "Expected layout ...::" in its
    module's docstring (every file-reading source has one), dedented; "" for the generators."""
    doc = inspect.getdoc(sys.modules[LOADERS[kind].__module__]) or ""
    lines = doc.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("Expected layout")), None)
    if start is None:
        return ""
    block = []
    for line in lines[start + 1 :]:
        if line.strip() and not line.startswith(" "):
            break
        block.append(line)
    return textwrap.dedent("\n".join(block)).strip("\n")


def parse_source(spec: dict[str, Any] | BaseModel) -> BaseModel:
    """Validate a source spec (a dict from YAML, or a spec object) with a one-line error."""
    if isinstance(spec, BaseModel):
        return spec
    if not isinstance(spec, dict) or "kind" not in spec:
        raise SpecError(f"source: expected a mapping with 'kind' (one of {', '.join(KINDS)}), got {spec!r}")
    if spec["kind"] not in LOADERS:
        raise SpecError(f"source kind {spec['kind']!r}: expected one of {', '.join(KINDS)}")
    try:
        return _ADAPTER.validate_python(spec)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"][1:]) or "source"
        raise SpecError(f"source ({spec['kind']}) {where}: {err['msg']}") from None


def _with_base(spec: BaseModel, base_dir: Path | None) -> BaseModel:
    if base_dir is None:
        return spec
    updates = {}
    for name, value in spec:
        if isinstance(value, Path):
            updates[name] = resolve(value, base_dir)
        elif isinstance(value, list) and value and all(isinstance(v, Path) for v in value):
            updates[name] = [resolve(v, base_dir) for v in value]
        elif (
            isinstance(value, list) and value and all(isinstance(v, cxr_embeddings.JoinTable) for v in value)
        ):
            updates[name] = [v.model_copy(update={"path": resolve(v.path, base_dir)}) for v in value]
    return spec.model_copy(update=updates)


def load_source(spec: dict[str, Any] | BaseModel, base_dir: str | Path | None = None) -> Cohort:
    """The Cohort a source spec describes."""
    parsed = _with_base(parse_source(spec), Path(base_dir) if base_dir is not None else None)
    return LOADERS[parsed.kind](parsed)  # type: ignore[attr-defined]


__all__ = ["DESCRIPTIONS", "KINDS", "SourceSpec", "layout", "load_source", "parse_source"]
