""" "What was run": the spec, the package versions and who is in the data."""

from __future__ import annotations

import html

import pandas as pd
import yaml

from fairmed.report.context import ReportContext
from fairmed.report.core.attributes import attribute_counts
from fairmed.report.plots import attribute_histogram, composition_plot
from fairmed.report.sections import Section
from fairmed.report.tidy import SplitResults

COUNT_COLUMNS = ("attribute", "group", "n")
MIN_GROUP_SIZE = 30  # the audit's default warning threshold
EXCLUDED_NOTE = (
    " (excluded): images that no group of the grouping takes (e.g. FST 3-4 when light = FST 1-2 and"
    " dark = FST 5-6); (missing): the attribute was not recorded. Neither is audited."
)


def composition_from_results(split: SplitResults) -> pd.DataFrame | None:
    """Counts per group of an audit folder: n and positives (prevalence x n) from the audit's rows.

    Taken from the first run only (every run of an audit sees the same samples).
    """
    rows = split.groups
    if rows.empty:
        return None
    first = rows
    for key in split.varying:
        first = first[first[key] == first[key].iloc[0]]
    n = first.groupby(["attribute", "group"], sort=False)["n"].first()
    table = n.rename("n").reset_index()
    prev = first[first["metric"] == "prevalence"].groupby(["attribute", "group"], sort=False)["value"].first()
    if len(prev):
        positives = (prev * n.reindex(prev.index)).round().astype("Int64")
        table = table.merge(positives.rename("positive").reset_index(), on=["attribute", "group"], how="left")
        table = table[["attribute", "group", "positive", "n"]]
    table["n"] = table["n"].astype("Int64")
    return table


MAX_CLASSES = 8


def _compact(summary: pd.DataFrame) -> pd.DataFrame:
    """Many classes (e.g. 114 skin conditions): the most frequent ones, the rest summed as 'other'."""
    classes = [c for c in summary.columns if c not in COUNT_COLUMNS]
    if len(classes) <= MAX_CLASSES + 1:
        return summary
    first = summary[summary["attribute"] == summary["attribute"].iloc[0]]
    top = first[classes].sum().sort_values(ascending=False).index[:MAX_CLASSES].tolist()
    rest = [c for c in classes if c not in top]
    out = summary[["attribute", "group", *top]].copy()
    out[f"other ({len(rest)} classes)"] = summary[rest].sum(axis=1)
    out["n"] = summary["n"]
    return out


def by_split(summary: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Split a per-split cohort summary (the runner writes ``split`` = all/train/val/test) into the
    whole-cohort rows and a table of image counts per split; a summary without splits is returned as is."""
    if "split" not in summary.columns:
        return summary, None
    names = list(dict.fromkeys(summary["split"].astype(str)))
    whole = "all" if "all" in names else names[0]
    main = summary[summary["split"].astype(str) == whole].drop(columns="split").reset_index(drop=True)
    others = [n for n in names if n != whole]
    if not others:
        return main, None
    counts = summary[summary["split"].astype(str).isin(others)].pivot_table(
        index=["attribute", "group"], columns="split", values="n", aggfunc="sum", sort=False
    )
    counts = counts[others].reset_index()
    counts.columns = ["attribute", "group", *[f"n {n}" for n in others]]
    return main, counts


def _positive_class(summary: pd.DataFrame) -> str | None:
    """The class to highlight in the composition figure (binary tasks: the second class)."""
    classes = [c for c in summary.columns if c not in COUNT_COLUMNS]
    return classes[-1] if len(classes) == 2 or classes == ["positive"] else None


def _spec_html(ctx: ReportContext) -> str:
    parts = []
    if ctx.spec is not None:
        text = yaml.safe_dump(ctx.spec, sort_keys=False, allow_unicode=True)
        parts.append(
            f"<details><summary>The study spec (spec.yaml)</summary><pre>{html.escape(text)}</pre></details>"
        )
    if ctx.audit is not None:
        text = yaml.safe_dump(ctx.audit, sort_keys=False, allow_unicode=True)
        parts.append(
            f"<details><summary>Audit settings (audit.json)</summary><pre>{html.escape(text)}</pre></details>"
        )
    return "".join(parts)


def _run_table(split: SplitResults) -> pd.DataFrame | None:
    keys = [k for k in split.keys if k != "split"]
    if not keys:
        return None
    frame = pd.concat([split.groups, split.overall])[keys].drop_duplicates()
    varying = [k for k in keys if k != "seed" and frame[k].nunique() > 1] or [k for k in keys if k != "seed"][
        :1
    ]
    if "seed" in keys:
        seeds = lambda s: ", ".join(str(v) for v in sorted(s.unique()))  # noqa: E731
        if not varying:  # seed is the only run key: one configuration
            return pd.DataFrame({"seeds": [seeds(frame["seed"])]})
        return frame.groupby(varying, sort=False)["seed"].agg(seeds=seeds).reset_index()
    return frame[varying].drop_duplicates().reset_index(drop=True)


def _classes(summary: pd.DataFrame | None) -> list[str]:
    """Class names in label order, from the composition table's class columns."""
    if summary is None:
        return []
    classes = [c for c in summary.columns if c not in (*COUNT_COLUMNS, "split")]
    return ["negative", "positive"] if classes == ["positive"] else classes


def _histogram(ctx: ReportContext, summary: pd.DataFrame | None, figures: list) -> str:
    """Draw the histogram of raw attribute values (appended to ``figures``); return its caption."""
    classes = _classes(summary)
    counts, which = attribute_counts(ctx, classes)
    if counts.empty:
        return ""
    labels = list(dict.fromkeys(counts["label"]))
    positive = classes[-1] if len(classes) == 2 and classes[-1] in labels else None
    title = "Images per attribute value" + (f" ({which})" if which else "")
    figures.append(ctx.save(attribute_histogram(counts, ctx.colors, positive, title), "attribute_histogram"))
    n = int(counts.groupby("attribute")["n"].sum().iloc[0])
    return (
        f"Images per raw attribute value in the held-out data of one run ({which or 'the predictions'}; "
        f"{n:,} images, each counted once)"
        + ("; hatched: the positive class" if positive else "")
        + ". A bar has the colour of the audited group its value falls in; grey: in none (not audited, "
        "or left out by the grouping, e.g. FST 3-4 under FST 1-2 vs 5-6). Numbers with many distinct "
        "values are binned (40-49: from 40 to 49); (missing): the attribute was not recorded."
    )


def _data_notes(ctx: ReportContext, audit: dict) -> list[str]:
    """What the audit left out or renamed: audit.json's lines, or the notes of the Results' ``n`` rows
    (a study's audits write the dropped-row counts there)."""
    lines = list(audit.get("data_notes", []))
    results = ctx.results
    if results is not None and "note" in results.columns:
        n_rows = results[(results["metric"] == "n") & (results["note"].astype(str) != "")]
        lines += [str(x) for x in dict.fromkeys(n_rows["note"]) if str(x) not in lines]
    return lines


def overview_section(ctx: ReportContext, split: SplitResults) -> Section:
    summary = ctx.cohort_summary
    source = "the whole cohort (cohort_summary.parquet)"
    if summary is None:
        summary = composition_from_results(split)
        source = "the audited predictions"
    figures, tables, notes = [], {}, []
    positive, per_split = None, None
    if summary is not None and not summary.empty:
        summary, per_split = by_split(summary.reset_index(drop=True))
        positive = _positive_class(summary)
        fig = composition_plot(summary, ctx.colors, positive)
        figures.append(ctx.save(fig, "composition"))
        tables[f"Images per group and class, from {source}"] = _compact(summary)
        if per_split is not None:
            tables["Images per group in each split (first seed; fold 0 under cross-validation)"] = per_split
    hist_caption = _histogram(ctx, summary, figures)
    dropped = ctx.tables.get("dropped_images")
    if dropped is not None and len(dropped):
        tables[f"Images dropped as unreadable ({len(dropped)}; lenient mode)"] = dropped
        notes.append(
            f"{len(dropped)} image(s) could not be decoded and were left out of every run (lenient mode):"
            " see the table of dropped images."
        )
    runs = _run_table(split)
    if runs is not None:
        tables["Runs"] = runs
    if ctx.versions:
        tables["Versions"] = pd.DataFrame(
            {"package": list(ctx.versions), "version": list(map(str, ctx.versions.values()))}
        )
    audit = ctx.audit or {}
    if audit.get("notes"):
        tables["Undefined values (NaN in the results) and why"] = pd.DataFrame(
            audit["notes"]
        ).drop_duplicates()
    notes += [f"{line}." for line in _data_notes(ctx, audit)]
    min_size = int(audit.get("min_group_size", MIN_GROUP_SIZE))
    if split.groups["n"].notna().any():
        small = split.groups.groupby(["attribute", "group"])["n"].min()
        few = small[small < min_size]
        if len(few):
            notes.append(
                "Few images in "
                + ", ".join(f"{g} ({a}, n={int(v)})" for (a, g), v in few.items())
                + ": estimates for these groups are uncertain; read their intervals."
            )
    n_runs = len(runs) if runs is not None else 1
    intro = (
        f"{'A study of kind ' + repr(ctx.kind) if ctx.is_study else 'An audit of one set of predictions'}: "
        f"{n_runs} configuration{'s' if n_runs != 1 else ''}"
        + (
            f", each over seeds {', '.join(map(str, sorted(split.groups['seed'].unique())))}"
            if "seed" in split.varying
            else ""
        )
        + ". The figure shows how many images each group has; under-represented groups are the usual "
        "first suspect for a performance gap."
    )
    return Section(
        "What was run",
        intro=intro,
        html=_spec_html(ctx),
        figures=figures,
        captions=(
            [
                f"Images per group (from {source})"
                + ("; hatched: the positive class." if positive else ".")
                + (EXCLUDED_NOTE if summary["group"].isin(["(excluded)", "(missing)"]).any() else "")
            ]
            if summary is not None and not summary.empty
            else []
        )
        + ([hist_caption] if hist_caption else []),
        tables=tables,
        notes=notes,
        key="what-was-run",
    )


__all__ = ["composition_from_results", "overview_section"]
