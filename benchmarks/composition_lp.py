"""LP/MILP composition designer: solve times (continuous + controlled rounding vs exact integer).

Run: ``.venv/bin/python benchmarks/composition_lp.py``. Prints, per problem, the median wall
time of a full design (both LP stages + rounding) in the default (continuous) mode and with
``integer=True``, their ratio, and the time to explain an infeasible design (deletion filter).
"""

from __future__ import annotations

import contextlib
import itertools
import time

import numpy as np
import pandas as pd

from fairmed.design.composition import InfeasibleDesign, Ratio, design_composition
from fairmed.design.representation import paper_ratios, share_ratio


def table1_cells() -> pd.DataFrame:
    rows = []
    for y, sex, age in itertools.product(["benign", "malignant"], ["female", "male"], ["<60", ">=60"]):
        avail = np.inf if y == "benign" else (1213 if sex == "female" else 1103)
        rows.append({"malignant": y, "sex": sex, "age": age, "available": avail})
    return pd.DataFrame(rows)


def big_cells(seed: int = 0) -> pd.DataFrame:
    """2 classes x 2 sexes x 6 Fitzpatrick types x 5 age bands = 120 cells."""
    rng = np.random.default_rng(seed)
    keys = list(
        itertools.product(
            ["benign", "malignant"],
            ["female", "male"],
            [f"FST {k}" for k in range(1, 7)],
            ["<30", "30-45", "45-60", "60-75", ">=75"],
        )
    )
    cells = pd.DataFrame(keys, columns=["malignant", "sex", "fst", "age"])
    cells["available"] = rng.integers(20, 3000, len(cells)).astype(float)
    return cells


def big_ratios(share: float) -> list[Ratio]:
    ages = ["<30", "30-45", "45-60", "60-75", ">=75"]
    ratios = [Ratio(numerator={"label": "malignant"}, denominator={"label": "benign"})]
    ratios += [
        Ratio(numerator={"age": a}, denominator={"age": b}, within=["malignant", "sex"])
        for a, b in zip(ages, ages[1:])
    ]
    ratios.append(
        Ratio(numerator={"fst": ["FST 5", "FST 6"]}, denominator={}, ratio="1:4", within=["malignant"])
    )
    return [*ratios, share_ratio("sex", "female", share, ["male"], within=["malignant"])]


def timed(fn, repeat: int = 7) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def main() -> None:
    design_composition(
        table1_cells(), [*paper_ratios(), share_ratio("sex", "female", 0.5, ["male"])]
    )  # warm up
    problems = {
        "Table 1, F75M25 (8 cells)": (
            table1_cells(),
            [*paper_ratios(), share_ratio("sex", "female", 0.75, ["male"], within=["malignant"])],
        ),
        "120 cells, F25M75, FST 5-6 = 20 %": (big_cells(), big_ratios(0.25)),
    }
    print(f"{'problem':38s} {'continuous+round':>17s} {'integer (milp)':>15s} {'ratio':>7s}")
    for name, (cells, ratios) in problems.items():
        cont = timed(lambda c=cells, r=ratios: design_composition(c, r))
        integer = timed(lambda c=cells, r=ratios: design_composition(c, r, integer=True))
        print(f"{name:38s} {cont * 1e3:14.1f} ms {integer * 1e3:12.1f} ms {integer / cont:6.2f}x")
    sweep = timed(
        lambda: [
            design_composition(
                table1_cells(),
                [*paper_ratios(), share_ratio("sex", "female", s, ["male"], within=["malignant"])],
            )
            for s in (0, 0.25, 0.5, 0.75, 1)
        ],
        repeat=3,
    )
    print(f"{'Table 1 sweep (5 designs)':38s} {sweep * 1e3:14.1f} ms")
    bad = table1_cells()
    bad.loc[(bad.malignant == "malignant") & (bad.sex == "male"), "available"] = 0
    ratios = [*paper_ratios(), share_ratio("sex", "female", 0.5, ["male"], within=["malignant"])]

    def explain():
        with contextlib.suppress(InfeasibleDesign):
            design_composition(bad, ratios)

    print(f"{'infeasible F50M50 explained (IIS)':38s} {timed(explain) * 1e3:14.1f} ms")
    big_bad = big_cells()
    big_bad.loc[(big_bad.malignant == "malignant") & (big_bad.fst == "FST 6"), "available"] = 0
    big_bad.loc[(big_bad.malignant == "malignant") & (big_bad.fst == "FST 5"), "available"] = 0

    def explain_big():
        with contextlib.suppress(InfeasibleDesign):
            design_composition(big_bad, big_ratios(0.5))

    print(f"{'infeasible 120 cells explained (IIS)':38s} {timed(explain_big, 3) * 1e3:14.1f} ms")


if __name__ == "__main__":
    main()
