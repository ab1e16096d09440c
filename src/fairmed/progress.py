"""Progress bars that stay quiet in tests and pipes unless asked for."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def enabled() -> bool:
    flag = os.environ.get("FAIRMED_PROGRESS")
    if flag is not None:
        return flag not in {"0", "false", "no"}
    return sys.stderr.isatty()


def progress(iterable: Iterable[T], desc: str, total: int | None = None, leave: bool = False) -> Iterator[T]:
    """Wrap an iterable in a tqdm bar on stderr when a terminal is attached."""
    return iter(tqdm(iterable, desc=desc, total=total, leave=leave, disable=not enabled(), file=sys.stderr))


def bar(total: int, desc: str, leave: bool = False) -> tqdm:
    return tqdm(total=total, desc=desc, leave=leave, disable=not enabled(), file=sys.stderr)
