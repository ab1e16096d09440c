"""The report's plain-language summary on small hand-made Results: every number in the expected
sentences is worked out by hand in the comments (gap = light - dark per seed, mean over 3 seeds;
Wilcoxon signed-rank paired by seed, exact: 3 seeds all one way give p = 2 / 2^3 = 0.25, and Holm
over the changes weighed makes that 1). Significance comes from the audit's ``p_adjusted``,
"underpowered" from its ``mdg`` (hand-made frames below)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fairmed.report.summary import find, footnote, summary_lines
from fairmed.report.tidy import split_results

SEEDS = (0, 1, 2)
# (method, metric) -> (light per seed, dark per seed)
ERM = {
    "tpr": ([0.90, 0.91, 0.92], [0.50, 0.50, 0.50]),  # gaps 0.40 0.41 0.42 -> 0.410: the largest
    "auc": ([0.95, 0.95, 0.95], [0.85, 0.84, 0.83]),  # gaps 0.10 0.11 0.12 -> 0.110
    "fpr": ([0.10, 0.10, 0.10], [0.12, 0.13, 0.14]),  # gaps 0.02 0.03 0.04 -> 0.030 (within 0.05)
    "accuracy": ([0.90, 0.90, 0.90], [0.80, 0.79, 0.78]),  # gaps -> 0.110
}
GROUPS = {
    "erm": ERM,
    "fix": {
        "tpr": ([0.85, 0.85, 0.85], [0.75, 0.74, 0.73]),  # 0.110: narrowed by 0.300, p = 0.1
        "auc": ([0.93, 0.93, 0.93], [0.87, 0.86, 0.85]),  # 0.070: narrowed by 0.040, p = 0.1
        "fpr": ([0.10, 0.10, 0.10], [0.20, 0.21, 0.22]),  # 0.110: widened by 0.080, p = 0.1
        "accuracy": ([0.89, 0.89, 0.89], [0.80, 0.79, 0.78]),  # 0.100: moved 0.010 < 0.05 / 2, unnamed
    },
    # tpr gaps 0.415 0.30 0.33 -> 0.348; against 0.40 0.41 0.42: U = 7, exact two-sided p = 0.4
    "weak": {**ERM, "tpr": ([0.90, 0.90, 0.90], [0.485, 0.60, 0.57])},
    "useless": ERM,
}
OVERALL = {
    "erm": {"accuracy": [0.88, 0.89, 0.90], "auc": [0.93, 0.94, 0.95]},
    # accuracy: complete separation, p = 0.1; auc 0.915 0.925 0.935 vs 0.93 0.94 0.95: U = 8, p = 0.2
    "fix": {"accuracy": [0.85, 0.86, 0.87], "auc": [0.915, 0.925, 0.935]},
    "weak": {"accuracy": [0.88, 0.89, 0.90], "auc": [0.93, 0.94, 0.95]},
    "useless": {"accuracy": [0.88, 0.89, 0.90], "auc": [0.93, 0.94, 0.95]},
}
LOWER_IS_BETTER = {"fpr"}


def _row(method, seed, attribute, group, metric, value, half_width=np.nan, n=100):
    return {
        "method": method,
        "seed": seed,
        "split": "test",
        "attribute": attribute,
        "group": group,
        "metric": metric,
        "value": value,
        "ci_low": value - half_width,
        "ci_high": value + half_width,
        "n": n,
    }


def results_table(groups=GROUPS, overall=OVERALL) -> pd.DataFrame:
    """Results as the audit writes them: per-group rows (CI +-0.03 light, +-0.05 dark), the
    difference gap per (run, metric) and the whole-population rows."""
    rows = []
    for method, metrics in groups.items():
        for metric, (light, dark) in metrics.items():
            for s, lo, da in zip(SEEDS, light, dark):
                rows.append(_row(method, s, "fst", "light", metric, lo, 0.03))
                rows.append(_row(method, s, "fst", "dark", metric, da, 0.05))
                rows.append(_row(method, s, "fst", "difference", metric, abs(lo - da), 0.02, n=200))
        for metric, values in overall[method].items():
            rows += [
                _row(method, s, "overall", "overall", metric, v, 0.01, n=200) for s, v in zip(SEEDS, values)
            ]
    return pd.DataFrame(rows)


def test_summary_sentences_name_gaps_mitigations_and_cost():
    finding = find(split_results(results_table()), tolerance=0.05)
    assert (finding.metric, finding.attribute, finding.worst_group) == ("tpr", "fst", "dark")
    assert [m.name for m in finding.mitigations] == ["fix", "weak"]  # largest narrowing first
    assert finding.unhelpful == ["useless"]
    assert summary_lines(finding, 0.05) == [
        "The largest gap is the fst TPR gap with erm: TPR 0.500 for dark against 0.910 for light, "
        "a gap of 0.410 (beyond your tolerance of 0.05); dark is worse off.",
        # no p-values in these Results: dark vs light over 3 seeds paired by seed, all one way: p = 0.25
        "No test of the gap is available in these results; over 3 seeds paired by seed (Wilcoxon "
        "signed-rank, dark vs light) it could be chance: p = 0.25.",
        # 7 changes weighed, each p = 0.25 (3 seeds all one way; the AUC cost: 0.935 - 0.95 etc.):
        # Holm: 7 x 0.25 capped at 1
        "fix narrowed the fst TPR gap from 0.410 to 0.110 (adjusted p = 1) and the fst AUC gap from 0.110 "
        "to 0.070 (adjusted p = 1) but widened the fst FPR gap from 0.030 to 0.110 (adjusted p = 1); "
        "overall accuracy fell by 0.030 (0.890 to 0.860, adjusted p = 1) and AUC fell by 0.015 (0.940 to "
        "0.925, adjusted p = 1).",
        "weak narrowed the fst TPR gap from 0.410 to 0.348 (adjusted p = 1); overall accuracy is "
        "unchanged at 0.890 and AUC is unchanged at 0.940.",
        "useless did not narrow or reverse the fst TPR gap or any gap beyond your tolerance of 0.05 "
        "(compared with erm).",
    ]
    assert footnote(finding, split_results(results_table())).endswith(
        "with 3 seeds its smallest possible p is 0.25, so no change can reach p <= 0.05."
    )


def test_summary_when_nothing_narrowed_and_for_a_single_model():
    only = {"erm": GROUPS["erm"], "useless": GROUPS["useless"]}
    finding = find(split_results(results_table(only, OVERALL)), tolerance=0.05)
    assert summary_lines(finding, 0.05)[2:] == [
        "Compared with erm, no other configuration narrowed or reversed the fst TPR gap or any gap beyond "
        "your tolerance of 0.05."
    ]
    one = results_table({"erm": GROUPS["erm"]}, OVERALL)
    one = one[one["seed"] == 0].drop(columns=["method", "seed"])  # an audit: no run keys but split
    lines = summary_lines(find(split_results(one), tolerance=0.05), 0.05)
    assert lines == [
        "The largest gap is the fst TPR gap: TPR 0.500 for dark against 0.900 for light, a gap of 0.400 "
        "(beyond your tolerance of 0.05); dark is worse off.",
        "No test is available for this gap (the results carry no p-values), so whether it is beyond "
        "chance is unknown.",
    ]


def test_a_lower_is_better_gap_hurts_the_higher_group():
    """When the FPR gap is the largest, the group with the higher FPR is the one worse off."""
    groups = {"erm": {"fpr": ([0.05, 0.05, 0.05], [0.60, 0.61, 0.62]), "auc": ERM["auc"]}}
    finding = find(split_results(results_table(groups, {"erm": OVERALL["erm"]})), tolerance=0.1)
    assert (finding.metric, finding.worst_group, finding.best_group) == ("fpr", "dark", "light")
    assert summary_lines(finding, 0.1)[0] == (
        "The largest gap is the fst FPR gap: FPR 0.610 for dark against 0.050 for light, a gap of "
        "0.560 (beyond your tolerance of 0.1); dark is worse off."
    )


gap = st.floats(0.0, 0.9, allow_nan=False).map(lambda v: round(v, 3))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(gap, gap, gap), min_size=2, max_size=4), st.floats(0.01, 0.2))
def test_largest_gap_and_changes_agree_with_the_table(per_method, tolerance):
    """Whatever the gaps: the finding is the largest mean baseline gap, every narrowed gap went
    down and every widened one up by at least half the tolerance."""
    metrics = ("auc", "tpr", "fpr")
    groups = {}
    for i, gaps in enumerate(per_method):
        groups[f"m{i}"] = {
            m: ([0.95] * 3, [0.95 - g] * 3) if m not in LOWER_IS_BETTER else ([0.02] * 3, [0.02 + g] * 3)
            for m, g in zip(metrics, gaps)
        }
    overall = {name: OVERALL["erm"] for name in groups}
    finding = find(split_results(results_table(groups, overall)), tolerance)
    base = dict(zip(metrics, per_method[0]))
    assert finding.gap == pytest.approx(max(base.values()), abs=1e-9)
    assert base[finding.metric] == pytest.approx(finding.gap, abs=1e-9)
    for m in finding.mitigations:
        assert all(c.before - c.after >= tolerance / 2 - 1e-9 for c in m.narrowed)
        assert all(c.after - c.before >= tolerance / 2 - 1e-9 for c in m.widened)
    named = {m.name for m in finding.mitigations} | set(finding.unhelpful)
    assert named == set(groups) - {"m0"}


# ------------------------------------------------------------------ the audit's p-values and MDG
def _audit(gap_p, mdg=np.nan, light=0.90, dark=0.50, n=(400, 120), prevalence=0.3, method=None):
    """One audit run (no seeds): fst light/dark TPR and prevalence, the TPR difference gap row with
    the audit's p_value / p_adjusted / mdg, and one criterion row (the rest of the family)."""
    p_value, p_adjusted = gap_p
    rows = []
    for group, value, size in (("light", light, n[0]), ("dark", dark, n[1])):
        rows.append(_row(method, 0, "fst", group, "tpr", value, 0.03, n=size))
        rows.append(_row(method, 0, "fst", group, "prevalence", prevalence, 0.0, n=size))
    rows.append(_row(method, 0, "fst", "difference", "tpr", abs(light - dark), 0.02, n=sum(n)))
    rows.append(_row(method, 0, "fst", "criterion", "equal_opportunity", abs(light - dark), 0.02, n=sum(n)))
    frame = pd.DataFrame(rows)
    gap_row = frame["group"] == "difference"
    frame["p_value"] = np.where(gap_row, p_value, 0.5)
    frame["p_adjusted"] = np.where(gap_row, p_adjusted, 1.0)
    frame["mdg"] = np.where(gap_row, mdg, np.nan)
    return frame if method is not None else frame.drop(columns=["method", "seed"])


def test_significant_from_the_adjusted_p_value():
    lines = summary_lines(find(split_results(_audit((0.001, 0.002))), 0.05), 0.05)
    assert lines[1] == "It is unlikely to be chance: adjusted p = 0.002 <= 0.05."
    assert lines[2] == (
        "Test: a permutation test of each gap (group labels shuffled within each label class), its "
        "p-value adjusted by Holm correction over the audit's 2 gap and criterion tests; significant "
        "means adjusted p <= 0.05."
    )
    # settable alpha and the correction named as the audit recorded it
    finding = find(split_results(_audit((0.001, 0.002))), 0.05, alpha=0.001, adjust="bh")
    assert summary_lines(finding, 0.05)[1].startswith("It could be chance: adjusted p = 0.002 > 0.001")
    assert "adjusted by Benjamini-Hochberg correction" in summary_lines(finding, 0.05)[2]


def test_not_significant_even_when_the_intervals_do_not_overlap():
    # the groups' intervals (0.47-0.53, 0.87-0.93) are far apart: the verdict is the test's, not theirs
    lines = summary_lines(find(split_results(_audit((0.03, 0.06))), 0.05), 0.05)
    assert (
        lines[1] == "It could be chance: adjusted p = 0.06 > 0.05, so the audit cannot call it significant."
    )


def test_underpowered_audit_says_so_with_the_images_needed():
    from fairmed.metrics.power import minimum_detectable_gap, n_per_group

    mdg = minimum_detectable_gap("tpr", [400, 120], 0.3, 0.7)  # 0.23: the audit writes this in Results
    frame = _audit((0.2, 0.4), mdg=mdg, light=0.72, dark=0.68)
    lines = summary_lines(find(split_results(frame), 0.05), 0.05)
    needed = n_per_group("tpr", 0.05, [0.3, 0.3], 0.7)  # TPR at the mean group value (0.72 + 0.68) / 2
    assert lines[2] == (
        f"This audit cannot tell a fst TPR gap of 0.05 from chance: it would see (80% power) only TPR "
        f"gaps of {mdg:.3f} or more; about {needed:,} images per fst group would be needed to detect one."
    )
    # by hand: positives m = (1.96 sqrt(2 .7 .3) + 0.8416 sqrt(.675 .325 + .725 .275))^2 / 0.05^2
    # = (1.2703 + 0.5446)^2 / 0.0025 = 1317.5 -> images = m / 0.3 = 4391.8 -> 4392
    assert needed == 4392
    # a tolerance above the MDG: nothing to say
    assert not any("cannot tell" in line for line in summary_lines(find(split_results(frame), 0.3), 0.3))


def test_a_reversed_gap_is_called_reversed():
    # erm: light 0.90, dark 0.50; swap: light 0.55, dark 0.85 -- dark now better off, light worse off
    frame = pd.concat(
        [_audit((0.001, 0.002), method="erm"), _audit((0.001, 0.002), light=0.55, dark=0.85, method="swap")]
    )
    finding = find(split_results(frame), 0.05)
    assert finding.unhelpful == []
    (swap,) = finding.mitigations
    assert [c.worse_off for c in swap.reversed] == ["light"]
    assert swap.narrowed == []
    # one seed: no test of the change
    assert (
        summary_lines(finding, 0.05)[3]
        == "swap reversed the fst TPR gap: light is now worse off (gap 0.400 to 0.300)."
    )
    assert footnote(finding, split_results(frame)).endswith(
        "Changes against the baseline are not tested: one seed per configuration, nothing to test them over."
    )


def test_fairness_section_names_the_underpowered_gaps():
    from fairmed.report.core.fairness import underpowered_note
    from fairmed.report.tidy import gap_rows

    gaps = gap_rows(split_results(_audit((0.2, 0.4), mdg=0.2319, light=0.72, dark=0.68)))
    assert underpowered_note(gaps, 0.05) == (
        "Too few images to see a gap of 0.05: the minimum detectable gap (80% power, alpha 0.05) exceeds it "
        "for fst TPR (0.232). There, a gap within the tolerance or a criterion that holds may hide a real gap "
        "up to that size; `fairmed power` gives the images per group needed."
    )
    assert underpowered_note(gaps, 0.3) == ""
    assert underpowered_note(gaps.drop(columns=["mdg"]), 0.05) == ""


def test_alpha_reaches_the_summary_from_the_report_command(tmp_path, capsys):
    from fairmed.cli import main

    folder = tmp_path / "audit"
    folder.mkdir()
    _audit((0.001, 0.02)).to_parquet(folder / "results.parquet")
    main(["report", str(folder)])
    assert "- It is unlikely to be chance: adjusted p = 0.02 <= 0.05." in capsys.readouterr().out
    main(["report", str(folder), "--alpha", "0.01"])
    out = capsys.readouterr().out
    assert "- It could be chance: adjusted p = 0.02 > 0.01, so the audit cannot call it significant." in out
    assert "significant means adjusted p <= 0.01." in out


def test_significance_per_seed_is_counted_not_pooled():
    seeds = []
    for seed, p_adj in ((0, 0.01), (1, 0.2), (2, 0.03)):
        frame = _audit((p_adj / 2, p_adj), method="erm")
        seeds.append(frame.assign(seed=seed))
    finding = find(split_results(pd.concat(seeds)), 0.05)
    assert finding.p_adjusted == [0.01, 0.2, 0.03] and finding.significant is False
    # median of 0.01, 0.2, 0.03 is 0.03
    assert summary_lines(finding, 0.05)[1] == (
        "It is significant (adjusted p <= 0.05) in 2 of 3 seeds (median adjusted p = 0.03)."
    )


def test_signed_rows_are_not_groups():
    frame = _audit((0.001, 0.002))
    signed = frame[frame["group"] == "difference"].assign(group="signed", value=-0.4)
    split = split_results(pd.concat([frame, signed]))
    assert "signed" not in set(split.groups["group"]) and "signed" in set(split.gaps["group"])
    assert find(split, 0.05).worst_group == "dark"
