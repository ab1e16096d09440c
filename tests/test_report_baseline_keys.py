"""The report summary compares a run with the baseline of its own configuration when the study kind
names its baseline keys (the benchmark: a method against ERM of the same mechanism), and the
attribute histogram leaves the Predictions' auxiliary columns out."""

from __future__ import annotations

import pandas as pd

from fairmed.report.core.attributes import attribute_columns
from fairmed.report.summary import find, summary_lines
from fairmed.report.tidy import split_results
from fairmed.schema import AUXILIARY_COLUMNS
from fairmed.studies.kinds import get_kind

# config -> method -> TPR of (light, dark), the same in seeds 0 and 1 (mean gap = light - dark)
TPR = {
    "a": {"erm": (0.90, 0.49), "fix": (0.85, 0.74)},  # gaps 0.410 -> 0.110
    "b": {"erm": (0.90, 0.70), "fix": (0.90, 0.75)},  # gaps 0.200 -> 0.150
}


def _results() -> pd.DataFrame:
    rows = []
    for config, methods in TPR.items():
        for method, (light, dark) in methods.items():
            for seed in (0, 1):
                keys = {"config": config, "method": method, "seed": seed, "split": "test", "metric": "tpr"}
                for group, value in (("light", light), ("dark", dark), ("difference", light - dark)):
                    rows.append({**keys, "attribute": "fst", "group": group, "value": value, "n": 50})
                rows.append({**keys, "attribute": "overall", "group": "overall", "value": 0.8, "n": 100})
    frame = pd.DataFrame(rows)
    return frame.assign(ci_low=frame["value"] - 0.02, ci_high=frame["value"] + 0.02)


def test_each_configuration_meets_its_own_baseline():
    finding = find(split_results(_results()), tolerance=0.05, baseline_keys=("method",))
    assert finding.baseline == "a · erm"
    changes = {
        m.name: (m.baseline, round(m.narrowed[0].before, 9), round(m.narrowed[0].after, 9))
        for m in finding.mitigations
    }
    assert changes == {"a · fix": ("", 0.41, 0.11), "b · fix": ("b · erm", 0.2, 0.15)}
    lines = summary_lines(finding, 0.05)
    assert (
        "b · fix (against b · erm) narrowed the fst TPR gap from 0.200 to 0.150 (adjusted p = 1); "
        "overall TPR is unchanged at 0.800."
    ) in lines
    assert not any(line.startswith("b · erm") for line in lines)  # a baseline is not a mitigation


def test_without_baseline_keys_one_baseline_for_the_study():
    finding = find(split_results(_results()), tolerance=0.05)
    before = {m.name: m.narrowed[0].before for m in finding.mitigations}
    assert round(before["b · fix"], 9) == 0.41  # the study-wide baseline (what the benchmark used to report)


def test_the_benchmark_kind_names_method_as_its_baseline_key():
    assert get_kind("benchmark").baseline_keys == ("method",)
    assert get_kind("classification").baseline_keys == ()


def test_histogram_attributes_leave_auxiliary_columns_out():
    columns = ["study", "method", "split", "id", "y_true", "y_score", "fst", "sex", *AUXILIARY_COLUMNS]
    assert attribute_columns(pd.DataFrame(columns=columns)) == ["fst", "sex"]
    assert {"y_score_raw", "note", "channels"} <= set(AUXILIARY_COLUMNS)
