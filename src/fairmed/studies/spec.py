"""StudySpec: a study as a YAML file, validated with one-line errors, with profiles.

```yaml
name: demo
kind: classification            # a registered study kind (fairmed.studies.kinds)
profile: cpu                    # smoke | cpu | paper; selects one of `profiles:` below
source: {kind: synth, config: {n: 1200}}
groups: [fst:12-56, sex]        # GroupSpec short forms or dicts; the first drives group strategies
design: {fractions: {train: 0.6, val: 0.2, test: 0.2}, group_by: patient_id, seeds: [0, 1, 2]}
model: {arch: small_cnn, image_size: 32}
strategies: [erm, reweight, {name: adversarial, adv_lambda: 5}]
train: {epochs: 5}
audit: {bootstrap: 200}
profiles:                       # partial overrides, deep-merged over the spec when selected
  smoke: {source: {config: {n: 200}}, train: {epochs: 1}, design: {seeds: [0]}}
```
Every field has a default that runs on a 2-core CPU. Top-level fields other than the common
ones belong to the study kind (its ``fields`` model); anything else is an error naming the field.
"""

from __future__ import annotations

import copy
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from fairmed.errors import SpecError

PROFILES: tuple[str, ...] = ("smoke", "cpu", "paper")
BUILTIN_DIR = Path(__file__).parent / "builtin"
MAX_SEED = 2**32 - 1  # numpy's and torch's seeds alike
Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]
THRESHOLD_RULES = ("youden", "f1", "accuracy")  # as fairmed.metrics.audit (not imported: light)


class DesignSpec(BaseModel):
    """How the cohort is split and repeated: fractions, patient grouping, stratification, seeds."""

    model_config = ConfigDict(extra="forbid")

    fractions: dict[str, float] = Field(default_factory=lambda: {"train": 0.6, "val": 0.2, "test": 0.2})
    group_by: str | None = "patient_id"
    stratify: list[str] | None = None  # None: the label; with attributes, e.g. [malignant, fst]
    seeds: list[Seed] = Field(default_factory=lambda: [0], min_length=1)
    repeats: int | None = Field(None, ge=1, le=10_000, description="seeds 0..repeats-1 (overrides seeds)")
    cv_folds: int | None = Field(
        None,
        ge=2,
        description="k-fold cross-validation per seed (a repeat): every image tested once per repeat;"
        " the fold is a run key, test = one fold, val = fractions.val / (train + val) of the rest",
    )

    @field_validator("fractions")
    @classmethod
    def _fractions(cls, value: dict[str, float]) -> dict[str, float]:
        missing = {"train", "val", "test"} - set(value)
        if missing:
            raise ValueError(f"needs train, val and test (missing {sorted(missing)})")
        if any(not v > 0 for v in value.values()) or abs(sum(value.values()) - 1.0) > 1e-6:
            raise ValueError(f"fractions must be > 0 and sum to 1 (got {value})")
        return value

    def seed_list(self) -> list[int]:
        return list(range(self.repeats)) if self.repeats else list(self.seeds)

    def fold_list(self) -> list[int | None]:
        """The folds of each repeat (``[None]``: one split by ``fractions``, no cross-validation)."""
        return list(range(self.cv_folds)) if self.cv_folds else [None]


class AuditSettings(BaseModel):
    """Settings of the audit of each run (fairmed.metrics.audit.audit)."""

    model_config = ConfigDict(extra="forbid")

    bootstrap: int = Field(200, ge=0)
    threshold: float | str = 0.5
    ci: float = Field(0.95, gt=0.0, lt=1.0)
    permutations: int = Field(1000, ge=0, description="permutation-test shuffles per gap (0: no p-values)")
    adjust: Literal["holm", "bh", "none"] = "holm"
    min_group_size: int = Field(30, ge=1)
    intersect: bool = False
    splits: list[str] = Field(default_factory=lambda: ["test"], min_length=1)
    seed: Seed = 0
    tolerance: float = Field(
        0.05, ge=0.0, le=1.0, description="largest gap at which a fairness criterion holds (the report)"
    )

    @field_validator("threshold")
    @classmethod
    def _threshold(cls, value: float | str) -> float | str:
        if isinstance(value, str) and value in THRESHOLD_RULES:
            return value
        if isinstance(value, str) or not (math.isfinite(value) and 0 <= value <= 1):
            raise ValueError(f"expected a number in [0, 1] or one of {', '.join(THRESHOLD_RULES)}")
        return value


class StudySpec(BaseModel):
    """A study: data, groups, design, model, strategies, training, audit (see the module docstring)."""

    model_config = ConfigDict(extra="allow")

    name: str = "study"
    kind: str = "classification"
    description: str = ""
    profile: Literal["smoke", "cpu", "paper"] = "cpu"
    source: dict[str, Any] = Field(default_factory=lambda: {"kind": "synth"})
    label: str | None = None
    groups: list[str | dict[str, Any]] = Field(default_factory=lambda: ["fst:12-56", "sex"], min_length=1)
    design: DesignSpec = Field(default_factory=DesignSpec)
    model: dict[str, Any] | str = Field(default_factory=dict)
    strategies: list[str | dict[str, Any]] = Field(default_factory=lambda: ["erm"], min_length=1)
    train: dict[str, Any] = Field(default_factory=dict)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    base_dir: str | None = None  # relative source paths resolve here (the YAML's folder)
    # set by load_spec/resolve_spec: what the profile changed (printed, and in OUT/spec.yaml's header),
    # and the default output folder's name (the built-in name or file stem the user typed)
    _profile_notes: list[str] = PrivateAttr(default_factory=list)
    _typed_name: str | None = PrivateAttr(default=None)

    lenient: bool = Field(
        False, description="drop images that cannot be decoded (listed in the output) instead of failing"
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        """The name becomes a folder (fairmed-out/<name>): no '..', '/' or empty name."""
        if not value.strip() or value.strip(".") == "" or any(c in value for c in "/\\\x00"):
            raise ValueError("expected a name usable as a folder name (not empty, '.', '..', no '/')")
        return value

    @model_validator(mode="after")
    def _audit_splits(self) -> StudySpec:
        unknown = [s for s in self.audit.splits if s not in self.design.fractions]
        if unknown:
            raise ValueError(
                f"audit.splits {unknown}: expected splits of design.fractions ({', '.join(self.design.fractions)})"
            )
        return self

    def group_specs(self) -> list:
        """The groups as GroupSpecs."""
        from fairmed.data.groups import GroupSpec

        return [
            GroupSpec.parse(g) if isinstance(g, str) else GroupSpec.model_validate(g) for g in self.groups
        ]

    def strategy_names(self) -> dict[str, dict[str, Any]]:
        """method name -> StrategySpec fields; a dict may set ``label`` to name the method."""
        out: dict[str, dict[str, Any]] = {}
        for s in self.strategies:
            fields = {"name": s} if isinstance(s, str) else dict(s)
            method = str(fields.pop("label", None) or fields.get("name", "erm"))
            if method in out:
                raise SpecError(f"strategies: method {method!r} appears twice (give one a 'label')")
            out[method] = fields
        return out

    def settings(self) -> BaseModel | None:
        """The kind-specific fields, validated by the kind's ``fields`` model (None if it has none)."""
        from fairmed.studies.kinds import get_kind

        model = get_kind(self.kind).fields
        return None if model is None else model.model_validate(self.model_extra or {})

    def train_settings(self) -> dict[str, Any]:
        """The ``train:`` settings of one run: ``FAIRMED_RUN_THREADS`` (when set) gives ``num_threads``
        unless the spec names it."""
        train = dict(self.train)
        threads = os.environ.get("FAIRMED_RUN_THREADS")
        if threads and "num_threads" not in train:
            train["num_threads"] = int(threads)
        return train


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``override`` over ``base``: mappings merge recursively, anything else replaces."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def validation_error(where: str, exc: ValidationError) -> SpecError:
    """A pydantic error as one line: ``where: field.path: message (got value)``."""
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or "spec"
    msg = err["msg"].removeprefix("Value error, ")
    return SpecError(f"{where}: {loc}: {msg} (got {err.get('input')!r})"[:400])


_UNSET = object()


def _leaves(block: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """(dotted path, value) of every non-mapping value of a nested mapping."""
    out: list[tuple[str, Any]] = []
    for key, value in block.items():
        path = f"{prefix}{key}"
        out += _leaves(value, path + ".") if isinstance(value, dict) and value else [(path, value)]
    return out


def _at(mapping: Any, path: str) -> Any:
    for key in path.split("."):
        if not isinstance(mapping, dict) or key not in mapping:
            return _UNSET
        mapping = mapping[key]
    return mapping


def _drop(mapping: dict[str, Any], path: str) -> None:
    *parents, last = path.split(".")
    for key in parents:
        mapping = mapping[key]
    mapping.pop(last, None)


def profile_overrides(
    raw: dict[str, Any], block: dict[str, Any], origin: dict[str, Any] | None
) -> tuple[dict[str, Any], list[str], list[str]]:
    """The part of a profile block to apply, what it changes ("train.epochs 6 -> 1") and what it
    does not ("design.seeds [0, 1] over the profile's [0]").

    ``origin``: the built-in spec a file was copied from (same ``profiles:`` block). A top-level
    value the user changed from the built-in's wins over the profile: the edit is what they meant.
    """
    block = copy.deepcopy(block)
    applied, kept = [], []
    for path, value in _leaves(block):
        top = _at(raw, path)
        if origin is not None and top is not _UNSET and top != _at(origin, path):
            _drop(block, path)
            kept.append(f"{path} {top!r} over the profile's {value!r}")
        elif top is _UNSET or top != value:
            applied.append(f"{path} {value!r}" if top is _UNSET else f"{path} {top!r} -> {value!r}")
    return block, applied, kept


def resolve_spec(
    raw: dict[str, Any],
    profile: str | None = None,
    where: str = "spec",
    base_dir: str | Path | None = None,
    origin: dict[str, Any] | None = None,
) -> StudySpec:
    """Validate a spec mapping: select the profile, deep-merge its overrides, check every field.

    ``origin``: see :func:`profile_overrides`."""
    if not isinstance(raw, dict):
        raise SpecError(f"{where}: expected a mapping of study fields, got {type(raw).__name__}")
    raw = dict(raw)
    profiles = raw.pop("profiles", None) or {}
    if not isinstance(profiles, dict) or set(profiles) - set(PROFILES):
        bad = sorted(set(profiles) - set(PROFILES)) if isinstance(profiles, dict) else profiles
        raise SpecError(f"{where}: profiles: unknown profile(s) {bad} (expected {', '.join(PROFILES)})")
    chosen = profile or raw.get("profile", "cpu")
    if chosen not in PROFILES:
        raise SpecError(f"{where}: profile: expected one of {', '.join(PROFILES)}, got {chosen!r}")
    block, applied, kept = profile_overrides(raw, profiles.get(chosen) or {}, origin)
    merged = deep_merge(raw, block)
    merged["profile"] = chosen
    if base_dir is not None and merged.get("base_dir") is None:
        merged["base_dir"] = str(base_dir)
    try:
        spec = StudySpec.model_validate(merged)
    except ValidationError as exc:
        raise validation_error(where, exc) from None
    _check_parts(spec, where)
    spec._profile_notes = [f"profile {chosen} set {', '.join(applied)}"] * bool(applied) + [
        f"profile {chosen}: kept your {', '.join(kept)} (values you changed from the built-in spec win)"
    ] * bool(kept)
    return spec


def _check_parts(spec: StudySpec, where: str) -> None:
    """Validate the parts owned by other modules (source, groups, kind fields) with one-line errors."""
    from fairmed.data.groups import GroupSpec  # light: pydantic + pandas
    from fairmed.data.sources import parse_source
    from fairmed.studies.kinds import get_kind

    try:
        _check_label(spec.label, parse_source(spec.source))
        for g in spec.groups:
            GroupSpec.parse(g) if isinstance(g, str) else GroupSpec.model_validate(g)
        _check_training(spec)
        kind = get_kind(spec.kind)
    except SpecError as exc:
        raise SpecError(f"{where}: {exc}") from None
    except ValidationError as exc:
        raise validation_error(f"{where}: groups", exc) from None
    if spec.design.cv_folds and not kind.cross_validation:
        raise SpecError(f"{where}: design.cv_folds: study kind {spec.kind!r} does not take cross-validation")
    extra = spec.model_extra or {}
    if kind.fields is None:
        if extra:
            name = next(iter(extra))
            raise SpecError(
                f"{where}: unknown field {name!r} (study kind {spec.kind!r} takes no extra fields)"
            )
        return
    try:
        kind.fields.model_validate(extra)
    except ValidationError as exc:
        raise validation_error(where, exc) from None


def _check_training(spec: StudySpec) -> None:
    """``model``, each strategy and ``train`` against the specs the training loop takes, so that a bad
    value fails at load time (before any run trains) instead of inside a run. Imports no torch."""
    from fairmed.models.spec import ModelSpec
    from fairmed.train.config import StrategySpec, TrainConfig, as_spec

    as_spec(ModelSpec, spec.model or None, "model")
    for i, fields in enumerate(spec.strategy_names().values()):
        as_spec(StrategySpec, fields, f"strategies[{i}]")
    train = as_spec(TrainConfig, spec.train, "train")
    if train.checkpoint_dir is not None:
        _check_folder_writable(Path(train.checkpoint_dir), "train.checkpoint_dir")
    if str(train.device).startswith("cuda"):
        import torch  # only when a GPU is asked for: the run imports torch anyway

        if not torch.cuda.is_available():
            raise SpecError(
                f"train.device: {train.device!r} but no CUDA GPU is available (use 'auto' or 'cpu')"
            )
    names = [g.name for g in spec.group_specs()]
    if len(set(names)) != len(names):
        raise SpecError(f"groups: each grouping once, got {names}")


def _check_label(label: str | None, source: BaseModel) -> None:
    """``label`` against the generators' label (known before any data is made); other sources'
    labels are checked when their cohort loads (fairmed.studies.classification.split_parts)."""
    declared = getattr(getattr(source, "config", None), "label", None)
    if label is not None and isinstance(declared, str) and label != declared:
        raise SpecError(f"label: {label!r} is not a label of this source (it has {declared!r})")


def _check_folder_writable(folder: Path, what: str) -> None:
    """A folder a run will write into: refused now (one line) when it cannot be created or written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise SpecError(
            f"{what}: {folder} cannot be written ({exc.strerror or type(exc).__name__})"
        ) from None


def builtin_names() -> list[str]:
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml"))


def locate(spec: str | Path) -> Path:
    """A spec file path, or a built-in study's name (``demo``) -> its YAML path."""
    path = Path(spec)
    if path.suffix in {".yaml", ".yml"} or path.exists():
        if not path.exists():
            raise SpecError(f"{path}: spec file not found")
        return path
    builtin = BUILTIN_DIR / f"{spec}.yaml"
    if builtin.exists():
        return builtin
    raise SpecError(
        f"{spec}: neither a spec file nor a built-in study (built-in: {', '.join(builtin_names())})"
    )


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.safe_load that refuses a key given twice in one mapping (the last would silently win)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key {key!r} appears twice (line {key_node.start_mark.line + 1})",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _read_yaml(path: Path) -> Any:
    """A YAML file's content (safe loader, no duplicate keys), or one line saying why not."""
    if path.is_dir():
        raise SpecError(f"{path}: is a folder, expected a YAML file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"{path.name}: not a UTF-8 text file (byte {exc.start}): expected YAML") from None
    except OSError as exc:
        raise SpecError(f"{path}: cannot read ({exc.strerror or type(exc).__name__})") from None
    if "\x00" in text:
        raise SpecError(f"{path.name}: holds NUL bytes (a binary file?): expected YAML")
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        first = " ".join(str(exc).split())[:200]
        raise SpecError(f"{path.name}: not valid YAML: {first}") from None
    except RecursionError:
        raise SpecError(f"{path.name}: YAML nested too deeply") from None


def load_spec(spec: str | Path, profile: str | None = None, source: str | Path | None = None) -> StudySpec:
    """Read and validate a study YAML (a path or a built-in name), applying ``profile``.

    ``source``: a source YAML (e.g. the ``source.yaml`` that ``fairmed data synth`` writes) that
    replaces the spec's source, profiles' source overrides included; its relative paths resolve
    against its own folder.
    """
    path = locate(spec)
    raw = _read_yaml(path) or {}
    base_dir = path.parent.resolve()
    origin = _copied_from(path, raw)
    if isinstance(raw, dict):
        raw.setdefault("name", path.stem)
        if source is not None:
            src = Path(source)
            if not src.is_file():
                raise SpecError(f"--source {src}: file not found")
            raw["source"] = _read_yaml(src)
            for overrides in (raw.get("profiles") or {}).values():
                if isinstance(overrides, dict):
                    overrides.pop("source", None)
            base_dir = src.parent.resolve()
            raw.pop("base_dir", None)
    resolved = resolve_spec(raw, profile=profile, where=path.name, base_dir=base_dir, origin=origin)
    resolved._typed_name = path.stem
    return resolved


def _copied_from(path: Path, raw: Any) -> dict[str, Any] | None:
    """The built-in spec a user's file was copied from: the one with the very same ``profiles:``."""
    if not isinstance(raw, dict) or not raw.get("profiles") or path.parent.resolve() == BUILTIN_DIR.resolve():
        return None
    for name in builtin_names():
        builtin = _read_yaml(BUILTIN_DIR / f"{name}.yaml")
        if isinstance(builtin, dict) and builtin.get("profiles") == raw["profiles"]:
            return builtin
    return None


def describe_builtin(name: str, width: int = 110) -> str:
    """The first sentence of a built-in study's ``description``, shortened to ``width`` characters
    without cutting into a parenthesis (parenthesised asides go first, then whole words)."""
    raw = yaml.safe_load((BUILTIN_DIR / f"{name}.yaml").read_text(encoding="utf-8")) or {}
    return shorten(first_sentence(" ".join(str(raw.get("description", "")).split())), width)


def first_sentence(text: str) -> str:
    """Up to the first ". " outside parentheses and not after an abbreviation (e.g., i.e., vs.)."""
    depth = 0
    for i, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "." and depth == 0 and text[i + 1 : i + 2] in ("", " "):
            word = text[:i].rsplit(" ", 1)[-1].lower()
            if word not in {"e.g", "i.e", "vs", "etc", "al"}:
                return text[:i]
    return text.rstrip(".")


def shorten(text: str, width: int) -> str:
    while len(text) > width and re.search(r"\([^()]*\)", text):
        text = re.sub(r"\s*\([^()]*\)(?!.*\()", "", text, count=1)  # the last aside first
    if len(text) <= width:
        return text
    return text[: width - 3].rsplit(" ", 1)[0].rstrip(",;:") + "..."


__all__ = [
    "PROFILES",
    "AuditSettings",
    "DesignSpec",
    "StudySpec",
    "builtin_names",
    "deep_merge",
    "describe_builtin",
    "load_spec",
    "locate",
    "profile_overrides",
    "resolve_spec",
    "validation_error",
]
