"""`fairmed postprocess`: fit per-group rules on one Predictions file, apply them to another."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np
import pandas as pd

from fairmed.commands.options import FiniteFloatRange
from fairmed.data.groups import GroupSpec
from fairmed.errors import InputError
from fairmed.io import check_table_suffix, check_writable, read_table, write_table
from fairmed.metrics.validate import (
    as_probabilities,
    binary_predictions,
    check_scalar_cells,
    dropped_line,
    naming,
    require_rows,
)
from fairmed.mitigate.thresholds import (
    GroupRules,
    apply_rules,
    fit_calibrated_eqodds,
    fit_reject_option,
    fit_thresholds,
)

TARGETS = ["equal_opportunity", "demographic_parity", "equalized_odds", "tpr", "fpr"]


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--attr", "attr", required=True, help="grouping to equalise, e.g. sex, fst:12-56, sex*age:60")
@click.option("--target", type=click.Choice(TARGETS), default="equal_opportunity", show_default=True)
@click.option("--value", type=FiniteFloatRange(0, 1), default=None, help="the rate for --target tpr / fpr")
@click.option(
    "--method",
    type=click.Choice(["thresholds", "reject_option", "calibrated_eqodds"]),
    default="thresholds",
    show_default=True,
)
@click.option(
    "--cost-constraint",
    type=click.Choice(["fpr", "fnr", "weighted"]),
    default="weighted",
    show_default=True,
    help="calibrated_eqodds: the generalized rate to equalise (--target is not used)",
)
@click.option("--privileged", multiple=True, help="reject option: privileged group(s); default: highest rate")
@click.option(
    "--max-accuracy-loss", type=FiniteFloatRange(0, 1), default=0.05, show_default=True, help="reject option"
)
@click.option("--label", default="y_true", show_default=True)
@click.option("--score", default="y_score", show_default=True)
@click.option(
    "--seed", type=click.IntRange(min=0), default=0, show_default=True, help="seed of randomised decisions"
)
@click.option(
    "--out", type=click.Path(path_type=Path), default=None, help="applied predictions (.csv/.parquet)"
)
@click.option(
    "--rules-out", type=click.Path(path_type=Path), default=None, help="save the fitted rules (JSON)"
)
@click.option(
    "--rules",
    "rules_in",
    type=click.Path(path_type=Path),
    default=None,
    help="apply these saved rules (JSON from --rules-out) without fitting; give only APPLY_FILE (the fit options are not used)",
)
def postprocess(
    files: tuple[Path, ...],
    attr: str,
    target: str,
    value: float | None,
    method: str,
    cost_constraint: str,
    privileged: tuple[str, ...],
    max_accuracy_loss: float,
    label: str,
    score: str,
    seed: int,
    out: Path | None,
    rules_out: Path | None,
    rules_in: Path | None,
) -> None:
    """FIT_FILE APPLY_FILE: fit per-group thresholds (reject option, calibrated equalized odds) on FIT_FILE,
    apply to APPLY_FILE.

    With --rules RULES.json give only APPLY_FILE: the saved rules are applied as they are.
    Works from Predictions alone, so any model benefits without retraining. The applied
    file gets a `y_pred` column with the post-processed decisions.
    """
    spec = GroupSpec.parse(attr)
    if rules_in is not None:
        apply_file = _one_file(files, "with --rules give only APPLY_FILE")
    else:
        fit_file, apply_file = _two_files(files)
    destination = out or apply_file.with_name(f"{apply_file.stem}.postprocessed{apply_file.suffix}")
    check_table_suffix(destination)
    check_writable(destination, option="--out")
    if rules_out:
        check_writable(rules_out, option="--rules-out")
    if rules_in is not None:
        rules = _load_matching_rules(rules_in, spec.name)
    else:
        options = {"privileged": privileged, "max_accuracy_loss": max_accuracy_loss, "cost": cost_constraint}
        rules = _fit(fit_file, spec, target, value, method, options, label, score)
    with naming(apply_file):
        apply_df = read_table(apply_file)
        require_rows(apply_df)
        check_scalar_cells(apply_df, [score, *spec.attributes])
        groups = _groups(spec, apply_df, apply_file, "kept, decided by the rules' default")
        if score not in apply_df.columns:
            raise InputError(f"column {score!r} not found (have: {', '.join(map(str, apply_df.columns))})")
        scores = as_probabilities(apply_df[score], score)  # the fit file's scale: probabilities
    click.echo(_describe(rules))
    if rules_out:
        rules.save(rules_out)
        click.echo(f"rules written to {rules_out}")
    if rules_in is not None:
        _check_groups_overlap(rules, groups, rules_in, apply_file)
    applied = apply_rules(apply_df.assign(**{score: scores}), rules, groups, score=score, seed=seed)
    write_table(applied.assign(**{score: apply_df[score]}), destination)
    click.echo(f"post-processed predictions written to {destination}")


def _one_file(files: tuple[Path, ...], message: str) -> Path:
    if len(files) != 1:
        raise InputError(f"{message}, got {len(files)} files")
    return files[0]


def _two_files(files: tuple[Path, ...]) -> tuple[Path, Path]:
    if len(files) != 2:
        raise InputError(
            f"expected FIT_FILE APPLY_FILE (or --rules RULES.json APPLY_FILE), got {len(files)} files"
        )
    return files[0], files[1]


def _fit(
    fit_file: Path,
    spec: GroupSpec,
    target: str,
    value: float | None,
    method: str,
    options: dict,
    label: str,
    score: str,
) -> GroupRules:
    """Fit the chosen rule family on FIT_FILE's labels, scores and groups (``options``: the reject
    option's privileged groups and accuracy loss, calibrated equalized odds' cost constraint)."""
    if method == "reject_option" and target not in {"demographic_parity", "equal_opportunity"}:
        raise InputError("reject option tunes its band for demographic_parity or equal_opportunity")
    with naming(fit_file):
        fit_df = read_table(fit_file)
        y, s = binary_predictions(fit_df, label, score, spec.attributes)  # the audit's checks
        groups = _groups(spec, fit_df, fit_file, "not used to fit")
        if method == "thresholds":
            return fit_thresholds(s, y, groups, target, value=value, attribute=spec.name)  # type: ignore[arg-type]
        if method == "calibrated_eqodds":
            return fit_calibrated_eqodds(s, y, groups, options["cost"], attribute=spec.name)
        return fit_reject_option(
            s,
            y,
            groups,
            target,  # type: ignore[arg-type]
            privileged=list(options["privileged"]) or None,
            max_accuracy_loss=options["max_accuracy_loss"],
            attribute=spec.name,
        )


def _groups(spec: GroupSpec, frame: pd.DataFrame, path: Path, fate: str) -> pd.Series:
    """Each row's group; rows in none are counted in a warning line saying what happens to them."""
    assignment = spec.assign(frame)
    line = dropped_line(spec.name, assignment, np.arange(len(frame)), frame[spec.attributes])
    if line:
        click.echo(f"warning: {path}: {line}: {fate}", err=True)
    return assignment.groups


def _load_matching_rules(path: Path, attribute: str) -> GroupRules:
    """Saved rules, refused when they were fitted for another grouping than ``--attr``."""
    rules = GroupRules.load(path)
    if rules.attribute != attribute:
        raise InputError(
            f"{path}: rules were fitted on attribute {rules.attribute!r}, but --attr gives {attribute!r}"
        )
    return rules


def _check_groups_overlap(rules: GroupRules, groups: pd.Series, rules_path: Path, apply_file: Path) -> None:
    """Refuse saved rules none of whose groups occur in APPLY_FILE (e.g. other level names)."""
    present = sorted(pd.unique(groups.dropna().astype(str)))
    if not set(present) & set(rules.rules):
        raise InputError(
            f"{apply_file}: none of its {rules.attribute} groups {present} has a rule in {rules_path}"
            f" (rules for {sorted(rules.rules)})"
        )


def _describe(rules: GroupRules) -> str:
    lines = [f"{rules.method} for {rules.target} on {rules.attribute}:"]
    if rules.method == "reject_option":
        lines.append(
            f"  band +/-{rules.band:.3f} around {rules.base_threshold}; privileged: {rules.privileged}"
        )
    if rules.method == "calibrated_eqodds":
        for name, mix in (rules.mix_rates or {}).items():
            base = (rules.base_rates or {})[name]
            lines.append(
                f"  {name}: {mix:.3f} of its rows take the base rate {base:.4f}, the rest keep their score"
            )
    for name, rule in rules.rules.items():
        if rules.method != "thresholds":
            break
        parts = [
            f"{c.weight:.3f} x (score >= {c.threshold:.4f})"
            if c.threshold is not None
            else f"{c.weight:.3f} x {c.constant}"
            for c in rule.components
        ]
        lines.append(f"  {name}: " + " + ".join(parts))
    summary = ", ".join(f"{k} {v:.4f}" for k, v in rules.fit_summary.items())
    lines.append(f"  on the fit data: {summary}")
    return "\n".join(lines)
