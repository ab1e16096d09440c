"""The ``fairmed`` command. Subcommands live in ``fairmed.commands.*`` and load lazily,
so ``fairmed audit`` never imports torch and ``--help`` is instant."""

from __future__ import annotations

import importlib
import sys

import click

from fairmed.errors import FairmedError

# name -> "module:attribute" of a click command; each module owns one job
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": (
        "fairmed.commands.demo:demo",
        "Run the built-in demo study on generated data and write its report.",
    ),
    "audit": (
        "fairmed.commands.audit:audit",
        "Audit a Predictions CSV/Parquet: per-group metrics, gaps, CIs.",
    ),
    "power": (
        "fairmed.commands.power:power",
        "Plan an audit: the smallest gap two groups can show, or the images per group a gap needs.",
    ),
    "run": ("fairmed.commands.run:run", "Run a study spec (YAML) locally or on a Ray cluster."),
    "report": ("fairmed.commands.report:report", "Write the HTML report of a study or audit folder."),
    "data": ("fairmed.commands.data:data", "Data sources: summaries, the generator, image caches."),
    "slices": (
        "fairmed.commands.slices:slices",
        "Find the attribute-value combinations where a model fails, tested on held-out rows.",
    ),
    "studies": ("fairmed.commands.studies:studies", "List and show the built-in studies."),
    "postprocess": (
        "fairmed.commands.postprocess:postprocess",
        "Fit per-group thresholds / reject option on one Predictions file, apply to another.",
    ),
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported only when used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        target, _ = COMMANDS[cmd_name]
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                return _unavailable(cmd_name)
            raise
        return getattr(module, attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _unavailable(name: str) -> click.Command:
    @click.command(name=name, help=f"{COMMANDS[name][1]} (not available in this build)")
    def cmd() -> None:
        raise FairmedError(f"'fairmed {name}' is not available in this build")

    return cmd


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="fairmed")
def cli() -> None:
    """fairmed: measure and reduce bias in medical-imaging AI.

    Quick start: `fairmed demo` trains a skin-lesion classifier on generated data
    with a known skin-tone bias, audits it, and writes an HTML report.
    """


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors print one line and exit with status 2."""
    try:
        cli.main(args=argv, prog_name="fairmed", standalone_mode=False)
    except FairmedError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
