"""`fairmed studies list|show NAME`: the built-in studies."""

from __future__ import annotations

import click

from fairmed.errors import SpecError
from fairmed.studies.spec import BUILTIN_DIR, builtin_names, describe_builtin


@click.group(name="studies")
def studies() -> None:
    """The built-in study specs (run one with `fairmed run NAME`)."""


@studies.command(name="list")
def list_() -> None:
    """Each built-in study with its one-line description."""
    names = builtin_names()
    width = max((len(n) for n in names), default=0)
    for name in names:
        click.echo(f"{name:<{width}}  {describe_builtin(name)}")


@studies.command(name="show")
@click.argument("name")
def show(name: str) -> None:
    """Print a built-in study's YAML (copy it to start your own)."""
    path = BUILTIN_DIR / f"{name}.yaml"
    if not path.exists():
        raise SpecError(f"{name}: no such built-in study (built-in: {', '.join(builtin_names())})")
    click.echo(path.read_text(encoding="utf-8"), nl=False)
