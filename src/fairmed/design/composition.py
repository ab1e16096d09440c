"""Training-set composition by linear programming: the largest set that keeps given ratios.

A *cell* is one combination of the label and the sensitive attributes (``malignant`` x
``sex`` x ``age``: "malignant & female & <60"); the cell table says how many samples
each cell has available. A design asks for a count per cell such that

- no cell uses more than it has (``0 <= x_c <= available_c``);
- every :class:`Ratio` holds exactly: ``sum(numerator cells) : sum(denominator cells) = p : q``,
  optionally once *within* each combination of other dimensions (female : male = 3 : 1
  within each class; <60 : >=60 = 1 : 1 within each sex and class);
- every :class:`Bound` holds (``min <= sum(selected cells) <= max``: a fixed size, a floor);
- the linear objective (default: the number of positive-label cases, as in Zietlow-style
  "maximise the malignant cases") is as large as possible, and among those designs the
  total is as large as possible (the *largest* training set).

Solved with HiGHS through :func:`scipy.optimize.linprog`. Papers report the continuous
optimum rounded to the nearest integer (F75M25 has 809 = round(2426 / 3) male cases), so
that is the default; the integer counts per cell come from a tiny *controlled rounding*
problem that keeps every reported margin (each ratio side, each bound and objective set)
at the nearest integer of its continuous value. ``integer=True`` solves the exact integer
problem with :func:`scipy.optimize.milp` instead, which satisfies every constraint exactly.

When no non-empty design exists, a deletion filter (as for an irreducible infeasible
subset) finds the constraints that together make it impossible and names them in the error.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator
from scipy.optimize import Bounds, LinearConstraint, linprog, milp

from fairmed.errors import FairmedError, SpecError

AVAILABLE = "available"
SOLVED = "solved"
COUNT = "count"
LABEL_ALIAS = "label"
_RESERVED = frozenset({AVAILABLE, SOLVED, COUNT, "cell"})

SelectorValue = str | int | float | list[str | int | float]


class InfeasibleDesign(FairmedError):
    """No non-empty design satisfies the constraints; the message names the binding ones."""


class Ratio(BaseModel):
    """``sum(numerator) : sum(denominator) = ratio`` (``within``: once per combination of those dims).

    ``ratio`` is a number (``3`` or ``0.333``), a string ``"75:25"``, or a pair ``[75, 25]``;
    ``"1:0"`` means the denominator is empty, ``"0:1"`` the numerator. A selector maps
    dimension -> value or list of values; ``{}`` selects every cell; the label dimension may
    be called ``label``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    numerator: dict[str, SelectorValue] = Field(default_factory=dict)
    denominator: dict[str, SelectorValue] = Field(default_factory=dict)
    ratio: float | str | tuple[float, float] = 1.0
    within: list[str] = Field(default_factory=list)
    name: str | None = None

    @field_validator("ratio")
    @classmethod
    def _check_ratio(cls, v):
        _as_fraction(v)
        return v

    @property
    def terms(self) -> tuple[int, int]:
        """The ratio as coprime integers ``(p, q)``: ``q * numerator = p * denominator``."""
        return _as_fraction(self.ratio)

    def describe(self) -> str:
        if self.name:
            return self.name
        p, q = self.terms
        within = f" within {'/'.join(self.within)}" if self.within else ""
        return f"{_fmt_selector(self.numerator)} : {_fmt_selector(self.denominator)} = {p}:{q}{within}"


class Bound(BaseModel):
    """``min <= sum(selected cells) <= max`` (a fixed size is ``min == max``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    select: dict[str, SelectorValue] = Field(default_factory=dict)
    min: float | None = Field(None, ge=0)
    max: float | None = Field(None, ge=0)
    name: str | None = None

    def describe(self) -> str:
        if self.name:
            return self.name
        lo = "" if self.min is None else f"{_num(self.min)} <= "
        hi = "" if self.max is None else f" <= {_num(self.max)}"
        return f"{lo}n({_fmt_selector(self.select)}){hi}"


class Term(BaseModel):
    """One part of the objective: ``weight * sum(selected cells)``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    select: dict[str, SelectorValue] = Field(default_factory=dict)
    weight: float = 1.0


@dataclass(frozen=True)
class _Row:
    """One linear constraint ``lo <= coef @ x <= hi`` with its human name and the cell sets it reports."""

    name: str
    coef: np.ndarray
    lo: float
    hi: float
    sets: tuple[np.ndarray, ...] = ()


@dataclass
class Composition:
    """A solved design: ``counts`` has the cell dimensions, ``available``, ``solved`` (continuous
    optimum, or the integer one) and ``count`` (the integers to sample)."""

    counts: pd.DataFrame
    dims: list[str]
    objective: float
    integer: bool
    seconds: float
    constraints: list[str] = field(default_factory=list)
    _rows: list[_Row] = field(default_factory=list, repr=False)

    @property
    def total(self) -> int:
        return int(self.counts[COUNT].sum())

    def margins(self, by: Sequence[str] | str, value: str = COUNT) -> pd.Series:
        """Counts summed over the other dimensions (``by=["malignant", "sex"]`` is Table 1)."""
        by = [by] if isinstance(by, str) else list(by)
        return self.counts.groupby(by, observed=True, sort=False)[value].sum()

    def reported(self, by: Sequence[str] | str) -> pd.Series:
        """Margins as a paper reports them: the continuous sums rounded to the nearest integer."""
        return np.floor(self.margins(by, SOLVED) + 0.5).astype(np.int64)

    def violations(self, value: str = COUNT, tol: float = 1e-6) -> list[str]:
        """Names of constraints the ``value`` column breaks (empty for a ``integer=True`` design)."""
        x = self.counts[value].to_numpy(dtype=float)
        out = [r.name for r in self._rows if not (r.lo - tol <= r.coef @ x <= r.hi + tol)]
        over = x > self.counts[AVAILABLE].to_numpy(dtype=float) + tol
        out += [f"available[{n}]" for n in _cell_names(self.counts, self.dims)[over]]
        return out


# --------------------------------------------------------------------- public entry
def design_composition(
    cells: pd.DataFrame,
    ratios: Sequence[Ratio | Mapping] = (),
    bounds: Sequence[Bound | Mapping] = (),
    objective: Sequence[Term | Mapping] | None = None,
    *,
    label: str | None = None,
    positive: str | None = None,
    integer: bool = False,
    min_objective: float = 1.0,
) -> Composition:
    """Solve for the count of every cell; see the module docstring for the problem.

    ``cells``: one row per cell, one column per dimension plus ``available`` (``inf`` = no limit).
    ``objective`` defaults to the cells of ``positive`` (default: the last class) of the
    ``label`` dimension (default: the first column). ``min_objective``: a design whose
    objective is below this is refused as infeasible (the all-zero set always satisfies ratios).
    """
    started = time.perf_counter()
    cells, dims = _check_cells(cells)
    ratios = [r if isinstance(r, Ratio) else Ratio.model_validate(r) for r in ratios]
    bounds = [b if isinstance(b, Bound) else Bound.model_validate(b) for b in bounds]
    label = label or dims[0]
    if label not in dims:
        raise SpecError(f"composition: label dimension {label!r} is not a cell column (have {dims})")
    if objective is None:
        values = list(pd.unique(cells[label].astype(str)))
        positive = positive if positive is not None else values[-1]
        objective = [Term(select={label: positive})]
    terms = [t if isinstance(t, Term) else Term.model_validate(t) for t in objective]
    weights = np.zeros(len(cells))
    for t in terms:
        weights += t.weight * _mask(cells, dims, t.select, label, "objective").astype(float)
    if not np.any(weights):
        raise SpecError("composition: the objective selects no cell")

    rows = [row for r in ratios for row in _ratio_rows(cells, dims, r, label)]
    rows += [_bound_row(cells, dims, b, label) for b in bounds]
    avail = cells[AVAILABLE].to_numpy(dtype=float)
    goal = _Row(f"objective >= {_num(min_objective)} (a non-empty design)", weights, min_objective, np.inf)
    names = _cell_names(cells, dims)

    x, opt = _solve(weights, rows, avail, integer, goal, names)
    # stage 2: among designs with the best objective, the largest one
    keep = _Row("objective at its optimum", weights, opt - 1e-9 * max(1.0, abs(opt)), np.inf)
    try:
        x2 = _optimise(np.ones(len(cells)), [*rows, keep], avail, integer)
    except SpecError:
        free = names[~np.isfinite(avail)]
        raise SpecError(
            f"composition: the training set can grow without limit: cells {', '.join(free[:4])} have no"
            " availability limit and no ratio ties them to the objective (add a Ratio or a Bound)"
        ) from None
    if x2 is not None:
        x = x2
    x = np.where(np.abs(x - np.round(x)) < 1e-6, np.round(x), x)
    x = np.clip(x, 0.0, avail)
    count = x.astype(np.int64) if integer else _controlled_round(x, avail, rows, weights)
    table = cells.copy()
    table[SOLVED] = x
    table[COUNT] = count
    return Composition(
        counts=table,
        dims=dims,
        objective=float(weights @ x),
        integer=integer,
        seconds=time.perf_counter() - started,
        constraints=[r.name for r in rows],
        _rows=rows,
    )


# --------------------------------------------------------------------- cells and selectors
def select_cells(cells: pd.DataFrame, select: Mapping, label: str | None = None) -> np.ndarray:
    """Boolean mask of the cells matching a selector (``{}``: all; ``label`` aliases the label dim)."""
    dims = [c for c in cells.columns if c not in _RESERVED]
    return _mask(cells.astype({d: str for d in dims}), dims, select, label or dims[0], "selector")


def _check_cells(cells: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    if AVAILABLE not in cells.columns:
        raise SpecError(
            f"composition: the cell table needs an {AVAILABLE!r} column (have {list(cells.columns)})"
        )
    dims = [c for c in cells.columns if c not in _RESERVED]
    if not dims:
        raise SpecError("composition: the cell table has no dimension columns")
    cells = cells[[*dims, AVAILABLE]].reset_index(drop=True).copy()
    for d in dims:
        cells[d] = cells[d].astype(str)
    avail = pd.to_numeric(cells[AVAILABLE], errors="coerce")
    bad = avail.isna() | (avail < 0)
    if bad.any():
        raise SpecError(
            f"composition: '{AVAILABLE}' must be a count >= 0 (or inf); bad at cells "
            f"{', '.join(_cell_names(cells, dims)[bad.to_numpy()][:5])}"
        )
    cells[AVAILABLE] = avail.astype(float)
    dup = cells.duplicated(dims)
    if dup.any():
        raise SpecError(f"composition: cell {_cell_names(cells, dims)[dup.to_numpy()][0]!r} appears twice")
    return cells, dims


def _cell_names(cells: pd.DataFrame, dims: Sequence[str]) -> np.ndarray:
    parts = cells[list(dims)].astype(str)
    return parts.agg(" & ".join, axis=1).to_numpy(dtype=object) if len(cells) else np.array([], dtype=object)


def _mask(cells: pd.DataFrame, dims: Sequence[str], selector: Mapping, label: str, what: str) -> np.ndarray:
    """Cells matching every ``dimension: value(s)`` of the selector; unknown names are spec errors."""
    keep = np.ones(len(cells), dtype=bool)
    for key, value in selector.items():
        dim = label if key == LABEL_ALIAS and key not in dims else key
        if dim not in dims:
            raise SpecError(f"composition {what}: unknown dimension {key!r} (cells have {', '.join(dims)})")
        wanted = [_str(v) for v in (value if isinstance(value, (list, tuple)) else [value])]
        present = set(cells[dim])
        unknown = [w for w in wanted if w not in present]
        if unknown:
            raise SpecError(
                f"composition {what}: {dim} has no value {unknown[0]!r} (values: {', '.join(sorted(present))})"
            )
        keep &= cells[dim].isin(wanted).to_numpy()
    return keep


def _ratio_rows(cells: pd.DataFrame, dims: list[str], ratio: Ratio, label: str) -> list[_Row]:
    p, q = ratio.terms
    num = _mask(cells, dims, ratio.numerator, label, f"ratio {ratio.describe()!r}")
    den = _mask(cells, dims, ratio.denominator, label, f"ratio {ratio.describe()!r}")
    within = [label if w == LABEL_ALIAS and w not in dims else w for w in ratio.within]
    for w in within:
        if w not in dims:
            raise SpecError(f"composition ratio {ratio.describe()!r}: unknown 'within' dimension {w!r}")
    if not within:
        blocks = [(np.ones(len(cells), dtype=bool), "")]
    else:
        keys = cells[within].astype(str).agg(" & ".join, axis=1).to_numpy(dtype=object)
        blocks = [(keys == k, f" [{k}]") for k in pd.unique(keys)]
    rows = []
    for block, suffix in blocks:
        n, d = num & block, den & block
        coef = q * n.astype(float) - p * d.astype(float)
        rows.append(_Row(f"ratio {ratio.describe()}{suffix}", coef, 0.0, 0.0, (n, d)))
    return rows


def _bound_row(cells: pd.DataFrame, dims: list[str], bound: Bound, label: str) -> _Row:
    sel = _mask(cells, dims, bound.select, label, f"bound {bound.describe()!r}")
    lo = 0.0 if bound.min is None else float(bound.min)
    hi = np.inf if bound.max is None else float(bound.max)
    if lo > hi:
        raise SpecError(f"composition bound {bound.describe()!r}: min {lo:g} > max {hi:g}")
    return _Row(f"bound {bound.describe()}", sel.astype(float), lo, hi, (sel,))


# --------------------------------------------------------------------- solving
def _optimise(
    weights: np.ndarray, rows: Sequence[_Row], avail: np.ndarray, integer: bool
) -> np.ndarray | None:
    """Maximise ``weights @ x``; None when infeasible; raises on an unbounded objective."""
    n = len(weights)
    ub = np.where(np.isfinite(avail), avail, np.inf)
    if integer:
        cons = [
            LinearConstraint(np.vstack([r.coef for r in rows]), [r.lo for r in rows], [r.hi for r in rows])
        ]
        res = milp(-weights, constraints=cons if rows else None, integrality=np.ones(n), bounds=Bounds(0, ub))
    else:
        a_eq = [r.coef for r in rows if r.lo == r.hi]
        b_eq = [r.lo for r in rows if r.lo == r.hi]
        a_ub = [r.coef for r in rows if r.lo != r.hi and np.isfinite(r.hi)]
        b_ub = [r.hi for r in rows if r.lo != r.hi and np.isfinite(r.hi)]
        a_ub += [-r.coef for r in rows if r.lo != r.hi and r.lo > 0]
        b_ub += [-r.lo for r in rows if r.lo != r.hi and r.lo > 0]
        res = linprog(
            -weights,
            A_ub=np.vstack(a_ub) if a_ub else None,
            b_ub=b_ub or None,
            A_eq=np.vstack(a_eq) if a_eq else None,
            b_eq=b_eq or None,
            bounds=[(0, None if np.isinf(u) else u) for u in ub],
            method="highs",
        )
    if res.status == 0:
        return np.asarray(res.x, dtype=float)
    if res.status == 2 or (
        integer and res.status == 3 and res.x is None and "infeasible" in res.message.lower()
    ):
        return None
    if res.status == 3:
        raise SpecError(
            "composition: the objective is unbounded; some selected cells have no availability limit"
            " (give them an 'available' count or a Bound)"
        )
    raise FairmedError(f"composition: the solver failed ({res.message})")


def _solve(
    weights: np.ndarray, rows: list[_Row], avail: np.ndarray, integer: bool, goal: _Row, names: np.ndarray
) -> tuple[np.ndarray, float]:
    x = _optimise(weights, [*rows, goal] if goal.lo > 0 else rows, avail, integer)
    if x is None:
        raise InfeasibleDesign(_explain(rows, avail, integer, goal, names))
    return x, float(weights @ x)


def _explain(rows: list[_Row], avail: np.ndarray, integer: bool, goal: _Row, names: np.ndarray) -> str:
    """Deletion filter: drop each constraint in turn, keep it only if the rest becomes feasible.

    What remains is an irreducible infeasible subset: every member is binding.
    """
    finite = np.flatnonzero(np.isfinite(avail))
    members: list[tuple[str, int]] = (
        [("goal", 0)] + [("row", i) for i in range(len(rows))] + [("avail", int(c)) for c in finite]
    )

    def feasible(active: list[tuple[str, int]]) -> bool:
        keep_rows = [rows[i] for k, i in active if k == "row"]
        if ("goal", 0) in active:
            keep_rows.append(goal)
        ub = np.full(len(avail), np.inf)
        for k, i in active:
            if k == "avail":
                ub[i] = avail[i]
        zero = np.zeros(len(avail))
        try:
            return _optimise(zero, keep_rows, ub, integer) is not None
        except FairmedError:
            return True

    active = list(members)
    for m in members:
        trial = [a for a in active if a != m]
        if not feasible(trial):
            active = trial
    text = []
    for k, i in active:
        if k == "goal":
            text.append(goal.name)
        elif k == "row":
            text.append(rows[i].name)
        else:
            text.append(f"available[{names[i]}] = {_num(avail[i])}")
    kind = "integer " if integer else ""
    return f"composition infeasible: no {kind}design satisfies together: {'; '.join(text)}"


def _controlled_round(x: np.ndarray, avail: np.ndarray, rows: list[_Row], weights: np.ndarray) -> np.ndarray:
    """Integers within one of ``x`` whose reported margins are the nearest integers of the continuous ones.

    Every ratio side, bound set, objective set and single cell is a margin with target
    ``round(sum x)``; the deviations are weighted by the margin's number of cells, so a
    coarse margin (male malignant: 809) wins over a fine one (one age band: 404 or 405).
    Bounds stay hard where possible. A MILP with a handful of variables: milliseconds.
    """
    n = len(x)
    lo = np.floor(x)
    hi = np.minimum(np.ceil(x), avail)
    frac = hi > lo
    if not frac.any():
        return lo.astype(np.int64)
    sets: dict[bytes, np.ndarray] = {}
    candidates = [s for r in rows for s in r.sets] + [weights != 0] + list(np.eye(n, dtype=bool))
    for s in candidates:
        s = np.asarray(s, dtype=bool)
        if s.any():
            sets.setdefault(np.packbits(s).tobytes() + bytes([n % 256]), s)
    masks = np.array(list(sets.values()), dtype=float)  # (m, n)
    target = np.floor(masks @ x + 0.5)
    size = masks.sum(axis=1)
    m = len(masks)
    # variables: n counts, m positive deviations, m negative deviations
    cost = np.concatenate([np.zeros(n), size, size])
    a = np.hstack([masks, -np.eye(m), np.eye(m)])
    cons = [LinearConstraint(a, target, target)]
    hard = [r for r in rows if r.lo != r.hi]
    if hard:
        cons.append(
            LinearConstraint(
                np.hstack([np.vstack([r.coef for r in hard]), np.zeros((len(hard), 2 * m))]),
                [np.ceil(r.lo - 1e-9) for r in hard],
                [np.floor(r.hi + 1e-9) if np.isfinite(r.hi) else np.inf for r in hard],
            )
        )
    integrality = np.concatenate([np.ones(n), np.zeros(2 * m)])
    var_bounds = Bounds(np.concatenate([lo, np.zeros(2 * m)]), np.concatenate([hi, np.full(2 * m, np.inf)]))
    res = milp(cost, constraints=cons, integrality=integrality, bounds=var_bounds)
    if res.status != 0 and len(cons) > 1:
        res = milp(cost, constraints=cons[:1], integrality=integrality, bounds=var_bounds)
    if res.status != 0:  # cannot happen (the box always holds a point); plain rounding as a fallback
        return np.minimum(np.floor(x + 0.5), avail).astype(np.int64)
    return np.round(res.x[:n]).astype(np.int64)


# --------------------------------------------------------------------- small helpers
def _as_fraction(value) -> tuple[int, int]:
    """``3``, ``0.25``, ``"75:25"``, ``[75, 25]`` -> coprime ``(p, q)``; ``"1:0"`` -> ``(1, 0)``."""
    if isinstance(value, str):
        a, sep, b = value.partition(":")
        if not sep:
            a, b = value, "1"
        try:
            pair = (float(a), float(b))
        except ValueError:
            raise SpecError(f"ratio {value!r}: expected a number or 'a:b' (e.g. '75:25')") from None
    elif isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise SpecError(f"ratio {value!r}: expected a pair [a, b]")
        pair = (float(value[0]), float(value[1]))
    else:
        pair = (float(value), 1.0)
    a, b = pair
    if not (np.isfinite(a) and np.isfinite(b)) or a < 0 or b < 0 or a == b == 0:
        raise SpecError(f"ratio {value!r}: both terms must be finite, >= 0 and not both 0")
    if b == 0:
        return (1, 0)
    frac = (Fraction(a).limit_denominator(10**6) / Fraction(b).limit_denominator(10**6)).limit_denominator(
        10**6
    )
    return (frac.numerator, frac.denominator)


def _str(v) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _num(v: float) -> str:
    return "inf" if np.isinf(v) else (str(int(v)) if float(v).is_integer() else f"{v:g}")


def _fmt_selector(selector: Mapping) -> str:
    if not selector:
        return "all"
    return ",".join(
        f"{k}={'|'.join(map(_str, v)) if isinstance(v, (list, tuple)) else _str(v)}"
        for k, v in selector.items()
    )


__all__ = [
    "AVAILABLE",
    "COUNT",
    "SOLVED",
    "Bound",
    "Composition",
    "InfeasibleDesign",
    "Ratio",
    "Term",
    "design_composition",
    "select_cells",
]
