"""The benchmark's model-selection rules on validation, its ranks across mechanisms and the CD diagram,
on hand-made run tables (every pick worked out in the comments)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from fairmed.metrics.ranks import critical_difference
from fairmed.report.cd_diagram import draw_cd
from fairmed.studies.benchmark.ranking import ranking_tables
from fairmed.studies.benchmark.selection import (
    ANY,
    candidate_sets,
    front_table,
    pick,
    selection_summary,
    selection_table,
)

GAP = "equal_opportunity"
# validation, one seed: (method, auc, auc_worst, gap)
VAL = [
    ("erm", 0.90, 0.70, 0.30),  # best AUC
    ("adv_a", 0.85, 0.80, 0.10),  # best worst-group AUC
    ("adv_b", 0.80, 0.75, 0.05),  # smallest gap
    ("thresholds", 0.88, 0.70, 0.12),
]
# DTO over the four: AUC shortfall / 0.10, gap excess / 0.25:
# erm (0, 1) -> 1; adv_a (0.5, 0.2) -> 0.539; adv_b (1, 0) -> 1; thresholds (0.2, 0.28) -> 0.344


def _val(rows=VAL, seed=0, config="c") -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["method", "auc", "auc_worst", GAP])
    return frame.assign(config=config, seed=seed)


def test_each_rule_picks_by_hand():
    val = _val()
    assert pick(val, "auc", GAP) == "erm"
    assert pick(val, "worst_auc", GAP) == "adv_a"
    assert pick(val, "gap", GAP) == "adv_b"
    assert pick(val, "dto", GAP) == "thresholds"
    with pytest.raises(ValueError, match="unknown selection rule"):
        pick(val, "f1", GAP)
    assert pick(val.assign(auc=np.nan), "auc", GAP) is None


def test_candidate_sets_keep_variants_and_all_methods():
    variant_of = {"adv_a": "adversarial", "adv_b": "adversarial"}
    sets = candidate_sets(["erm", "adv_a", "adv_b", "thresholds"], variant_of)
    assert sets == {"adversarial": ["adv_a", "adv_b"], ANY: ["erm", "adv_a", "adv_b", "thresholds"]}


def test_selection_is_judged_on_test():
    val = pd.concat([_val(seed=0), _val(seed=1)], ignore_index=True)
    test = val.assign(accuracy=val["auc"] - 0.1, auc=val["auc"] - 0.05)  # test values of every run
    variant_of = {"adv_a": "adversarial", "adv_b": "adversarial"}
    table = selection_table(val, test, GAP, variant_of)
    row = table[(table["rule"] == "worst_auc") & (table["candidates"] == "adversarial")].iloc[0]
    assert row["chosen"] == "adv_a" and row["test_auc"] == pytest.approx(0.80)
    summary = selection_summary(table).set_index(["rule", "candidates"])
    assert summary.loc[("dto", ANY), "chosen"] == "thresholds 2/2"
    assert summary.loc[("gap", ANY), f"test_{GAP}"] == pytest.approx(0.05)
    assert summary.loc[("auc", ANY), "test_accuracy"] == pytest.approx(0.80)


def test_front_shares():
    # seed 0: erm (0.90, 0.30), adv_a (0.85, 0.10), adv_b (0.80, 0.05), thresholds (0.88, 0.12): all on
    # the front; seed 1: erm dominated by a copy with a smaller gap
    other = [("erm", 0.90, 0.7, 0.30), ("adv_a", 0.90, 0.8, 0.10), ("adv_b", 0.80, 0.75, 0.05)]
    val = pd.concat([_val(seed=0), _val(other, seed=1)], ignore_index=True)
    front = front_table(val, val, GAP).set_index("method")
    assert front["val_front"].to_dict() == {"erm": 0.5, "adv_a": 1.0, "adv_b": 1.0, "thresholds": 1.0}


def test_ranking_over_configurations_and_exclusions():
    # three configurations, one seed each; accuracy: a > b > c everywhere except c1 (b > a)
    rows = []
    for config, values in {"c1": (0.8, 0.9, 0.7), "c2": (0.9, 0.8, 0.7), "c3": (0.9, 0.8, 0.7)}.items():
        for method, v in zip(("a", "b", "c"), values):
            rows.append({"config": config, "method": method, "seed": 0, "accuracy": v, GAP: 1 - v})
    rows.append({"config": "c1", "method": "scp", "seed": 0, "accuracy": 0.95, GAP: 0.0})  # c1 only
    ranks, tests = ranking_tables(pd.DataFrame(rows), {"accuracy": True, GAP: False})
    acc = ranks[ranks["measure"] == "accuracy"].set_index("method")["average_rank"]
    assert acc.to_dict() == pytest.approx({"a": 4 / 3, "b": 5 / 3, "c": 3.0})
    gap = ranks[ranks["measure"] == GAP].set_index("method")["average_rank"]
    assert gap.to_dict() == pytest.approx(acc.to_dict())  # gap = 1 - accuracy, lower is better
    t = tests.set_index("measure").loc["accuracy"]
    # chi2 = 12*3/(3*4) * (16/9 + 25/9 + 9 - 12) = 3 * 14/9 = 4.667
    assert t["chi2"] == pytest.approx(14 / 3) and t["k"] == 3 and t["n"] == 3
    assert t["cd"] == pytest.approx(critical_difference(3, 3))
    assert t["excluded"] == "scp" and t["unit"].startswith("configuration")


def test_cd_diagram_draws_names_cd_and_cliques():
    fig = Figure()
    ax = fig.subplots()
    draw_cd(ax, ["a", "b", "c", "d"], [1.0, 1.5, 2.4, 3.6], 1.0, "accuracy")
    texts = [t.get_text() for t in ax.texts]
    assert {"a (1.00)", "b (1.50)", "c (2.40)", "d (3.60)", "CD = 1.00"} <= set(texts)
    thick = [line for line in ax.lines if line.get_linewidth() == 3.0]
    assert [tuple(np.round(line.get_xdata(), 2)) for line in thick] == [(0.95, 1.55), (1.45, 2.45)]
