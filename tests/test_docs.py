"""Docs that run as written: every ```bash and ```python block of README.md and docs/*.md.

Each page runs in a fresh folder, its blocks in page order:
- ```python blocks are exec'd in one namespace per page (a later block may use an earlier one's names);
- ```bash blocks run with ``bash -e`` and ``fairmed`` on the PATH (this interpreter's CLI, this
  checkout's ``src``);
- ```bash notest / ```python notest blocks are skipped; their first line must be a ``# why`` comment
  (user's own data, a GPU, minutes of training, ...). Other blocks (```text, ```yaml, plain ```) are
  not code and never run.

The folder holds what a reader is assumed to have: example predictions of one model (``preds.csv``:
id, y_true, y_score, sex, fst, age with missing values, site A-D, split val/test; ``val.csv``, ``test.csv``,
``new.csv`` its splits) and of several runs (``runs.csv``: method erm/groupdro x seed 0-2), and
``../shared/data`` (the real-data subsets beside the clone). Nothing else is defined for a page.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import REPO, SHARED_DATA

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
RUN_LANGUAGES = {"bash": "bash", "sh": "bash", "shell": "bash", "python": "python"}
BASH_TIMEOUT_S = 300
FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>.*)$")


@dataclass(frozen=True)
class Block:
    """One fenced code block: its language, whether it is marked notest, its code and first line."""

    page: Path
    line: int  # 1-based line of the opening fence
    language: str
    notest: bool
    code: str

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """The fenced blocks of a Markdown page (CommonMark fences: ``` or ~~~, closed by a fence as long)."""
    out: list[Block] = []
    lines = page.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m or (m["fence"][0] == "`" and "`" in m["info"]):
            i += 1
            continue
        words = m["info"].split()
        language = words[0].lower() if words else ""
        start, body = i, []
        i += 1
        while i < len(lines):
            close = FENCE.match(lines[i])
            if (
                close
                and close["fence"][0] == m["fence"][0]
                and len(close["fence"]) >= len(m["fence"])
                and not close["info"].strip()
            ):
                break
            body.append(lines[i][len(m["indent"]) :] if lines[i].startswith(m["indent"]) else lines[i])
            i += 1
        i += 1
        out.append(Block(page, start + 1, language, "notest" in words[1:], "\n".join(body) + "\n"))
    return out


def _example_inputs(folder: Path) -> None:
    """The files a page may assume: one model's predictions and several runs' (see the docstring)."""
    rng = np.random.default_rng(0)
    n = 600
    fst = rng.integers(1, 7, n)
    y = (rng.random(n) < 0.35).astype(int)
    dark = fst >= 5
    score = np.clip(0.35 + (0.35 - 0.15 * dark) * y + rng.normal(0, 0.18, n), 0, 1)
    age = rng.integers(20, 90, n).astype(float)
    age[rng.random(n) < 0.08] = np.nan
    preds = pd.DataFrame(
        {
            "id": [f"img{i}" for i in range(n)],
            "y_true": y,
            "y_score": score.round(4),
            "sex": rng.choice(["female", "male"], n),
            "fst": fst,
            "age": age,
            "site": rng.choice(["A", "B", "C", "D"], n),
            "split": np.where(np.arange(n) < n // 3, "val", "test"),
        }
    )
    preds.to_csv(folder / "preds.csv", index=False)
    preds[preds["split"] == "val"].to_csv(folder / "val.csv", index=False)
    preds[preds["split"] == "test"].to_csv(folder / "test.csv", index=False)
    preds[preds["split"] == "test"].drop(columns="y_true").to_csv(folder / "new.csv", index=False)
    runs = []
    for method, shift in (("erm", 0.0), ("groupdro", 0.08)):
        for seed in range(3):
            noise = np.random.default_rng(seed).normal(0, 0.05, n)
            s = np.clip(score + shift * dark * y + noise, 0, 1).round(4)
            runs.append(preds.drop(columns="split").assign(method=method, seed=seed, y_score=s))
    pd.concat(runs, ignore_index=True).to_csv(folder / "runs.csv", index=False)


@pytest.fixture
def reader_folder(tmp_path, monkeypatch) -> Path:
    """A fresh working folder with the example inputs and ``../shared/data``."""
    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "shared").mkdir()
    if SHARED_DATA.is_dir():
        (tmp_path / "shared" / "data").symlink_to(SHARED_DATA, target_is_directory=True)
    _example_inputs(work)
    monkeypatch.chdir(work)
    monkeypatch.setenv("FAIRMED_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    return work


def _bash_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "src"), env.get("PYTHONPATH")) if p)
    env["FAIRMED_PROGRESS"] = "0"
    return env


def run_block(block: Block, namespace: dict) -> None:
    """Run one block; a failure names the page and line of the block."""
    if block.language == "python":
        try:
            exec(compile(block.code, block.where, "exec"), namespace)  # noqa: S102 - the docs' own code
        except Exception:
            trace = traceback.format_exc().strip().splitlines()
            pytest.fail(f"{block.where}: python block failed:\n" + "\n".join(trace[-8:]), pytrace=False)
        return
    done = subprocess.run(
        ["bash", "-e", "-c", block.code],
        env=_bash_env(),
        capture_output=True,
        text=True,
        timeout=BASH_TIMEOUT_S,
    )
    if done.returncode:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        pytest.fail(f"{block.where}: bash block failed (exit {done.returncode}):\n{tail}", pytrace=False)


def _runnable(page: Path) -> list[Block]:
    return [b for b in blocks(page) if b.language in RUN_LANGUAGES]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_notest_blocks_say_why(page):
    for block in _runnable(page):
        if block.notest:
            first = block.code.lstrip("\n").splitlines()[0] if block.code.strip() else ""
            assert re.match(r"#\s*\S", first), (
                f"{block.where}: a notest block starts with a '# why' comment line"
            )


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_page_runs_as_written(page, reader_folder):
    namespace: dict = {"__name__": "__main__"}
    for block in _runnable(page):
        if not block.notest:
            run_block(block, namespace)


def test_block_parser():
    """Fences with info strings, notest markers, nested backticks and other languages."""
    page = REPO / "tests" / "_docs_parser_sample.md"
    text = (
        "intro\n```bash\nfairmed --help\n```\n"
        "```python notest\n# needs a GPU\nimport torch\n```\n"
        "````text\n```python\nnot code\n```\n````\n"
        "~~~python\nx = 1\n~~~\n"
    )
    page.write_text(text, encoding="utf-8")
    try:
        found = [(b.line, b.language, b.notest, b.code) for b in blocks(page)]
    finally:
        page.unlink()
    assert found == [
        (2, "bash", False, "fairmed --help\n"),
        (5, "python", True, "# needs a GPU\nimport torch\n"),
        (9, "text", False, "```python\nnot code\n```\n"),
        (14, "python", False, "x = 1\n"),
    ]
