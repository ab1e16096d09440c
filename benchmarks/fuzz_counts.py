"""Count the fuzz test's outcomes (ok / traceback / silently wrong) without asserting them.

The same generators and invariant as tests/test_fuzz_inputs.py (tests/fuzz_support.py), so the
counts of a version of fairmed can be compared with another's, e.g. before and after a fix:

    PYTHONPATH=src python benchmarks/fuzz_counts.py 200            # this checkout
    PYTHONPATH=/old/src python benchmarks/fuzz_counts.py 200       # another version's src

N=200 gives 1,000 cases (1.5 N tables, 0.75 N bad audit options, 1.25 N table pairs, 0.75 N bad
postprocess options, 0.75 N specs). Prints the counts and the first case of each failing kind.
"""

from __future__ import annotations

import collections
import copy
import os
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
os.environ.setdefault("FAIRMED_PROGRESS", "0")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import fuzz_support as fz  # noqa: E402

counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
examples: dict[str, dict] = collections.defaultdict(dict)


def record(kind: str, label: str, verdict: str, detail: str) -> None:
    counts[kind][verdict] += 1
    if verdict != "ok":
        examples[kind].setdefault((label, verdict), detail)


def main(n: int) -> None:
    def cfg(k: float):
        return settings(
            max_examples=int(n * k), database=None, deadline=None, suppress_health_check=list(HealthCheck)
        )

    @cfg(1.5)
    @given(fz.tables())
    def audit_tables(t):
        with fz.scratch() as d:
            record("audit", t.mutation, *fz.run_audit(t, Path(d), []))

    @cfg(0.75)
    @given(fz.tables(("none",)), st.sampled_from(fz.BAD_OPTIONS))
    def audit_options(t, opts):
        t.expect_refusal = True
        with fz.scratch() as d:
            record("audit-options", " ".join(opts), *fz.run_audit(t, Path(d), fz.fill(list(opts), Path(d))))

    @cfg(1.25)
    @given(fz.tables(), fz.tables())
    def postprocess(fit, app):
        with fz.scratch() as d:
            record(
                "postprocess", f"{fit.mutation}/{app.mutation}", *fz.run_postprocess(fit, app, Path(d), [])
            )

    @cfg(0.75)
    @given(fz.tables(("none",)), st.sampled_from(fz.POSTPROCESS_BAD_OPTIONS))
    def postprocess_options(fit, opts):
        refused = copy.deepcopy(fit)
        refused.expect_refusal = True
        with fz.scratch() as d:
            verdict = fz.run_postprocess(fit, refused, Path(d), fz.fill(list(opts), Path(d)))
            record("postprocess-options", " ".join(opts), *verdict)

    @cfg(0.75)
    @given(fz.spec_cases())
    def specs(case):
        with fz.scratch() as d:
            record("spec", str(case[:2])[:70], *fz.run_spec(case, Path(d)))

    warnings.simplefilter("ignore")
    for fn in (audit_tables, audit_options, postprocess, postprocess_options, specs):
        start = time.perf_counter()
        fn()
        print(f"{fn.__name__}: {time.perf_counter() - start:.1f} s", flush=True)
    total = collections.Counter()
    for kind, c in counts.items():
        total.update(c)
        print(kind, dict(c))
    print("total", dict(total))
    for kind, found in examples.items():
        for (label, verdict), detail in sorted(found.items()):
            print(f"  {kind} {verdict} [{label}] {detail[:160]}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
