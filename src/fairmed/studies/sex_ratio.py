"""Study kind ``composition``: how the share of a group in training changes each group's AUC.

Implements "Dataset Distribution Impacts Model Fairness: Single vs. Multi-task Learning":
training sets whose female share is 0, 25, 50, 75, 100 % (M100 ... F100) are designed by
the LP (:mod:`fairmed.design.composition`) to be as large as the cohort allows, with as
many benign as malignant cases and as many patients under 60 as over 60 within each sex
and class; one test set per seed, balanced like F50M50 and shared by every composition,
is drawn first (whole patients). Each (composition, strategy, seed) is one run:
``erm`` (single task), ``multitask`` (sex as a reinforcing second head), ``adversarial``
(sex adversary, lambda 5), all on the same backbone. ``analyse`` writes the AUC of every
run by sex and the female-vs-male comparison: the paper's Mann-Whitney U over seeds (Fig. 2;
its floor at 5 seeds is p = 2 / C(10, 5) = 0.0079) and a more powerful per-seed test, DeLong's
test of the female - male AUC on the seed's test images, the seeds' signed z combined by Stouffer.

Everything here is a pure function of the cohort, the study settings and the run keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from fairmed.data.cohort import Cohort
from fairmed.data.groups import GroupSpec
from fairmed.design.cells import DesignDraw, cell_frame, cell_table, draw_design, draw_test, patient_codes
from fairmed.design.composition import (
    AVAILABLE,
    COUNT,
    SOLVED,
    Bound,
    Composition,
    Ratio,
    design_composition,
    select_cells,
)
from fairmed.design.representation import composition_name, share_ratio
from fairmed.errors import SpecError
from fairmed.io import write_table
from fairmed.metrics.stats import mann_whitney, stars, stouffer
from fairmed.schema import OVERALL, Y_SCORE, Y_TRUE
from fairmed.studies.kinds import StudyKind

KIND = "composition"


class Availability(BaseModel):
    """A user-given count for cells the cohort cannot tell (``{select: {label: benign}, count: 20000}``)."""

    model_config = ConfigDict(extra="forbid")

    select: dict[str, str | list[str]]
    count: float = Field(ge=0)


class CompositionDesign(BaseModel):
    """The kind-specific settings: which group's share varies, what stays balanced, the test set."""

    model_config = ConfigDict(extra="forbid")

    attribute: str = Field("sex", description="the dimension whose share varies")
    group: str = Field("female", description="the group whose share varies")
    others: list[str] = Field(default_factory=lambda: ["male"])
    shares: list[float] = Field(default_factory=lambda: [0.0, 0.25, 0.5, 0.75, 1.0])
    names: list[str] | None = Field(None, description="composition names (default F25M75 style)")
    strata: list[str] = Field(default_factory=lambda: ["age:60"], description="kept 1:1 within sex and class")
    class_ratio: str = Field("1:1", description="positive : negative cases")
    positive: str = "malignant"
    negative: str = "benign"
    test_per_cell: int | None = Field(
        None, ge=1, description="test rows per cell (default: test_fraction of the smallest cell)"
    )
    test_fraction: float = Field(0.15, gt=0.0, lt=1.0)
    val_fraction: float = Field(0.2, ge=0.0, lt=1.0)
    integer: bool = Field(False, description="exact integer LP (milp) instead of rounding the continuous one")
    max_total: int | None = Field(None, ge=1, description="cap on the designed set (a smoke profile)")
    available: list[Availability] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> CompositionDesign:
        if not self.shares:
            raise SpecError("composition: 'shares' is empty")
        if self.names is not None and len(self.names) != len(self.shares):
            raise SpecError(f"composition: {len(self.names)} names for {len(self.shares)} shares")
        if len(set(self.composition_names)) != len(self.shares):
            raise SpecError(f"composition: names repeat ({self.composition_names})")
        return self

    @property
    def composition_names(self) -> list[str]:
        if self.names is not None:
            return list(self.names)
        rest = "/".join(self.others)
        return [composition_name({self.group: s, rest: 1 - s}) for s in self.shares]

    def share_of(self, name: str) -> float:
        names = self.composition_names
        if name not in names:
            raise SpecError(f"composition {name!r} is not one of {', '.join(names)}")
        return self.shares[names.index(name)]

    def group_specs(self) -> list[GroupSpec]:
        return [GroupSpec.categorical(self.attribute), *(GroupSpec.parse(s) for s in self.strata)]


@dataclass(frozen=True)
class SeedDesign:
    """Everything drawn for one seed: the shared test set and one design + draw per composition."""

    frame: pd.DataFrame
    test: np.ndarray  # positions
    blocked: np.ndarray  # positions of rows left out to keep test patients whole
    test_counts: pd.DataFrame
    designs: dict[str, Composition]
    draws: dict[str, DesignDraw]


def _ratios(cohort: Cohort, cfg: CompositionDesign, label: str) -> list[Ratio]:
    strata = [GroupSpec.parse(s).name for s in cfg.strata]
    ratios = [
        Ratio(
            numerator={label: cfg.positive},
            denominator={label: cfg.negative},
            ratio=cfg.class_ratio,
            name=f"{cfg.positive}:{cfg.negative} = {cfg.class_ratio}",
        )
    ]
    for spec, name in zip(cfg.strata, strata):
        levels = GroupSpec.parse(spec).group_names() or []
        for a, b in zip(levels, levels[1:]):  # every band equal to the next: all bands equal
            ratios.append(
                Ratio(
                    numerator={name: a},
                    denominator={name: b},
                    within=[label, cfg.attribute],
                    name=f"{a} = {b}",
                )
            )
    return ratios


def _cells(cohort: Cohort, cfg: CompositionDesign, label: str, exclude: np.ndarray | None) -> pd.DataFrame:
    cells = cell_table(cohort, cfg.group_specs(), label, exclude=exclude)
    for extra in cfg.available:
        cells.loc[select_cells(cells, extra.select, label), AVAILABLE] = extra.count
    return cells


def plan_seed(
    cohort: Cohort, cfg: CompositionDesign, seed: int, names: Sequence[str] | None = None
) -> SeedDesign:
    """Draw the seed's test set, solve every composition on the rest, and draw its train/val rows."""
    label = cohort.label
    specs = cfg.group_specs()
    frame = cell_frame(cohort, specs, label)
    units = patient_codes(cohort)
    full = _cells(cohort, cfg, label, None)
    per_cell = cfg.test_per_cell
    if per_cell is None:
        finite = full[AVAILABLE][np.isfinite(full[AVAILABLE])]
        per_cell = max(1, int(cfg.test_fraction * finite.min())) if len(finite) else 1
    test_counts = cell_table(cohort, specs, label).assign(**{COUNT: per_cell})
    have = full.set_index(list(frame.columns))[AVAILABLE]
    short = have[have < per_cell]
    if len(short):
        cell = " & ".join(map(str, short.index[0]))
        raise SpecError(
            f"composition: cell {cell!r} has {int(short.iloc[0])} rows, fewer than {per_cell} for the test set"
        )
    test, blocked = draw_test(frame, test_counts, units, seed)
    cells = _cells(cohort, cfg, label, test | blocked)
    ratios = _ratios(cohort, cfg, label)
    bounds = [Bound(max=cfg.max_total, name=f"total <= {cfg.max_total}")] if cfg.max_total else []
    designs, draws = {}, {}
    for name in names or cfg.composition_names:
        share = cfg.share_of(name)
        constraint = share_ratio(cfg.attribute, cfg.group, share, cfg.others, within=[label])
        comp = design_composition(
            cells, [*ratios, constraint], bounds, label=label, positive=cfg.positive, integer=cfg.integer
        )
        designs[name] = comp
        draws[name] = draw_design(frame, comp.counts, units, seed, test, blocked, cfg.val_fraction)
    return SeedDesign(frame, np.flatnonzero(test), np.flatnonzero(blocked), test_counts, designs, draws)


def design_table(plans: dict[int, SeedDesign], label: str, attribute: str) -> pd.DataFrame:
    """Tidy counts of every designed set: seed, composition, class, group, count, solved, n_train, n_val."""
    rows = []
    for seed, plan in plans.items():
        for name, comp in plan.designs.items():
            m = comp.margins([label, attribute]).rename("count")
            s = comp.margins([label, attribute], "solved").rename("solved")
            draw = plan.draws[name]
            tr = plan.frame.iloc[draw.train].groupby([label, attribute]).size().rename("n_train")
            va = plan.frame.iloc[draw.val].groupby([label, attribute]).size().rename("n_val")
            te = plan.frame.iloc[draw.test].groupby([label, attribute]).size().rename("n_test")
            t = pd.concat([m, s, tr, va, te], axis=1).fillna(0).reset_index()
            t.columns = ["label", "group", "count", "solved", "n_train", "n_val", "n_test"]
            t.insert(0, "config", name)
            t.insert(0, "seed", seed)
            t["lp_seconds"] = comp.seconds
            rows.append(t)
    out = pd.concat(rows, ignore_index=True)
    for c in ("count", "n_train", "n_val", "n_test"):
        out[c] = out[c].astype(np.int64)
    return out


def cell_counts_table(plans: dict[int, SeedDesign], label: str, attribute: str) -> pd.DataFrame:
    """The LP's per-cell numbers of every design: seed, config, label, group, the strata (e.g. age),
    available (after the test set), solved (the LP's value) and count (the integers drawn).

    :func:`design_table` sums these over the strata; this keeps the cells the LP actually solved."""
    rows = []
    for seed, plan in plans.items():
        for name, comp in plan.designs.items():
            cells = comp.counts[[*comp.dims, AVAILABLE, SOLVED, COUNT]].rename(
                columns={label: "label", attribute: "group"}
            )
            rows.append(cells.assign(seed=seed, config=name))
    out = pd.concat(rows, ignore_index=True)
    front = ["seed", "config"]
    out = out[front + [c for c in out.columns if c not in front]]
    return out.astype({COUNT: np.int64, AVAILABLE: float, SOLVED: float})


def run_composition(
    cohort: Cohort,
    design: CompositionDesign,
    config: str,
    seed: int,
    *,
    model,
    strategy,
    train,
    fit=None,
) -> pd.DataFrame:
    """One run: draw the seed's test set and the ``config`` design, train, return its Predictions
    (``split`` val/test, no run keys). ``fit`` defaults to :func:`fairmed.train.fit_predict`; every
    strategy of a (composition, seed) sees the same rows."""
    plan = plan_seed(cohort, design, seed, names=[config])
    draw = plan.draws[config]
    if fit is None:
        from fairmed.train import fit_predict as fit
    preds = fit(
        cohort.subset(draw.train),
        cohort.subset(draw.val),
        cohort.subset(draw.test),
        model=model,
        strategy=strategy,
        config=train,
        groups=GroupSpec.categorical(design.attribute),
        seed=seed,
    )
    return preds


# --------------------------------------------------------------------- analysis
def auc_by_group(
    results: pd.DataFrame,
    attribute: str = "sex",
    groups: Sequence[str] = ("female", "male"),
    split: str = "test",
) -> pd.DataFrame:
    """AUC of every run overall and per group: config, method, seed, group, auc, n (from tidy Results).

    Only ``overall`` and the named ``groups`` are kept (the audit's gap rows are not groups).
    """
    rows = results[(results["metric"] == "auc") & results["attribute"].isin([OVERALL, attribute])]
    rows = rows[rows["group"].isin([OVERALL, *groups])]
    if "split" in rows.columns:
        rows = rows[rows["split"] == split]
    cols = [c for c in ("config", "method", "seed") if c in rows.columns]
    return rows[[*cols, "group", "value", "n"]].rename(columns={"value": "auc"}).reset_index(drop=True)


def delong_by_seed(
    predictions: pd.DataFrame,
    attribute: str = "sex",
    a: str = "female",
    b: str = "male",
    split: str = "test",
) -> pd.DataFrame:
    """Per run (method, config, seed): DeLong's test of AUC(``a``) - AUC(``b``) on its test images.

    The two groups hold different images, so their AUCs are independent within a run; the unit of
    replication is the image. Columns: method, config, seed, auc_a, auc_b, difference, se, z, p.
    """
    from fairmed.metrics.delong import delong_test

    rows = predictions
    if "split" in rows.columns:
        rows = rows[rows["split"] == split]
    keys = [k for k in ("method", "config", "seed") if k in rows.columns]
    out = []
    for key_values, sub in rows.groupby(keys, sort=False):
        kv = key_values if isinstance(key_values, tuple) else (key_values,)
        ga, gb = sub[sub[attribute].astype(str) == a], sub[sub[attribute].astype(str) == b]
        res = delong_test(ga[Y_TRUE], ga[Y_SCORE], gb[Y_TRUE], gb[Y_SCORE])
        out.append(
            {
                **dict(zip(keys, kv)),
                "auc_a": res.auc_a,
                "auc_b": res.auc_b,
                "difference": res.difference,
                "se": res.se,
                "z": res.z,
                "p": res.p_value,
            }
        )
    return pd.DataFrame(out, columns=[*keys, "auc_a", "auc_b", "difference", "se", "z", "p"])


def compare_groups(
    auc: pd.DataFrame,
    a: str = "female",
    b: str = "male",
    alpha: float = 0.1,
    order: Sequence[str] | None = None,
    delong: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Per (method, config): mean AUC of ``a`` and ``b`` over seeds, Mann-Whitney U, p, stars, and the mark.

    The mark reads "a ? b": ``<`` or ``>`` when the Mann-Whitney difference is significant at
    ``alpha`` (0.1: the level of one star, so ``ns`` and ``=`` agree), else ``=`` -- the paper's test,
    whose smallest p at n seeds per group is 2 / C(2n, n) (0.0079 at 5: ``p_floor``). ``delong``
    (from :func:`delong_by_seed`) adds ``z_delong`` and ``p_delong``: the seeds' DeLong z (a - b)
    combined by Stouffer (sum z / sqrt k), valid when the seeds' test sets are independent draws.
    """
    from fairmed.metrics.stats import min_p_mann_whitney

    out = []
    for (method, config), sub in auc.groupby(["method", "config"], sort=False):
        x = sub.loc[sub["group"] == a, "auc"].to_numpy(dtype=float)
        y = sub.loc[sub["group"] == b, "auc"].to_numpy(dtype=float)
        u, p = mann_whitney(x, y)
        mx, my = (float(np.nanmean(v)) if len(v) and not np.isnan(v).all() else np.nan for v in (x, y))
        mark = "=" if not (p <= alpha) else ("<" if mx < my else ">")
        out.append(
            {
                "method": method,
                "config": config,
                f"{a}_mean": mx,
                f"{b}_mean": my,
                "n_seeds": int(min(np.isfinite(x).sum(), np.isfinite(y).sum())),
                "u": u,
                "p": p,
                "stars": stars(p),
                "mark": mark,
                "p_floor": min_p_mann_whitney(int(np.isfinite(x).sum()), int(np.isfinite(y).sum())),
            }
        )
        if delong is not None:
            seeds = delong[(delong["method"] == method) & (delong["config"] == config)]
            out[-1]["z_delong"], out[-1]["p_delong"] = stouffer(seeds["z"])
    table = pd.DataFrame(out)
    if order is not None and len(table):
        rank = {n: i for i, n in enumerate(order)}
        table = table.sort_values(
            ["method", "config"], key=lambda s: s.map(rank) if s.name == "config" else s
        )
    return table.reset_index(drop=True)


GROUP_HEADS = ("multitask", "adversarial")  # the strategies of this study with a group head


def study_strategy(strategy):
    """A strategy of this study: group heads also train on one-sex sets (M100, F100), as in the paper."""
    from fairmed.train.config import StrategySpec, as_spec  # lazy: spec validation imports no torch

    spec = as_spec(StrategySpec, strategy, "strategy")
    fields = set(spec.model_fields_set)
    return spec if "single_group" in fields else spec.model_copy(update={"single_group": "allow"})


def write_tables(
    out_dir,
    design: CompositionDesign,
    results: pd.DataFrame,
    plans: dict[int, SeedDesign] | None = None,
    label: str = "malignant",
    predictions: pd.DataFrame | None = None,
) -> dict[str, Path]:
    """The study's ``OUT/tables``: ``composition_auc`` (AUC per run and group), ``composition_comparison``
    (female vs male over seeds), given the Predictions ``composition_delong`` (DeLong per seed) and,
    ``composition_methods`` (per method: the adversarial optimisation and the heads that ran), and,
    given the seeds' plans, ``composition_design`` (Table 1 per seed) and
    ``composition_cells`` (the LP's cells: available, solved, count per label x group x stratum)."""
    tables = Path(out_dir) / "tables"
    order = design.composition_names
    auc = auc_by_group(results, design.attribute, [design.group, *design.others])
    rank = {n: i for i, n in enumerate(order)}
    auc = auc.sort_values(
        ["config", "method", "seed"], key=lambda s: s.map(rank) if s.name == "config" else s
    )
    delong = None
    if predictions is not None:
        delong = delong_by_seed(predictions, design.attribute, design.group, design.others[0])
    out = {
        "composition_auc": auc.reset_index(drop=True),
        "composition_comparison": compare_groups(
            auc, design.group, design.others[0], order=order, delong=delong
        ),
    }
    if delong is not None:
        out["composition_delong"] = delong
    ran = what_ran(predictions)
    if ran is not None:
        out["composition_methods"] = ran
    if plans:
        out["composition_design"] = design_table(plans, label, design.attribute)
        out["composition_cells"] = cell_counts_table(plans, label, design.attribute)
    return {name: write_table(frame, tables / f"{name}.parquet") for name, frame in out.items()}


# ------------------------------------------------------------------ the study kind (fairmed.studies.kinds)
class CompositionFields(BaseModel):
    """The kind's own top-level spec field: ``composition:`` (:class:`CompositionDesign`)."""

    model_config = ConfigDict(extra="forbid")

    composition: CompositionDesign = Field(default_factory=CompositionDesign)


def _settings(spec) -> CompositionDesign:
    return spec.settings().composition


def expand(spec) -> list:
    """Every composition x strategy x seed of the spec."""
    from fairmed.studies.kinds import grid_runs

    configs = {name: {} for name in _settings(spec).composition_names}
    return grid_runs(spec, spec.strategy_names(), configs)


def execute(run) -> pd.DataFrame:
    """One (composition, strategy, seed): the seed's shared test set, the LP design, training."""
    from fairmed.studies.classification import load_cohort

    spec = run.study_spec()
    cohort = load_cohort(spec)
    train = spec.train_settings()
    strategy = study_strategy(run.params)
    preds = run_composition(
        cohort,
        _settings(spec),
        run.config,
        run.seed,
        model=spec.model or None,
        strategy=strategy,
        train=train,
    )
    return preds.assign(**optimisation_record(spec.model or None, strategy))


def optimisation_record(model, strategy) -> dict[str, str]:
    """What ran, kept on every Predictions row: the adversarial optimisation (``reversal`` /
    ``alternating``, empty for other strategies) and the heads' layer widths (``"256>out"``)."""
    from fairmed.models.spec import ModelSpec
    from fairmed.train.config import as_spec

    mspec = as_spec(ModelSpec, model, "model")
    task = ">".join([*map(str, mspec.head_hidden), "out"]) + (" (shared)" if mspec.head_shared else "")
    group = ">".join([*map(str, strategy.aux_hidden), "out"]) if strategy.name in GROUP_HEADS else ""
    return {
        "adv_mode": strategy.adv_mode if strategy.name == "adversarial" else "",
        "task_head": task,
        "group_head": group,
    }


RECORD_COLUMNS = ("adv_mode", "task_head", "group_head")  # what optimisation_record keeps per row


def what_ran(predictions: pd.DataFrame | None) -> pd.DataFrame | None:
    """One row per method: the values of :func:`optimisation_record` its runs kept (joined with ``|``
    if runs differ), or None for Predictions without them (written before they were recorded)."""
    if predictions is None or not set(RECORD_COLUMNS) <= set(predictions.columns):
        return None
    joined = predictions.groupby("method", sort=False)[list(RECORD_COLUMNS)].agg(
        lambda c: " | ".join(sorted(set(c.astype(str))))
    )
    return joined.reset_index()


def analyse(out_dir: Path, spec, predictions: pd.DataFrame, results: pd.DataFrame) -> None:
    """Tables for the report: AUC per run and sex, female vs male over seeds, the designed counts."""
    from fairmed.studies.classification import load_cohort

    cohort = load_cohort(spec)
    design = _settings(spec)
    plans = {seed: plan_seed(cohort, design, seed) for seed in spec.design.seed_list()}
    write_tables(out_dir, design, results, plans, spec.label or cohort.label, predictions)


STUDY_KIND = StudyKind(
    name=KIND,
    expand=expand,
    execute=execute,
    analyse=analyse,
    fields=CompositionFields,
    description="LP-designed training sets from M100 to F100 (malignant = benign, age bands equal), "
    "erm / multitask / adversarial, female vs male AUC over seeds",
)


__all__ = [
    "KIND",
    "Availability",
    "STUDY_KIND",
    "CompositionDesign",
    "CompositionFields",
    "SeedDesign",
    "auc_by_group",
    "cell_counts_table",
    "compare_groups",
    "delong_by_seed",
    "design_table",
    "plan_seed",
    "run_composition",
    "write_tables",
]
