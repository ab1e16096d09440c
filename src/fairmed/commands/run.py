"""`fairmed run SPEC.yaml|NAME`: run a study spec locally or on a Ray cluster (resumes)."""

from __future__ import annotations

from pathlib import Path

import click

from fairmed.studies.executors import EXECUTORS
from fairmed.studies.spec import PROFILES


def study_options(fn):
    """Options shared by `fairmed run` and `fairmed demo`."""
    for option in reversed(
        [
            click.option(
                "--out",
                "out_dir",
                type=click.Path(file_okay=False, path_type=Path),
                default=None,
                help="Output folder (default: fairmed-out/<the built-in name or spec file stem you typed>;"
                " fairmed demo: fairmed-demo). A rerun resumes.",
            ),
            click.option(
                "--profile",
                type=click.Choice(PROFILES),
                default=None,
                help="Size profile: smoke (seconds), cpu (minutes on 2 cores), paper.",
            ),
            click.option(
                "--executor",
                type=click.Choice(EXECUTORS),
                default="local",
                show_default=True,
                help="local worker processes, or Ray.",
            ),
            click.option("--address", default=None, help="Ray cluster address (default: start a local Ray)."),
            click.option(
                "--jobs",
                type=click.IntRange(min=1),
                default=None,
                help="Runs side by side (default min(2, cores); 1 = in this process).",
            ),
            click.option("--no-report", "no_report", is_flag=True, help="Skip the HTML report."),
            click.option(
                "--tolerance",
                type=click.FloatRange(0.0, 1.0),
                default=None,
                help="Largest gap between groups at which a fairness criterion holds in the report"
                " (default: the spec's audit.tolerance, 0.05).",
            ),
        ]
    ):
        fn = option(fn)
    return fn


@click.command(name="run")
@click.argument("spec")
@study_options
@click.option(
    "--source",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="A source YAML that replaces the spec's source (e.g. OUT/source.yaml of `fairmed data synth`).",
)
@click.option(
    "--lenient",
    is_flag=True,
    help="Drop images that cannot be decoded (listed in OUT/tables/dropped_images.parquet and the"
    " report) instead of failing; the same as lenient: true in the spec.",
)
def run(spec: str, out_dir, profile, executor, address, jobs, no_report, tolerance, source, lenient) -> None:
    """Run the study SPEC (a YAML file, or a built-in name from `fairmed studies list`).

    Writes OUT/spec.yaml, runs/*.parquet, predictions.parquet, results.parquet, tables/ and
    index.html. Finished runs are skipped when the same command runs again.
    """
    from fairmed.studies.runner import run_study, study_out_dir
    from fairmed.studies.spec import load_spec

    resolved = load_spec(spec, profile=profile, source=source)
    if lenient:
        resolved = resolved.model_copy(update={"lenient": True})
    study_out_dir(resolved, out_dir)  # before anything runs
    outcome = run_study(
        resolved,
        out_dir,
        executor=executor,
        jobs=jobs,
        address=address,
        report=not no_report,
        tolerance=tolerance,
    )
    from fairmed.studies.kinds import get_kind

    kind = get_kind(outcome.spec.kind)
    for line in kind.terminal(outcome.out_dir) if kind.terminal else []:
        click.echo(line)
    click.echo(
        f"{outcome.spec.name}: {len(outcome.executed)} run(s) executed, {len(outcome.skipped)} resumed"
        f" -> {outcome.out_dir}"
    )
    dropped = outcome.out_dir / "tables" / "dropped_images.parquet"
    if outcome.spec.lenient and dropped.exists():
        from fairmed.io import read_table

        for row in read_table(dropped).itertuples():
            click.echo(f"dropped unreadable image {row.path} (id {row.id}): {row.reason}")
    if outcome.report is not None:
        from fairmed.report.summary import report_summary

        for line in report_summary(outcome.out_dir, tolerance=tolerance):
            click.echo(f"- {line}")
        click.echo(f"report: {outcome.report}")
