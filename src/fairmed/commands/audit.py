"""`fairmed audit`: per-group metrics, gaps and bootstrap intervals of any model's predictions."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
import pandas as pd

from fairmed.commands.options import FiniteFloatRange
from fairmed.errors import InputError, SpecError
from fairmed.io import check_table_suffix, check_writable, read_table, write_json, write_table
from fairmed.schema import RUN_KEYS


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
@click.option(
    "--positive", default=None, help="for text labels: the positive class (e.g. malignant); others are 0"
)
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
@click.option(
    "--permutations",
    type=click.IntRange(min=0),
    default=1000,
    show_default=True,
    help="shuffles of the permutation test of each gap and criterion (p_value); 0: no tests",
)
@click.option(
    "--adjust",
    type=click.Choice(["holm", "bh", "none"]),
    default="holm",
    show_default=True,
    help="p_adjusted over all tests of the audit: Holm (family-wise), BH (false discovery), none",
)
@click.option(
    "--seed", type=click.IntRange(min=0), default=0, show_default=True, help="bootstrap and permutation seed"
)
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
    "--compare",
    default=None,
    help="run key whose values are compared with --baseline (e.g. method): Mann-Whitney U + FATE",
)
@click.option("--baseline", default=None, help="the --compare value the others are tested against")
@click.option("--fate-accuracy", default="accuracy", show_default=True, help="FATE accuracy metric")
@click.option("--fate-fairness", default="eodd", show_default=True, help="FATE fairness criterion")
@click.option(
    "--fate-lambda", type=FiniteFloatRange(), default=1.0, show_default=True, help="FATE weight lambda"
)
@click.option(
    "--report",
    "report_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="write predictions, results and audit.json into DIR and build its HTML report",
)
@click.option(
    "--tolerance",
    type=click.FloatRange(0, 1),
    default=0.05,
    show_default=True,
    help="for --report: largest gap between groups at which a fairness criterion still holds",
)
def audit(
    predictions: Path,
    attrs: tuple[str, ...],
    label: str,
    positive: str | None,
    score: str,
    pred: str | None,
    threshold: str,
    values: tuple[str, ...],
    intersect: bool,
    bootstrap: int,
    ci: float,
    permutations: int,
    adjust: str,
    seed: int,
    n_bins: int,
    min_group_size: int,
    workers: int,
    metrics: str | None,
    out: Path | None,
    compare: str | None,
    baseline: str | None,
    fate_accuracy: str,
    fate_fairness: str,
    fate_lambda: float,
    report_dir: Path | None,
    tolerance: float,
) -> None:
    """Audit PREDICTIONS (CSV or Parquet): per-group metrics, gaps, criteria and CIs.

    Several runs in one file (columns study, config, method, seed, split) are audited per run.
    --compare method --baseline erm then tests every method against erm per group metric
    (Mann-Whitney U over the runs, Wilcoxon paired by seed) and gives its FATE per run.
    Example: fairmed audit preds.csv --attr sex --attr fst:12-56 --out results.parquet
    """
    from fairmed.metrics.audit import AuditWarning
    from fairmed.metrics.audit import audit as run_audit

    if out is not None:
        check_table_suffix(out)
        check_writable(out, option="--out")
    if report_dir is not None:
        check_writable(report_dir, folder=True, option="--report")
    table = read_table(predictions)
    if positive is not None:
        table = _positive_labels(table, label, positive, predictions)
    _check_compare(table, compare, baseline, predictions)
    with warnings.catch_warnings(record=True) as caught, _column_hints(label, score):
        warnings.simplefilter("always", AuditWarning)
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
            permutations=permutations,
            adjust=adjust,
        )
    shown = _shown_metrics(metrics, result.frame)
    click.echo(result.to_markdown(shown, with_warnings=False).rstrip("\n"))
    for w in caught:
        if not issubclass(w.category, AuditWarning):
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    for line in result.warnings:
        click.echo(f"warning: {line}", err=True)
    for line in _note_lines(result):
        click.echo(line, err=True)
    for line in _threshold_lines(result):
        click.echo(line)
    frame = result.to_frame()
    extra = {}
    if compare is not None:
        extra = _comparison(frame, compare, str(baseline), shown, fate_accuracy, fate_fairness, fate_lambda)
    if out is not None:
        write_table(frame, out)
        click.echo(f"wrote {out} ({len(frame)} rows)", err=True)
        for name, extra_table in extra.items():
            path = out.with_name(f"{out.stem}.{name}{out.suffix}")
            write_table(extra_table, path)
            click.echo(f"wrote {path} ({len(extra_table)} rows)", err=True)
    if report_dir is not None:
        write_table(table, report_dir / "predictions.parquet")
        write_table(frame, report_dir / "results.parquet")
        options = dict(result.options, source=str(predictions), warnings=result.warnings)
        options["notes"] = result.notes.astype(str).to_dict(orient="records")
        options["tolerance"] = tolerance  # `fairmed report DIR` rebuilds with the same tolerance
        write_json(report_dir / "audit.json", options)
        from fairmed.report import build_report  # lazily: the report needs matplotlib

        index = build_report(report_dir, tolerance=tolerance)
        click.echo(f"report: {index}", err=True)


def _shown_metrics(metrics: str | None, frame: pd.DataFrame) -> list[str] | None:
    """The --metrics names, refused with the valid ones when any is not in the results."""
    if not metrics:
        return None
    shown = [m.strip() for m in metrics.split(",") if m.strip()]
    present = list(dict.fromkeys(frame["metric"]))
    unknown = [m for m in shown if m not in present]
    if unknown or not shown:
        raise SpecError(
            f"--metrics: unknown {', '.join(unknown) or '(empty)'}; this audit has {', '.join(present)}"
        )
    return shown


def _positive_labels(table: pd.DataFrame, label: str, positive: str, source: Path) -> pd.DataFrame:
    """``--positive``: text labels as 0/1, 1 where the label equals ``positive``."""
    if label not in table.columns:
        raise InputError(f"{source}: column {label!r} not found (have: {', '.join(map(str, table.columns))})")
    text = table[label].astype(str).str.strip()
    present = list(dict.fromkeys(text))
    if positive not in present:
        raise InputError(
            f"--positive {positive!r}: column {label!r} of {source} holds {', '.join(present[:10])}"
        )
    return table.assign(**{label: (text == positive).astype(int)})


@contextmanager
def _column_hints(label: str, score: str) -> Iterator[None]:
    """A missing label or score column, or text labels: say which option fixes it."""
    try:
        yield
    except InputError as exc:
        text = str(exc)
        if f"column {label!r} not found" in text or f"column {score!r} not found" in text:
            text += "; name your columns with --label COLUMN and --score COLUMN"
        elif f"column {label!r}: non-numeric labels" in text:
            text += "; for text labels name the positive class with --positive (e.g. --positive malignant)"
        else:
            raise
        raise InputError(text) from None


def _threshold_lines(result) -> list[str]:
    """The threshold a rule (youden, f1, accuracy) chose on each run's validation rows."""
    rule = result.options.get("threshold")
    if not isinstance(rule, str):
        return []
    frame = result.to_frame()
    keys = [k for k in result.keys if k != "split"]  # one threshold per run, applied to every split
    rows = frame[frame["metric"] == "threshold"]
    rows = rows.drop_duplicates(keys) if keys else rows.head(1)
    lines = []
    for row in rows.to_dict(orient="records"):
        run = "; " + ", ".join(f"{k}={row[k]}" for k in keys) if keys else ""
        lines.append(f"threshold ({rule}, chosen on the split=val rows{run}): {row['value']:.4g}")
    return lines


def _note_lines(result) -> list[str]:
    """One line per NaN value and why, prefixed by its run's keys (two seeds read apart)."""
    keys = result.keys
    lines = []
    for row in result.notes.to_dict(orient="records"):
        run = ", ".join(f"{k}={row[k]}" for k in keys)
        where = f"{run}: " if run else ""
        lines.append(
            f"note: {where}{row['attribute']}={row['group']}: {row['metric']} is NaN: {row['reason']}"
        )
    return lines


def _check_compare(table: pd.DataFrame, compare: str | None, baseline: str | None, source: Path) -> None:
    """--compare/--baseline name a run-key column and one of its values (checked before the audit)."""
    if compare is None:
        if baseline is not None:
            raise SpecError("--baseline needs --compare COLUMN (e.g. --compare method --baseline erm)")
        return
    if compare not in RUN_KEYS:
        raise SpecError(f"--compare {compare!r}: expected a run key ({', '.join(RUN_KEYS)})")
    if compare not in table.columns:
        raise SpecError(f"--compare {compare!r}: {source} has no column {compare!r}")
    if baseline is None:
        raise SpecError(f"--compare {compare} needs --baseline VALUE (one of the {compare!r} values)")
    present = list(dict.fromkeys(table[compare].astype(str)))
    if baseline not in present:
        raise SpecError(f"--baseline {baseline!r}: column {compare!r} of {source} holds {', '.join(present)}")


def _comparison(
    frame: pd.DataFrame,
    by: str,
    baseline: str,
    shown: list[str] | None,
    accuracy: str,
    fairness: str,
    lam: float,
) -> dict[str, pd.DataFrame]:
    """Print and return the run comparison (U test, stars, paired p) and FATE against the baseline."""
    from fairmed.metrics.criteria import CRITERION, fate_table
    from fairmed.metrics.stats import compare_table
    from fairmed.schema import OVERALL

    _check_fate_names(frame, accuracy, fairness)
    frame = frame.assign(**{by: frame[by].astype(str)})
    tests = compare_table(frame, by=by, baseline=baseline)
    fate = fate_table(frame, baseline, accuracy=accuracy, fairness=fairness, key=by, lam=lam)
    printed = set(shown) if shown else _default_shown(frame)
    rows = tests[tests["metric"].isin(printed) | (tests["group"] == CRITERION)] if len(tests) else tests
    click.echo(
        f"\n### {by}: each vs {baseline} (a = {baseline}, b = the other {by}; u: Mann-Whitney U of a "
        "over runs; p_paired: Wilcoxon signed-rank over runs paired by seed)"
    )
    click.echo(_md(rows))
    click.echo(
        f"\n### FATE vs {baseline} (accuracy measure: {OVERALL} {accuracy}; fairness: {fairness}; lambda={lam:g})"
    )
    click.echo(_md(fate))
    return {"compare": tests, "fate": fate}


def _check_fate_names(frame: pd.DataFrame, accuracy: str, fairness: str) -> None:
    from fairmed.metrics.criteria import CRITERION
    from fairmed.schema import OVERALL

    overall = set(frame.loc[frame["attribute"] == OVERALL, "metric"]) - {"n", "threshold"}
    criteria = set(frame.loc[frame["group"] == CRITERION, "metric"])
    if accuracy not in overall:
        raise SpecError(f"--fate-accuracy {accuracy!r}: expected one of {', '.join(sorted(overall))}")
    if fairness not in criteria:
        raise SpecError(
            f"--fate-fairness {fairness!r}: expected one of {', '.join(sorted(criteria)) or '(none)'}"
        )


def _default_shown(frame: pd.DataFrame) -> set[str]:
    from fairmed.metrics.audit import DEFAULT_SHOWN

    return set(DEFAULT_SHOWN) & set(frame["metric"])


def _md(table: pd.DataFrame) -> str:
    """A Markdown table; floats with 4 significant digits, p-values as they are."""
    from fairmed.metrics.audit import md_table

    if table.empty:
        return "(no rows)"
    cells = [[_cell(v) for v in row] for row in table.itertuples(index=False)]
    return md_table([str(c) for c in table.columns], cells)


def _cell(value) -> str:
    if isinstance(value, float):
        return "NaN" if value != value else f"{value:.4g}"
    return str(value)
