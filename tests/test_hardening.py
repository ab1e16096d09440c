"""Hostile inputs get one line naming the file/row/column (exit 2), or are handled and said (issue 16)."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pandas as pd
import pytest
import yaml

from fairmed.errors import DataError, SpecError
from fairmed.io import check_writable, write_text
from fairmed.metrics import audit
from fairmed.metrics.audit import DataWarning
from fairmed.studies.spec import load_spec, resolve_spec
from fuzz_support import BASE_SPEC, invoke


def _preds(n=40, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    y[:2] = [0, 1]
    return pd.DataFrame(
        {
            "id": [f"i{k}" for k in range(n)],
            "y_true": y,
            "y_score": rng.random(n).round(4),
            "sex": np.tile(["female", "male"], n // 2),
        }
    )


def _error(outcome) -> str:
    assert outcome.error is None, repr(outcome.error)
    assert outcome.code == 2, outcome.stderr
    lines = [ln for ln in outcome.stderr.splitlines() if not ln.startswith(("warning:", "note:"))]
    assert len(lines) == 1 and lines[0].startswith("error: "), outcome.stderr
    return lines[0]


# ---------------------------------------------------------------------------------- files
@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o027, 0o640)])
def test_atomic_writes_keep_the_users_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        path = write_text(tmp_path / "index.html", "<p>hi</p>")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == mode


def test_output_paths_are_checked_before_any_work(tmp_path):
    a_file = tmp_path / "a.txt"
    a_file.write_text("x")
    with pytest.raises(DataError, match=r"--out .*below.parquet: cannot write there \(.*a.txt is a file"):
        check_writable(a_file / "below.parquet", option="--out")
    with pytest.raises(DataError, match="is a folder, expected a file name"):
        check_writable(tmp_path)
    with pytest.raises(DataError, match="is a file, expected a folder"):
        check_writable(a_file, folder=True)
    with pytest.raises(DataError, match="/proc/fairmed-x/r.csv: cannot write there"):
        check_writable("/proc/fairmed-x/r.csv")
    assert check_writable(tmp_path / "new" / "r.csv").parent.is_dir()


def test_audit_refuses_an_unwritable_out_before_computing(tmp_path, monkeypatch):
    import sys

    import fairmed.metrics.audit  # noqa: F401 - the module (the package exports a function of that name)

    monkeypatch.setattr(
        sys.modules["fairmed.metrics.audit"], "audit", lambda *a, **k: pytest.fail("the audit ran")
    )
    path = tmp_path / "p.csv"
    _preds().to_csv(path, index=False)
    line = _error(invoke(["audit", str(path), "--attr", "sex", "--report", str(path)]))
    assert line == f"error: --report {path}: is a file, expected a folder for the output"


# ---------------------------------------------------------------------------------- audit
def test_reserved_group_names_are_renamed_and_kept(tmp_path):
    frame = _preds()
    frame.loc[:9, "sex"] = "overall"
    frame.loc[10:19, "sex"] = "difference"
    path = tmp_path / "p.csv"
    frame.to_csv(path, index=False)
    out = tmp_path / "r.parquet"
    outcome = invoke(["audit", str(path), "--attr", "sex", "--bootstrap", "0", "--out", str(out)])
    assert outcome.code == 0, outcome.stderr
    assert "warning: sex: group 'overall' is shown as 'overall (group)'" in outcome.stderr
    res = pd.read_parquet(out)
    n = res[(res["attribute"] == "sex") & (res["metric"] == "n")].set_index("group")["value"]
    assert n.to_dict() == {"difference (group)": 10, "female": 10, "male": 10, "overall (group)": 10}


def test_dropped_rows_are_counted_on_the_terminal_in_the_notes_and_the_report(tmp_path):
    frame = _preds(n=200)
    frame["sex"] = frame["sex"].astype(object)
    frame.loc[frame.index % 2 == 0, "sex"] = "NA"
    frame.loc[1, "sex"] = "NA"
    path = tmp_path / "p.csv"
    frame.to_csv(path, index=False)
    report = tmp_path / "report"
    outcome = invoke(["audit", str(path), "--attr", "sex", "--bootstrap", "0", "--report", str(report)])
    assert outcome.code == 0, outcome.stderr
    line = "sex: 101 of 200 rows dropped (101 with a missing value)"
    assert f"warning: {line}" in outcome.stderr
    res = pd.read_parquet(report / "results.parquet")
    assert res.loc[(res["metric"] == "n") & (res["group"] == "male"), "note"].tolist() == [line]
    assert json.loads((report / "audit.json").read_text())["data_notes"] == [line]
    assert line in (report / "index.html").read_text()


def test_invalid_fitzpatrick_values_are_counted():
    frame = _preds().assign(fst=np.tile([1, 2, 5, 6], 10).astype(float))
    frame.loc[[3, 4], "fst"] = [1.5, 1e10]
    with pytest.warns(DataWarning, match="fst: 2 of 40 rows dropped"):
        result = audit(frame, ["fst:12-56"], bootstrap=0, min_group_size=0)
    assert result.options["data_notes"] == [
        "fst: 2 of 40 rows dropped (2 with a value in no group, e.g. 1.5, 10000000000.0)"
    ]


def test_duplicate_ids_are_warned():
    frame = _preds()
    frame.loc[:9, "id"] = "i0"
    with pytest.warns(DataWarning, match="duplicate id"):
        result = audit(frame, ["sex"], bootstrap=0, min_group_size=0)
    assert result.options["data_notes"] == [
        "column 'id': 10 rows share 1 duplicate id(s) within a run (e.g. 'i0' 10 times); "
        "each row is counted as a separate sample"
    ]


def test_list_and_struct_columns_are_refused(tmp_path):
    path = tmp_path / "p.parquet"
    _preds().assign(sex=[{"s": "f"}] * 40).to_parquet(path)
    line = _error(invoke(["audit", str(path), "--attr", "sex"]))
    assert line == "error: column 'sex': dict values at rows 0, 1, 2, 3, 4 (+35 more) " + (
        "(expected one number or text per cell, not a list or struct)"
    )


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--metrics", "foo,bar"], "error: --metrics: unknown foo, bar; this audit has n, "),
        (["--seed", "-5"], "error: Invalid value for '--seed': -5 is not in the range x>=0."),
        (
            ["--attr", "age:nan"],
            "error: GroupSpec age: edges must be finite and strictly increasing, got [nan]",
        ),
    ],
)
def test_bad_audit_options_are_refused(tmp_path, option, message):
    path = tmp_path / "p.csv"
    _preds().assign(age=30).to_csv(path, index=False)
    args = [
        "audit",
        str(path),
        "--bootstrap",
        "0",
        *(["--attr", "sex"] if "--attr" not in option else []),
        *option,
    ]
    assert _error(invoke(args)).startswith(message)


# ---------------------------------------------------------------------------------- postprocess
def _pp(tmp_path, fit: pd.DataFrame, apply: pd.DataFrame, *options: str):
    fit_path, apply_path = tmp_path / "fit.csv", tmp_path / "apply.csv"
    fit.to_csv(fit_path, index=False)
    apply.to_csv(apply_path, index=False)
    argv = ["postprocess", str(fit_path), str(apply_path), "--attr", "sex", "--out", str(tmp_path / "o.csv")]
    return invoke([*argv, *options]), fit_path, apply_path


def test_postprocess_names_the_file_and_row_of_a_non_numeric_score(tmp_path):
    apply = _preds(seed=1).astype({"y_score": object})
    apply.loc[7, "y_score"] = "abc"
    outcome, _, apply_path = _pp(tmp_path, _preds(n=200), apply)
    assert _error(outcome) == (
        f"error: {apply_path}: column 'y_score': 1 NaN, infinite or non-numeric values at rows 7 "
        "(expected finite scores)"
    )


def test_postprocess_refuses_logits_and_another_scale(tmp_path):
    fit = _preds(n=200).assign(y_score=lambda f: f["y_score"] * 8 - 4)
    outcome, fit_path, _ = _pp(tmp_path, fit, _preds())
    assert _error(outcome).startswith(f"error: {fit_path}: column 'y_score': scores outside [0, 1] at rows")
    outcome, _, apply_path = _pp(
        tmp_path, _preds(n=200), _preds().assign(y_score=lambda f: f["y_score"] * 100)
    )
    assert "expected probabilities" in _error(outcome) and str(apply_path) in outcome.stderr


def test_postprocess_accepts_text_labels_as_the_audit_does(tmp_path):
    fit = _preds(n=200).astype({"y_true": str})
    outcome, _, _ = _pp(tmp_path, fit, _preds(), "--target", "demographic_parity")
    assert outcome.code == 0, outcome.stderr
    assert set(pd.read_csv(tmp_path / "o.csv")["y_pred"]) <= {0, 1}


def test_postprocess_counts_rows_without_a_group_in_each_file(tmp_path):
    fit, apply = _preds(n=200), _preds()
    fit.loc[:4, "sex"] = "NA"
    apply.loc[:2, "sex"] = None
    outcome, fit_path, apply_path = _pp(tmp_path, fit, apply, "--target", "demographic_parity")
    assert outcome.code == 0, outcome.stderr
    assert (
        f"warning: {fit_path}: sex: 5 of 200 rows dropped (5 with a missing value): not used to fit"
        in outcome.stderr
    )
    assert (
        f"warning: {apply_path}: sex: 3 of 40 rows dropped (3 with a missing value): kept, decided by the"
        " rules' default" in outcome.stderr
    )
    assert len(pd.read_csv(tmp_path / "o.csv")) == 40


@pytest.mark.parametrize("value", ["-1", "nan"])
def test_reject_option_refuses_a_bad_accuracy_loss(tmp_path, value):
    outcome, _, _ = _pp(
        tmp_path, _preds(), _preds(), "--method", "reject_option", "--max-accuracy-loss", value
    )
    assert _error(outcome).startswith("error: Invalid value for '--max-accuracy-loss'")


# ---------------------------------------------------------------------------------- specs
def _spec(**changes) -> dict:
    raw = yaml.safe_load(yaml.safe_dump(BASE_SPEC))
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            raw[section][field] = value
        else:
            raw[section] = value
    return raw


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"design__seeds": []}, "design.seeds: List should have at least 1 item"),
        ({"design__seeds": [-5]}, "design.seeds.0: Input should be greater than or equal to 0"),
        ({"design__seeds": [2**40]}, "design.seeds.0: Input should be less than or equal to 4294967295"),
        ({"strategies": []}, "strategies: List should have at least 1 item"),
        ({"groups": []}, "groups: List should have at least 1 item"),
        ({"design__fractions": {"train": 0.8, "val": 0.0, "test": 0.2}}, "fractions must be > 0"),
        ({"audit__threshold": 2.0}, "audit.threshold: expected a number in [0, 1] or one of youden"),
        ({"audit__threshold": float("nan")}, "audit.threshold: expected a number in [0, 1]"),
        ({"audit__threshold": "bogus"}, "audit.threshold: expected a number in [0, 1]"),
        ({"audit__splits": ["nosuch"]}, "audit.splits ['nosuch']: expected splits of design.fractions"),
        ({"name": ".."}, "name: expected a name usable as a folder name"),
        ({"label": "nosuch"}, "label: 'nosuch' is not a label of this source (it has 'no_finding')"),
        (
            {"train__checkpoint_dir": "/proc/fairmed-ckpt"},
            "train.checkpoint_dir: /proc/fairmed-ckpt cannot be written",
        ),
    ],
)
def test_spec_values_are_validated_when_the_spec_loads(changes, message):
    with pytest.raises(SpecError) as exc:
        resolve_spec(_spec(**changes))
    assert message in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff\xfe\x00binary", "spec.yaml: not a UTF-8 text file (byte 0): expected YAML"),
        (b"a: " + b"[" * 3000 + b"]" * 3000, "spec.yaml: YAML nested too deeply"),
        (b"name: a\nname: b\n", "spec.yaml: not valid YAML: key 'name' appears twice (line 2)"),
    ],
)
def test_unreadable_specs_are_one_line(tmp_path, content, message):
    path = tmp_path / "spec.yaml"
    path.write_bytes(content)
    with pytest.raises(SpecError) as exc:
        load_spec(path)
    assert str(exc.value).startswith(message) and "\n" not in str(exc.value)


def test_a_folder_is_not_a_spec(tmp_path):
    folder = tmp_path / "study.yaml"
    folder.mkdir()
    with pytest.raises(SpecError, match="study.yaml: is a folder, expected a YAML file"):
        load_spec(folder)


def test_cuda_without_a_gpu_is_one_line():
    import torch  # a hard dependency of fairmed

    if torch.cuda.is_available():
        assert resolve_spec(_spec(train__device="cuda")).train["device"] == "cuda"
        return
    with pytest.raises(SpecError, match="train.device: 'cuda' but no CUDA GPU is available"):
        resolve_spec(_spec(train__device="cuda"))
