"""Ranking the benchmark's methods across mechanisms (Demsar 2006, as MEDFAIR compares its methods
over data sets): average ranks, the Friedman test and Nemenyi's critical difference, per measure.

Unit of replication: the configuration (mechanism), each method's value being its mean over seeds;
a study with a single configuration ranks over its seeds instead (say so in the table's ``unit``).
A method without a value in some block (not applicable there, e.g. SCP off conv models) is left out
of that measure's ranking (listed in ``excluded``): the Friedman test needs complete blocks.
"""

from __future__ import annotations

import pandas as pd

from fairmed.metrics.ranks import average_ranks, critical_difference, friedman

RANK_COLUMNS = ["measure", "method", "average_rank", "n_blocks", "unit"]
FRIEDMAN_COLUMNS = ["measure", "k", "n", "unit", "chi2", "p_chi2", "f", "p", "cd", "alpha", "excluded"]


def block_values(runs: pd.DataFrame, measure: str) -> tuple[pd.DataFrame, str]:
    """Blocks x methods of ``measure`` (run table rows): configurations (mean over seeds) when the
    study has several, else the seeds of its one configuration; and the unit's name."""
    if runs["config"].nunique() > 1:
        table = runs.pivot_table(index="config", columns="method", values=measure, aggfunc="mean", sort=False)
        unit = "configuration (mean over seeds)"
    else:
        table = runs.pivot_table(index="seed", columns="method", values=measure, aggfunc="first", sort=False)
        unit = "seed"
    methods = list(dict.fromkeys(runs["method"]))
    return table.reindex(columns=[m for m in methods if m in table.columns]), unit


def ranking_tables(
    runs: pd.DataFrame, measures: dict[str, bool], alpha: float = 0.05
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(ranks, friedman) for each ``measure -> higher_is_better``: each method's average rank (1 =
    best), and the Friedman / Iman-Davenport test with Nemenyi's CD at ``alpha``."""
    ranks, tests = [], []
    for measure, higher in measures.items():
        if measure not in runs.columns:
            continue
        table, unit = block_values(runs, measure)
        table = table.dropna(how="all")
        complete = table.columns[table.notna().all(axis=0)]
        excluded = [str(m) for m in table.columns if m not in complete]
        values = table[complete].to_numpy(dtype=float)
        n, k = values.shape
        if k < 2 or n < 2:
            continue
        avg = average_ranks(values, higher)
        ranks += [
            {"measure": measure, "method": str(m), "average_rank": float(r), "n_blocks": n, "unit": unit}
            for m, r in zip(complete, avg)
        ]
        test = friedman(values, higher)
        tests.append(
            {
                "measure": measure,
                "k": k,
                "n": n,
                "unit": unit,
                "chi2": test.chi2,
                "p_chi2": test.p_chi2,
                "f": test.f,
                "p": test.p,
                "cd": critical_difference(k, n, alpha),
                "alpha": alpha,
                "excluded": ", ".join(excluded),
            }
        )
    return pd.DataFrame(ranks, columns=RANK_COLUMNS), pd.DataFrame(tests, columns=FRIEDMAN_COLUMNS)


__all__ = ["block_values", "ranking_tables"]
