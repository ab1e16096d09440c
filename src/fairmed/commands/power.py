"""`fairmed power`: plan an audit -- the smallest gap two groups can show, or the images they need."""

from __future__ import annotations

import click

from fairmed.errors import SpecError

_UNIT = click.FloatRange(0, 1, min_open=True, max_open=True)


@click.command()
@click.option(
    "--n",
    "sizes",
    type=click.IntRange(min=1),
    multiple=True,
    required=True,
    help="images per group (repeat: --n 400 --n 120)",
)
@click.option(
    "--metric", type=click.Choice(["tpr", "fpr", "accuracy", "auc"]), default="tpr", show_default=True
)
@click.option(
    "--prevalence",
    type=click.FloatRange(0, 1),
    multiple=True,
    default=(0.5,),
    show_default=True,
    help="share of positives: one, or one per group",
)
@click.option(
    "--value",
    type=click.FloatRange(0, 1),
    default=0.5,
    show_default=True,
    help="the metric's expected value (0.5: the widest variance, conservative)",
)
@click.option(
    "--gap",
    type=click.FloatRange(0, 1, min_open=True),
    default=None,
    help="a gap to plan for: its power and the images per group it needs",
)
@click.option("--alpha", type=_UNIT, default=0.05, show_default=True, help="two-sided test level")
@click.option("--power", "target", type=_UNIT, default=0.8, show_default=True, help="power to reach")
def power(sizes, metric, prevalence, value, gap, alpha, target) -> None:
    """The minimum detectable gap of METRIC between two groups (normal approximation for TPR, FPR and
    accuracy, Hanley-McNeil for AUC; see docs/audit.md), and with --gap the images per group needed.

    Example: fairmed power --n 400 --n 120 --metric tpr --prevalence 0.3
    """
    from fairmed.metrics import power as pw

    if len(sizes) < 2:
        raise SpecError(f"--n: give one size per group, at least two (got {len(sizes)})")
    if len(prevalence) not in (1, len(sizes)):
        raise SpecError(f"--prevalence: give one, or one per --n ({len(sizes)}), got {len(prevalence)}")
    prev = list(prevalence)
    shown = ", ".join(f"{p:g}" for p in prev)
    click.echo(
        f"{metric} between groups of n = {', '.join(map(str, sizes))} (prevalence {shown}), "
        f"{metric} about {value:g}, two-sided alpha {alpha:g}, power {target:g}"
    )
    mdg = pw.minimum_detectable_gap(metric, sizes, prev, value, alpha, target)
    if mdg != mdg:  # NaN
        raise SpecError(f"--prevalence: a group has too few positives or negatives to estimate {metric} on")
    click.echo(
        f"minimum detectable gap: {mdg:.3f}"
        if mdg != float("inf")
        else "minimum detectable gap: none (no gap up to 1 reaches the power)"
    )
    if gap is None:
        return
    click.echo(f"power against a gap of {gap:g}: {pw.power(metric, gap, sizes, prev, value, alpha):.3f}")
    try:
        needed = pw.n_per_group(metric, gap, prev, value, alpha, target)
    except ValueError as exc:
        raise SpecError(f"--gap {gap:g}: {exc}") from None
    click.echo(
        f"images per group for power {target:g} against a gap of {gap:g} (groups of equal size): {needed}"
    )
