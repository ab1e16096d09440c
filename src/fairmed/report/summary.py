"""The plain-language summary at the top of a report: the largest gap (AUC, TPR, FPR, ... by any
attribute), who is worst off, whether the data show it beyond chance, and which mitigation narrowed
which gap by how much at what cost in overall accuracy."""

from __future__ import annotations

import html
from dataclasses import dataclass, field

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


@dataclass
class Change:
    """One metric of one configuration against the baseline (a gap, or an overall value)."""

    attribute: str
    metric: str
    before: float
    after: float
    stars: str = ""  # Mann-Whitney U over seeds, configuration vs baseline ("" with one seed)


@dataclass
class Mitigation:
    """What one configuration did to the gaps that matter, and what it cost overall."""

    name: str
    narrowed: list[Change] = field(default_factory=list)
    widened: list[Change] = field(default_factory=list)
    cost: list[Change] = field(default_factory=list)


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
    significant: bool | None  # the two groups' 95% CIs do not overlap (None: no CIs)
    baseline: str
    group_stars: str = ""  # Mann-Whitney worst vs best group over seeds (several seeds only)
    mitigations: list[Mitigation] = field(default_factory=list)  # those that narrowed a gap, best first
    unhelpful: list[str] = field(default_factory=list)  # the other configurations: they narrowed none


def _baseline(labels: list[str]) -> str:
    for label in labels:
        if any(part.lower() in BASELINE_NAMES for part in label.split(" · ")):
            return label
    return labels[0]


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


def find(split: SplitResults, tolerance: float = 0.05) -> Finding | None:
    """Compute the summary's numbers from Results (test split)."""
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
    base_gaps = gaps[gaps["_run"] == base]
    attribute, metric = _largest(base_gaps, metrics)
    finding = _gap_finding(split, keys, base, base_gaps, attribute, metric)
    if finding is None:
        return None
    others = [label for label in labels if label != base]
    changes = [
        _mitigation(split, keys, gaps, base, other, (attribute, metric), tolerance) for other in others
    ]
    narrowing = sorted(
        (m for m in changes if m.narrowed), key=lambda m: -max(c.before - c.after for c in m.narrowed)
    )
    finding.mitigations = narrowing[:MAX_MITIGATIONS]
    finding.unhelpful = [m.name for m in changes if not m.narrowed]
    return finding


def _gap_finding(
    split: SplitResults, keys: list[str], base: str, base_gaps: pd.DataFrame, attribute: str, metric: str
) -> Finding | None:
    """The largest gap's groups: who is worst off, and whether the CIs (and seeds) separate them."""
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
    bounds = [w["lo"], w["hi"], b["lo"], b["hi"]]
    significant = None if any(pd.isna(v) for v in bounds) else bool(w["hi"] < b["lo"] or b["hi"] < w["lo"])
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
        significant=significant,
        baseline=base,
    )
    if "seed" in split.varying:
        finding.group_stars = _stars(base_groups.assign(_run=base_groups["group"].astype(str)), worst, best)
    return finding


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
        if not matters or not _changed(metric, before, after, tolerance):
            continue
        cell = gaps[(gaps["attribute"] == attribute) & (gaps["metric"] == metric)]
        change = Change(attribute, metric, float(before), float(after), _stars(cell, base, other))
        (out.narrowed if after < before else out.widened).append(change)
    out.narrowed.sort(key=lambda c: c.after - c.before)
    out.widened.sort(key=lambda c: c.before - c.after)
    out.cost = _cost(split, keys, base, other)
    return out


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
                    "overall", metric, float(per_run[base]), float(per_run[other]), _stars(rows, base, other)
                )
            )
        if len(out) == 2:
            break
    return out


def _stars(frame: pd.DataFrame, a: str, b: str) -> str:
    from fairmed.report.core.comparison import mw_stars

    return mw_stars(
        frame.loc[frame["_run"] == a, "value"].to_numpy(dtype=float),
        frame.loc[frame["_run"] == b, "value"].to_numpy(dtype=float),
    )


def _num(x: float) -> str:
    """3 decimals, or 2 significant digits for values below 0.001 (small MSEs)."""
    return f"{x:.3f}" if abs(x) >= 1e-3 or x == 0 else f"{x:.2g}"


# the sex-ratio paper's significance convention (fairmed.metrics.stats.stars), in words
P_OF_STARS = {"****": "p <= 0.0001", "***": "p <= 0.001", "**": "p <= 0.01", "*": "p <= 0.1"}


def _p(stars: str) -> str:
    """The p-value bound of Mann-Whitney stars in words ("p <= 0.1", "not significant"), or ''."""
    if not stars:
        return ""
    return "not significant" if stars == "ns" else P_OF_STARS.get(stars, stars)


def _significance(f: Finding) -> str:
    if f.significant is None:
        return "The results carry no confidence intervals, so whether this gap is beyond chance is unknown."
    intervals = (
        f"the 95% confidence intervals of {f.worst_group} ({_num(f.worst_ci[0])}-{_num(f.worst_ci[1])}) and "
        f"{f.best_group} ({_num(f.best_ci[0])}-{_num(f.best_ci[1])})"
    )
    seeds = ""
    if f.group_stars:
        seeds = f" Comparing the two groups over seeds (Mann-Whitney U): {_p(f.group_stars)}."
    if f.significant:
        return f"It is unlikely to be chance: {intervals} do not overlap." + seeds
    return f"It may be chance: {intervals} overlap; more images of the smaller group would settle it." + seeds


def _gap_change(c: Change) -> str:
    """ "the fst TPR gap from 0.623 to 0.247 (p <= 0.1)" """
    p = _p(c.stars)
    return f"the {c.attribute} {metric_short(c.metric)} gap from {_num(c.before)} to {_num(c.after)}" + (
        f" ({p})" if p else ""
    )


def _cost_change(c: Change) -> str:
    """ "accuracy fell by 0.006 (0.962 to 0.956, p <= 0.1)" """
    name = metric_short(c.metric)
    delta = c.after - c.before
    if round(delta, 3) == 0:
        return f"{name} is unchanged at {_num(c.after)}"
    p = _p(c.stars)
    verb = "fell" if delta < 0 else "rose"
    return f"{name} {verb} by {_num(abs(delta))} ({_num(c.before)} to {_num(c.after)}{', ' + p if p else ''})"


def _listing(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def mitigation_line(m: Mitigation) -> str:
    """One sentence: which gaps a configuration narrowed (and widened) and its overall cost."""
    text = f"{m.name} narrowed " + _listing([_gap_change(c) for c in m.narrowed[:MAX_CHANGES]])
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
    lines += [mitigation_line(m) for m in f.mitigations]
    if f.unhelpful:
        scope = f"the {f.attribute} {name} gap" + (
            f" or any gap beyond your tolerance of {tolerance:g}" if in_unit_interval(f.metric) else ""
        )
        if not f.mitigations:
            lines.append(f"Compared with {f.baseline}, no other configuration narrowed {scope}.")
        else:
            names = f.unhelpful[:MAX_MITIGATIONS]
            more = len(f.unhelpful) - len(names)
            subject = _listing(names + ([f"{more} more"] if more else []))
            lines.append(f"{subject} did not narrow {scope} (compared with {f.baseline}).")
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
    if f.group_stars or any(c.stars for m in f.mitigations for c in m.narrowed):
        text += (
            " p: two-sided Mann-Whitney U test over seeds, reported at the sex-ratio paper's thresholds "
            "(p <= 0.1, 0.01, 0.001, 0.0001; the figures' stars * to ****)."
        )
    return text


def report_summary(out_dir, tolerance: float | None = None) -> list[str]:
    """The summary sentences of a study or audit folder, for the terminal (``fairmed report``, the demo);
    ``tolerance`` None: the folder's own."""
    from fairmed.report.context import load_context
    from fairmed.report.core.fairness import criteria_table
    from fairmed.report.tidy import split_results

    ctx = load_context(out_dir, tolerance=tolerance)
    if ctx.results is None:
        return []
    tolerance = ctx.tolerance
    split = split_results(ctx.results, hint=ctx.predictions)
    finding = find(split, tolerance)
    if finding is None:
        return []
    return summary_lines(finding, tolerance, criteria_table(split, tolerance))


def summary_section(split: SplitResults, tolerance: float, criteria: pd.DataFrame | None) -> Section:
    finding = find(split, tolerance)
    if finding is None:
        body = "<p>No per-group results with gaps were found, so there is nothing to summarise.</p>"
    else:
        items = "".join(
            f"<li>{html.escape(line)}</li>" for line in summary_lines(finding, tolerance, criteria)
        )
        body = f"<ul>{items}</ul><p>{html.escape(footnote(finding, split))}</p>"
    return Section("Summary", html=f'<div class="summary">{body}</div>', key="summary")


__all__ = ["Change", "Finding", "Mitigation", "find", "report_summary", "summary_lines", "summary_section"]
