"""Fuzz `fairmed audit`, `fairmed postprocess` and `fairmed run` with malformed inputs (in process).

1,000 generated cases in all (about 250 tables, 250 pairs of tables, 250 option sets, 250 specs),
each held to the invariant of tests/fuzz_support.py: exit code 2 with one line on stderr, or a
success whose numbers scikit-learn confirms and that says what it dropped, renamed or doubted.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fuzz_support as fz

FAST = settings(deadline=None, database=None, suppress_health_check=list(HealthCheck), derandomize=True)


def _hold(verdict: tuple[str, str], case) -> None:
    assert verdict[0] == "ok", f"{verdict[0]}: {verdict[1]} [{case}]"


def test_audit_holds_the_invariant_on_malformed_tables():
    with fz.scratch() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore")

        @settings(FAST, max_examples=250)
        @given(fz.tables())
        def check(table):
            _hold(fz.run_audit(table, Path(folder), []), table.mutation)

        check()


def test_audit_refuses_bad_options_in_one_line():
    with fz.scratch() as folder:

        @settings(FAST, max_examples=100)
        @given(fz.tables(("none",)), st.sampled_from(fz.BAD_OPTIONS))
        def check(table, options):
            table.expect_refusal = True
            _hold(fz.run_audit(table, Path(folder), fz.fill(list(options), Path(folder))), options)

        check()


def test_postprocess_holds_the_invariant_on_malformed_tables():
    with fz.scratch() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore")

        @settings(FAST, max_examples=250)
        @given(fz.tables(), fz.tables())
        def check(fit, apply):
            _hold(fz.run_postprocess(fit, apply, Path(folder), []), (fit.mutation, apply.mutation))

        check()


def test_postprocess_refuses_bad_options_in_one_line():
    with fz.scratch() as folder:

        @settings(FAST, max_examples=150)
        @given(fz.tables(("none",)), st.sampled_from(fz.POSTPROCESS_BAD_OPTIONS))
        def check(table, options):
            refused = copy.deepcopy(table)
            refused.expect_refusal = True  # every option set here is invalid
            _hold(
                fz.run_postprocess(table, refused, Path(folder), fz.fill(list(options), Path(folder))),
                options,
            )

        check()


def test_run_refuses_malformed_specs_before_any_data_is_read():
    with fz.scratch() as folder:

        @settings(FAST, max_examples=250)
        @given(fz.spec_cases())
        def check(case):
            _hold(fz.run_spec(case, Path(folder)), case[:2])

        check()
