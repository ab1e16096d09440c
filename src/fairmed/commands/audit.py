"""`fairmed audit`: per-group metrics, gaps and bootstrap intervals of any model's predictions."""

from __future__ import annotations

import warnings
from pathlib import Path

import click

from fairmed.errors import SpecError
from fairmed.io import read_table, write_json, write_table


def _threshold(text: str) -> float | str:
    from fairmed.metrics.audit import THRESHOLD_RULES

    if text in THRESHOLD_RULES:
        return text
    try:
        value = float(text)
    except ValueError:
        raise SpecError(
            f"--threshold {text!r}: expected a number in [0, 1] or one of {', '.join(THRESHOLD_RULES)}"
        ) from None
    if not 0 <= value <= 1:
        raise SpecError(f"--threshold {value}: expected a number in [0, 1]")
    return value


@click.command()
@click.argument("predictions", type=click.Path(path_type=Path))
@click.option(
    "--attr", "attrs", multiple=True, required=True, help="grouping: sex, fst:12-56, age:60, sex*age:60"
)
@click.option("--label", default="y_true", show_default=True, help="label column (0/1, or class codes)")
@click.option("--score", default="y_score", show_default=True, help="positive-class probability column")
@click.option("--pred", default=None, help="column of hard decisions to audit instead of score >= threshold")
@click.option(
    "--threshold",
    default="0.5",
    show_default=True,
    help="decision threshold, or a rule chosen on split=val rows: youden, f1, accuracy",
)
@click.option(
    "--values", "values", multiple=True, help="per-sample value column (recon_mse, latent_std, elbo)"
)
@click.option("--intersect", is_flag=True, help="also audit the intersection of all --attr groupings")
@click.option("--bootstrap", type=click.IntRange(min=0), default=1000, show_default=True, help="replicates")
@click.option(
    "--ci", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.95, show_default=True
)
@click.option("--seed", type=int, default=0, show_default=True, help="bootstrap seed")
@click.option("--bins", "n_bins", type=click.IntRange(min=1), default=10, show_default=True, help="ECE bins")
@click.option(
    "--min-group-size", type=click.IntRange(min=0), default=30, show_default=True, help="warn below this n"
)
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True, help="bootstrap threads")
@click.option("--metrics", default=None, help="comma-separated metrics to print (default: a standard set)")
@click.option(
    "--out", type=click.Path(path_type=Path), default=None, help="Results table: .parquet, .csv, .json"
)
@click.option(
    "--report",
    "report_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="write predictions, results and audit.json into DIR and build its HTML report",
)
def audit(
    predictions: Path,
    attrs: tuple[str, ...],
    label: str,
    score: str,
    pred: str | None,
    threshold: str,
    values: tuple[str, ...],
    intersect: bool,
    bootstrap: int,
    ci: float,
    seed: int,
    n_bins: int,
    min_group_size: int,
    workers: int,
    metrics: str | None,
    out: Path | None,
    report_dir: Path | None,
) -> None:
    """Audit PREDICTIONS (CSV or Parquet): per-group metrics, gaps, criteria and CIs.

    Several runs in one file (columns study, config, method, seed, split) are audited per run.
    Example: fairmed audit preds.csv --attr sex --attr fst:12-56 --out results.parquet
    """
    from fairmed.metrics.audit import SmallGroupWarning
    from fairmed.metrics.audit import audit as run_audit

    table = read_table(predictions)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SmallGroupWarning)
        result = run_audit(
            table,
            list(attrs),
            label=label,
            score=score,
            threshold=_threshold(threshold),
            bootstrap=bootstrap,
            ci=ci,
            seed=seed,
            intersect=intersect,
            min_group_size=min_group_size,
            values=list(values) or None,
            pred=pred,
            n_bins=n_bins,
            workers=workers,
        )
    shown = [m.strip() for m in metrics.split(",")] if metrics else None
    click.echo(result.to_markdown(shown, with_warnings=False).rstrip("\n"))
    for w in caught:
        if not issubclass(w.category, SmallGroupWarning):
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    for line in result.warnings:
        click.echo(f"warning: {line}", err=True)
    for row in result.notes.itertuples(index=False):
        click.echo(f"note: {row.attribute}={row.group}: {row.metric} is NaN: {row.reason}", err=True)
    frame = result.to_frame()
    if out is not None:
        write_table(frame, out)
        click.echo(f"wrote {out} ({len(frame)} rows)", err=True)
    if report_dir is not None:
        write_table(table, report_dir / "predictions.parquet")
        write_table(frame, report_dir / "results.parquet")
        options = dict(result.options, source=str(predictions), warnings=result.warnings)
        options["notes"] = result.notes.astype(str).to_dict(orient="records")
        write_json(report_dir / "audit.json", options)
        from fairmed.report import build_report  # lazily: the report needs matplotlib

        index = build_report(report_dir)
        click.echo(f"report: {index}", err=True)
