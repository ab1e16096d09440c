"""`fairmed slices`: the conjunctions of attribute values where a model does worst, tested honestly."""

from __future__ import annotations

from pathlib import Path

import click
import pandas as pd

from fairmed.errors import InputError, SpecError
from fairmed.io import check_table_suffix, read_table, write_table
from fairmed.schema import run_keys_in


def select_run(table: pd.DataFrame, where: tuple[str, ...], source: Path) -> pd.DataFrame:
    """The rows matching every ``KEY=VALUE``; one run must remain (slices never pool runs)."""
    for item in where:
        key, sep, value = item.partition("=")
        if not sep or key not in table.columns:
            raise SpecError(f"--where {item!r}: expected COLUMN=VALUE with a column of {source}")
        table = table[table[key].astype(str) == value]
        if table.empty:
            raise InputError(f"--where {item!r}: no row of {source} matches")
    keys = run_keys_in(table.columns)
    runs = table[keys].drop_duplicates() if keys else table.iloc[:1]
    if len(runs) > 1:
        varying = [k for k in keys if table[k].nunique() > 1]
        example = ", ".join(f"--where {k}={table[k].iloc[0]}" for k in varying)
        raise InputError(
            f"{source} holds {len(runs)} runs (differing in {', '.join(varying)}); a slice search "
            f"reads one run: select it, e.g. {example}"
        )
    return table


@click.command()
@click.argument("predictions", type=click.Path(path_type=Path))
@click.option(
    "--attr",
    "attrs",
    multiple=True,
    required=True,
    help="attribute: sex, age, age:40,60, fst, fst:12-56, site",
)
@click.option(
    "--metric",
    default="tpr",
    show_default=True,
    help="tpr, fpr, tnr, fnr, accuracy, ppv, npv, auc, brier, bce, or a per-sample value column (recon_mse)",
)
@click.option("--worse", type=click.Choice(["higher", "lower"]), default=None, help="for a value column")
@click.option("--label", default="y_true", show_default=True, help="label column (0/1)")
@click.option("--score", default="y_score", show_default=True, help="positive-class probability column")
@click.option("--pred", default=None, help="column of hard decisions instead of score >= threshold")
@click.option("--threshold", type=click.FloatRange(0, 1), default=0.5, show_default=True)
@click.option("--depth", type=click.IntRange(1, 5), default=3, show_default=True, help="conditions per slice")
@click.option("--min-support", type=click.IntRange(min=1), default=30, show_default=True, help="rows")
@click.option("--min-positives", type=click.IntRange(min=0), default=5, show_default=True)
@click.option("--top", type=click.IntRange(min=1), default=10, show_default=True, help="slices tested")
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True), default=0.05, show_default=True)
@click.option("--adjust", type=click.Choice(["holm", "bh", "none"]), default="holm", show_default=True)
@click.option(
    "--unit",
    default="auto",
    show_default=True,
    help="column whose values stay in one half (auto: patient_id if present, else rows)",
)
@click.option("--seed", type=int, default=0, show_default=True, help="seed of the discovery/test split")
@click.option("--where", "where", multiple=True, help="keep rows with COLUMN=VALUE (e.g. seed=0)")
@click.option(
    "--out", type=click.Path(path_type=Path), default=None, help="Results table (.parquet/.csv/.json)"
)
@click.option(
    "--report",
    "report_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="add the slices to DIR (an audit folder, or a new one) and build its HTML report",
)
def slices(
    predictions: Path,
    attrs: tuple[str, ...],
    metric: str,
    worse: str | None,
    label: str,
    score: str,
    pred: str | None,
    threshold: float,
    depth: int,
    min_support: int,
    min_positives: int,
    top: int,
    alpha: float,
    adjust: str,
    unit: str,
    seed: int,
    where: tuple[str, ...],
    out: Path | None,
    report_dir: Path | None,
) -> None:
    """Find the slices of PREDICTIONS where METRIC is worst, and test them on held-out rows.

    Searches every conjunction of up to --depth attribute values (numbers without edges are cut at
    their quartiles; missing is a value) on a random half of the units, then measures the --top
    slices on the other half: effect (slice minus rest) with a 95% CI and a p-value adjusted
    (Holm) over the slices tested. Example:
    fairmed slices preds.csv --attr sex --attr age --attr fst --attr site --metric tpr
    """
    from fairmed.metrics.slices import CANDIDATES_TABLE, SLICES_TABLE, find_slices

    if out is not None:
        check_table_suffix(out)
    table = select_run(read_table(predictions), where, predictions)
    result = find_slices(
        table,
        list(attrs),
        metric,
        label=label,
        score=score,
        pred=pred,
        threshold=threshold,
        worse=worse,  # type: ignore[arg-type]
        depth=depth,
        min_support=min_support,
        min_positives=min_positives,
        top=top,
        alpha=alpha,
        adjust=adjust,
        unit=unit,
        seed=seed,
    )
    click.echo(result.to_markdown().rstrip("\n"))
    o = result.options
    click.echo(
        f"searched {o['attribute_sets']} attribute sets ({o['attribute_sets_pruned']} pruned) on "
        f"{o['n_search_rows']} rows; tested on {o['n_test_rows']} held-out rows (unit: {o['unit']})",
        err=True,
    )
    frame = result.to_frame()
    if out is not None:
        write_table(frame, out)
        click.echo(f"wrote {out} ({len(frame)} rows)", err=True)
    if report_dir is not None:
        if not (report_dir / "predictions.parquet").exists():
            write_table(table, report_dir / "predictions.parquet")
        write_table(result.report_table(), report_dir / "tables" / f"{SLICES_TABLE}.parquet")
        write_table(result.candidates, report_dir / "tables" / f"{CANDIDATES_TABLE}.parquet")
        from fairmed.report import build_report  # lazily: the report needs matplotlib

        click.echo(f"report: {build_report(report_dir)}", err=True)
