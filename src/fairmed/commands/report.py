"""`fairmed report OUT_DIR`: write the self-contained HTML report of a study or audit folder."""

from __future__ import annotations

from pathlib import Path

import click


@click.command(name="report")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--tolerance",
    type=float,
    default=None,
    help="Largest gap between groups (in metric units) at which a fairness criterion still holds "
    "[default: the study's audit.tolerance, else 0.05].",
)
@click.option(
    "--alpha",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=None,
    help="Significance level: a gap is significant when its adjusted p-value is <= alpha "
    "[default: the audit's alpha, else 0.05].",
)
def report(out_dir: Path, tolerance: float | None, alpha: float | None) -> None:
    """Write OUT_DIR/index.html (one self-contained file) and OUT_DIR/figures/*.png|svg.

    OUT_DIR is a study output folder (`fairmed run`, `fairmed demo`) or an audit folder
    (`fairmed audit ... --report DIR`).
    """
    from fairmed.report.build import build_report
    from fairmed.report.summary import report_summary

    path = build_report(out_dir, tolerance=tolerance, alpha=alpha)
    for line in report_summary(out_dir, tolerance=tolerance, alpha=alpha):
        click.echo(f"- {line}")
    click.echo(f"report: {path}")
