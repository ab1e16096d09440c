"""Progress on stderr: bars on a terminal, one plain line per step when stderr is a file or a pipe
(a study redirected to a log still says how far it is), nothing in tests (``FAIRMED_PROGRESS=0``)."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Literal, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")
Mode = Literal["bar", "lines", "off"]
MAX_LINES = 20  # a long study prints about this many progress lines, not one per run


def mode() -> Mode:
    """``FAIRMED_PROGRESS`` 0/false/no: off, any other value: bars; unset: bars on a terminal, else lines."""
    flag = os.environ.get("FAIRMED_PROGRESS")
    if flag is not None:
        return "off" if flag.lower() in {"0", "false", "no"} else "bar"
    return "bar" if sys.stderr.isatty() else "lines"


def enabled() -> bool:
    return mode() == "bar"


def progress(iterable: Iterable[T], desc: str, total: int | None = None, leave: bool = False) -> Iterator[T]:
    """Wrap an iterable in a tqdm bar on stderr when a terminal is attached."""
    return iter(tqdm(iterable, desc=desc, total=total, leave=leave, disable=not enabled(), file=sys.stderr))


def bar(total: int, desc: str, leave: bool = False) -> tqdm:
    return tqdm(total=total, desc=desc, leave=leave, disable=not enabled(), file=sys.stderr)


def note(text: str) -> None:
    """One line on stderr unless progress is off (a warning worth seeing before a long wait)."""
    if mode() != "off":
        print(text, file=sys.stderr, flush=True)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class StepLines:
    """Plain progress lines for ``total`` steps (``lines`` mode only): one per step, or one per
    ``total / MAX_LINES`` steps, each with the elapsed time and a naive estimate of what is left."""

    def __init__(self, total: int, desc: str, what: str = "run") -> None:
        self.total, self.desc, self.what = total, desc, what
        self.every = max(1, -(-total // MAX_LINES))
        self.done = 0
        self.start = time.perf_counter()
        self.active = mode() == "lines" and total > 0

    def step(self, name: str = "") -> str | None:
        """Count one finished step; return (and print) its line when one is due."""
        self.done += 1
        if not self.active or (self.done % self.every and self.done != self.total):
            return None
        elapsed = time.perf_counter() - self.start
        left = elapsed / self.done * (self.total - self.done)
        line = (
            f"{self.desc}: {self.what} {self.done}/{self.total} done"
            + (f" ({name})" if name else "")
            + f", {_duration(elapsed)} elapsed"
            + (f", about {_duration(left)} left" if self.done < self.total else "")
        )
        print(line, file=sys.stderr, flush=True)
        return line
