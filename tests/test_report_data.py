"""Realistic report inputs for the report tests: a study folder and an audit folder.

Predictions are generated with numpy (methods x seeds, skin type and sex, a known gap: the
classifier separates the classes less well on dark skin, and mitigations narrow that gap at a
small cost); Results come from the real ``fairmed.metrics.audit``.
"""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from fairmed.io import write_json, write_table

PNG = b"\x89PNG\r\n\x1a\n"

METHODS = {
    "erm": 0.0,
    "reweight": 0.45,
    "adversarial": 0.3,
    "groupdro": 0.6,
}  # how much of the gap each closes
SEEDS = (0, 1, 2)
ATTRS = ["fst:12-56", "sex"]
# the sections every binary report has, in order (a study's report adds "comparison" and its kind's)
CORE_SECTIONS = [
    "summary",
    "what-was-run",
    "performance",
    "fairness",
    "calibration-by-group",
    "roc-curves-by-group",
]


def make_predictions(n: int = 500, seed: int = 0, methods=METHODS, seeds=SEEDS) -> pd.DataFrame:
    """Binary Predictions for every (method, seed), test and val splits, with a skin-type gap."""
    rng = np.random.default_rng(seed)
    frames = []
    for m_i, (method, closes) in enumerate(methods.items()):
        for s in seeds:
            for split in ("val", "test"):
                fst = rng.choice(np.arange(1, 7), size=n, p=[0.25, 0.25, 0.2, 0.15, 0.1, 0.05])
                sex = rng.choice(np.array(["female", "male"], dtype=object), size=n)
                y = (rng.random(n) < 0.3).astype(int)
                dark = fst >= 5
                # separation: 1.1 on light skin, much less on dark skin; mitigations shrink the gap but
                # lose a little separation on light skin (the accuracy cost)
                sep = np.where(dark, 0.3 + 0.8 * closes, 1.1 - 0.15 * closes)
                logit = (2 * y - 1) * sep + rng.normal(0, 1.0, n) - 0.4
                frames.append(
                    pd.DataFrame(
                        {
                            "study": "report-fixture",
                            "config": "default",
                            "method": method,
                            "seed": s,
                            "split": split,
                            "id": [f"img{m_i}{s}{i:04d}" for i in range(n)],
                            "y_true": y,
                            "y_score": 1 / (1 + np.exp(-logit)),
                            "fst": fst,
                            "sex": sex,
                        }
                    )
                )
    return pd.concat(frames, ignore_index=True)


def make_results(
    predictions: pd.DataFrame, bootstrap: int = 200, min_group_size: int = 20, attrs=ATTRS
) -> pd.DataFrame:
    from fairmed.metrics import audit

    return audit(
        predictions, attrs=attrs, bootstrap=bootstrap, seed=0, min_group_size=min_group_size
    ).to_frame()


def cohort_summary() -> pd.DataFrame:
    rows = [
        ("fst", "FST 1-2", 1210, 540),
        ("fst", "FST 3-4", 720, 310),
        ("fst", "FST 5-6", 260, 90),
        ("fst", "(excluded)", 0, 0),
        ("sex", "female", 1110, 470),
        ("sex", "male", 1080, 470),
    ]
    frame = pd.DataFrame(rows, columns=["attribute", "group", "benign", "malignant"])
    frame["n"] = frame["benign"] + frame["malignant"]
    return frame[frame["n"] > 0].reset_index(drop=True)


def write_study(out: Path, predictions: pd.DataFrame, results: pd.DataFrame, kind: str = "demo") -> Path:
    out.mkdir(parents=True, exist_ok=True)
    spec = {
        "name": "report fixture study",
        "kind": kind,
        "profile": "smoke",
        "groups": ATTRS,
        "strategies": list(METHODS),
        "seeds": list(SEEDS),
    }
    (out / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    write_json(out / "versions.json", {"fairmed": "0.1.0", "numpy": np.__version__, "pandas": pd.__version__})
    write_table(cohort_summary(), out / "cohort_summary.parquet")
    write_table(predictions, out / "predictions.parquet")
    write_table(results, out / "results.parquet")
    return out


class Page(HTMLParser):
    """Collects what the checks need: section ids, img sources, every URL-bearing attribute."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.images: list[str] = []
        self.urls: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        a = dict(attrs)
        if tag == "section":
            self.sections.append(a["id"])
        if tag == "img":
            self.images.append(a["src"])
        self.urls += [v for k, v in attrs if k in {"src", "href", "action", "srcset", "data"} and v]


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def check_self_contained(out: Path) -> Page:
    page = parse(out / "index.html")
    text = (out / "index.html").read_text(encoding="utf-8")
    assert "script" not in page.tags and "link" not in page.tags and "iframe" not in page.tags
    assert not [u for u in page.urls if re.match(r"(?i)\s*(https?:)?//", u)], "external URL in src/href"
    assert "url(http" not in text and "@import" not in text
    pngs = sorted((out / "figures").glob("*.png"))
    assert len(page.images) == len(pngs) > 0
    embedded = {base64.b64decode(src.split(",", 1)[1]) for src in page.images}
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
    for png in pngs:
        assert png.read_bytes()[:8] == PNG
        assert png.read_bytes() in embedded, f"{png.name} not embedded"
        assert png.with_suffix(".svg").read_text().lstrip().startswith("<?xml")
    return page
