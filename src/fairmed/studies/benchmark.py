"""Study kind ``benchmark``: every fairmed mitigation on the same cohort, splits and seeds (MEDFAIR-style).

Runs: configurations x methods x seeds. A configuration is an injected bias *mechanism*: overrides
deep-merged over the study's ``source`` (e.g. a generator with dark skin rare, or with label noise in
dark skin); a real-data study has one configuration. Methods:

- training strategies (the spec's ``strategies``): ``erm``, ``reweight``, ``resample``, ``multitask``,
  ``adversarial``, ``groupdro`` — :func:`fairmed.train.fit_predict`;
- ``gce``: GCE-guided resampling (:func:`fairmed.mitigate.gce.resample_and_fit`);
- ``thresholds`` / ``reject_option``: post-processing of the ERM model's scores
  (:mod:`fairmed.mitigate.thresholds`, fitted on the ERM model's validation Predictions);
- ``fairprune`` / ``scp``: FairPrune and SNNL channel pruning of the ERM model
  (:func:`fairmed.studies.pruning.run_pruning`).

Every method sees the same split of a configuration and seed, and the same ``train`` settings
(model selection ``train.select`` included). The methods that start from the ERM model (ERM
itself, thresholds, reject option, FairPrune, SCP: the "ERM family") are computed together, once
per configuration and seed, and kept in a deterministic on-disk cache (``<cache>/benchmark/<key>
.parquet``, key = a hash of the spec, configuration, seed, split tables and fairmed's source code;
``<cache>`` = ``train.cache_dir`` / ``$FAIRMED_CACHE`` / ``~/.cache/fairmed``) behind a per-key
file lock: whichever of these runs comes first trains ERM and derives the others; the rest wait for
the lock and read. So the runner's runs stay separate (one run = one method, audited as usual) and
ERM is trained once. ``benchmark.cache: false`` recomputes the family in each of those runs instead
(same result on CPU).

Post-processed decisions enter the Predictions through ``y_score``: within each group the ERM score is
mapped monotonically so that the group's fitted threshold lands on the audit threshold (exact:
``y_score >= threshold`` reproduces the rule's decisions; the raw score stays in ``y_score_raw``).
Per-group AUCs are therefore the ERM model's; overall AUC is that of the group-recalibrated score.
Rules are deterministic (``randomize=False``): Hardt et al.'s randomised equalized-odds rules cannot be
carried by one score column (use ``fairmed postprocess`` for them).

A method that cannot apply (SCP on an MLP or frozen-feature head: no conv layer; FairPrune/SCP with
other than two groups; post-processing and GCE on a multi-class label) returns one row with split
``not_applicable`` and a ``note``; the tables list it with its reason instead of dropping it.

``analyse`` writes ``tables/benchmark_runs`` (one row per run: accuracy, AUC, TPR, FPR overall,
worst group and gap, the criteria, FATE of each gap against ERM of the same seed),
``benchmark_summary`` (per configuration, method and measure: mean, 95 % t-interval over seeds, the
paired difference to ERM and its p-value and stars), ``benchmark_pareto`` (mean accuracy vs gap, the
Pareto front marked), ``benchmark_notes`` (methods not applicable, and why) and ``benchmark_groups``
(each configuration's test-split group sizes).
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from fairmed.errors import FairmedError, SpecError
from fairmed.metrics.criteria import fate
from fairmed.metrics.stats import paired_test, stars
from fairmed.schema import OVERALL, Y_SCORE, Y_TRUE
from fairmed.studies.kinds import RunSpec, StudyKind, grid_runs, write_tables
from fairmed.studies.spec import StudySpec, deep_merge
from fairmed.train.config import STRATEGIES as TRAIN_STRATEGIES

KIND = "benchmark"
STRATEGIES = TRAIN_STRATEGIES  # every training strategy (the MEDFAIR methods included)
MITIGATIONS = ("gce", "thresholds", "reject_option", "fairprune", "scp")
ERM_FAMILY = ("erm", "thresholds", "reject_option", "fairprune", "scp")
FAMILY = {
    "erm": "in-processing",
    "reweight": "in-processing",
    "resample": "in-processing",
    "multitask": "in-processing",
    "adversarial": "in-processing",
    "groupdro": "in-processing",
    "gce": "pre-processing",
    "thresholds": "post-processing",
    "reject_option": "post-processing",
    "fairprune": "pruning",
    "scp": "pruning",
}
NOT_APPLICABLE = "not_applicable"  # the split of a method's row that says why it did not run
CONV_ARCHS = ("small_cnn", "vgg11", "resnet18", "resnet50")

# measures per run: (column, attribute kind, Results group, Results metric)
BASE_METRICS = ("accuracy", "auc", "tpr", "fpr")
CRITERIA = ("equal_opportunity", "equalized_odds", "demographic_parity")
GAPS = tuple(f"{m}_gap" for m in BASE_METRICS) + CRITERIA
HIGHER_IS_BETTER = {"accuracy": True, "auc": True, "tpr": True, "fpr": False}


class Mechanism(BaseModel):
    """One configuration: a name and the source overrides that inject the mechanism.

    ``replace_source``, ``model`` and ``train`` let one configuration run on other data with
    another model (e.g. generated images with a small CNN next to embedding configurations, so
    that SCP, which prunes conv channels, has results); every method of the configuration still
    shares its splits, seeds, model and training settings."""

    model_config = ConfigDict(extra="forbid")

    name: str
    source: dict[str, Any] = Field(default_factory=dict, description="deep-merged over the study's source")
    description: str = ""
    replace_source: bool = Field(False, description="'source' replaces the study's source instead")
    model: dict[str, Any] | None = Field(
        None, description="this configuration's model (default: the study's)"
    )
    train: dict[str, Any] = Field(default_factory=dict, description="deep-merged over the study's train")

    def run_params(self) -> dict[str, Any]:
        """The run parameters of the configuration (only the overrides it sets, so the run keys of
        source-only configurations stay what they were)."""
        out: dict[str, Any] = {"source": self.source}
        if self.replace_source:
            out["replace_source"] = True
        if self.model is not None:
            out["model"] = self.model
        if self.train:
            out["train"] = self.train
        return out


class GceSettings(BaseModel):
    """The ``gce`` method's settings (fairmed.mitigate.gce.resample_and_fit)."""

    model_config = ConfigDict(extra="forbid")

    resampling: dict[str, Any] = Field(default_factory=dict, description="ResamplingConfig fields")
    detector_loss: Literal["gce", "bce"] = "gce"
    gce_q: float = Field(0.7, gt=0.0, le=1.0)


class BenchmarkSettings(BaseModel):
    """The kind's ``benchmark:`` block."""

    model_config = ConfigDict(extra="forbid")

    mitigations: list[str] = Field(
        default_factory=lambda: list(MITIGATIONS),
        description="methods beyond the training strategies: gce, thresholds, reject_option, fairprune, scp",
    )
    mechanisms: list[Mechanism] = Field(default_factory=lambda: [Mechanism(name="data")])
    thresholds_target: Literal["equal_opportunity", "demographic_parity", "tpr", "fpr"] = "equal_opportunity"
    thresholds_value: float | None = Field(None, description="the rate of target tpr / fpr")
    thresholds_tolerance: float = Field(0.02, ge=0.0, description="largest realised gap on val")
    reject_criterion: Literal["equal_opportunity", "demographic_parity"] = "equal_opportunity"
    reject_max_accuracy_loss: float = Field(0.05, ge=0.0, le=1.0)
    gce: GceSettings = Field(default_factory=GceSettings)
    pruning: dict[str, Any] = Field(
        default_factory=dict,
        description="PruningSettings fields (scp, fairprune_ratio, fairprune_beta, finetune)",
    )
    gap: str = Field("equal_opportunity", description="the gap of the Pareto table, FATE and the statements")
    accuracy: Literal["accuracy", "auc"] = "accuracy"
    test: Literal["ttest", "wilcoxon"] = Field("ttest", description="paired test vs ERM over seeds")
    cache: bool = True

    @model_validator(mode="after")
    def _check(self) -> BenchmarkSettings:
        bad = [m for m in self.mitigations if m not in MITIGATIONS]
        if bad or len(set(self.mitigations)) != len(self.mitigations):
            raise SpecError(
                f"benchmark.mitigations: {self.mitigations} (expected distinct names of {MITIGATIONS})"
            )
        if self.gap not in GAPS:
            raise SpecError(f"benchmark.gap: {self.gap!r} (expected one of {', '.join(GAPS)})")
        names = [m.name for m in self.mechanisms]
        if not names or len(set(names)) != len(names):
            raise SpecError(f"benchmark.mechanisms: names must be distinct and at least one (got {names})")
        if self.pruning:
            from fairmed.studies.pruning import PruningSettings

            PruningSettings.model_validate({k: v for k, v in self.pruning.items() if k != "methods"})
        return self


class BenchmarkFields(BaseModel):
    """The kind's own top-level field: ``benchmark`` (see :class:`BenchmarkSettings`)."""

    model_config = ConfigDict(extra="forbid")

    benchmark: BenchmarkSettings = Field(default_factory=BenchmarkSettings)


# ------------------------------------------------------------------ runs
def methods_of(spec: StudySpec) -> dict[str, dict[str, Any]]:
    """method -> params: the spec's strategies (``erm`` required) then the mitigations."""
    strategies = spec.strategy_names()
    if "erm" not in strategies:
        raise SpecError("benchmark: strategies must include 'erm' (the baseline of every comparison)")
    clash = set(strategies) & set(MITIGATIONS)
    if clash:
        raise SpecError(f"benchmark: strategies {sorted(clash)} are mitigation names; give them a 'label'")
    out = {name: {"strategy": fields} for name, fields in strategies.items()}
    out.update({m: {} for m in spec.settings().benchmark.mitigations})
    return out


def expand(spec: StudySpec) -> list[RunSpec]:
    """Every mechanism x method x seed; ERM-family runs come first within a mechanism."""
    settings = spec.settings().benchmark
    if isinstance(spec.audit.threshold, str):
        raise SpecError(
            "benchmark: audit.threshold must be a number (post-processed methods fix their own decisions)"
        )
    methods = methods_of(spec)
    order = {m: methods[m] for m in ERM_FAMILY if m in methods}
    order.update({m: p for m, p in methods.items() if m not in order})
    configs = {m.name: m.run_params() for m in settings.mechanisms}
    return grid_runs(spec, order, configs)


def mechanism_spec(spec: StudySpec, params: dict[str, Any]) -> StudySpec:
    """The study spec of one configuration (:meth:`Mechanism.run_params`): its source merged in (or
    replacing the study's), its model and train settings when it names them."""
    source = params.get("source") or {}
    update: dict[str, Any] = {
        "source": dict(source) if params.get("replace_source") else deep_merge(spec.source, source)
    }
    if params.get("model") is not None:
        update["model"] = params["model"]
    if params.get("train"):
        update["train"] = deep_merge(spec.train, params["train"])
    return spec.model_copy(update=update)


def _train_config(spec: StudySpec) -> dict[str, Any]:
    # one torch thread per run unless the spec (or FAIRMED_RUN_THREADS) says otherwise, as other kinds
    return {"num_threads": 1, **spec.train_settings()}


def _model_spec(spec: StudySpec):
    from fairmed.models.spec import ModelSpec
    from fairmed.train.config import as_spec

    return as_spec(ModelSpec, spec.model or None, "model")


def _n_groups(cohort, groups) -> int:
    from fairmed.data.groups import GroupSpec

    if groups is None:
        return 0
    g = GroupSpec.parse(groups) if isinstance(groups, str) else GroupSpec.model_validate(groups)
    assigned = g.assign(cohort.table).groups
    return int(assigned.dropna().nunique())


def applicability(spec: StudySpec, parts: dict, binary: bool) -> dict[str, str]:
    """method -> why it cannot run here ("" when it can)."""
    groups = spec.groups[0] if spec.groups else None
    n_groups = _n_groups(parts["train"], groups)
    mspec = _model_spec(spec)
    arch = f"{mspec.arch} (frozen features)" if mspec.frozen else mspec.arch
    out = {m: "" for m in (*STRATEGIES, *MITIGATIONS)}
    if not binary:
        for m in ("gce", "thresholds", "reject_option"):
            out[m] = "needs a binary label (one score per sample)"
    if n_groups < 2:
        for m in ("thresholds", "reject_option"):
            out[m] = out[m] or f"needs at least two groups, found {n_groups}"
    if n_groups != 2:
        out["laftr"] = f"needs exactly two groups (its audit is binary), found {n_groups}"
        for m in ("fairprune", "scp"):
            out[m] = f"needs exactly two groups (privileged, unprivileged), found {n_groups}"
    if mspec.frozen or mspec.arch not in CONV_ARCHS:
        out["scp"] = out["scp"] or f"not applicable to arch {arch}: SCP prunes conv channels"
    return out


def not_applicable(reason: str) -> pd.DataFrame:
    """The one row a method that cannot run returns (ignored by the audit, read by analyse)."""
    return pd.DataFrame({"split": [NOT_APPLICABLE], "id": ["-"], Y_TRUE: [-1], "note": [reason]})


def _is_binary(cohort, label: str) -> bool:
    names = cohort.class_names.get(label)
    values = np.unique(cohort.y(label))
    return (not names or len(names) <= 2) and bool(np.isin(values, [0, 1]).all())


def execute(run: RunSpec) -> pd.DataFrame:
    """One method on one mechanism's seeded split: its val/test Predictions (or a not-applicable row)."""
    from fairmed.studies.classification import load_cohort, split_parts

    spec = mechanism_spec(run.study_spec(), run.params)
    settings = spec.settings().benchmark
    cohort = load_cohort(spec)
    parts = split_parts(spec, cohort, run.seed)
    label = spec.label or cohort.label
    reasons = applicability(spec, parts, _is_binary(cohort, label))
    strategy = run.params.get("strategy") or {}
    reason = reasons.get(run.method) or reasons.get(
        strategy.get("name", "") if isinstance(strategy, dict) else ""
    )
    if reason:
        return not_applicable(reason)
    groups = spec.groups[0] if spec.groups else None
    if run.method in ERM_FAMILY:
        family = cached_family(spec, settings, run, parts, reasons)
        return family[family["method"] == run.method].drop(columns="method").reset_index(drop=True)
    if run.method == "gce":
        from fairmed.mitigate.gce import resample_and_fit

        result = resample_and_fit(
            parts["train"],
            parts["val"],
            parts["test"],
            resampling=settings.gce.resampling,
            attributes=spec.groups,
            detector_loss=settings.gce.detector_loss,
            gce_q=settings.gce.gce_q,
            model=spec.model or None,
            config=_train_config(spec),
            seed=run.seed,
            label=spec.label,
            threshold=float(spec.audit.threshold),
            groups=groups,
        )
        return result.predictions
    from fairmed.train import fit_predict

    return fit_predict(
        parts["train"],
        parts["val"],
        parts["test"],
        model=spec.model or None,
        strategy=run.params["strategy"],
        config=_train_config(spec),
        groups=groups,
        seed=run.seed,
        label=spec.label,
    )


# ------------------------------------------------------------------ the ERM family
def erm_family(
    spec: StudySpec, settings: BenchmarkSettings, parts: dict, seed: int, reasons: dict
) -> pd.DataFrame:
    """ERM and every method derived from the ERM model of one split: Predictions with ``method``."""
    from fairmed.train import fit_predict

    groups = spec.groups[0] if spec.groups else None
    wanted = set(methods_of(spec))
    prune = [m for m in ("fairprune", "scp") if m in wanted and not reasons.get(m)]
    frames = []
    if prune and _has_conv(spec):
        # conv models: the channel-pruning study's own entry point trains ERM ("vanilla") and prunes it
        from fairmed.studies.pruning import PruningSettings, run_pruning

        names = (
            ["vanilla"]
            + (["fairprune"] if "fairprune" in prune else [])
            + (["scp_vanilla"] if "scp" in prune else [])
        )
        ps = PruningSettings.model_validate({**settings.pruning, "methods": names})
        result = run_pruning(
            parts["train"],
            parts["val"],
            parts["test"],
            groups=groups,
            settings=ps,
            model=spec.model or None,
            config=_train_config(spec),
            seed=seed,
            label=spec.label,
        )
        preds = result.predictions.drop(columns="seed")
        preds["method"] = preds["method"].replace({"vanilla": "erm", "scp_vanilla": "scp"})
        erm = preds[preds["method"] == "erm"].drop(columns=["method", "channels"])
        frames += [preds[preds["method"] == m] for m in prune]
    else:
        erm, trained = fit_predict(
            parts["train"],
            parts["val"],
            parts["test"],
            model=spec.model or None,
            strategy="erm",
            config=_train_config(spec),
            groups=groups,
            seed=seed,
            label=spec.label,
            return_model=True,
        )
        if "fairprune" in prune:  # MLP / frozen-feature heads: FairPrune on their Linear layers
            frames.append(fairprune_linear(trained, parts, settings, seed).assign(method="fairprune"))
    frames.insert(0, erm.assign(method="erm"))
    tau = float(spec.audit.threshold)
    for method in ("thresholds", "reject_option"):
        if method in wanted and not reasons.get(method):
            try:
                frames.append(post_process(erm, method, groups, settings, tau).assign(method=method))
            except FairmedError as exc:  # e.g. a group without positives in val: the others still stand
                frames.append(
                    not_applicable(f"cannot fit on the ERM model's val split: {exc}").assign(method=method)
                )
    return pd.concat(frames, ignore_index=True)


def _has_conv(spec: StudySpec) -> bool:
    mspec = _model_spec(spec)
    return not mspec.frozen and mspec.arch in CONV_ARCHS


def fairprune_linear(trained, parts: dict, settings: BenchmarkSettings, seed: int) -> pd.DataFrame:
    """FairPrune of a model without conv layers (every Linear weight; fairmed.mitigate.fairprune), the
    privileged group chosen as in the channel-pruning study (higher validation F1 unless named)."""
    from fairmed.mitigate.pruning import fairprune_model
    from fairmed.studies.pruning import PruningSettings, evaluator
    from fairmed.train.api import predictions_frame
    from fairmed.train.loop import predict_logits

    ps = PruningSettings.model_validate({k: v for k, v in settings.pruning.items() if k != "methods"})
    tr, va, te = (trained.data(parts[k]) for k in ("train", "val", "test"))
    base = evaluator(trained, va, te, trained.task.n_classes)(trained.model)
    names = list(trained.group_names)
    if ps.privileged is not None:
        if ps.privileged not in names:
            raise SpecError(f"benchmark.pruning.privileged {ps.privileged!r} is not a group ({names})")
        priv = names.index(ps.privileged)
    else:
        priv = 0 if base["f1_g0"] >= base["f1_g1"] else 1
    loss = lambda logits, y: trained.task.per_sample(logits, y).mean()  # noqa: E731
    model, _ = fairprune_model(
        trained.model, tr, priv, ps.fairprune_ratio, ps.fairprune_beta, ps.fairprune_batch_size, seed, loss
    )
    frames = []
    for split, data in (("val", va), ("test", te)):
        logits = predict_logits(model, data, trained.config.eval_batch_size, trained.config.amp)
        frames.append(
            predictions_frame(parts[split], trained.task.scores(logits).numpy(), trained.label, split)
        )
    return pd.concat(frames, ignore_index=True)


def post_process(
    erm: pd.DataFrame, method: str, groups, settings: BenchmarkSettings, threshold: float
) -> pd.DataFrame:
    """The ERM Predictions after per-group thresholds or reject option fitted on its ``val`` rows."""
    from fairmed.data.groups import GroupSpec
    from fairmed.mitigate.thresholds import fit_reject_option, fit_thresholds

    spec = GroupSpec.parse(groups) if isinstance(groups, str) else GroupSpec.model_validate(groups)
    g = spec.assign(erm).groups.astype(object)
    val = (erm["split"] == "val").to_numpy()
    s, y = erm[Y_SCORE].to_numpy(dtype=float), erm[Y_TRUE].to_numpy()
    if method == "thresholds":
        rules = fit_thresholds(
            s[val],
            y[val],
            g[val],
            settings.thresholds_target,
            value=settings.thresholds_value,
            randomize=False,
            tolerance=settings.thresholds_tolerance,
            attribute=spec.name,
        )
    else:
        rules = fit_reject_option(
            s[val],
            y[val],
            g[val],
            settings.reject_criterion,
            threshold=threshold,
            max_accuracy_loss=settings.reject_max_accuracy_loss,
            attribute=spec.name,
        )
    decisions = rules.predict(s, g.to_numpy())
    out = erm.copy()
    out["y_score_raw"] = s
    out[Y_SCORE] = decision_scores(s, decisions, g.fillna("").astype(str).to_numpy(), threshold)
    return out


def decision_scores(
    scores: np.ndarray, decisions: np.ndarray, groups: np.ndarray, threshold: float
) -> np.ndarray:
    """Scores whose ``>= threshold`` gives ``decisions``, monotone in ``scores`` within each group.

    Per group, the cut ``c`` between its highest rejected and lowest accepted score maps to
    ``threshold``: ``s < c -> threshold * s / c``, ``s >= c -> threshold + (1 - threshold)(s - c)/(1 - c)``
    (``c = 0`` when all are accepted, just above 1 when none is). Decisions must be monotone in the
    score within each group (deterministic thresholds, reject option).
    """
    s = np.asarray(scores, dtype=float)
    d = np.asarray(decisions).astype(bool)
    out = np.empty_like(s)
    below = np.nextafter(threshold, -np.inf)
    for name in np.unique(groups):
        m = groups == name
        pos, neg = s[m & d], s[m & ~d]
        if len(pos) and len(neg) and neg.max() >= pos.min():
            raise ValueError(f"decisions of group {name!r} are not a threshold of its scores")
        hi = pos.min() if len(pos) else 1.0 + 1e-9
        lo = neg.max() if len(neg) else 0.0
        c = hi if len(neg) == 0 else (lo + hi) / 2 if len(pos) else max(hi, lo + 1e-12)
        c = min(max(c, 0.0), 1.0 + 1e-9)
        v = s[m]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # the unused branch may overflow
            low = threshold * v / c if c > 0 else np.zeros_like(v)
            high = threshold + (1 - threshold) * (v - c) / (1 - c) if c < 1 else np.full_like(v, threshold)
        mapped = np.where(v < c, low, high)
        out[m] = np.where(d[m], np.maximum(mapped, threshold), np.minimum(mapped, below))
    return np.clip(out, 0.0, 1.0)


@lru_cache(maxsize=1)
def _code_fingerprint() -> str:
    """A hash of fairmed's source files: a code change invalidates cached families."""
    import fairmed

    root = Path(fairmed.__file__).parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def family_key(spec: StudySpec, run: RunSpec, parts: dict) -> str:
    """The cache key of one ERM family: spec, configuration, seed, split tables, code."""
    body = spec.model_dump(mode="json")
    for k in ("name", "description", "profile", "base_dir"):
        body.pop(k, None)
    h = hashlib.sha256(
        json.dumps(
            [body, run.config, run.params.get("source"), run.seed], sort_keys=True, default=str
        ).encode()
    )
    for name in sorted(parts):
        table = parts[name].table
        h.update(name.encode())
        h.update(pd.util.hash_pandas_object(table.astype(str), index=False).to_numpy().tobytes())
        arrays = [a for a in (parts[name].embeddings, parts[name].images) if a is not None]
        for a in arrays:
            h.update(np.ascontiguousarray(a).tobytes())
    h.update(_code_fingerprint().encode())
    return h.hexdigest()[:32]


def cached_family(
    spec: StudySpec, settings: BenchmarkSettings, run: RunSpec, parts: dict, reasons: dict
) -> pd.DataFrame:
    """:func:`erm_family`, computed once per key across processes (file lock) and cached on disk."""
    if not settings.cache:
        return erm_family(spec, settings, parts, run.seed, reasons)
    import fcntl

    from fairmed.io import read_table, write_table
    from fairmed.models.features import default_cache_dir

    root = Path(spec.train.get("cache_dir") or default_cache_dir()) / "benchmark"
    root.mkdir(parents=True, exist_ok=True)
    key = family_key(spec, run, parts)
    target = root / f"{key}.parquet"
    with open(root / f"{key}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the process ends, even if killed
        try:
            if target.exists():
                return read_table(target)
            family = erm_family(spec, settings, parts, run.seed, reasons)
            write_table(family, target)
            return family
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# ------------------------------------------------------------------ analysis
def run_table(results: pd.DataFrame, attribute: str, split: str = "test") -> pd.DataFrame:
    """One row per run (config, method, seed): overall / worst-group / gap of accuracy, AUC, TPR, FPR
    and the criteria equal opportunity, equalized odds, demographic parity for ``attribute``."""
    r = results[results["split"] == split] if "split" in results.columns else results
    keys = ["config", "method", "seed"]
    sel = [
        ((r["attribute"] == OVERALL) & (r["group"] == OVERALL) & r["metric"].isin(BASE_METRICS), ""),
        ((r["attribute"] == attribute) & (r["group"] == "worst") & r["metric"].isin(BASE_METRICS), "_worst"),
        (
            (r["attribute"] == attribute) & (r["group"] == "difference") & r["metric"].isin(BASE_METRICS),
            "_gap",
        ),
        ((r["attribute"] == attribute) & (r["group"] == "criterion") & r["metric"].isin(CRITERIA), ""),
    ]
    parts = []
    for mask, suffix in sel:
        rows = r[mask]
        parts.append(rows.assign(column=rows["metric"].astype(str) + suffix)[[*keys, "column", "value"]])
    long = pd.concat(parts, ignore_index=True)
    if long.empty:
        return pd.DataFrame(columns=keys)
    wide = long.pivot_table(index=keys, columns="column", values="value", aggfunc="first", sort=False)
    wide.columns.name = None
    return wide.reset_index()


def add_fate(runs: pd.DataFrame, accuracy: str = "accuracy", baseline: str = "erm") -> pd.DataFrame:
    """``fate_<gap>`` for every gap column: FATE (lambda 1) against the baseline of the same config and
    seed, with ``accuracy`` as the accuracy; NaN where the baseline's accuracy or gap is 0 or missing."""
    out = runs.copy()
    base = runs[runs["method"] == baseline].set_index(["config", "seed"])
    idx = pd.MultiIndex.from_frame(runs[["config", "seed"]])
    acc_b = base[accuracy].reindex(idx).to_numpy(dtype=float)
    for gap in GAPS:
        if gap not in runs.columns:
            continue
        gap_b = base[gap].reindex(idx).to_numpy(dtype=float)
        ok = (acc_b != 0) & (gap_b != 0) & ~np.isnan(acc_b) & ~np.isnan(gap_b)
        with np.errstate(divide="ignore", invalid="ignore"):
            value = fate(runs[accuracy].to_numpy(dtype=float), acc_b, runs[gap].to_numpy(dtype=float), gap_b)
        out[f"fate_{gap}"] = np.where(ok, value, np.nan)
    return out


def paired_p(a: np.ndarray, b: np.ndarray, test: str = "ttest") -> float:
    """Two-sided p of a paired test (by seed) of ``a`` vs ``b``: scipy's paired t-test or the
    Wilcoxon signed-rank test (fairmed.metrics.stats.paired_test). NaN pairs are dropped; NaN with
    fewer than two pairs; 1 when every difference is 0."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b = a[keep], b[keep]
    if len(a) < 2:
        return float("nan")
    if np.all(a == b):
        return 1.0
    if test == "wilcoxon":
        return paired_test(a, b)[1]
    import warnings

    from scipy.stats import ttest_rel

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # near-identical pairs: scipy's precision note
        return float(ttest_rel(a, b).pvalue)


def mean_interval(values: np.ndarray, ci: float = 0.95) -> tuple[float, float, float, float, int]:
    """Mean, sd, t-interval (NaN bounds with one value) and n over seeds; NaN values dropped."""
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    n = len(v)
    if n == 0:
        return (np.nan,) * 4 + (0,)
    mean = float(v.mean())
    if n == 1:
        return mean, np.nan, np.nan, np.nan, 1
    from scipy.stats import t

    sd = float(v.std(ddof=1))
    half = float(t.ppf(0.5 + ci / 2, n - 1)) * sd / np.sqrt(n)
    return mean, sd, mean - half, mean + half, n


def summary_table(
    runs: pd.DataFrame, test: str = "ttest", ci: float = 0.95, baseline: str = "erm"
) -> pd.DataFrame:
    """Per (config, method, measure): mean, sd, CI over seeds, the mean paired difference to the
    baseline of the same seeds, its p-value (``test``) and stars (the report's convention)."""
    measures = [c for c in runs.columns if c not in ("config", "method", "seed")]
    rows = []
    for config, part in runs.groupby("config", sort=False):
        base = part[part["method"] == baseline].set_index("seed")
        for method, sub in part.groupby("method", sort=False):
            sub = sub.set_index("seed")
            seeds = sub.index.intersection(base.index)
            for m in measures:
                mean, sd, lo, hi, n = mean_interval(sub[m].to_numpy(dtype=float), ci)
                a = sub.loc[seeds, m].to_numpy(dtype=float)
                b = base.loc[seeds, m].to_numpy(dtype=float)
                p = np.nan if method == baseline else paired_p(a, b, test)
                with np.errstate(invalid="ignore"):
                    delta = float(np.nanmean(a - b)) if len(a) and not np.isnan(a - b).all() else np.nan
                rows.append(
                    {
                        "config": config,
                        "method": method,
                        "measure": m,
                        "mean": mean,
                        "sd": sd,
                        "ci_low": lo,
                        "ci_high": hi,
                        "n": n,
                        "delta": delta,
                        "p": p,
                        "stars": "" if np.isnan(p) else stars(p),
                    }
                )
    return pd.DataFrame(rows)


def pareto_front(accuracy, gap) -> np.ndarray:
    """True for points no other point dominates (accuracy >= and gap <=, one strictly); NaN: never."""
    a, g = np.asarray(accuracy, dtype=float), np.asarray(gap, dtype=float)
    ok = ~(np.isnan(a) | np.isnan(g))
    ge = (a[None, :] >= a[:, None]) & (g[None, :] <= g[:, None])
    strict = (a[None, :] > a[:, None]) | (g[None, :] < g[:, None])
    dominated = (ge & strict & ok[None, :]).any(axis=1)
    return ok & ~dominated


def pareto_table(
    summary: pd.DataFrame, accuracy: str = "accuracy", gap: str = "equal_opportunity"
) -> pd.DataFrame:
    """Per config and method: mean accuracy and gap with their intervals, and ``front``."""
    cols = ["mean", "ci_low", "ci_high"]
    out = []
    for config, part in summary.groupby("config", sort=False):
        acc = part[part["measure"] == accuracy].set_index("method")[cols]
        gp = part[part["measure"] == gap].set_index("method")[cols]
        both = acc.merge(gp, left_index=True, right_index=True, suffixes=("_acc", "_gap"), how="inner")
        frame = pd.DataFrame(
            {
                "config": config,
                "method": both.index,
                "accuracy": both["mean_acc"].to_numpy(),
                "accuracy_low": both["ci_low_acc"].to_numpy(),
                "accuracy_high": both["ci_high_acc"].to_numpy(),
                "gap": both["mean_gap"].to_numpy(),
                "gap_low": both["ci_low_gap"].to_numpy(),
                "gap_high": both["ci_high_gap"].to_numpy(),
            }
        )
        frame["front"] = pareto_front(frame["accuracy"], frame["gap"])
        out.append(frame)
    table = pd.concat(out, ignore_index=True) if out else pd.DataFrame()
    if len(table):
        table.attrs.update(accuracy=accuracy, gap=gap)
        table["accuracy_measure"], table["gap_measure"] = accuracy, gap
    return table


def notes_table(predictions: pd.DataFrame) -> pd.DataFrame:
    """The methods that did not apply: config, method, note, and the seeds it concerns."""
    rows = predictions[predictions["split"] == NOT_APPLICABLE]
    if rows.empty or "note" not in rows.columns:
        return pd.DataFrame(columns=["config", "method", "note", "seeds"])
    seeds = rows.groupby(["config", "method", "note"], sort=False)["seed"]
    out = seeds.agg(lambda s: ", ".join(str(int(v)) for v in sorted(set(s)))).rename("seeds")
    return out.reset_index()


def group_sizes(
    predictions: pd.DataFrame, groups, split: str = "test", baseline: str = "erm"
) -> pd.DataFrame:
    """Per configuration: each group's rows and positives in ``split`` of the first seed (the
    mechanisms change the cohort, so the runner's cohort summary of the base source does not show them)."""
    from fairmed.data.groups import GroupSpec

    spec = GroupSpec.parse(groups) if isinstance(groups, str) else GroupSpec.model_validate(groups)
    rows = predictions[(predictions["split"] == split) & (predictions["method"] == baseline)]
    if rows.empty:
        return pd.DataFrame(columns=["config", "group", "n", "positives"])
    rows = rows[rows["seed"] == rows["seed"].min()]
    g = spec.assign(rows).groups.astype(object).fillna("(no group)").to_numpy()
    frame = pd.DataFrame({"config": rows["config"].to_numpy(), "group": g, "y": rows[Y_TRUE].to_numpy()})
    out = frame.groupby(["config", "group"], sort=False).agg(n=("y", "size"), positives=("y", "sum"))
    return out.reset_index()


def statements(
    summary: pd.DataFrame, gap: str, accuracy: str = "accuracy", baseline: str = "erm", alpha: float = 0.05
) -> dict[str, list[str]]:
    """Plain-language findings per configuration: ERM's gaps, which methods narrowed the chosen gap
    (significantly at ``alpha`` in the paired test, or not) and at what accuracy cost, which widened it."""
    out: dict[str, list[str]] = {}
    for config, part in summary.groupby("config", sort=False):
        g = part[part["measure"] == gap].set_index("method")
        a = part[part["measure"] == accuracy].set_index("method")
        if baseline not in g.index or baseline not in a.index:
            continue
        erm = part[part["method"] == baseline].set_index("measure")["mean"]
        gaps = ", ".join(
            f"{m[:-4].upper() if m != 'accuracy_gap' else 'accuracy'} {erm[m]:.3f}"
            for m in GAPS[:4]
            if m in erm
        )
        lines = [
            f"ERM: {accuracy} {a.loc[baseline, 'mean']:.3f}, {label_of(gap)} {g.loc[baseline, 'mean']:.3f} (its gaps: {gaps})."
        ]
        groups: dict[str, list[tuple[float, str]]] = {"sig": [], "ns": [], "wide": []}
        for method in g.index:
            d, p = g.loc[method, "delta"], g.loc[method, "p"]
            if method == baseline or np.isnan(d) or d == 0:
                continue
            da, pa = (a.loc[method, "delta"], a.loc[method, "p"]) if method in a.index else (np.nan, np.nan)
            cost = (
                ""
                if np.isnan(da)
                else (
                    f"{-da * 100:.1f} points of {accuracy} lost"
                    if da < 0
                    else f"{da * 100:.1f} points of {accuracy} gained"
                )
            )
            cost += " (significant)" if pa <= alpha else ""
            key = "wide" if d > 0 else "sig" if p <= alpha else "ns"
            flag = ", significant" if key == "wide" and p <= alpha else ""
            groups[key].append(
                (d if d < 0 else -d, f"{method} to {g.loc[method, 'mean']:.3f} (p = {p:.2g}{flag}; {cost})")
            )
        if groups["sig"]:
            lines.append("Narrowed it significantly: " + "; ".join(t for _, t in sorted(groups["sig"])) + ".")
        if groups["ns"]:
            lines.append(
                "Narrowed it, not significantly: " + "; ".join(t for _, t in sorted(groups["ns"])) + "."
            )
        if not groups["sig"] and not groups["ns"]:
            lines.append("No method narrowed it.")
        if groups["wide"]:
            lines.append("Widened it: " + "; ".join(t for _, t in sorted(groups["wide"])) + ".")
        out[str(config)] = lines
    return out


LABELS = {
    "accuracy": "accuracy",
    "auc": "AUC",
    "tpr": "TPR",
    "fpr": "FPR",
    "equal_opportunity": "equal-opportunity gap (TPR difference)",
    "equalized_odds": "equalized-odds gap",
    "demographic_parity": "demographic-parity gap",
}


def label_of(measure: str) -> str:
    """A readable name of a run-table column."""
    if measure.startswith("fate_"):
        return f"FATE of the {label_of(measure[5:])}"
    for suffix, text in (("_worst", "worst-group {}"), ("_gap", "{} gap")):
        if measure.endswith(suffix):
            return text.format(LABELS.get(measure[: -len(suffix)], measure[: -len(suffix)]))
    return LABELS.get(measure, measure)


def analyse(out_dir: Path, spec: StudySpec, predictions: pd.DataFrame, results: pd.DataFrame) -> None:
    """``tables/benchmark_runs``, ``benchmark_summary``, ``benchmark_pareto``, ``benchmark_notes``,
    ``benchmark_groups``."""
    settings = spec.settings().benchmark
    attribute = spec.group_specs()[0].name if spec.groups else OVERALL
    runs = add_fate(run_table(results, attribute), settings.accuracy)
    summary = summary_table(runs, settings.test, spec.audit.ci)
    summary["family"] = summary["method"].map(FAMILY).fillna("in-processing")
    pareto = pareto_table(summary, settings.accuracy, settings.gap)
    write_tables(
        out_dir,
        {
            "benchmark_runs": runs.assign(attribute=attribute),
            "benchmark_summary": summary.assign(attribute=attribute, test=settings.test),
            "benchmark_pareto": pareto,
            "benchmark_notes": notes_table(predictions),
            "benchmark_groups": group_sizes(predictions, spec.groups[0])
            if spec.groups
            else pd.DataFrame(columns=["config", "group", "n", "positives"]),
        },
    )


STUDY_KIND = StudyKind(
    name=KIND,
    expand=expand,
    execute=execute,
    analyse=analyse,
    fields=BenchmarkFields,
    description="every fairmed mitigation on the same cohort, splits and seeds, per injected bias mechanism",
)

__all__ = [
    "BenchmarkSettings",
    "Mechanism",
    "STUDY_KIND",
    "add_fate",
    "analyse",
    "applicability",
    "decision_scores",
    "erm_family",
    "execute",
    "expand",
    "label_of",
    "paired_p",
    "pareto_front",
    "pareto_table",
    "post_process",
    "run_table",
    "statements",
    "summary_table",
]
