"""The composition study's report section (Fig. 2 of the paper) from its tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import yaml
from PIL import Image

from fairmed.report.context import load_context
from fairmed.report.sections import registered
from fairmed.report.sections.sex_ratio import CELLS_TITLE, COMPARISON_TITLE, composition_auc
from fairmed.studies.sex_ratio import auc_by_group, compare_groups

CONFIGS = ["M100", "F25M75", "F50M50", "F75M25", "F100"]


def _study_folder(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for method in ("erm", "multitask", "adversarial"):
        for i, config in enumerate(CONFIGS):
            for seed in range(5):
                f, m = 0.70 + 0.04 * i + rng.normal(0, 0.01), 0.85 - 0.02 * i + rng.normal(0, 0.01)
                for attribute, group, v in (
                    ("overall", "overall", (f + m) / 2),
                    ("sex", "female", f),
                    ("sex", "male", m),
                ):
                    rows.append(
                        {
                            "study": "s",
                            "config": config,
                            "method": method,
                            "seed": seed,
                            "split": "test",
                            "attribute": attribute,
                            "group": group,
                            "metric": "auc",
                            "value": v,
                            "ci_low": np.nan,
                            "ci_high": np.nan,
                            "n": 50,
                        }
                    )
    results = pd.DataFrame(rows)
    (tmp_path / "tables").mkdir()
    results.to_parquet(tmp_path / "results.parquet")
    auc = auc_by_group(results)
    auc.to_parquet(tmp_path / "tables" / "composition_auc.parquet")
    compare_groups(auc, order=CONFIGS).to_parquet(tmp_path / "tables" / "composition_comparison.parquet")
    design = pd.DataFrame(
        {
            "seed": 0,
            "config": np.repeat(CONFIGS, 2),
            "label": "malignant",
            "group": ["female", "male"] * 5,
            "count": [0, 10, 3, 10, 10, 10, 10, 3, 10, 0],
        }
    )
    design.to_parquet(tmp_path / "tables" / "composition_design.parquet")
    cells = pd.DataFrame(
        {
            "seed": [0] * 4 + [1] * 4,
            "config": ["F75M25"] * 2 + ["F100"] * 2 + ["F75M25"] * 2 + ["F100"] * 2,
            "label": "malignant",
            "group": ["male", "female"] * 4,
            "age": "<60",
            "available": [1103.0, 1213.0] * 4,
            "solved": [1213 / 3, 1213.0, 0.0, 1213.0] * 2,
            "count": [404, 1213, 0, 1213] * 2,
        }
    )
    cells.to_parquet(tmp_path / "tables" / "composition_cells.parquet")
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump({"name": "sex ratio", "kind": "composition"}))
    return tmp_path


def test_section_is_registered_and_draws_the_figure(tmp_path):
    ctx = load_context(_study_folder(tmp_path))
    assert composition_auc in registered("composition")
    (section,) = composition_auc(ctx)
    png = section.figures[0]
    assert png.name == "composition_auc_by_sex.png" and png.with_suffix(".svg").exists()
    width, height = Image.open(png).size
    assert width > 2 * height  # three panels side by side
    comparison = section.tables[COMPARISON_TITLE]
    # 5 seeds per sex: the Mann-Whitney floor 2 / C(10, 5) = 0.0079 is stated next to the legend
    assert (
        "With 5 seeds per sex the smallest p-value the Mann-Whitney U test can give is 0.0079, so **** and "
        "*** cannot occur." in section.intro
    )
    erm = comparison[comparison["method"] == "erm"].set_index("config")
    assert erm.loc["M100", "mark"] == "<" and erm.loc["F100", "mark"] == ">"
    assert erm.loc["M100", "stars"] == "**"  # 5 vs 5 fully separated: exact p = 2/252
    design = section.tables["Designed training sets (train + validation), first seed"].set_index("config")
    assert design.loc["F25M75", "malignant female"] == 3 and design.loc["F25M75", "total"] == 13
    cells = section.tables[CELLS_TITLE]
    # one row per cell of the first seed; the LP's 404.33 shown next to the 404 drawn
    assert cells.columns.tolist() == ["label", "group", "age", "available", "F75M25", "F100"]
    assert cells.values.tolist() == [
        ["malignant", "male", "<60", "1103", "404 (404.33)", "0"],
        ["malignant", "female", "<60", "1213", "1213", "1213"],
    ]


def test_section_is_empty_without_its_tables(tmp_path):
    folder = _study_folder(tmp_path)
    for p in (folder / "tables").iterdir():
        p.unlink()
    assert composition_auc(load_context(folder)) == []
