"""The plain-language summary at the top of a report: the largest gap (AUC, TPR, FPR, ... by any
attribute), who is worst off, whether the data show it beyond chance, whether the audit could have
seen a gap of the tolerance at all, and which mitigation narrowed (or reversed) which gap by how
much at what cost in overall accuracy.

"Significant" means ``p_adjusted <= alpha`` (the audit's permutation test, adjusted over the audit's
family of gap and criterion tests); Results without p-values get "no test available", never a
reading of overlapping intervals. Changes against the baseline are tested over seeds paired by
seed (Wilcoxon signed-rank, exact for few seeds), Holm-adjusted over every change the summary weighs.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from fairmed.report.sections import Section
from fairmed.report.tidy import (
    BASELINE_NAMES,
    SplitResults,
    comparison_keys,
    expand_metrics,
    gap_rows,
    higher_is_better,
    in_unit_interval,
    metric_label,
    metric_short,
    primary_metric,
    run_label,
)

# the gaps the summary weighs, in order of preference when two are equally large
SUMMARY_GAPS = ("auc", "auc_ovr", "tpr", "fpr", "accuracy", "f1_macro", "recon_mse", "latent_std", "elbo")
# what a mitigation costs: the change of these whole-population metrics (those present)
COST_METRICS = ("accuracy", "auc", "auc_ovr")
MAX_CHANGES = 3  # gaps named per mitigation and direction: the summary stays short
MAX_MITIGATIONS = 5
ALPHA = 0.05  # "significant": adjusted p <= ALPHA (settable through find's ``alpha``)
ADJUSTMENT_NAMES = {"holm": "Holm", "bh": "Benjamini-Hochberg", "none": "no"}


@dataclass
class Change:
    """One metric of one configuration against the baseline (a gap, or an overall value)."""

    attribute: str
    metric: str
    before: float
    after: float
    p: float = float("nan")  # Wilcoxon signed-rank over seeds paired by seed, vs the baseline (NaN: one seed)
    p_adjusted: float = float("nan")  # Holm over every change the summary weighs
    worse_off: str = ""  # for a reversed gap: the group now worse off


@dataclass
class Mitigation:
    """What one configuration did to the gaps that matter, and what it cost overall."""

    name: str
    narrowed: list[Change] = field(default_factory=list)
    widened: list[Change] = field(default_factory=list)
    reversed: list[Change] = field(default_factory=list)  # the other group is now worse off
    cost: list[Change] = field(default_factory=list)
    baseline: str = ""  # compared with this run, when not the finding's baseline (its own configuration's)


@dataclass
class Finding:
    """The numbers behind the summary (also handy for tests and the terminal)."""

    metric: str
    attribute: str
    gap: float
    gap_ci: tuple[float, float]
    worst_group: str
    worst_value: float
    worst_ci: tuple[float, float]
    best_group: str
    best_value: float
    best_ci: tuple[float, float]
    p_adjusted: list[float]  # the gap's adjusted permutation p-value per seed (empty: no test in Results)
    baseline: str
    alpha: float = ALPHA
    adjust: str = "holm"  # the audit's multiplicity adjustment (holm, bh, none)
    family: int = 0  # tests in the adjusted family of one run (median over seeds)
    group_p: float = float("nan")  # worst vs best group over seeds, paired by seed (no p-values only)
    n_seeds: int = 1
    mdg: float = float("nan")  # minimum detectable gap of this grouping x metric (80% power), mean over seeds
    n_needed: int | None = None  # images per group to detect a gap of the tolerance
    mitigations: list[Mitigation] = field(default_factory=list)  # those that narrowed or reversed a gap
    unhelpful: list[str] = field(default_factory=list)  # the other configurations: they narrowed none

    @property
    def significant(self) -> bool | None:
        """Adjusted p <= alpha in every seed (None: no p-values in Results)."""
        if not self.p_adjusted:
            return None
        return all(p <= self.alpha for p in self.p_adjusted)


def _baseline(labels: list[str]) -> str:
    for label in labels:
        if any(part.lower() in BASELINE_NAMES for part in label.split(" · ")):
            return label
    return labels[0]


def _baselines(gaps: pd.DataFrame, keys: list[str], labels: list[str], baseline_keys) -> dict[str, str]:
    """Run label -> the label of its baseline: among the runs that share its keys other than
    ``baseline_keys`` (a method against ERM of the same configuration); one baseline without them."""
    held = [k for k in keys if k not in baseline_keys]
    if not held or len(held) == len(keys):
        base = _baseline(labels)
        return dict.fromkeys(labels, base)
    runs = gaps.drop_duplicates("_run").set_index("_run")
    cell = run_label(runs, held)
    out: dict[str, str] = {}
    for _, members in cell.groupby(cell, sort=False):
        names = [label for label in labels if label in members.index]
        out.update(dict.fromkeys(names, _baseline(names)))
    return out


def summary_metrics(split: SplitResults, gaps: pd.DataFrame) -> list[str]:
    """The gap metrics compared for "largest": those on a 0-1 scale (comparable with each other),
    else the lead metric alone (an MSE and a latent std share no unit)."""
    present = set(gaps["metric"].astype(str))
    chosen = expand_metrics(SUMMARY_GAPS, present, stats=1)
    bounded = [m for m in chosen if in_unit_interval(m)]
    if bounded:
        return bounded
    lead = primary_metric(split.groups)
    return [lead] if lead in present else chosen[:1]


def _mean_gaps(gaps: pd.DataFrame) -> pd.Series:
    """Mean gap over seeds per (run, attribute, metric), in the study's order."""
    return gaps.groupby(["_run", "attribute", "metric"], sort=False)["value"].mean()


def _largest(base_gaps: pd.DataFrame, metrics: list[str]) -> tuple[str, str]:
    """(attribute, metric) of the largest mean baseline gap; ties go to the earlier metric."""
    means = base_gaps.groupby(["attribute", "metric"], sort=False)["value"].mean()
    order = {m: i for i, m in enumerate(metrics)}
    ranked = sorted(means.items(), key=lambda kv: (-kv[1], order[kv[0][1]]))
    return ranked[0][0]


def find(
    split: SplitResults,
    tolerance: float = 0.05,
    alpha: float = ALPHA,
    adjust: str = "holm",
    baseline_keys: tuple[str, ...] = (),
) -> Finding | None:
    """Compute the summary's numbers from Results (test split); ``adjust``: the audit's multiplicity
    adjustment, named in the summary; ``baseline_keys``: the study kind's
    (:class:`fairmed.studies.kinds.StudyKind`), so each run meets the baseline of its own configuration."""
    if split.groups.empty:
        return None
    keys = comparison_keys(split.varying)
    gaps = gap_rows(split, "difference")
    gaps = gaps[gaps["value"].notna()]
    if gaps.empty:
        return None
    metrics = summary_metrics(split, gaps)
    gaps = gaps[gaps["metric"].isin(metrics)]
    if gaps.empty:
        return None
    gaps = gaps.assign(_run=run_label(gaps, keys))
    labels = list(dict.fromkeys(gaps["_run"]))
    base = _baseline(labels)
    bases = _baselines(gaps, keys, labels, baseline_keys)
    base_gaps = gaps[gaps["_run"] == base]
    attribute, metric = _largest(base_gaps, metrics)
    finding = _gap_finding(split, keys, base, base_gaps, attribute, metric, alpha)
    if finding is None:
        return None
    finding.adjust = adjust
    _power(finding, split, keys, base, tolerance)
    others = [label for label in labels if label not in set(bases.values())]
    changes = [
        _mitigation(split, keys, gaps, bases[other], other, (attribute, metric), tolerance)
        for other in others
    ]
    for m in changes:
        m.baseline = "" if bases[m.name] == base else bases[m.name]
    _adjust_changes(changes)
    helped = [m for m in changes if m.narrowed or m.reversed]
    narrowing = sorted(helped, key=lambda m: -max(c.before - c.after for c in m.narrowed + m.reversed))
    finding.mitigations = narrowing[:MAX_MITIGATIONS]
    finding.unhelpful = [
        m.name + (f" (against {m.baseline})" if m.baseline else "")
        for m in changes
        if not (m.narrowed or m.reversed)
    ]
    return finding


def _gap_finding(
    split: SplitResults,
    keys: list[str],
    base: str,
    base_gaps: pd.DataFrame,
    attribute: str,
    metric: str,
    alpha: float,
) -> Finding | None:
    """The largest gap's groups: who is worst off, and the gap's adjusted p-value per seed."""
    row = base_gaps[(base_gaps["attribute"] == attribute) & (base_gaps["metric"] == metric)]
    groups = split.groups[(split.groups["attribute"] == attribute) & (split.groups["metric"] == metric)]
    groups = groups.assign(_run=run_label(groups, keys))
    base_groups = groups[groups["_run"] == base]
    # over seeds: mean value, median seed's interval bounds
    per_group = (
        base_groups.groupby("group", sort=False)
        .agg(value=("value", "mean"), lo=("ci_low", "median"), hi=("ci_high", "median"))
        .dropna(subset=["value"])
    )
    if len(per_group) < 2:
        return None
    better_high = higher_is_better(metric) is not False
    worst = str(per_group["value"].idxmin() if better_high else per_group["value"].idxmax())
    best = str(per_group["value"].idxmax() if better_high else per_group["value"].idxmin())
    w, b = per_group.loc[worst], per_group.loc[best]
    p_adj = row["p_adjusted"].dropna().tolist() if "p_adjusted" in row.columns else []
    finding = Finding(
        metric=metric,
        attribute=attribute,
        gap=float(row["value"].mean()),
        gap_ci=(float(row["ci_low"].median()), float(row["ci_high"].median())),
        worst_group=worst,
        worst_value=float(w["value"]),
        worst_ci=(float(w["lo"]), float(w["hi"])),
        best_group=best,
        best_value=float(b["value"]),
        best_ci=(float(b["lo"]), float(b["hi"])),
        p_adjusted=[float(p) for p in p_adj],
        baseline=base,
        alpha=alpha,
        family=_family_size(split, keys, base),
        n_seeds=int(row["seed"].nunique()) if "seed" in row.columns else 1,
        mdg=float(row["mdg"].mean()) if "mdg" in row.columns else float("nan"),
    )
    if not p_adj and "seed" in split.varying:
        by_group = base_groups.assign(_run=base_groups["group"].astype(str))
        finding.group_p = _seed_p(by_group, worst, best)
    return finding


def _family_size(split: SplitResults, keys: list[str], base: str) -> int:
    """Tests in one run's adjusted family: its gap and criterion rows with a p-value (median over seeds)."""
    if "p_adjusted" not in split.gaps.columns:
        return 0
    rows = split.gaps.assign(_run=run_label(split.gaps, keys))
    rows = rows[(rows["_run"] == base) & rows["p_adjusted"].notna()]
    if rows.empty:
        return 0
    per_seed = rows.groupby("seed").size() if "seed" in rows.columns else pd.Series([len(rows)])
    return int(per_seed.median())


def _power(f: Finding, split: SplitResults, keys: list[str], base: str, tolerance: float) -> None:
    """When the gap's MDG exceeds the tolerance: the images per group a gap of the tolerance needs
    (the groups' mean prevalences, the metric at its mean group value; fairmed.metrics.power)."""
    from fairmed.metrics.power import METRICS, n_per_group

    if f.metric not in METRICS or not (f.mdg > tolerance) or not 0 < tolerance <= 1:
        return
    groups = split.groups.assign(_run=run_label(split.groups, keys))
    groups = groups[(groups["_run"] == base) & (groups["attribute"] == f.attribute)]
    prev = groups[groups["metric"] == "prevalence"].groupby("group", sort=False)["value"].mean()
    value = groups[groups["metric"] == f.metric]["value"].mean()
    if prev.empty or pd.isna(value):
        return
    try:
        f.n_needed = n_per_group(f.metric, tolerance, prev.to_numpy(dtype=float), float(value), f.alpha)
    except ValueError:
        f.n_needed = None


def _mitigation(
    split: SplitResults,
    keys: list[str],
    gaps: pd.DataFrame,
    base: str,
    other: str,
    largest: tuple[str, str],
    tolerance: float,
) -> Mitigation:
    """The gaps ``other`` narrowed or widened against ``base`` (the largest gap, and any gap on a
    0-1 scale beyond the tolerance before or after, when it moved by at least half the tolerance),
    and its change in overall accuracy and AUC."""
    means = _mean_gaps(gaps)
    out = Mitigation(other)
    for (run, attribute, metric), before in means.items():
        after = means.get((other, attribute, metric))
        if run != base or after is None or pd.isna(after):
            continue
        matters = (attribute, metric) == largest or (
            in_unit_interval(metric) and max(before, after) > tolerance
        )
        if not matters:
            continue
        flipped = _reversal(split, keys, base, other, attribute, metric)
        small = in_unit_interval(metric) and after < tolerance / 2
        if not _changed(metric, before, after, tolerance) and (not flipped or small):
            continue
        cell = gaps[(gaps["attribute"] == attribute) & (gaps["metric"] == metric)]
        change = Change(attribute, metric, float(before), float(after), _seed_p(cell, base, other))
        if flipped and not small:
            change.worse_off = flipped
            out.reversed.append(change)
        else:
            (out.narrowed if after < before else out.widened).append(change)
    out.narrowed.sort(key=lambda c: c.after - c.before)
    out.widened.sort(key=lambda c: c.before - c.after)
    out.cost = _cost(split, keys, base, other)
    return out


def _reversal(
    split: SplitResults, keys: list[str], base: str, other: str, attribute: str, metric: str
) -> str:
    """The group now worse off when ``other`` reversed the gap of ``base`` (the group worst off under
    ``base`` is better off than its best group under ``other``), else ""."""
    rows = split.groups[(split.groups["attribute"] == attribute) & (split.groups["metric"] == metric)]
    if rows.empty:
        return ""
    rows = rows.assign(_run=run_label(rows, keys))
    means = rows.groupby(["_run", "group"], sort=False)["value"].mean()
    if base not in means.index.get_level_values(0) or other not in means.index.get_level_values(0):
        return ""
    before, after = means[base].dropna(), means[other].dropna()
    if len(before) < 2:
        return ""
    sign = 1.0 if higher_is_better(metric) is not False else -1.0
    worst, best = str((sign * before).idxmin()), str((sign * before).idxmax())
    if worst not in after.index or best not in after.index:
        return ""
    return best if sign * after[worst] > sign * after[best] else ""


def _adjust_changes(mitigations: list[Mitigation]) -> None:
    """Holm-adjusted p-values over every change the summary weighs (all configurations, gaps and costs)."""
    from fairmed.metrics.multiplicity import holm

    changes = [c for m in mitigations for c in (*m.narrowed, *m.widened, *m.reversed, *m.cost)]
    if not changes:
        return
    adjusted = holm(np.array([c.p for c in changes], dtype=float))
    for c, p in zip(changes, adjusted):
        c.p_adjusted = float(p)


def _changed(metric: str, before: float, after: float, tolerance: float) -> bool:
    """A change worth naming: at least half the tolerance on a 0-1 scale (smaller moves are seed
    noise next to what the user called a gap), else visible at 3 decimals."""
    if in_unit_interval(metric):
        return abs(after - before) >= tolerance / 2
    return round(before, 3) != round(after, 3)


def _cost(split: SplitResults, keys: list[str], base: str, other: str) -> list[Change]:
    """Overall accuracy (then AUC) of ``other`` against ``base``: the price of the narrowing."""
    overall = split.overall.assign(_run=run_label(split.overall, keys))
    lead = primary_metric(split.groups)
    wanted = [m for m in dict.fromkeys([*COST_METRICS, lead]) if m is not None]
    out = []
    for metric in wanted:
        rows = overall[overall["metric"] == metric]
        per_run = rows.groupby("_run", sort=False)["value"].mean()
        if base in per_run and other in per_run and pd.notna(per_run[base]) and pd.notna(per_run[other]):
            out.append(
                Change(
                    "overall", metric, float(per_run[base]), float(per_run[other]), _seed_p(rows, base, other)
                )
            )
        if len(out) == 2:
            break
    return out


def _seed_p(frame: pd.DataFrame, a: str, b: str) -> float:
    """Two-sided Wilcoxon signed-rank p of ``a`` vs ``b`` over seeds paired by seed (NaN without seeds)."""
    from fairmed.metrics.stats import paired_test

    if "seed" not in frame.columns:
        return float("nan")
    x = frame[frame["_run"] == a].groupby("seed")["value"].mean()
    y = frame[frame["_run"] == b].groupby("seed")["value"].mean()
    if len(x.index.intersection(y.index)) < 2:
        return float("nan")
    return paired_test(x, y)[1]


def _num(x: float) -> str:
    """3 decimals, or 2 significant digits for values below 0.001 (small MSEs)."""
    return f"{x:.3f}" if abs(x) >= 1e-3 or x == 0 else f"{x:.2g}"


def _pval(p: float) -> str:
    """ "p = 0.031" (3 significant digits below 0.001: "p = 4.2e-05")."""
    return f"p = {p:.2g}" if p < 1e-3 else f"p = {p:.3f}".rstrip("0").rstrip(".")


def _significance(f: Finding) -> str:
    """Is the gap beyond chance: from the audit's adjusted p-values, else a seed-level test, else unknown."""
    if f.p_adjusted:
        hits = sum(p <= f.alpha for p in f.p_adjusted)
        if len(f.p_adjusted) == 1:
            p = f.p_adjusted[0]
            if hits:
                return f"It is unlikely to be chance: adjusted {_pval(p)} <= {f.alpha:g}."
            return f"It could be chance: adjusted {_pval(p)} > {f.alpha:g}, so the audit cannot call it significant."
        return (
            f"It is significant (adjusted p <= {f.alpha:g}) in {hits} of {len(f.p_adjusted)} seeds "
            f"(median adjusted {_pval(float(np.median(f.p_adjusted)))})."
        )
    if not np.isnan(f.group_p):
        verdict = "unlikely to be chance" if f.group_p <= f.alpha else "could be chance"
        return (
            f"No test of the gap is available in these results; over {f.n_seeds} seeds paired by seed "
            f"(Wilcoxon signed-rank, {f.worst_group} vs {f.best_group}) it {verdict}: {_pval(f.group_p)}."
        )
    return "No test is available for this gap (the results carry no p-values), so whether it is beyond chance is unknown."


def method_sentence(f: Finding) -> str:
    """The test and the correction in one plain sentence ("" when Results carry no p-values)."""
    if not f.p_adjusted:
        return ""
    correction = ADJUSTMENT_NAMES.get(f.adjust, f.adjust)
    family = f" over the audit's {f.family} gap and criterion tests" if f.family else ""
    return (
        "Test: a permutation test of each gap (group labels shuffled within each label class), its "
        f"p-value adjusted by {correction} correction{family}; significant means adjusted p <= {f.alpha:g}."
    )


def power_sentence(f: Finding, tolerance: float) -> str:
    """When the minimum detectable gap exceeds the tolerance: the audit cannot tell such a gap from chance."""
    if not (f.mdg > tolerance):
        return ""
    name = metric_short(f.metric)
    seen = (
        f"it would see (80% power) only {name} gaps of {_num(f.mdg)} or more"
        if np.isfinite(f.mdg)
        else "no gap reaches 80% power at these group sizes"
    )
    need = (
        f"; about {f.n_needed:,} images per {f.attribute} group would be needed to detect one"
        if f.n_needed
        else ""
    )
    return f"This audit cannot tell a {f.attribute} {name} gap of {tolerance:g} from chance: {seen}{need}."


def _change_p(c: Change) -> str:
    """ "adjusted p = 0.25" or "" (one seed: no test)."""
    return "" if np.isnan(c.p_adjusted) else f"adjusted {_pval(c.p_adjusted)}"


def _gap_change(c: Change) -> str:
    """ "the fst TPR gap from 0.623 to 0.247 (adjusted p = 0.031)" """
    p = _change_p(c)
    return f"the {c.attribute} {metric_short(c.metric)} gap from {_num(c.before)} to {_num(c.after)}" + (
        f" ({p})" if p else ""
    )


def _reversed_change(c: Change) -> str:
    """ "the fst TPR gap: light is now worse off (gap 0.410 to 0.200, adjusted p = 0.25)" """
    p = _change_p(c)
    return (
        f"the {c.attribute} {metric_short(c.metric)} gap: {c.worse_off} is now worse off "
        f"(gap {_num(c.before)} to {_num(c.after)}{', ' + p if p else ''})"
    )


def _cost_change(c: Change) -> str:
    """ "accuracy fell by 0.006 (0.962 to 0.956, adjusted p = 0.25)" """
    name = metric_short(c.metric)
    delta = c.after - c.before
    if round(delta, 3) == 0:
        return f"{name} is unchanged at {_num(c.after)}"
    p = _change_p(c)
    verb = "fell" if delta < 0 else "rose"
    return f"{name} {verb} by {_num(abs(delta))} ({_num(c.before)} to {_num(c.after)}{', ' + p if p else ''})"


def _listing(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def mitigation_line(m: Mitigation) -> str:
    """One sentence: which gaps a configuration narrowed, reversed (and widened) and its overall cost."""
    parts = []
    if m.narrowed:
        parts.append("narrowed " + _listing([_gap_change(c) for c in m.narrowed[:MAX_CHANGES]]))
    if m.reversed:
        parts.append("reversed " + _listing([_reversed_change(c) for c in m.reversed[:MAX_CHANGES]]))
    text = f"{m.name}{f' (against {m.baseline})' if m.baseline else ''} " + " and ".join(parts)
    if m.widened:
        text += " but widened " + _listing([_gap_change(c) for c in m.widened[:MAX_CHANGES]])
    if m.cost:
        text += "; overall " + _listing([_cost_change(c) for c in m.cost])
    return text + "."


def summary_lines(f: Finding, tolerance: float, criteria: pd.DataFrame | None = None) -> list[str]:
    """The summary as plain sentences, most important first."""
    name = metric_short(f.metric)
    where = f" with {f.baseline}" if f.baseline != "model" else ""
    tol = (
        f" ({'within' if f.gap <= tolerance else 'beyond'} your tolerance of {tolerance:g})"
        if in_unit_interval(f.metric)
        else ""
    )
    lines = [
        f"The largest gap is the {f.attribute} {name} gap{where}: {name} {_num(f.worst_value)} for "
        f"{f.worst_group} against {_num(f.best_value)} for {f.best_group}, a gap of {_num(f.gap)}{tol}; "
        f"{f.worst_group} is worse off.",
        _significance(f),
    ]
    lines += [line for line in (power_sentence(f, tolerance), method_sentence(f)) if line]
    lines += [mitigation_line(m) for m in f.mitigations]
    if f.unhelpful:
        scope = f"the {f.attribute} {name} gap" + (
            f" or any gap beyond your tolerance of {tolerance:g}" if in_unit_interval(f.metric) else ""
        )
        if not f.mitigations:
            lines.append(f"Compared with {f.baseline}, no other configuration narrowed or reversed {scope}.")
        else:
            names = f.unhelpful[:MAX_MITIGATIONS]
            more = len(f.unhelpful) - len(names)
            subject = _listing(names + ([f"{more} more"] if more else []))
            lines.append(f"{subject} did not narrow or reverse {scope} (compared with {f.baseline}).")
    if criteria is not None and not criteria.empty:
        column = f.baseline if f.baseline in criteria.columns else criteria.columns[3]
        held = criteria[criteria[column].astype(str).str.startswith("holds")]
        named = sorted({f"{c} ({a})" for a, c in zip(held["attribute"], held["criterion"])})
        lines.append(
            f"Fairness criteria within tolerance {tolerance:g}{where}: "
            + (", ".join(named) if named else "none")
            + f" of {len(criteria)} checked (see Gaps and fairness criteria)."
        )
        if criteria[column].astype(str).str.startswith("vacuous").any():
            lines.append(
                f"The model{where} is degenerate: it gives every image the same decision, so demographic "
                "parity, equal opportunity and equalized odds are vacuous, not met."
            )
    return lines


def footnote(f: Finding, split: SplitResults) -> str:
    """What the summary's numbers are: which gaps were weighed, which data, which test."""
    gaps = gap_rows(split, "difference")
    names = [metric_short(m) for m in summary_metrics(split, gaps[gaps["value"].notna()])]
    text = (
        f"Gap: the largest minus the smallest group value of {_listing(names)}, mean over seeds; "
        f"held-out (test) data; {metric_short(f.metric)}: {metric_label(f.metric)}."
    )
    tested = [c for m in f.mitigations for c in (*m.narrowed, *m.reversed, *m.widened, *m.cost)]
    if tested and any(not np.isnan(c.p) for c in tested):
        from fairmed.metrics.stats import min_p_wilcoxon

        floor = min_p_wilcoxon(f.n_seeds)
        text += (
            " Changes against the baseline: two-sided Wilcoxon signed-rank test over seeds paired by seed "
            "(exact), Holm-adjusted over every change weighed here"
        )
        text += (
            f"; with {f.n_seeds} seeds its smallest possible p is {floor:.2g}, so no change can reach "
            f"p <= {f.alpha:g}."
            if floor > f.alpha
            else "."
        )
    elif tested:
        text += " Changes against the baseline are not tested: one seed per configuration, nothing to test them over."
    return text


def report_summary(out_dir, tolerance: float | None = None, alpha: float | None = None) -> list[str]:
    """The summary sentences of a study or audit folder, for the terminal (``fairmed report``, the demo);
    ``tolerance`` None: the folder's own."""
    from fairmed.report.context import load_context
    from fairmed.report.core.fairness import criteria_table
    from fairmed.report.tidy import split_results

    ctx = load_context(out_dir, tolerance=tolerance, alpha=alpha)
    if ctx.results is None:
        return []
    tolerance = ctx.tolerance
    split = split_results(ctx.results, hint=ctx.predictions)
    finding = find(
        split, tolerance, alpha=ctx.alpha, adjust=audit_adjustment(ctx.audit), baseline_keys=ctx.baseline_keys
    )
    if finding is None:
        return []
    return summary_lines(finding, tolerance, criteria_table(split, tolerance))


def audit_adjustment(options: dict | None) -> str:
    """The multiplicity adjustment an audit folder recorded (``adjust`` in audit.json), else Holm."""
    return str((options or {}).get("adjust") or "holm")


def summary_section(
    split: SplitResults,
    tolerance: float,
    criteria: pd.DataFrame | None,
    adjust: str = "holm",
    alpha: float = ALPHA,
    baseline_keys: tuple[str, ...] = (),
) -> Section:
    finding = find(split, tolerance, alpha=alpha, adjust=adjust, baseline_keys=baseline_keys)
    if finding is None:
        body = "<p>No per-group results with gaps were found, so there is nothing to summarise.</p>"
    else:
        items = "".join(
            f"<li>{html.escape(line)}</li>" for line in summary_lines(finding, tolerance, criteria)
        )
        body = f"<ul>{items}</ul><p>{html.escape(footnote(finding, split))}</p>"
    return Section("Summary", html=f'<div class="summary">{body}</div>', key="summary")


__all__ = ["Change", "Finding", "Mitigation", "find", "report_summary", "summary_lines", "summary_section"]
