"""Study kind ``gce_resampling``: GCE-guided up/down-sampling on chest X-ray embeddings.

Implements "Bias Mitigation for Medical Images" (docs/gce.md) on the study runner. Runs:
``config`` = the detector's loss (``gce``, and ``bce`` for the ablation), and with ``gce.picks``
also which samples go first (``gce`` = lowest loss, ``gce_highest`` = highest loss; the paper's
sections 4 and 5 disagree) x ``method`` x seed:

- ``Before``: the classifier on the training split as is (no detector);
- ``DS``: downsampling; ``US<K>``: upsampling of K% (20, 25, 50); ``D&U<K>``: both;
  all driven by every attribute of the study's ``groups`` (race, sex, age bins, insurance);
- ``US<K>@<attribute>``: upsampling driven by that one attribute (the paper's Tables 2 and 4).

Each run goes through :func:`fairmed.mitigate.gce.resample_and_fit`. The detector depends only
on (data, split seed, loss, model, training settings), not on the method, so a worker process
trains it once per (seed, loss) and reuses it for every method of that seed (a small in-process
cache keyed by those inputs; runs are ordered loss -> seed -> method so that consecutive runs
share it). ``Before`` is the same model under both losses and is cached the same way. With
``--jobs 1`` every detector is trained exactly once; with N worker processes at most N times.
Training is seeded and single-threaded, so a cached result equals a recomputed one.

Besides the val/test Predictions, a run returns its resampling decisions as rows of split
``plan`` and its training-set sizes as one row of split ``plan_size`` (the audit reads only
``audit.splits``); :func:`analyse` turns them and the audit into the paper-shaped tables.
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from fairmed.errors import SpecError
from fairmed.io import read_table
from fairmed.mitigate.resampling import DECISION_COLUMNS
from fairmed.schema import OVERALL
from fairmed.studies.kinds import RunSpec, StudyKind, grid_runs, write_tables

KIND = "gce_resampling"
BEFORE = "Before"
PLAN_SPLIT = "plan"
SIZE_SPLIT = "plan_size"
LOSS_TITLES = {"gce": "GCE", "bce": "BCE"}
SHARED_FIELDS = ("mode", "up_fraction", "pick")  # set per method / config, not in `resampling:`
PICKS = ("lowest", "highest")


def config_name(loss: str, pick: str) -> str:
    """``gce`` / ``bce`` for the lowest-loss pick, ``gce_highest`` / ``bce_highest`` for the other."""
    return loss if pick == "lowest" else f"{loss}_{pick}"


def config_title(config: str) -> str:
    """``GCE``, ``BCE``, ``GCE, highest loss first``, ..."""
    loss, _, pick = config.partition("_")
    return LOSS_TITLES.get(loss, loss) + (f", {pick} loss first" if pick else "")


def _pct(k: float) -> str:
    return f"{k * 100:g}"


class GceSettings(BaseModel):
    """The kind's settings (top-level ``gce:`` of the spec)."""

    model_config = ConfigDict(extra="forbid")

    losses: list[Literal["gce", "bce"]] = Field(
        default_factory=lambda: ["gce", "bce"], description="detector losses (configs); bce is the ablation"
    )
    picks: list[Literal["lowest", "highest"]] = Field(
        default_factory=lambda: ["lowest"],
        description="which samples are resampled first: the detector's lowest loss (section 4) and/or highest"
        " (section 5); each is a config of its own",
    )
    gce_q: float = Field(0.7, gt=0.0, le=1.0, description="q of the GCE detector")
    threshold: float = Field(0.5, gt=0.0, lt=1.0, description="detector decisions for the training FPRs")
    up_fractions: list[float] = Field(default_factory=lambda: [0.2, 0.25, 0.5], description="K of US / D&U")
    down: bool = Field(True, description="run DS and D&U<K>")
    per_attribute: list[float] = Field(
        default_factory=lambda: [0.25],
        description="K of the one-attribute upsampling (Tables 2, 4); [] = none",
    )
    attributes: list[str] | None = Field(
        None, description="names of the study's groups that drive resampling (default: all of them)"
    )
    resampling: dict[str, Any] = Field(
        default_factory=dict,
        description="other ResamplingConfig fields: up_of, fpr_from, modulation, down_fraction, min_share,"
        " gap_center, gap_scale, share_scale",
    )

    @field_validator("up_fractions", "per_attribute")
    @classmethod
    def _fractions(cls, value: list[float]) -> list[float]:
        if any(not 0.0 < k <= 1.0 for k in value) or len(set(value)) != len(value):
            raise ValueError(f"fractions must be distinct and in (0, 1], got {value}")
        return value

    @model_validator(mode="after")
    def _check(self) -> GceSettings:
        # ValueError: the spec loader turns it into one line naming the file and field
        if not self.losses or len(set(self.losses)) != len(self.losses):
            raise ValueError(f"losses: expected distinct values of gce/bce, got {self.losses}")
        if not self.picks or len(set(self.picks)) != len(self.picks):
            raise ValueError(f"picks: expected distinct values of lowest/highest, got {self.picks}")
        shared = set(self.resampling) & set(SHARED_FIELDS)
        if shared:
            raise ValueError(f"resampling: {sorted(shared)} are set by each method; remove them")
        from fairmed.mitigate.gce import as_resampling

        try:
            as_resampling(self.resampling)
        except SpecError as exc:
            raise ValueError(str(exc)) from None
        return self


class GceFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    gce: GceSettings = Field(default_factory=GceSettings)


def settings(spec) -> GceSettings:
    return spec.settings().gce


def method_table(spec) -> dict[str, dict[str, Any]]:
    """method name -> run params (resampling mode, K, and the driving attributes; None = all)."""
    s = settings(spec)
    names = [g.name for g in spec.group_specs()]
    chosen = s.attributes or names
    unknown = sorted(set(chosen) - set(names))
    if unknown:
        raise SpecError(f"gce.attributes: {unknown} are not among the study's groups {names}")
    if not chosen:
        raise SpecError(
            "gce_resampling: the study needs groups (e.g. [race, sex, 'age:20,40,60,80', insurance])"
        )
    if spec.strategies != ["erm"]:
        raise SpecError(
            f"gce_resampling: strategies {spec.strategies} are not used (detector and classifier are plain"
            " ERM; the detector's loss is gce.losses): remove 'strategies'"
        )
    methods: dict[str, dict[str, Any]] = {BEFORE: {"mode": "none", "attributes": chosen}}
    if s.down:
        methods["DS"] = {"mode": "down", "attributes": chosen}
    for k in s.up_fractions:
        methods[f"US{_pct(k)}"] = {"mode": "up", "up_fraction": k, "attributes": chosen}
    if s.down:
        for k in s.up_fractions:
            methods[f"D&U{_pct(k)}"] = {"mode": "down_up", "up_fraction": k, "attributes": chosen}
    for k in s.per_attribute:
        for name in chosen:
            methods[f"US{_pct(k)}@{name}"] = {"mode": "up", "up_fraction": k, "attributes": [name]}
    return methods


def expand(spec) -> list[RunSpec]:
    """(loss, pick) x method x seed, ordered config -> seed -> method (runs sharing a detector back to back)."""
    s = settings(spec)
    methods = method_table(spec)
    configs = {config_name(loss, pick): {"loss": loss, "pick": pick} for loss in s.losses for pick in s.picks}
    runs = grid_runs(spec, methods, configs)
    order = {m: i for i, m in enumerate(methods)}
    rank = {c: i for i, c in enumerate(configs)}
    return sorted(runs, key=lambda r: (rank[r.config], r.seed, order[r.method]))


# ------------------------------------------------------------------ execution (with the per-process cache)
_CACHE: OrderedDict[str, Any] = OrderedDict()
_CACHE_SIZE = 8
CACHE_STATS = {"hits": 0, "misses": 0}


def cached(key: dict[str, Any], compute: Callable[[], Any]) -> Any:
    """``compute()`` once per distinct ``key`` (JSON-ready) in this process; the last few are kept."""
    text = json.dumps(key, sort_keys=True, default=str)
    if text in _CACHE:
        CACHE_STATS["hits"] += 1
        _CACHE.move_to_end(text)
        return _CACHE[text]
    CACHE_STATS["misses"] += 1
    value = compute()
    _CACHE[text] = value
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return value


def clear_cache() -> None:
    _CACHE.clear()
    CACHE_STATS.update(hits=0, misses=0)


def _train_settings(spec) -> dict[str, Any]:
    # one torch thread per run unless the spec says otherwise (bit-identical across executors)
    return {"num_threads": 1, **spec.train_settings()}


def _data_key(spec, seed: int) -> dict[str, Any]:
    """Everything a model of this seed depends on besides the method."""
    return {
        "source": spec.source,
        "base_dir": spec.base_dir,
        "label": spec.label,
        "design": spec.design.model_dump(mode="json"),
        "seed": seed,
        "model": spec.model,
        "train": _train_settings(spec),
    }


def plan_rows(plan, n_train: int) -> pd.DataFrame:
    """The plan's decisions (split ``plan``) and sizes (split ``plan_size``) as Predictions-side rows."""
    dec = plan.decisions.rename(columns=lambda c: f"plan_{c}")
    dec = dec.assign(split=PLAN_SPLIT)
    if len(dec):
        dec["plan_applies"] = dec["plan_applies"].astype(np.int64)
    size = pd.DataFrame(
        {
            "split": [SIZE_SPLIT],
            "plan_n_train": [n_train],
            "plan_n_removed": [len(plan.removed)],
            "plan_n_duplicated": [len(plan.duplicated)],
            "plan_n_after": [plan.size],
        }
    )
    return pd.concat([dec, size], ignore_index=True)


def execute(run: RunSpec) -> pd.DataFrame:
    """One (loss, method, seed): detector (cached per seed and loss) -> plan -> retrained classifier."""
    from fairmed.mitigate.gce import detect_bias, resample_and_fit
    from fairmed.studies.classification import load_cohort, split_parts

    spec = run.study_spec()
    s = settings(spec)
    cohort = load_cohort(spec)
    parts = split_parts(spec, cohort, run.seed)
    train, val, test = parts["train"], parts["val"], parts["test"]
    specs = {g.name: g for g in spec.group_specs()}
    attributes = [specs[name] for name in run.params["attributes"]]
    resampling = {**s.resampling, "mode": run.params["mode"], "pick": run.params.get("pick", "lowest")}
    if "up_fraction" in run.params:
        resampling["up_fraction"] = run.params["up_fraction"]
    common = {
        "model": spec.model or None,
        "config": _train_settings(spec),
        "seed": run.seed,
        "label": spec.label,
        # one grouping for model selection (select: worst_group_auc) whatever the method resamples,
        # so the detector shared by the methods of a seed and loss is the same model for each
        "groups": spec.group_specs()[0],
    }
    base = _data_key(spec, run.seed)

    def before():  # the plain classifier: the Before method, and the FPR source of fpr_from: baseline_val
        return cached(
            {**base, "what": "before"},
            lambda: resample_and_fit(
                train, val, test, resampling={"mode": "none"}, attributes=attributes, **common
            ),
        )

    if run.params["mode"] == "none":
        result = before()
    else:
        loss = run.params["loss"]
        detector = cached(
            {**base, "what": "detector", "loss": loss, "q": s.gce_q, "threshold": s.threshold},
            lambda: detect_bias(
                train, val, detector_loss=loss, gce_q=s.gce_q, threshold=s.threshold, **common
            ),
        )
        baseline = before().predictions if s.resampling.get("fpr_from") == "baseline_val" else None
        result = resample_and_fit(
            train,
            val,
            test,
            resampling=resampling,
            attributes=attributes,
            detector=detector,
            baseline=baseline,
            threshold=s.threshold,
            **common,
        )
    return pd.concat([result.predictions, plan_rows(result.plan, len(train))], ignore_index=True)


# ------------------------------------------------------------------ analysis: the paper's tables
def metric_rows(results: pd.DataFrame, attributes: Sequence[str], split: str = "test") -> pd.DataFrame:
    """Per run: overall AUC and the FPR gap (max - min over subgroups) of each attribute.

    Columns: config, method, seed, row, attribute, metric (``auc`` / ``fpr_gap``), value, boot_low,
    boot_high (the run's bootstrap interval).
    """
    r = results[results["split"] == split] if "split" in results.columns else results
    auc = r[(r["attribute"] == OVERALL) & (r["group"] == OVERALL) & (r["metric"] == "auc")]
    auc = auc.assign(row="AUC", metric="auc", attribute=OVERALL)
    gap = r[r["attribute"].isin(attributes) & (r["group"] == "difference") & (r["metric"] == "fpr")]
    gap = gap.assign(row="FPR gap " + gap["attribute"].astype(str), metric="fpr_gap")
    out = pd.concat([auc, gap], ignore_index=True)
    rank = {name: i for i, name in enumerate([OVERALL, *attributes])}  # AUC, then the spec's attribute order
    out = out.sort_values("attribute", kind="stable", key=lambda s: s.map(rank))
    out = out.reset_index(drop=True).rename(columns={"ci_low": "boot_low", "ci_high": "boot_high"})
    return out[["config", "method", "seed", "row", "attribute", "metric", "value", "boot_low", "boot_high"]]


def summary_table(per_run: pd.DataFrame, ci: float = 0.95) -> pd.DataFrame:
    """Mean over seeds per (config, method, row) with sd, CI, and the change vs ``Before`` of that config.

    ``ci_low/ci_high``: the t-interval of the mean over seeds (with one seed: the run's bootstrap
    interval). ``change_pct`` = (mean - Before) / Before x 100; ``arrow`` ↑/↓/=; ``p_paired``: Wilcoxon
    signed-rank test of the method vs Before paired by seed (:func:`fairmed.metrics.stats.paired_test`).
    """
    from fairmed.metrics.stats import mean_interval, paired_test

    rows = []
    keys = ["config", "method", "row", "attribute", "metric"]
    for key, sub in per_run.groupby(keys, sort=False):
        values = sub["value"].to_numpy(dtype=float)
        finite = values[np.isfinite(values)]
        mean = float(finite.mean()) if len(finite) else math.nan
        _, _, lo, hi, _ = mean_interval(finite, ci)
        if len(finite) == 1:
            lo, hi = float(sub["boot_low"].iloc[0]), float(sub["boot_high"].iloc[0])
        rows.append(
            {
                **dict(zip(keys, key)),
                "mean": mean,
                "sd": float(finite.std(ddof=1)) if len(finite) > 1 else math.nan,
                "ci_low": lo,
                "ci_high": hi,
                "n_seeds": len(finite),
                "_values": sub.set_index("seed")["value"],
            }
        )
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    before = table[table["method"] == BEFORE].set_index(["config", "row"])
    change, arrow, p = [], [], []
    for _, row in table.iterrows():
        ref = before["mean"].get((row["config"], row["row"]), math.nan)
        c = (row["mean"] - ref) / ref * 100 if ref and np.isfinite(ref) else math.nan
        change.append(c)
        arrow.append("" if not np.isfinite(c) else ("↑" if c > 0 else "↓" if c < 0 else "="))
        if row["method"] == BEFORE or (row["config"], row["row"]) not in before.index:
            p.append(math.nan)
        else:
            p.append(paired_test(row["_values"], before.loc[(row["config"], row["row"]), "_values"])[1])
    table["change_pct"], table["arrow"], table["p_paired"] = change, arrow, p
    return table.drop(columns="_values")


def display_table(
    summary: pd.DataFrame, config: str, methods: Sequence[str], digits: int = 3
) -> pd.DataFrame:
    """The paper's layout: rows AUC / FPR gap per attribute, columns the methods (Before last).

    A cell reads ``mean ± half-CI (↑1.2%)``: the mean over seeds, half the width of its interval,
    and the relative change vs Before.
    """
    sub = summary[(summary["config"] == config) & summary["method"].isin(methods)]
    if sub.empty:
        return pd.DataFrame()

    def cell(r) -> str:
        if not np.isfinite(r["mean"]):
            return "n/a"
        text = f"{r['mean']:.{digits}f}"
        if np.isfinite(r["ci_low"]) and np.isfinite(r["ci_high"]):
            text += f" ± {(r['ci_high'] - r['ci_low']) / 2:.{digits}f}"
        if r["method"] != BEFORE and np.isfinite(r["change_pct"]):
            text += f" ({r['arrow']}{abs(r['change_pct']):.1f}%)"
        return text

    sub = sub.assign(cell=sub.apply(cell, axis=1))
    wide = sub.pivot(index="row", columns="method", values="cell")
    rows = list(dict.fromkeys(sub["row"]))
    cols = [m for m in methods if m in wide.columns]
    return wide.loc[rows, cols].rename_axis(index=None, columns=None).reset_index(names="")


def decision_tables(predictions: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per run, the decisions (attribute, group, step, ...) and the training-set sizes, from the plan rows."""
    keys = ["config", "method", "seed"]
    plan = predictions[predictions["split"] == PLAN_SPLIT]
    decisions = plan[keys + [f"plan_{c}" for c in DECISION_COLUMNS]].rename(
        columns=lambda c: c.removeprefix("plan_")
    )
    decisions = decisions.astype(
        {"n": "int64", "n_eligible": "int64", "n_selected": "int64", "applies": bool}
    )
    size = predictions[predictions["split"] == SIZE_SPLIT]
    scols = ["n_train", "n_removed", "n_duplicated", "n_after"]
    sizes = size[keys + [f"plan_{c}" for c in scols]].rename(columns=lambda c: c.removeprefix("plan_"))
    sizes = sizes.astype({c: "int64" for c in scols})
    return decisions.reset_index(drop=True), sizes.reset_index(drop=True)


def decision_summary(decisions: pd.DataFrame) -> pd.DataFrame:
    """Mean over seeds per (config, method, attribute, group, step): share, detector FPR, how often it
    applied (fraction of seeds) and how many rows it selected."""
    if decisions.empty:
        return decisions
    keys = ["config", "method", "attribute", "group", "step"]
    return (
        decisions.groupby(keys, sort=False)
        .agg(
            n=("n", "mean"),
            n_eligible=("n_eligible", "mean"),
            share=("share", "mean"),
            fpr=("fpr", "mean"),
            overall_fpr=("overall_fpr", "mean"),
            applies=("applies", "mean"),
            n_selected=("n_selected", "mean"),
        )
        .reset_index()
    )


def table_methods(spec) -> tuple[list[str], list[str]]:
    """Columns of the main tables (DS, US.., D&U.., Before) and of the per-attribute ones (US..@a, Before)."""
    methods = list(method_table(spec))
    main = [m for m in methods if m != BEFORE and "@" not in m] + [BEFORE]
    per_attr = [m for m in methods if "@" in m]
    return main, ([*per_attr, BEFORE] if per_attr else [])


def analyse(out_dir: Path, spec, predictions: pd.DataFrame, results: pd.DataFrame) -> None:
    """Write the tables of the report (see docs/gce.md): tidy ``gce_summary``, ``gce_runs``,
    ``gce_decisions``, ``gce_decision_summary``, ``gce_sizes`` and the display tables
    ``gce_table_<loss>`` (Tables 1 and 3) and ``gce_per_attribute_<loss>`` (Tables 2 and 4)."""
    s = settings(spec)
    names = [g.name for g in spec.group_specs()]
    per_run = metric_rows(results, names, split=spec.audit.splits[0])
    summary = summary_table(per_run, spec.audit.ci)
    decisions, sizes = decision_tables(predictions)
    main, per_attr = table_methods(spec)
    tables = {
        "gce_runs": per_run,
        "gce_summary": summary,
        "gce_decisions": decisions,
        "gce_decision_summary": decision_summary(decisions),
        "gce_sizes": sizes,
    }
    for config in [config_name(loss, pick) for loss in s.losses for pick in s.picks]:
        tables[f"gce_table_{config}"] = display_table(summary, config, main)
        if per_attr:
            tables[f"gce_per_attribute_{config}"] = display_table(summary, config, per_attr)
    write_tables(out_dir, tables)


TABLE_NUMBERS = {"gce": (1, 2), "bce": (3, 4)}  # the paper's tables of the lowest-loss configs


def growth_text(sizes: pd.DataFrame, config: str) -> str:
    """``actual growth of the training set: DS -4.9%, US20 +20.0%, ...`` (mean over seeds), one config."""
    sub = sizes[sizes["config"] == config]
    if sub.empty:
        return ""
    growth = (
        ((sub["n_after"] - sub["n_train"]) / sub["n_train"] * 100).groupby(sub["method"], sort=False).mean()
    )
    parts = [f"{m} {g:+.1f}%" for m, g in growth.items() if m != BEFORE]
    return "actual growth of the training set (mean over seeds): " + ", ".join(parts) if parts else ""


def terminal(out_dir: Path) -> list[str]:
    """The paper-shaped tables for the terminal: mean over seeds, change vs Before in brackets, and
    how much each method actually grew or shrank the training set."""
    lines = []
    folder = Path(out_dir) / "tables"
    sizes_path = folder / "gce_sizes.parquet"
    sizes = read_table(sizes_path) if sizes_path.exists() else pd.DataFrame()
    for kind, what in (("gce_table_", ""), ("gce_per_attribute_", ", upsampling per attribute")):
        for path in sorted(folder.glob(f"{kind}*.parquet"), key=lambda p: (p.stem.count("_"), p.stem)):
            config = path.stem.removeprefix(kind)
            number = TABLE_NUMBERS.get(config, (None, None))[0 if not what else 1]
            title = f"{config_title(config)} detector{what}" + (f" (Table {number})" if number else "")
            lines += [f"{title}; FPR gap = max - min FPR over the attribute's subgroups:"]
            lines += read_table(path).to_string(index=False).splitlines()
            growth = growth_text(sizes, config) if not sizes.empty and not what else ""
            lines += [growth, ""] if growth else [""]
    return lines


STUDY_KIND = StudyKind(
    name=KIND,
    expand=expand,
    execute=execute,
    analyse=analyse,
    terminal=terminal,
    fields=GceFields,
    description="GCE-guided up/down-sampling (DS, US 20/25/50%, D&U) with a GCE or BCE detector; AUC and "
    "FPR gap per attribute vs Before (Bias Mitigation for Medical Images)",
)

__all__ = [
    "BEFORE",
    "KIND",
    "STUDY_KIND",
    "GceFields",
    "GceSettings",
    "analyse",
    "cached",
    "clear_cache",
    "decision_summary",
    "decision_tables",
    "display_table",
    "execute",
    "expand",
    "method_table",
    "metric_rows",
    "summary_table",
    "table_methods",
]
