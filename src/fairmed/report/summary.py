"""The plain-language summary at the top of a report: the largest gap, who is worst off, whether
the data show it beyond chance, and which mitigation narrowed it at what cost."""

from __future__ import annotations

import html
from dataclasses import dataclass

import pandas as pd

from fairmed.report.sections import Section
from fairmed.report.tidy import (
    BASELINE_NAMES,
    SplitResults,
    comparison_keys,
    gap_rows,
    higher_is_better,
    in_unit_interval,
    metric_label,
    metric_short,
    primary_metric,
    run_label,
)


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
    best_mitigation: str | None = None
    mitigated_gap: float | None = None
    gap_stars: str = ""
    overall_change: float | None = None
    overall_stars: str = ""


def _baseline(labels: list[str]) -> str:
    for label in labels:
        if any(part.lower() in BASELINE_NAMES for part in label.split(" · ")):
            return label
    return labels[0]


def find(split: SplitResults) -> Finding | None:
    """Compute the summary's numbers from Results (test split)."""
    if split.groups.empty:
        return None
    metric = primary_metric(split.groups)
    keys = comparison_keys(split.varying)
    gaps = gap_rows(split, "difference")
    gaps = gaps[(gaps["metric"] == metric) & gaps["value"].notna()]
    if gaps.empty:
        return None
    gaps = gaps.assign(_run=run_label(gaps, keys))
    labels = list(dict.fromkeys(gaps["_run"]))
    base = _baseline(labels)
    base_gaps = gaps[gaps["_run"] == base]
    per_attr = base_gaps.groupby("attribute", sort=False).agg(
        value=("value", "mean"), lo=("ci_low", "median"), hi=("ci_high", "median")
    )
    attribute = str(per_attr["value"].idxmax())
    row = per_attr.loc[attribute]
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
        gap=float(row["value"]),
        gap_ci=(float(row["lo"]), float(row["hi"])),
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
    others = [label for label in labels if label != base]
    if others:
        attr_gaps = gaps[gaps["attribute"] == attribute]
        mean_gap = attr_gaps.groupby("_run", sort=False)["value"].mean()
        candidates = mean_gap.drop(base, errors="ignore").dropna()
        winner = str(candidates.idxmin()) if len(candidates) else base
        if base in mean_gap and winner != base and mean_gap[winner] < mean_gap[base]:
            finding.best_mitigation = winner
            finding.mitigated_gap = float(mean_gap[winner])
            finding.gap_stars = _stars(attr_gaps, base, winner)
            overall = split.overall[split.overall["metric"] == metric]
            if not overall.empty:
                overall = overall.assign(_run=run_label(overall, keys))
                per_run = overall.groupby("_run", sort=False)["value"].mean()
                if base in per_run and winner in per_run:
                    finding.overall_change = float(per_run[winner] - per_run[base])
                    finding.overall_stars = _stars(overall, base, winner)
    return finding


def _stars(frame: pd.DataFrame, a: str, b: str) -> str:
    from fairmed.report.core.comparison import mw_stars

    return mw_stars(
        frame.loc[frame["_run"] == a, "value"].to_numpy(dtype=float),
        frame.loc[frame["_run"] == b, "value"].to_numpy(dtype=float),
    )


def _num(x: float) -> str:
    """3 decimals, or 2 significant digits for values below 0.001 (small MSEs)."""
    return f"{x:.3f}" if abs(x) >= 1e-3 or x == 0 else f"{x:.2g}"


def _significance(f: Finding) -> str:
    if f.significant is None:
        return "The results carry no confidence intervals, so whether this gap is beyond chance is unknown."
    intervals = (
        f"the 95% confidence intervals of {f.worst_group} ({_num(f.worst_ci[0])}-{_num(f.worst_ci[1])}) and "
        f"{f.best_group} ({_num(f.best_ci[0])}-{_num(f.best_ci[1])})"
    )
    seeds = ""
    if f.group_stars:
        verdict = "not significant" if f.group_stars == "ns" else P_OF_STARS.get(f.group_stars, f.group_stars)
        seeds = f" Comparing the two groups over seeds (Mann-Whitney U): {verdict}."
    if f.significant:
        return f"It is unlikely to be chance: {intervals} do not overlap." + seeds
    return f"It may be chance: {intervals} overlap; more images of the smaller group would settle it." + seeds


P_OF_STARS = {"****": "p <= 0.0001", "***": "p <= 0.001", "**": "p <= 0.01", "*": "p <= 0.1"}


def _stars_text(stars: str) -> str:
    """ " (p <= 0.1 over seeds, Mann-Whitney U)" from the audit's stars."""
    if not stars:
        return ""
    if stars == "ns":
        return " (not significant over seeds, Mann-Whitney U)"
    return f" ({P_OF_STARS.get(stars, stars)} over seeds, Mann-Whitney U)"


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
        f"The largest gap is by {f.attribute}{where}: {name} {_num(f.worst_value)} for {f.worst_group} "
        f"against {_num(f.best_value)} for {f.best_group}, a gap of {_num(f.gap)}{tol}.",
        _significance(f),
    ]
    if f.best_mitigation is not None:
        cost = ""
        if f.overall_change is not None:
            change = f.overall_change
            worse = change < 0 if higher_is_better(f.metric) is not False else change > 0
            cost = f" Overall {name} {'fell' if change < 0 else 'rose'} by {_num(abs(change))}" + _stars_text(
                f.overall_stars
            )
            cost += (
                ", so fairness came at a cost in performance." if worse else ", so it cost no performance."
            )
        lines.append(
            f"{f.best_mitigation} narrowed it most: the {f.attribute} gap went from {_num(f.gap)} to "
            f"{_num(f.mitigated_gap)}{_stars_text(f.gap_stars)}." + cost
        )
    elif f.baseline != "model":
        lines.append(f"No other configuration narrowed the {f.attribute} gap compared with {f.baseline}.")
    if criteria is not None and not criteria.empty:
        column = f.baseline if f.baseline in criteria.columns else criteria.columns[3]
        held = criteria[criteria[column].astype(str).str.startswith("holds")]
        named = sorted({f"{c} ({a})" for a, c in zip(held["attribute"], held["criterion"])})
        lines.append(
            f"Fairness criteria within tolerance {tolerance:g}{where}: "
            + (", ".join(named) if named else "none")
            + f" of {len(criteria)} checked (see Gaps and fairness criteria)."
        )
    return lines


def report_summary(out_dir, tolerance: float = 0.05) -> list[str]:
    """The summary sentences of a study or audit folder, for the terminal (``fairmed report``, the demo)."""
    from fairmed.report.context import load_context
    from fairmed.report.core.fairness import criteria_table
    from fairmed.report.tidy import split_results

    ctx = load_context(out_dir, tolerance=tolerance)
    if ctx.results is None:
        return []
    split = split_results(ctx.results, hint=ctx.predictions)
    finding = find(split)
    if finding is None:
        return []
    return summary_lines(finding, tolerance, criteria_table(split, tolerance))


def summary_section(split: SplitResults, tolerance: float, criteria: pd.DataFrame | None) -> Section:
    finding = find(split)
    if finding is None:
        body = "<p>No per-group results with gaps were found, so there is nothing to summarise.</p>"
    else:
        items = "".join(
            f"<li>{html.escape(line)}</li>" for line in summary_lines(finding, tolerance, criteria)
        )
        body = f"<ul>{items}</ul><p>Metric: {html.escape(metric_label(finding.metric))}; held-out (test) data.</p>"
    return Section("Summary", html=f'<div class="summary">{body}</div>', key="summary")


__all__ = ["Finding", "find", "report_summary", "summary_lines", "summary_section"]
