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
from functools import partial
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from fairmed.data.cohort import Cohort
from fairmed.data.groups import GroupSpec
from fairmed.errors import SpecError
from fairmed.metrics.criteria import equal_odds_measures, fate
from fairmed.metrics.multiclass import class_counts, rates_from_counts
from fairmed.mitigate.pruning import SCPConfig, fairprune_model, scp
from fairmed.mitigate.structural import count_channels
from fairmed.studies.classification import load_cohort
from fairmed.studies.classification import split_parts as study_parts
from fairmed.studies.kinds import StudyKind, grid_runs
from fairmed.studies.kinds import write_tables as write_kind_tables
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
    fairprune_steps: int = Field(5, ge=1, description="FairPrune prunes its ratio in this many steps")
    fairprune_scope: Literal["layer", "global"] = Field(
        "layer",
        description="FairPrune's ratio: of each layer's weights, or of all pruned weights ranked together",
    )
    fairprune_spare_ends: bool = Field(
        True, description="FairPrune leaves the first layer and the classifier"
    )
    fairprune_batches: int | None = Field(
        None, ge=1, description="FairPrune: at most this many batches per group and step (default all)"
    )
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
    sweep_snnl: list[dict] = Field(
        default_factory=list,
        description="extra SNNL variants of scp_vanilla, each a mapping of SCPConfig's distance /"
        " include_self / temperature (the authors' code: {distance: cosine, include_self: true, temperature: 1})",
    )

    def model_post_init(self, _context) -> None:
        as_spec(TrainConfig, self.finetune, "channel_pruning.finetune")  # one-line SpecError when wrong
        for variant in self.sweep_snnl:
            snnl_setting(variant)  # one-line SpecError when wrong
        bad = [m for m in self.methods if m not in METHODS]
        if bad or "vanilla" not in self.methods:
            raise SpecError(
                f"channel_pruning.methods: {bad or self.methods} (expected 'vanilla' plus any of {METHODS})"
            )


SNNL_KEYS = ("distance", "include_self", "temperature")


def snnl_setting(variant: dict) -> str:
    """The display/config name of one SNNL variant, e.g. ``cosine+self,T=1`` (validated keys and values)."""
    bad = sorted(set(variant) - set(SNNL_KEYS))
    if bad:
        raise SpecError(f"channel_pruning.sweep_snnl: {bad[0]!r} is not one of {SNNL_KEYS}")
    cfg = as_spec(SCPConfig, dict(variant), "channel_pruning.sweep_snnl")
    return f"{cfg.distance}{'+self' if cfg.include_self else ''},T={cfg.temperature:g}"


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


def _probabilities(model, data: TensorData, trained: Trained) -> np.ndarray:
    logits = predict_logits(model, data, trained.config.eval_batch_size, trained.config.amp)
    return trained.task.scores(logits).numpy()


def _classes(scores: np.ndarray) -> np.ndarray:
    return (scores >= 0.5).astype(np.int64) if scores.ndim == 1 else scores.argmax(1)


def evaluator(trained: Trained, val: TensorData, test: TensorData, n_classes: int, sink: list | None = None):
    """``evaluate(model)``: validation metrics (the recipe's stopping rule) plus ``test_``-prefixed ones.

    With ``sink``, each call also appends the model's test-split class probabilities to it.
    """

    def evaluate(model) -> dict[str, float]:
        out = group_metrics(
            val.y.numpy(), _classes(_probabilities(model, val, trained)), val.g.numpy(), n_classes
        )
        probs = _probabilities(model, test, trained)
        tv = group_metrics(test.y.numpy(), _classes(probs), test.g.numpy(), n_classes)
        out.update({f"test_{k}": v for k, v in tv.items()})
        if sink is not None:
            sink.append(probs)
        return out

    return evaluate


# ------------------------------------------------------------------ one seed
@dataclass
class PruningRun:
    predictions: pd.DataFrame  # method, split, id, y_true, p_k / y_score, y_pred, attributes
    history: pd.DataFrame  # method, sweep, setting, iteration, channels, accepted, stop, metrics
    scores: pd.DataFrame  # method, iteration (-1 = after pruning), channel, score
    privileged: str
    iterations: pd.DataFrame | None = None  # test Predictions of every recipe iteration (split test@k)


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
    # every model of the run (vanilla and the other strategies) trains on the same data and settings
    train_with = partial(
        train_model,
        train,
        val,
        model=model,
        config=config,
        groups=groups,
        seed=seed,
        label=label,
        extra=[test],
    )
    trained = train_with(strategy=strategy)
    _two_groups(trained)
    n_classes = trained.task.n_classes
    tr, va, te = trained.data(train), trained.data(val), trained.data(test)
    evaluate = evaluator(trained, va, te, n_classes)
    finetune = as_spec(TrainConfig, {**trained.config.model_dump(), **settings.finetune}, "pruning.finetune")
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
            steps=settings.fairprune_steps,
            spare_ends=settings.fairprune_spare_ends,
            max_batches=settings.fairprune_batches,
            scope=settings.fairprune_scope,
        )
    strategies = {"vanilla": trained.strategy, "fairprune": trained.strategy}
    extra_methods = []
    for other in settings.others:
        spec = as_spec(StrategySpec, other, "channel_pruning.others")
        if spec.name == "erm" or spec.name in models:
            raise SpecError(f"channel_pruning.others: {spec.name!r} is vanilla or listed twice")
        t_o = train_with(strategy=spec)
        models[spec.name], strategies[spec.name] = t_o.model, t_o.strategy
        extra_methods += [spec.name, f"scp_{spec.name}"]
    runs: list[tuple[str, str, str, str, SCPConfig]] = [
        (f"scp_{name}", name, "", "", settings.scp) for name in extra_methods[::2]
    ]
    if "scp_vanilla" in settings.methods:
        runs.append(("scp_vanilla", "vanilla", "", f"{settings.scp.ratio:g}", settings.scp))
    if "scp_fairprune" in settings.methods:
        runs.append(("scp_fairprune", "fairprune", "", f"{settings.scp.ratio:g}", settings.scp))
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
    for variant in settings.sweep_snnl:
        cfg = settings.scp.model_copy(update=dict(variant))
        name = snnl_setting(variant)
        runs.append((f"scp_vanilla snnl={name}", "vanilla", "snnl", name, cfg))
    iteration_frames = []
    for name, start, sweep, setting, cfg in runs:
        sink: list[np.ndarray] = []
        result = scp(
            models[start],
            strategies[start],
            tr,
            va,
            finetune,
            evaluator(trained, va, te, n_classes, sink),
            cfg.model_copy(update={"seed": seed}),
        )
        for row, probs in zip(result.history.itertuples(), sink):
            frame = predictions_frame(test, probs, trained.label, f"test@{row.iteration}")
            iteration_frames.append(
                frame.assign(
                    method=name,
                    iteration=row.iteration,
                    channels=row.channels,
                    accepted=bool(row.accepted),
                    layer=result.layer,
                    run_stop=result.stop,
                )
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
            frame = predictions_frame(cohort, _probabilities(m, data, trained), trained.label, split)
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
        iterations=pd.concat(iteration_frames, ignore_index=True).assign(seed=seed)
        if iteration_frames
        else None,
    )


# ------------------------------------------------------------------ tables like the paper's
def group_codes_of(pred: pd.DataFrame, groups: GroupSpec | str) -> tuple[np.ndarray, list[str]]:
    """Codes 0/1 (-1: no group) of the Predictions' rows under ``groups``, and the two names."""
    spec = GroupSpec.parse(groups) if isinstance(groups, str) else groups
    assigned = spec.assign(pred).groups
    names = [str(c) for c in assigned.cat.categories if (assigned == c).any()]
    if len(names) != 2:
        raise SpecError(f"channel_pruning tables need two groups of {spec.name}, found {names}")
    codes = (
        assigned.astype(object).map({n: k for k, n in enumerate(names)}).fillna(-1).to_numpy(dtype=np.int64)
    )
    return codes, names


def method_metrics(
    predictions: pd.DataFrame, groups: GroupSpec | str, n_classes: int, split: str = "test", keys=("seed",)
) -> pd.DataFrame:
    """One row per (method, seed): the paper's Table 1-2 values, FATE against ``vanilla``."""
    pred = predictions[predictions["split"] == split]
    codes, names = group_codes_of(pred, groups)
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
) -> list[Path]:
    """The study's ``OUT/tables`` from one or more :class:`PruningRun`: ``pruning_metrics`` (Tables 1-2
    rows per method and seed), ``pruning_history`` (recipe iterations with test FATE against
    vanilla), ``pruning_scores``."""
    tables = {
        "pruning_metrics": method_metrics(predictions, groups, n_classes),
        "pruning_history": history_fate(history),
        "pruning_scores": scores,
    }
    return write_kind_tables(out_dir, tables)


# ------------------------------------------------------------------ the study kind (fairmed run)
class PruningFields(BaseModel):
    """The kind's own top-level spec field: ``pruning`` (see :class:`PruningSettings`)."""

    model_config = ConfigDict(extra="forbid")

    pruning: PruningSettings = Field(default_factory=PruningSettings)


SNNL_SPLIT = "snnl"  # Predictions rows holding channel scores (the audit reads only its splits)


def _other_name(other) -> str:
    return as_spec(StrategySpec, other, "channel_pruning.others").name


def expand(spec) -> list:
    """Runs: every method x seed (config ``main``), and ``scp_vanilla`` x seed per pr_c / layer sweep."""
    settings = spec.settings().pruning
    names = list(settings.methods) + [
        n for o in settings.others for n in (_other_name(o), f"scp_{_other_name(o)}")
    ]
    runs = grid_runs(spec, {m: {} for m in names}, {"main": {}})
    sweeps = {f"pr_c={r:g}": {"ratio": r} for r in settings.sweep_ratios}
    sweeps.update({f"layer={layer}": {"layer": layer} for layer in settings.sweep_layers})
    sweeps.update({f"snnl={snnl_setting(v)}": dict(v) for v in settings.sweep_snnl})
    if sweeps:
        runs += grid_runs(spec, {"scp_vanilla": {}}, sweeps)
    return runs


def _restricted(settings: PruningSettings, method: str, params: dict) -> PruningSettings:
    """The settings that compute only ``method`` (plus the vanilla model it starts from)."""
    scp_cfg = settings.scp.model_copy(update=params)
    update: dict = {"scp": scp_cfg, "sweep_ratios": [], "sweep_layers": [], "sweep_snnl": [], "others": []}
    if method in METHODS:
        update["methods"] = ["vanilla"] + ([method] if method != "vanilla" else [])
    else:
        name = method.removeprefix("scp_")
        update["methods"] = ["vanilla"]
        update["others"] = [o for o in settings.others if _other_name(o) == name]
        if not update["others"]:
            raise SpecError(f"channel_pruning: unknown method {method!r}")
    return settings.model_copy(update=update)


def execute(run) -> pd.DataFrame:
    """One method on one seeded split: its val/test Predictions, the test Predictions of every recipe
    iteration (split ``test@<k>``, with ``iteration``, ``channels``, ``accepted``, ``layer``) and the
    pruned layer's SNNL-Fair channel scores before/after (split ``snnl``: ``channel``, ``snnl_score``,
    ``stage``). The runner's audit reads only ``test``; ``analyse`` reads the rest. The vanilla model
    is retrained in every run (same seed and data: the same model on CPU)."""
    spec = run.study_spec()
    settings = _restricted(spec.settings().pruning, run.method, dict(run.params))
    cohort = load_cohort(spec)
    parts = study_parts(spec, cohort, run.seed)
    train = spec.train_settings()
    groups = spec.groups[0] if spec.groups else "fst:123-456"
    result = run_pruning(
        parts["train"],
        parts["val"],
        parts["test"],
        groups=groups,
        settings=settings,
        model=spec.model,
        config=train,
        seed=run.seed,
        label=spec.label,
    )
    keep = ["method", "seed"]
    frames = [result.predictions[result.predictions["method"] == run.method].drop(columns=keep)]
    if result.iterations is not None:
        its = result.iterations[result.iterations["method"] == run.method]
        frames.append(its.drop(columns=keep))
    if not result.scores.empty:
        sc = result.scores[result.scores["method"] == run.method]
        sc = sc[sc["iteration"].isin([0, -1])]
        frames.append(
            pd.DataFrame(
                {
                    "split": SNNL_SPLIT,
                    "id": [f"channel{c}" for c in sc["channel"]],
                    "y_true": -1,
                    "channel": sc["channel"].to_numpy(),
                    "snnl_score": sc["score"].to_numpy(),
                    "stage": np.where(sc["iteration"].to_numpy() == 0, "before", "after"),
                    "layer": sc["layer"].to_numpy(),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def _sweep_of(config: str) -> tuple[str, str]:
    if config.startswith("pr_c="):
        return "ratio", config.removeprefix("pr_c=")
    if config.startswith("layer="):
        return "layer", config.removeprefix("layer=")
    if config.startswith("snnl="):
        return "snnl", config.removeprefix("snnl=")
    return "", ""


def analyse(out_dir, spec, predictions: pd.DataFrame, results: pd.DataFrame) -> None:
    """``tables/pruning_metrics``, ``pruning_history`` and ``pruning_scores`` from the runs' Predictions."""
    groups = spec.groups[0] if spec.groups else "fst:123-456"
    proba = [c for c in predictions.columns if c.startswith("p_") and c[2:].isdigit()]
    n_classes = len(proba) if proba else 2
    main = predictions[predictions["config"] == "main"]
    main_ratio = spec.settings().pruning.scp.ratio
    tables = {"pruning_metrics": method_metrics(main, groups, n_classes)}
    rows = []
    base = main[(main["split"] == "test") & (main["method"] == "vanilla")]
    for seed, part in base.groupby("seed"):
        codes, _ = group_codes_of(part, groups)
        vals = group_metrics(part["y_true"].to_numpy(), _class_decisions(part), codes, n_classes)
        rows.append(
            {"method": "vanilla", "sweep": "", "setting": "", "iteration": 0, "seed": seed, **_prefixed(vals)}
        )
    its = predictions[predictions["split"].astype(str).str.startswith("test@")]
    for (config, method, seed, it), part in its.groupby(
        ["config", "method", "seed", "iteration"], sort=False
    ):
        codes, _ = group_codes_of(part, groups)
        vals = group_metrics(part["y_true"].to_numpy(), _class_decisions(part), codes, n_classes)
        sweep, setting = _sweep_of(str(config))
        setting = setting or f"{main_ratio:g}"
        first = part.iloc[0]
        rows.append(
            {
                "method": method if config == "main" else f"{method} {config}",
                "sweep": sweep,
                "setting": setting,
                "iteration": int(it),
                "seed": seed,
                "channels": first["channels"],
                "accepted": bool(first["accepted"]),
                "layer": first["layer"],
                "run_stop": first["run_stop"],
                **_prefixed(vals),
            }
        )
    if rows:
        tables["pruning_history"] = history_fate(pd.DataFrame(rows))
    snnl = predictions[predictions["split"] == SNNL_SPLIT]
    if len(snnl):
        tables["pruning_scores"] = pd.DataFrame(
            {
                "method": [m if c == "main" else f"{m} {c}" for m, c in zip(snnl["method"], snnl["config"])],
                "iteration": np.where(snnl["stage"] == "before", 0, -1),
                "channel": snnl["channel"].astype(int).to_numpy(),
                "score": snnl["snnl_score"].to_numpy(),
                "layer": snnl["layer"].to_numpy(),
                "seed": snnl["seed"].to_numpy(),
            }
        )
    write_kind_tables(out_dir, tables)


def _prefixed(values: dict[str, float]) -> dict[str, float]:
    return {f"test_{k}": v for k, v in values.items()}


STUDY_KIND = StudyKind(
    name=KIND,
    expand=expand,
    execute=execute,
    analyse=analyse,
    fields=PruningFields,
    description="fairness through channel pruning: vanilla, FairPrune, SCP-vanilla, SCP-FairPrune (+ sweeps)",
)
