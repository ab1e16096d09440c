"""Study kind ``channel_pruning``: fairness through channel pruning (SCP) and FairPrune.

Implements "Achieving Fairness Through Channel Pruning for Dermatological Disease Diagnosis"
(Kong et al., MICCAI 2024). Per seed: a vanilla model is trained with fairmed's one loop, then

- ``fairprune``: FairPrune (Wu et al., 2022) on the vanilla model (privileged = the group the
  vanilla model has the higher validation F1 on, unless named);
- ``scp_vanilla``: the SNNL channel-pruning recipe (:func:`fairmed.mitigate.pruning.scp`) on it;
- ``scp_fairprune``: the same recipe on the FairPrune model ("orthogonal to existing methods");
- optional sweeps of the recipe over several pr_c (``sweep_ratios``) and layers
  (``sweep_layers``) for the paper's Fig. 2.

Every method's model predicts the val and test splits (Predictions with a ``method`` column).
The recipe's per-iteration history (channels left, validation and test metrics) and the channel
scores before and after pruning are tables of their own. Metrics come from
:mod:`fairmed.metrics` (multi-class per-group counts, Eopp0/Eopp1/Eodd, FATE): the accuracy of
FATE is the F1 averaged over the two groups (the paper's "Avg." column), lambda = 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from fairmed.data.cohort import Cohort
from fairmed.data.groups import GroupSpec
from fairmed.errors import SpecError
from fairmed.io import write_table, write_text
from fairmed.metrics.criteria import equal_odds_measures, fate
from fairmed.metrics.multiclass import class_counts, rates_from_counts
from fairmed.mitigate.pruning import SCPConfig, fairprune_model, scp
from fairmed.mitigate.structural import count_channels
from fairmed.train.api import Trained, predictions_frame, train_model
from fairmed.train.config import StrategySpec, TrainConfig, as_spec
from fairmed.train.data import TensorData
from fairmed.train.loop import predict_logits

KIND = "channel_pruning"
METHODS = ("vanilla", "fairprune", "scp_vanilla", "scp_fairprune")
CRITERIA = ("eopp0", "eopp1", "eodd")
PER_GROUP = ("precision", "recall", "f1")


class PruningSettings(BaseModel):
    """The kind-specific settings of a channel-pruning study."""

    model_config = ConfigDict(extra="forbid")

    privileged: str | None = Field(None, description="privileged group name (default: higher val F1)")
    scp: SCPConfig = Field(default_factory=SCPConfig)
    fairprune_ratio: float = Field(0.05, ge=0.0, lt=1.0, description="FairPrune's p (per layer)")
    fairprune_beta: float = Field(0.3, ge=0.0, description="FairPrune's beta")
    fairprune_batch_size: int = Field(32, ge=1)
    finetune: dict = Field(
        default_factory=lambda: {"epochs": 2, "lr": 1e-4, "scheduler": "none"},
        description="TrainConfig fields changed for the fine-tuning after each pruning step",
    )
    methods: list[str] = Field(default_factory=lambda: list(METHODS))
    others: list[str | dict] = Field(
        default_factory=list,
        description="other fairmed strategies (e.g. reweight, groupdro) trained as methods, each with SCP on top",
    )
    sweep_ratios: list[float] = Field(default_factory=list, description="extra pr_c values (Fig. 2a)")
    sweep_layers: list[str | int] = Field(default_factory=list, description="extra layers (Fig. 2b)")

    def model_post_init(self, _context) -> None:
        bad = [m for m in self.methods if m not in METHODS]
        if bad or "vanilla" not in self.methods:
            raise SpecError(
                f"channel_pruning.methods: {bad or self.methods} (expected 'vanilla' plus any of {METHODS})"
            )


# ------------------------------------------------------------------ metrics (fairmed.metrics)
def group_metrics(y_true, y_pred, codes, n_classes: int) -> dict[str, float]:
    """The paper's rows for two groups (codes 0/1): per-group macro precision/recall/F1, their
    mean (``*_avg``) and absolute difference (``*_diff``), overall accuracy, Eopp0/Eopp1/Eodd.

    ``f1`` (the accuracy of FATE and of the stopping rule) is the mean of the two groups' F1.
    """
    y, p, c = (np.asarray(a, dtype=np.int64) for a in (y_true, y_pred, codes))
    counts = class_counts(y, p, c, 2, n_classes)
    rates = rates_from_counts(counts)
    out: dict[str, float] = {"accuracy": float(np.mean(y[c >= 0] == p[c >= 0])) if (c >= 0).any() else np.nan}
    for name in PER_GROUP:
        v = rates[f"{name}_macro"][0]
        out[f"{name}_g0"], out[f"{name}_g1"] = float(v[0]), float(v[1])
        out[f"{name}_avg"], out[f"{name}_diff"] = float(np.mean(v)), float(abs(v[0] - v[1]))
    crit = equal_odds_measures({k: rates[k] for k in ("tpr", "fpr", "tnr")})
    out.update({k: float(np.asarray(crit[k]).reshape(-1)[0]) for k in CRITERIA})
    out["f1"] = out["f1_avg"]
    return out


def with_fate(values: dict[str, float], base: dict[str, float], lam: float = 1.0) -> dict[str, float]:
    """``fate_<criterion>`` of ``values`` against ``base`` (accuracy: the group-averaged F1);
    NaN where the baseline's F1 or criterion is 0 (a relative change is undefined there)."""
    out = dict(values)
    for k in CRITERIA:
        if base["f1"] == 0 or base[k] == 0 or np.isnan(base[k]) or np.isnan(base["f1"]):
            out[f"fate_{k}"] = np.nan  # undefined: relative change against a zero baseline
        else:
            out[f"fate_{k}"] = float(fate(values["f1"], base["f1"], values[k], base[k], lam))
    return out


def _predict_classes(model, data: TensorData, trained: Trained) -> np.ndarray:
    scores = trained.task.scores(
        predict_logits(model, data, trained.config.eval_batch_size, trained.config.amp)
    )
    scores = scores.numpy()
    return (scores >= 0.5).astype(np.int64) if scores.ndim == 1 else scores.argmax(1)


def evaluator(trained: Trained, val: TensorData, test: TensorData, n_classes: int):
    """``evaluate(model)``: validation metrics (the recipe's stopping rule) plus ``test_``-prefixed ones."""

    def evaluate(model) -> dict[str, float]:
        out = group_metrics(val.y.numpy(), _predict_classes(model, val, trained), val.g.numpy(), n_classes)
        tv = group_metrics(test.y.numpy(), _predict_classes(model, test, trained), test.g.numpy(), n_classes)
        out.update({f"test_{k}": v for k, v in tv.items()})
        return out

    return evaluate


# ------------------------------------------------------------------ one seed
@dataclass
class PruningRun:
    predictions: pd.DataFrame  # method, split, id, y_true, p_k / y_score, y_pred, attributes
    history: pd.DataFrame  # method, sweep, setting, iteration, channels, accepted, stop, metrics
    scores: pd.DataFrame  # method, iteration (-1 = after pruning), channel, score
    privileged: str


def _two_groups(trained: Trained) -> None:
    if len(trained.group_names) != 2:
        raise SpecError(
            f"channel_pruning needs exactly two groups (privileged, unprivileged), got {list(trained.group_names)}"
        )


def run_pruning(
    train: Cohort,
    val: Cohort,
    test: Cohort,
    *,
    groups: GroupSpec | str,
    settings: PruningSettings | None = None,
    model=None,
    strategy=None,
    config: TrainConfig | dict | None = None,
    seed: int = 0,
    label: str | None = None,
) -> PruningRun:
    """Train the vanilla model and run every method of ``settings`` on it (one seed)."""
    settings = settings or PruningSettings()
    trained = train_model(
        train,
        val,
        model=model,
        strategy=strategy,
        config=config,
        groups=groups,
        seed=seed,
        label=label,
        extra=[test],
    )
    _two_groups(trained)
    n_classes = trained.task.n_classes
    tr, va, te = trained.data(train), trained.data(val), trained.data(test)
    evaluate = evaluator(trained, va, te, n_classes)
    finetune = trained.config.model_copy(update=settings.finetune)
    base = evaluate(trained.model)
    names = trained.group_names
    if settings.privileged is not None:
        if settings.privileged not in names:
            raise SpecError(
                f"channel_pruning.privileged {settings.privileged!r} is not a group ({list(names)})"
            )
        priv = names.index(settings.privileged)
    else:
        priv = 0 if base["f1_g0"] >= base["f1_g1"] else 1
    models = {"vanilla": trained.model}
    histories, scores = [], []
    loss = lambda logits, y: trained.task.per_sample(logits, y).mean()  # noqa: E731
    if "fairprune" in settings.methods or "scp_fairprune" in settings.methods:
        models["fairprune"], _ = fairprune_model(
            trained.model,
            tr,
            priv,
            settings.fairprune_ratio,
            settings.fairprune_beta,
            settings.fairprune_batch_size,
            seed,
            loss,
        )
    strategies = {"vanilla": trained.strategy, "fairprune": trained.strategy}
    extra_methods = []
    for other in settings.others:
        spec = as_spec(StrategySpec, other, "channel_pruning.others")
        if spec.name == "erm" or spec.name in models:
            raise SpecError(f"channel_pruning.others: {spec.name!r} is vanilla or listed twice")
        t_o = train_model(
            train,
            val,
            model=model,
            strategy=spec,
            config=config,
            groups=groups,
            seed=seed,
            label=label,
            extra=[test],
        )
        models[spec.name], strategies[spec.name] = t_o.model, t_o.strategy
        extra_methods += [spec.name, f"scp_{spec.name}"]
    runs: list[tuple[str, str, str, str, SCPConfig]] = [
        (f"scp_{name}", name, "", "", settings.scp) for name in extra_methods[::2]
    ]
    if "scp_vanilla" in settings.methods:
        runs.append(("scp_vanilla", "vanilla", "", "", settings.scp))
    if "scp_fairprune" in settings.methods:
        runs.append(("scp_fairprune", "fairprune", "", "", settings.scp))
    for r in settings.sweep_ratios:
        runs.append(
            (
                f"scp_vanilla pr_c={r:g}",
                "vanilla",
                "ratio",
                f"{r:g}",
                settings.scp.model_copy(update={"ratio": r}),
            )
        )
    for layer in settings.sweep_layers:
        cfg = settings.scp.model_copy(update={"layer": layer})
        runs.append((f"scp_vanilla layer={layer}", "vanilla", "layer", str(layer), cfg))
    for name, start, sweep, setting, cfg in runs:
        result = scp(
            models[start],
            strategies[start],
            tr,
            va,
            finetune,
            evaluate,
            cfg.model_copy(update={"seed": seed}),
        )
        histories.append(
            result.history.assign(
                method=name, sweep=sweep, setting=setting, layer=result.layer, run_stop=result.stop
            )
        )
        scores.append(result.scores.assign(method=name, layer=result.layer))
        if not sweep:
            models[name] = result.model
    frames = []
    for method in [m for m in settings.methods if m in models] + extra_methods:
        m = models[method]
        for split, cohort, data in (("val", val, va), ("test", test, te)):
            probs = trained.task.scores(
                predict_logits(m, data, trained.config.eval_batch_size, trained.config.amp)
            )
            frame = predictions_frame(cohort, probs.numpy(), trained.label, split)
            frames.append(frame.assign(method=method, channels=sum(count_channels(m).values())))
    base_rows = pd.DataFrame([{"method": "vanilla", "sweep": "", "setting": "", "iteration": 0, **base}])
    history = pd.concat([base_rows, *histories], ignore_index=True) if histories else base_rows
    history = history.assign(seed=seed)
    score_table = pd.concat(scores, ignore_index=True).assign(seed=seed) if scores else pd.DataFrame()
    return PruningRun(
        predictions=pd.concat(frames, ignore_index=True).assign(seed=seed),
        history=history,
        scores=score_table,
        privileged=names[priv],
    )


# ------------------------------------------------------------------ tables like the paper's
def method_metrics(
    predictions: pd.DataFrame, groups: GroupSpec | str, n_classes: int, split: str = "test", keys=("seed",)
) -> pd.DataFrame:
    """One row per (method, seed): the paper's Table 1-2 values, FATE against ``vanilla``."""
    spec = GroupSpec.parse(groups) if isinstance(groups, str) else groups
    pred = predictions[predictions["split"] == split]
    assigned = spec.assign(pred).groups
    names = [str(c) for c in assigned.cat.categories if (assigned == c).any()]
    if len(names) != 2:
        raise SpecError(f"channel_pruning tables need two groups of {spec.name}, found {names}")
    codes = (
        assigned.astype(object).map({n: k for k, n in enumerate(names)}).fillna(-1).to_numpy(dtype=np.int64)
    )
    y_pred = _class_decisions(pred)
    rows = []
    keys = [k for k in keys if k in pred.columns]
    for key, part in pred.groupby(["method", *keys], sort=False):
        idx = pred.index.get_indexer(part.index)
        vals = group_metrics(part["y_true"].to_numpy(), y_pred[idx], codes[idx], n_classes)
        rows.append({"method": key[0], **dict(zip(keys, key[1:])), **vals})
    base = {tuple(r[k] for k in keys): r for r in rows if r["method"] == "vanilla"}
    if not base:
        raise SpecError("channel_pruning tables need the 'vanilla' method as the FATE baseline")
    out = [with_fate(r, base[tuple(r[k] for k in keys)]) for r in rows]
    result = pd.DataFrame(out).assign(group_0=names[0], group_1=names[1])
    result.attrs["groups"] = names
    return result


def _class_decisions(pred: pd.DataFrame) -> np.ndarray:
    if "y_pred" in pred.columns and pred["y_pred"].notna().all():
        return pred["y_pred"].to_numpy(dtype=np.int64)
    return (pred["y_score"].to_numpy() >= 0.5).astype(np.int64)


def paper_table(metrics: pd.DataFrame, groups: list[str] | None = None) -> pd.DataFrame:
    """Mean over seeds, shaped like the paper's Tables 1-2: rows = methods, (metric, column) columns."""
    groups = groups or metrics.attrs.get("groups", ["group 0", "group 1"])
    order = [m for m in METHODS if m in set(metrics["method"])] + [
        m for m in dict.fromkeys(metrics["method"]) if m not in METHODS
    ]
    mean = metrics.groupby("method", sort=False).mean(numeric_only=True).reindex(order)
    cols = {}
    for name in PER_GROUP:
        label = {"precision": "Precision", "recall": "Recall", "f1": "F1"}[name]
        for suffix, col in (("g0", groups[0]), ("g1", groups[1]), ("avg", "Avg."), ("diff", "Diff.")):
            cols[(label, col)] = mean[f"{name}_{suffix}"]
    for k in CRITERIA:
        cols[("Fairness", {"eopp0": "Eopp0", "eopp1": "Eopp1", "eodd": "Eodd"}[k])] = mean[k]
    for k in CRITERIA:
        cols[("FATE", {"eopp0": "Eopp0", "eopp1": "Eopp1", "eodd": "Eodd"}[k])] = mean[f"fate_{k}"]
    out = pd.DataFrame(cols)
    out.columns = pd.MultiIndex.from_tuples(out.columns)
    out.index.name = "method"
    return out


def history_fate(history: pd.DataFrame, prefix: str = "test_") -> pd.DataFrame:
    """FATE of each criterion at every recipe iteration against the seed's unpruned vanilla model."""
    rows = []
    for _, part in history.groupby("seed", sort=False):
        base = part[(part["method"] == "vanilla") & (part["iteration"] == 0)]
        if base.empty:
            continue
        b = {k.removeprefix(prefix): v for k, v in base.iloc[0].items() if k.startswith(prefix)}
        for _, row in part.iterrows():
            v = {k.removeprefix(prefix): x for k, x in row.items() if k.startswith(prefix)}
            f = with_fate(v, b)
            rows.append({**row.to_dict(), **{f"{prefix}fate_{k}": f[f"fate_{k}"] for k in CRITERIA}})
    return pd.DataFrame(rows)


def score_distribution(scores: pd.DataFrame) -> pd.DataFrame:
    """SNNL-Fair scores before (first iteration) and after pruning (final model), per method and seed."""
    if scores.empty:
        return scores
    first = scores[scores["iteration"] == 0].assign(stage="before")
    last = scores[scores["iteration"] == -1].assign(stage="after")
    return pd.concat([first, last], ignore_index=True)


def write_tables(
    out_dir,
    predictions: pd.DataFrame,
    history: pd.DataFrame,
    scores: pd.DataFrame,
    groups: GroupSpec | str,
    n_classes: int,
) -> dict[str, Path]:
    """The study's ``OUT/tables``: ``pruning_metrics`` (Tables 1-2 rows per method and seed),
    ``pruning_history`` (recipe iterations with test FATE against vanilla), ``pruning_scores``."""
    tables = Path(out_dir) / "tables"
    out = {
        "pruning_metrics": method_metrics(predictions, groups, n_classes),
        "pruning_history": history_fate(history),
        "pruning_scores": scores,
    }
    return {name: write_table(frame, tables / f"{name}.parquet") for name, frame in out.items()}


# ------------------------------------------------------------------ the whole study in this process
class PruningStudy(BaseModel):
    """A channel-pruning study: groups, model, training, the methods' settings, seeds, split, audit."""

    model_config = ConfigDict(extra="forbid")

    name: str = "channel pruning"
    groups: str = Field("fst:123-456", description="two groups: light = FST 1-3, dark = FST 4-6")
    model: dict = Field(default_factory=lambda: {"arch": "vgg11", "image_size": 128})
    train: dict = Field(default_factory=dict, description="TrainConfig fields of the vanilla model")
    pruning: PruningSettings = Field(default_factory=PruningSettings)
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2])
    fractions: dict[str, float] = Field(default_factory=lambda: {"train": 0.6, "val": 0.2, "test": 0.2})
    group_by: str | None = "patient_id"
    stratify: list[str] | None = Field(None, description="split strata (default: the label)")
    bootstrap: int = Field(200, ge=0, description="audit bootstrap replicates")
    min_group_size: int = Field(1, ge=1)

    @classmethod
    def profile(cls, profile: str, **overrides) -> PruningStudy:
        """``smoke``: a tiny small-CNN run (CI); ``cpu``: small CNN at 32 px; ``paper``: the paper's models."""
        if profile == "smoke":
            base = {
                "model": {"arch": "small_cnn", "image_size": 16, "channels": [8, 16]},
                "train": {"epochs": 3, "batch_size": 32, "lr": 3e-3, "device": "cpu", "num_threads": 1},
                "pruning": {
                    # th_fair -1: every iteration is kept, so the smoke run always ends with pruned models
                    "scp": {
                        "ratio": 0.125,
                        "max_iter": 2,
                        "th_acc": 0.2,
                        "th_fair": -1.0,
                        "score_batch_size": 64,
                    },
                    "finetune": {"epochs": 1, "lr": 1e-3},
                    "sweep_ratios": [0.25],
                    "sweep_layers": [0],
                },
                "seeds": [0],
                "bootstrap": 0,
            }
        elif profile == "cpu":
            base = {
                "model": {"arch": "small_cnn", "image_size": 32, "channels": [32, 64, 128]},
                "train": {"epochs": 10, "batch_size": 64, "lr": 1e-3, "patience": 3},
                "pruning": {"sweep_ratios": [0.01, 0.05], "sweep_layers": [-2, -3]},
                "seeds": [0, 1, 2],
            }
        elif profile == "paper":
            base = {"train": {"epochs": 50, "batch_size": 64, "lr": 1e-4, "patience": 10, "augment": "flip"}}
        else:
            raise SpecError(f"channel_pruning profile {profile!r}: expected smoke, cpu or paper")
        return cls.model_validate({**base, **overrides})


def split_parts(cohort: Cohort, study: PruningStudy, seed: int) -> tuple[Cohort, Cohort, Cohort]:
    """Train/val/test cohorts of one seed (:func:`fairmed.design.splits.split_cohort`)."""
    from fairmed.design.splits import split_cohort

    stratify = study.stratify if study.stratify is not None else [cohort.label]
    parts = split_cohort(cohort, study.fractions, seed, study.group_by, stratify)
    return cohort.subset(parts["train"]), cohort.subset(parts["val"]), cohort.subset(parts["test"])


def run_pruning_study(cohort: Cohort, study: PruningStudy, out_dir) -> pd.DataFrame:
    """Every seed in this process, audited; writes spec.yaml, predictions, results and tables.

    Returns the Results (fairmed.metrics.audit over the methods' test Predictions).
    """
    import yaml

    from fairmed.metrics.audit import audit

    out = Path(out_dir)
    runs = []
    for seed in study.seeds:
        tr, va, te = split_parts(cohort, study, seed)
        runs.append(
            run_pruning(
                tr,
                va,
                te,
                groups=study.groups,
                settings=study.pruning,
                model=study.model,
                config=study.train,
                seed=seed,
            )
        )
    predictions = pd.concat([r.predictions for r in runs], ignore_index=True)
    predictions.insert(0, "study", study.name)
    predictions.insert(1, "config", "main")
    history = pd.concat([r.history for r in runs], ignore_index=True)
    scores = pd.concat([r.scores for r in runs], ignore_index=True)
    results = audit(
        predictions[predictions["split"] == "test"].drop(columns=["channels"]),
        [study.groups],
        bootstrap=study.bootstrap,
        min_group_size=study.min_group_size,
    ).to_frame()
    spec = {"kind": KIND, **study.model_dump(mode="json"), "privileged": [r.privileged for r in runs]}
    write_text(out / "spec.yaml", yaml.safe_dump(spec, sort_keys=False))
    write_table(predictions, out / "predictions.parquet")
    write_table(results, out / "results.parquet")
    proba = [c for c in predictions.columns if c.startswith("p_") and c[2:].isdigit()]
    write_tables(out, predictions, history, scores, study.groups, len(proba) if proba else 2)
    return results


# ------------------------------------------------------------------ YAML specs (studies/builtin/pruning_*.yaml)
BUILTIN = Path(__file__).parent / "builtin"


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        out[key] = (
            _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


def study_from_spec(spec: dict, profile: str | None = None) -> tuple[dict, PruningStudy]:
    """(source spec, study) from a ``channel_pruning`` study YAML (the StudySpec layout: ``name``,
    ``kind``, ``profile``, ``source``, ``groups`` (the first is used), ``design``, ``model``,
    ``train``, ``audit``, the kind's ``pruning`` block, and ``profiles: {<profile>: overrides}``)."""
    if spec.get("kind") != KIND:
        raise SpecError(f"study kind {spec.get('kind')!r}: expected {KIND!r}")
    if "source" not in spec:
        raise SpecError("channel_pruning spec: 'source' is missing")
    chosen = profile or spec.get("profile", "cpu")
    merged = _merge(spec, (spec.get("profiles") or {}).get(chosen) or {})
    design, audit_cfg = merged.get("design") or {}, merged.get("audit") or {}
    groups = merged.get("groups") or ["fst:123-456"]
    fields = {
        "name": merged.get("name", KIND),
        "groups": groups[0] if isinstance(groups, list) else groups,
        "model": merged.get("model") or {},
        "train": merged.get("train") or {},
        "pruning": merged.get("pruning") or {},
        "seeds": list(range(design["repeats"])) if design.get("repeats") else design.get("seeds", [0]),
        "bootstrap": audit_cfg.get("bootstrap", 200),
        "min_group_size": audit_cfg.get("min_group_size", 1),
    }
    for key in ("fractions", "group_by", "stratify"):
        if key in design:
            fields[key] = design[key]
    return merged["source"], PruningStudy.model_validate(fields)


def run_spec(path, out_dir, profile: str | None = None) -> pd.DataFrame:
    """Load a ``channel_pruning`` YAML (paths relative to its folder) and run the study into ``out_dir``."""
    import yaml

    from fairmed.data.sources import load_source

    path = Path(path)
    spec = yaml.safe_load(path.read_text())
    source, study = study_from_spec(spec, profile)
    cohort = load_source(source, base_dir=path.parent)
    return run_pruning_study(cohort, study, out_dir)
