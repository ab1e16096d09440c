"""Generators and the invariant of the input fuzz test (tests/test_fuzz_inputs.py).

The invariant: every `fairmed` command either exits 2 with one line on stderr, or succeeds
with numbers that scikit-learn confirms (and says what it dropped, renamed or doubted).
``classify`` returns "ok", "traceback" or "wrong" (+ a detail) so the same code counts
outcomes on old code and asserts them in CI.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd
import yaml
from click.testing import CliRunner
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score, recall_score, roc_auc_score

RESERVED = ("overall", "criterion", "difference", "ratio", "worst", "std", "ser", "signed")


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str
    error: BaseException | None = None


def invoke(argv: list[str]) -> Outcome:
    """Run ``fairmed ARGV`` in this process, as the console script would (fairmed.cli.main)."""
    from fairmed.cli import main

    runner = CliRunner()
    error = None
    code = 0
    with runner.isolation() as (out, err, _):
        try:
            main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except Exception as exc:  # noqa: BLE001 - a traceback is what the fuzzer looks for
            error, code = exc, 1
        stdout = out.getvalue().decode("utf-8", "replace")
        stderr = err.getvalue().decode("utf-8", "replace")
    return Outcome(code, stdout, stderr, error)


def refused_cleanly(outcome: Outcome) -> tuple[str, str]:
    """Exit 2 with exactly one line on stderr (warnings before it are allowed as 'warning:' lines)."""
    if outcome.error is not None:
        return "traceback", f"{type(outcome.error).__name__}: {outcome.error}"[:300]
    lines = [ln for ln in outcome.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if not ln.startswith(("warning:", "note:"))]
    if outcome.code == 2 and len(errors) == 1 and "Traceback" not in outcome.stderr:
        return "ok", errors[0]
    return "wrong", f"exit {outcome.code}, stderr {outcome.stderr[-300:]!r}"


# ------------------------------------------------------------------ prediction tables
TABLE_MUTATIONS = (
    "none",
    "score_text",
    "score_nan",
    "score_logit",
    "score_percent",
    "nul_group",
    "nul_score",
    "label_text",
    "label_bad",
    "group_reserved",
    "group_missing",
    "fst_invalid",
    "dup_ids",
    "list_column",
    "struct_column",
    "drop_score",
    "empty",
    "hostile_names",
    "one_group",
)


@dataclass
class Table:
    frame: pd.DataFrame
    mutation: str
    suffix: str
    expect_refusal: bool
    dropped: int = 0  # rows whose sex/fst is missing or invalid: must be counted
    renamed: bool = False
    duplicated: bool = False
    extra: dict = field(default_factory=dict)


@st.composite
def tables(draw, mutations: tuple[str, ...] = TABLE_MUTATIONS) -> Table:
    """A small valid Predictions table with one of ``mutations`` (most of them malformed)."""
    n = draw(st.integers(4, 50))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    y[:2] = [0, 1]
    frame = pd.DataFrame(
        {
            "id": [f"img{i}" for i in range(n)],
            "y_true": y,
            "y_score": np.round(rng.random(n), 6),
            "sex": rng.choice(["female", "male"], n),
            "fst": rng.integers(1, 7, n),
        }
    )
    mutation = draw(st.sampled_from(mutations))
    suffix = draw(st.sampled_from([".csv", ".parquet"]))
    rows = np.sort(rng.choice(n, size=draw(st.integers(1, max(1, n // 3))), replace=False))
    table = Table(frame, mutation, suffix, expect_refusal=True)
    if mutation in ("none", "one_group", "hostile_names", "label_text"):
        table.expect_refusal = False
    if mutation == "score_text":
        frame["y_score"] = frame["y_score"].astype(object)
        frame.loc[rows, "y_score"] = draw(st.sampled_from(["abc", "0,5", "1e", "--", "0.5.1"]))
    elif mutation == "score_nan":
        frame.loc[rows, "y_score"] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    elif mutation == "score_logit":
        frame["y_score"] = np.log(
            frame["y_score"].clip(1e-3, 1 - 1e-3) / (1 - frame["y_score"].clip(1e-3, 1 - 1e-3))
        )
        frame.loc[0, "y_score"] = -3.0
    elif mutation == "score_percent":
        frame["y_score"] = frame["y_score"] * 100
        frame.loc[0, "y_score"] = 99.5
    elif mutation == "nul_group":
        frame.loc[rows, "sex"] = "fe\x00male"
    elif mutation == "nul_score":
        frame["y_score"] = frame["y_score"].astype(str)
        frame.loc[rows, "y_score"] = "0.\x005"
    elif mutation == "label_text":
        frame["y_true"] = frame["y_true"].astype(str)
    elif mutation == "label_bad":
        frame["y_true"] = frame["y_true"].astype(object)
        frame.loc[rows, "y_true"] = draw(st.sampled_from([2, -1, "yes", 0.5]))
        if suffix == ".parquet":
            frame["y_true"] = frame["y_true"].astype(str)
    elif mutation == "group_reserved":
        frame.loc[rows, "sex"] = draw(st.sampled_from(RESERVED))
        table.expect_refusal = False
        table.renamed = True
    elif mutation == "group_missing":
        frame["sex"] = frame["sex"].astype(object)
        frame.loc[rows, "sex"] = draw(st.sampled_from(["NA", "", None, "unknown"]))
        if len(rows) >= n:
            return table
        table.expect_refusal = False
        table.dropped = len(rows)
        table.extra["attr"] = "sex"
    elif mutation == "fst_invalid":
        frame["fst"] = frame["fst"].astype(float)
        frame.loc[rows, "fst"] = draw(st.sampled_from([1.5, 1e10, 0.0, 7.0, -3.0]))
        if len(rows) >= n:
            return table
        table.expect_refusal = False
        table.dropped = int((~frame["fst"].isin([1, 2, 5, 6])).sum())  # FST 3-4 are in no group too
        table.extra["attr"] = "fst:12-56"
    elif mutation == "dup_ids":
        frame.loc[rows, "id"] = "img0"
        frame.loc[0, "id"] = "img0"
        table.expect_refusal = False
        table.duplicated = True
    elif mutation == "list_column":
        frame["sex"] = [[v] for v in frame["sex"]]
        table.suffix = ".parquet"
    elif mutation == "struct_column":
        frame["sex"] = [{"s": v} for v in frame["sex"]]
        table.suffix = ".parquet"
    elif mutation == "drop_score":
        table.frame = frame.drop(columns="y_score")
    elif mutation == "empty":
        table.frame = frame.iloc[:0]
    elif mutation == "hostile_names":
        frame.loc[rows, "sex"] = draw(st.sampled_from(["<b>x</b>", "a|b", "ü ñ", "1e3", "  padded  "]))
    elif mutation == "one_group":
        frame["sex"] = "female"
    return table


def write(table: Table, folder: Path, stem: str = "preds") -> Path:
    path = folder / f"{stem}{table.suffix}"
    if table.suffix == ".csv":
        table.frame.to_csv(path, index=False)
    else:
        frame = table.frame.copy()
        for col in frame.columns[frame.dtypes.map(lambda d: d == np.dtype(object))]:
            if not frame[col].map(lambda v: isinstance(v, (list, dict))).any():
                frame[col] = frame[col].map(lambda v: v if v is None else str(v))  # mixed types
        frame.to_parquet(path, index=False)
    return path


def _group_key(value) -> str | None:
    """The audit's group name of a raw sex value (None: dropped), renamed when reserved."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    text = str(value).strip()
    if text.lower() in {"", "unknown", "unk", "nan", "none", "na", "n/a", "-1", "missing"}:
        return None
    return f"{text} (group)" if text in RESERVED else text


def check_audit(table: Table, outcome: Outcome, results_path: Path) -> tuple[str, str]:
    """The invariant for `fairmed audit` on one generated table."""
    if outcome.error is not None or outcome.code != 0:
        verdict, detail = refused_cleanly(outcome)
        if verdict == "ok" and not table.expect_refusal:
            return "wrong", f"refused a valid table ({table.mutation}): {detail}"
        return verdict, detail
    if table.expect_refusal:
        return "wrong", f"accepted a malformed table ({table.mutation})"
    res = pd.read_parquet(results_path)
    frame = pd.read_csv(table.path) if table.suffix == ".csv" else table.frame  # type: ignore[attr-defined]
    y = pd.to_numeric(frame["y_true"]).to_numpy()
    s = pd.to_numeric(frame["y_score"]).to_numpy()
    overall = res[(res["attribute"] == "overall") & (res["group"] == "overall")].set_index("metric")
    if int(overall.loc["n", "value"]) != len(frame):
        return "wrong", f"overall n {overall.loc['n', 'value']} != {len(frame)}"
    if not np.isclose(overall.loc["accuracy", "value"], accuracy_score(y, s >= 0.5)):
        return "wrong", "overall accuracy differs from scikit-learn"
    if len(set(y)) == 2 and not np.isclose(overall.loc["auc", "value"], roc_auc_score(y, s)):
        return "wrong", "overall auc differs from scikit-learn"
    attr = table.extra.get("attr", "sex")
    if attr == "sex":
        keys = frame["sex"].map(_group_key)
        rows = res[(res["attribute"] == "sex") & ~res["group"].isin(RESERVED)]
        found = set(rows["group"])
        expected = set(keys.dropna())
        if found != expected:
            return "wrong", f"groups {sorted(found)} != data's {sorted(expected)}"
        for name in expected:
            sel = (keys == name).to_numpy()
            sub = rows[rows["group"] == name].set_index("metric")["value"]
            if int(sub["n"]) != sel.sum():
                return "wrong", f"group {name!r}: n {sub['n']} != {sel.sum()}"
            if not np.isclose(sub["accuracy"], accuracy_score(y[sel], s[sel] >= 0.5)):
                return "wrong", f"group {name!r}: accuracy differs from scikit-learn"
            if y[sel].sum() > 0 and not np.isclose(sub["tpr"], recall_score(y[sel], s[sel] >= 0.5)):
                return "wrong", f"group {name!r}: tpr differs from scikit-learn"
    err = outcome.stderr
    if table.dropped and not (f"{table.dropped} of {len(frame)} rows" in err and "dropped" in err):
        return "wrong", f"{table.dropped} dropped rows not counted on the terminal"
    if table.renamed and "(group)" not in err:
        return "wrong", "a reserved group name was renamed without a warning"
    if table.duplicated and "duplicate" not in err.lower():
        return "wrong", "duplicate ids without a warning"
    return "ok", ""


def run_audit(table: Table, folder: Path, options: list[str]) -> tuple[str, str]:
    table.path = write(table, folder)  # type: ignore[attr-defined]
    results = folder / "results.parquet"
    if results.exists():
        results.unlink()
    attr = table.extra.get("attr", "sex")
    outcome = invoke(
        ["audit", str(table.path), "--attr", attr, "--bootstrap", "0", "--out", str(results), *options]
    )
    return check_audit(table, outcome, results)


# ------------------------------------------------------------------ bad options
BAD_OPTIONS = (
    ["--metrics", "foo,bar"],
    ["--seed", "-5"],
    ["--attr", "age:nan"],
    ["--attr", "age:inf"],
    ["--threshold", "nan"],
    ["--out", "/proc/fairmed/results.parquet"],
    ["--out", "{dir}"],
    ["--out", "{file}/below.parquet"],
    ["--report", "/proc/fairmed-report"],
    ["--report", "{file}"],
)
POSTPROCESS_BAD_OPTIONS = (
    ["--max-accuracy-loss", "-1", "--method", "reject_option"],
    ["--max-accuracy-loss", "nan", "--method", "reject_option"],
    ["--seed", "-5"],
    ["--out", "/proc/fairmed/applied.csv"],
    ["--out", "{dir}"],
    ["--rules-out", "{file}/rules.json"],
    ["--value", "nan", "--target", "tpr"],
)


def fill(options: list[str], folder: Path) -> list[str]:
    a_file = folder / "a_file.txt"
    a_file.write_text("x")
    return [o.format(dir=folder, file=a_file) for o in options]


# ------------------------------------------------------------------ postprocess
def check_postprocess(fit: Table, apply: Table, outcome: Outcome, out_path: Path) -> tuple[str, str]:
    apply_malformed = apply.expect_refusal and apply.mutation != "label_bad"  # its labels are not read
    malformed = fit.expect_refusal or apply_malformed
    if outcome.error is not None or outcome.code != 0:
        verdict, detail = refused_cleanly(outcome)
        if verdict == "ok" and not malformed and "label" in detail:  # data reasons (no positives) are fine
            return "wrong", f"refused valid files ({fit.mutation}/{apply.mutation}): {detail}"
        return verdict, detail
    if malformed:
        return "wrong", f"accepted malformed files ({fit.mutation}/{apply.mutation})"
    for table in (fit, apply):
        counted = f"{table.dropped} of {len(table.frame)} rows dropped"
        if table.dropped and table.extra.get("attr") == "sex" and counted not in outcome.stderr:
            return "wrong", f"{table.dropped} rows without a group not counted ({table.mutation})"
    applied = pd.read_csv(out_path)
    if len(applied) != len(apply.frame):
        return "wrong", f"{len(applied)} rows written for {len(apply.frame)}"
    if not set(applied["y_pred"].unique()) <= {0, 1}:
        return "wrong", "y_pred is not 0/1"
    return "ok", ""


def run_postprocess(fit: Table, apply: Table, folder: Path, options: list[str]) -> tuple[str, str]:
    fit.path = write(fit, folder, "fit")  # type: ignore[attr-defined]
    apply.path = write(apply, folder, "apply")  # type: ignore[attr-defined]
    out = folder / "applied.csv"
    if out.exists():
        out.unlink()
    argv = ["postprocess", str(fit.path), str(apply.path), "--attr", "sex", "--out", str(out), *options]
    return check_postprocess(fit, apply, invoke(argv), out)


# ------------------------------------------------------------------ specs
BASE_SPEC = {
    "name": "fuzz",
    "source": {"kind": "synth_embeddings", "config": {"preset": "cxr", "n": 40, "dim": 4}},
    "groups": ["sex"],
    "design": {"seeds": [0]},
    "strategies": ["erm"],
    "train": {"epochs": 1},
    "audit": {"bootstrap": 0},
}

SPEC_MUTATIONS: tuple[tuple[str, object], ...] = (
    ("bytes", b"\xff\xfe\x00\x01binary\x80"),
    ("bytes", "name: caf\xe9\n".encode("latin-1")),
    ("folder", None),
    ("text", "a: " + "[" * 5000 + "]" * 5000),
    ("text", "a:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 400))),
    ("text", "name: a\nname: b\n"),
    ("text", "audit:\n  bootstrap: 1\n  bootstrap: 2\n"),
    ("set", ("design", "seeds", [])),
    ("set", ("strategies", None, [])),
    ("set", ("design", "seeds", [-5])),
    ("set", ("design", "seeds", [2**40])),
    ("set", ("design", "repeats", 10**9)),
    ("set", ("design", "fractions", {"train": 0.8, "val": 0.0, "test": 0.2})),
    ("set", ("label", None, "no_such_label")),
    ("set", ("train", "checkpoint_dir", "/proc/fairmed-ckpt")),
    ("set", ("audit", "threshold", 2.0)),
    ("set", ("audit", "threshold", float("nan"))),
    ("set", ("audit", "threshold", "bogus")),
    ("set", ("audit", "threshold", -0.1)),
    ("set", ("groups", None, [])),
    ("set", ("audit", "splits", ["nosuch"])),
    ("set", ("audit", "splits", [])),
    ("set", ("name", None, "..")),
    ("set", ("name", None, "a/b")),
    ("set", ("name", None, "")),
    ("set", ("audit", "seed", -1)),
    ("set", ("audit", "bootstrap", -1)),
    ("set", ("audit", "ci", 1.5)),
    ("set", ("train", "epochs", -1)),
    ("set", ("groups", None, ["age:nan"])),
    ("set", ("groups", None, ["sex", "sex"])),
    ("out", "/proc/fairmed-study"),
    ("out", "{file}"),
    ("out", "{file}/below"),
)


@st.composite
def spec_cases(draw) -> tuple[str, object, dict]:
    """One spec mutation over a base spec whose valid fields are drawn too."""
    cases = list(SPEC_MUTATIONS)
    if not _has_cuda():
        cases.append(("set", ("train", "device", "cuda")))
    kind, payload = draw(st.sampled_from(cases))
    base = {
        "name": draw(
            st.text("abcdefghij_-0123456789", min_size=1, max_size=12).filter(lambda t: t.strip("."))
        ),
        "seeds": draw(st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=3)),
        "bootstrap": draw(st.integers(0, 50)),
        "groups": draw(st.sampled_from([["sex"], ["race"], ["sex", "race"], ["age:60"]])),
    }
    return kind, payload, base


def _has_cuda() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:  # pragma: no cover
        return False


class Accepted(Exception):
    """Raised by the stand-in for run_study: the spec passed every check."""


def run_spec(case: tuple[str, object, dict], folder: Path) -> tuple[str, str]:
    """`fairmed run SPEC` with the study itself replaced: only loading and the checks run."""
    kind, payload, base = case
    spec_path = folder / "spec.yaml"
    out = folder / "out"
    if kind == "bytes":
        spec_path.write_bytes(payload)  # type: ignore[arg-type]
    elif kind == "text":
        spec_path.write_text(payload, encoding="utf-8")  # type: ignore[arg-type]
    elif kind == "folder":
        spec_path = folder / "a_folder.yaml"
        spec_path.mkdir(exist_ok=True)
    else:
        raw = yaml.safe_load(yaml.safe_dump(BASE_SPEC))
        raw.update(name=base["name"], groups=base["groups"])
        raw["design"]["seeds"] = base["seeds"]
        raw["audit"]["bootstrap"] = base["bootstrap"]
        if kind == "set":
            section, key, value = payload  # type: ignore[misc]
            if key is None:
                raw[section] = value
            else:
                raw.setdefault(section, {})[key] = value
        else:
            out = Path(fill([str(payload)], folder)[0])
        spec_path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    with mock.patch("fairmed.studies.runner.run_study", side_effect=Accepted):
        outcome = invoke(["run", str(spec_path), "--out", str(out), "--no-report"])
    if isinstance(outcome.error, Accepted):
        return "wrong", f"accepted a malformed spec ({kind}: {str(payload)[:60]})"
    return refused_cleanly(outcome)


def scratch() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="fairmed-fuzz-", dir=os.environ.get("TMPDIR"))
