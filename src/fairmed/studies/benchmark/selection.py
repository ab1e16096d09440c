"""Model selection on validation, as MEDFAIR analyses its runs, for every method of the benchmark.

A *rule* picks one candidate per (configuration, seed) from the validation measures of its runs;
the pick is then judged on the test split, so that a rule is not credited with its own selection
noise. Rules (``RULES``):

- ``auc``: the highest overall AUC;
- ``worst_auc``: the highest worst-group AUC (min-max fairness);
- ``gap``: the smallest gap (the benchmark's ``gap``, e.g. the equal-opportunity gap);
- ``dto``: the smallest distance to the utopia point of overall AUC and the gap, each min-max
  normalised over the candidates (:func:`fairmed.metrics.ranks.distance_to_utopia`);
- ``pareto``: not a single pick: every candidate on the validation Pareto front of AUC against the
  gap (:func:`fairmed.metrics.ranks.pareto_front`); the table gives each method's share of seeds
  on that front.

Candidates: a method's variants (strategies sharing a ``name`` under different ``label``s, e.g. a
sweep of ``adv_lambda``: MEDFAIR's hyper-parameter selection), and ``(any)``: every method of the
configuration (the choice a user deploying one model would make). A method without variants is its
own only candidate, so every rule keeps it (its set is left out of the tables); the ``(any)`` rows
are where rules disagree.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fairmed.metrics.ranks import distance_to_utopia, pareto_front
from fairmed.metrics.stats import mean_interval

RULES = ("auc", "worst_auc", "gap", "dto")
ANY = "(any)"
KEYS = ["config", "seed"]


def pick(val: pd.DataFrame, rule: str, gap: str) -> str | None:
    """The method ``rule`` selects among the validation rows ``val`` (one per method); None when no
    candidate has the values it needs. Ties go to the earlier row (the spec's order: ERM first)."""
    if rule == "auc":
        score = val["auc"].to_numpy(dtype=float)
    elif rule == "worst_auc":
        score = val["auc_worst"].to_numpy(dtype=float)
    elif rule == "gap":
        score = -val[gap].to_numpy(dtype=float)
    elif rule == "dto":
        score = -distance_to_utopia(val["auc"], val[gap])
    else:
        raise ValueError(f"unknown selection rule {rule!r} (expected {', '.join(RULES)})")
    if np.isnan(score).all():
        return None
    return str(val["method"].iloc[int(np.nanargmax(score))])


def candidate_sets(methods: list[str], variant_of: dict[str, str]) -> dict[str, list[str]]:
    """Candidate set name -> its methods: the methods with variants (by ``variant_of``), then ``(any)``."""
    out: dict[str, list[str]] = {}
    for m in methods:
        out.setdefault(variant_of.get(m, m), []).append(m)
    out = {name: members for name, members in out.items() if len(members) > 1}
    out[ANY] = list(methods)
    return out


def selection_table(
    val: pd.DataFrame, test: pd.DataFrame, gap: str, variant_of: dict[str, str], accuracy: str = "accuracy"
) -> pd.DataFrame:
    """Per (config, seed, rule, candidate set): the method picked on ``val`` (run tables of
    :func:`~fairmed.studies.benchmark.analyse.run_table`) and its test ``accuracy``, AUC, worst-group
    AUC and ``gap``."""
    measures = list(dict.fromkeys([accuracy, "auc", "auc_worst", gap]))
    test_idx = test.set_index(["config", "seed", "method"])
    rows = []
    for (config, seed), part in val.groupby(KEYS, sort=False):
        part = part.reset_index(drop=True)
        sets = candidate_sets(list(part["method"]), variant_of)
        for name, members in sets.items():
            cand = part[part["method"].isin(members)]
            for rule in RULES:
                chosen = pick(cand, rule, gap)
                row = {"config": config, "seed": seed, "rule": rule, "candidates": name, "chosen": chosen}
                key = (config, seed, chosen)
                for m in measures:
                    has = chosen is not None and key in test_idx.index and m in test_idx.columns
                    row[f"test_{m}"] = float(test_idx.loc[key, m]) if has else np.nan
                rows.append(row)
    return pd.DataFrame(rows)


def selection_summary(table: pd.DataFrame, ci: float = 0.95) -> pd.DataFrame:
    """Per (config, rule, candidate set): how often each method was chosen (``chosen``: "erm 3/5,
    resample 2/5") and the mean test measures of the picks over seeds with their t-interval."""
    if table.empty:
        return pd.DataFrame()
    measures = [c for c in table.columns if c.startswith("test_")]
    rows = []
    for (config, rule, name), part in table.groupby(["config", "rule", "candidates"], sort=False):
        counts = part["chosen"].dropna().value_counts(sort=True)
        row = {
            "config": config,
            "rule": rule,
            "candidates": name,
            "chosen": ", ".join(f"{m} {c}/{len(part)}" for m, c in counts.items()),
            "seeds": len(part),
        }
        for m in measures:
            mean, _, lo, hi, _ = mean_interval(part[m].to_numpy(dtype=float), ci)
            row.update({m: mean, f"{m}_low": lo, f"{m}_high": hi})
        rows.append(row)
    return pd.DataFrame(rows)


def front_table(val: pd.DataFrame, test: pd.DataFrame, gap: str) -> pd.DataFrame:
    """Per (config, method): the share of seeds in which the method is on the Pareto front of overall
    AUC against ``gap`` among all methods, on validation (the ``pareto`` rule) and on test."""
    shares = []
    for split, frame in (("val", val), ("test", test)):
        flags = []
        for _, part in frame.groupby(KEYS, sort=False):
            front = pareto_front(part["auc"], part[gap])
            flags.append(pd.DataFrame({"config": part["config"], "method": part["method"], split: front}))
        if flags:
            both = pd.concat(flags, ignore_index=True)
            shares.append(both.groupby(["config", "method"], sort=False)[split].mean())
    if not shares:
        return pd.DataFrame(columns=["config", "method", "val_front", "test_front"])
    out = pd.concat(shares, axis=1).reset_index()
    return out.rename(columns={"val": "val_front", "test": "test_front"})


__all__ = ["ANY", "RULES", "candidate_sets", "front_table", "pick", "selection_summary", "selection_table"]
