"""Two outputs of a composition (sex-ratio) study side by side: mean AUC per strategy and
composition for women / men, and the female-vs-male tests (Mann-Whitney over seeds, per-seed DeLong
combined by Stouffer), as markdown rows for the docs.

    python benchmarks/composition_before_after.py OUT_BEFORE OUT_AFTER [--label-before X --label-after Y]

Each OUT is the folder of ``fairmed run sex_ratio_synth ...`` (its ``tables/composition_comparison``).
The unit of replication is the seed: the means are over seeds, and the tests are the study's own.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd


def comparison(out: Path) -> pd.DataFrame:
    path = out / "tables" / "composition_comparison.parquet"
    if not path.is_file():
        raise SystemExit(f"{path}: not found (run the study first)")
    return pd.read_parquet(path)


def rows(before: pd.DataFrame, after: pd.DataFrame, labels: tuple[str, str]) -> list[str]:
    keys = ["method", "config"]
    both = before.merge(after, on=keys, how="outer", suffixes=("_b", "_a"))
    out = [
        f"| method | composition | F / M AUC {labels[0]} | p MW, p DeLong {labels[0]} |"
        f" F / M AUC {labels[1]} | p MW, p DeLong {labels[1]} |",
        "|---|---|---|---|---|---|",
    ]
    for _, r in both.iterrows():
        cells = []
        for s in ("_b", "_a"):
            if pd.isna(r.get(f"female_mean{s}")):
                cells += ["—", "—"]
                continue
            cells.append(f"{r[f'female_mean{s}']:.3f} / {r[f'male_mean{s}']:.3f}")
            cells.append(f"{r[f'p{s}']:.2f}, {r[f'p_delong{s}']:.3f}")
        out.append(f"| {r['method']} | {r['config']} | " + " | ".join(cells) + " |")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--label-before", default="before")
    parser.add_argument("--label-after", default="after")
    args = parser.parse_args()
    before, after = comparison(args.before), comparison(args.after)
    print("\n".join(rows(before, after, (args.label_before, args.label_after))))
    for name, table in (("before", before), ("after", after)):
        nominal = int((table["p_delong"] <= 0.05).sum())
        print(f"{name}: {len(table)} comparisons, DeLong+Stouffer p <= 0.05 in {nominal} (unadjusted)")


if __name__ == "__main__":
    main()
