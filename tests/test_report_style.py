"""The report's figure style and section registry: the parts study engineers build on."""

from __future__ import annotations

import pandas as pd
import pytest

from fairmed.errors import DataError
from fairmed.report.context import load_context
from fairmed.report.sections import Section, register_section, registered, sections_for
from fairmed.report.style import (
    OKABE_ITO,
    OVERALL_COLOR,
    colors_by_attribute,
    figure_name,
    group_colors,
    new_figure,
    ordered_groups,
    save_figure,
    wrap_label,
)


def test_group_colors_deterministic_by_name_not_order():
    a = group_colors(["male", "female", "overall"])
    b = group_colors(["overall", "female", "male", "female"])
    assert a == b == {"female": OKABE_ITO[0], "male": OKABE_ITO[1], "overall": OVERALL_COLOR}


def test_natural_order_and_distinct_colours_per_attribute():
    assert ordered_groups(["FST 10", "FST 2", "overall", "FST 1"]) == ["FST 1", "FST 2", "FST 10", "overall"]
    assert ordered_groups([">=60", "40-60", "<40"]) == ["<40", "40-60", ">=60"]
    assert ordered_groups(["male & >=60", "female & <60", "male & <60"]) == [
        "female & <60",
        "male & <60",
        "male & >=60",
    ]
    colors = colors_by_attribute({"sex": ["male", "female"], "fst": ["FST 5-6", "FST 1-2", "FST 3-4"]})
    fst = [colors[g] for g in ("FST 1-2", "FST 3-4", "FST 5-6")]
    assert fst == list(OKABE_ITO[:3])
    assert colors["female"] != colors["male"]
    many = group_colors([f"g{i}" for i in range(16)])
    assert len({many[f"g{i}"] for i in range(16)}) == 16  # no two groups share a colour


def test_save_figure_writes_png_and_svg(tmp_path):
    fig = new_figure(4, 3)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1])
    png = save_figure(fig, tmp_path / "figures", "Forest: sex >=60")
    assert png == tmp_path / "figures" / "forest-sex-ge60.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = png.with_suffix(".svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    assert sorted(p.name for p in png.parent.iterdir()) == ["forest-sex-ge60.png", "forest-sex-ge60.svg"]


def test_labels_and_names():
    assert figure_name("box", "FST 1-2", "AUC") == "box_fst-1-2_auc"
    assert wrap_label("adversarial reweighting strategy", 12) == "adversarial\nreweighting\nstrategy"


def test_registry_runs_kind_sections_in_order(tmp_path):
    @register_section("unit_test_kind")
    def first(ctx):
        return [Section("First", intro="one\n\ntwo")]

    @register_section("unit_test_kind")
    def second(ctx):
        return [Section("Second & more", tables={"t": pd.DataFrame({"a": [1]})})]

    register_section("unit_test_kind")(first)  # re-registering does not duplicate
    assert [f.__name__ for f in registered("unit_test_kind")] == ["first", "second"]

    pd.DataFrame({"attribute": ["sex"], "group": ["female"], "metric": ["auc"], "value": [0.8]}).to_parquet(
        tmp_path / "results.parquet"
    )
    (tmp_path / "spec.yaml").write_text("name: t\nkind: unit_test_kind\n")
    ctx = load_context(tmp_path)
    assert ctx.kind == "unit_test_kind" and ctx.color("female") == OKABE_ITO[0]
    sections = sections_for(ctx)
    assert [s.title for s in sections] == ["First", "Second & more"]
    assert sections[1].key == "second-more"
    assert sections[0].intro_html() == "<p>one</p><p>two</p>"


def test_load_context_errors_are_one_line(tmp_path):
    with pytest.raises(DataError, match="no results.parquet or predictions.parquet"):
        load_context(tmp_path)
    with pytest.raises(DataError, match="report folder not found"):
        load_context(tmp_path / "absent")
