"""The audit: Predictions -> Results (per-group metrics, gaps, criteria, bootstrap intervals).

``audit(predictions, attrs=["sex", "fst:12-56"])`` audits every run in the table (grouped by the
run keys present: study, config, method, seed, split) for every grouping, plus the whole
population. Results are tidy (see ``docs/audit.md``):

- per-group rows: ``attribute`` = grouping name (``sex``, ``fst``, ``sex*age``), ``group`` = group
  name, ``metric`` (``auc``, ``tpr``, ...), ``value``, ``ci_low``, ``ci_high``, ``n`` (group size);
- whole-population rows: attribute = group = ``overall``;
- gap rows: ``group`` = the gap form (``difference``, ``ratio``, ``worst``, ``std``, ``ser``),
  ``metric`` = the metric whose gap it is, ``n`` = rows in the grouping;
- criterion rows: ``group`` = ``criterion``, ``metric`` = ``demographic_parity``,
  ``accuracy_parity``, ``equal_opportunity``, ``equalized_odds``, ``eopp0``, ``eopp1``, ``eodd``
  (plus ``*_signed`` for two groups, ``dp_multiclass`` for multi-class tasks);
- every row: ``note`` = why its value is NaN (e.g. a group with a single class has no AUC), else "".

Two-class probabilities (``p_0``, ``p_1``) take the multi-class path, whose criteria average
one-vs-rest over the classes; with C = 2 that average is symmetric (class 0's TPR is class 1's
TNR), so eopp0 == eopp1 and eodd_signed == 0. The audit says so in a warning line; the binary
forms (positive class only) come from passing ``p_1`` as the score.

Intervals come from a stratified bootstrap (resampling within each group, so group sizes are
fixed) computed for all replicates at once from multinomial counts; gaps and criteria get their
intervals from the same replicates as the group values.
"""

from __future__ import annotations

import re
import warnings
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from fairmed.data.groups import GroupSpec
from fairmed.errors import InputError, SpecError
from fairmed.metrics.calibration import DEFAULT_BINS
from fairmed.metrics.criteria import CRITERION, GAP_FORMS, gap_values
from fairmed.metrics.groups import BinaryEngine, choose_threshold
from fairmed.metrics.intervals import wilson_interval
from fairmed.metrics.multiplicity import ADJUSTMENTS, adjust_pvalues
from fairmed.metrics.permutation import permutation_pvalues, pvalue_column, test_ids
from fairmed.metrics.regression import ValuesEngine
from fairmed.metrics.stats import map_chunks, percentile_interval, resample_counts
from fairmed.metrics.validate import (
    as_binary_labels,
    as_class_codes,
    as_codes,
    as_probabilities,
    check_scalar_cells,
    dropped_line,
    require_columns,
)
from fairmed.schema import ID, OVERALL, PROBA_PREFIX, RESULT_COLUMNS, Y_SCORE, Y_TRUE, run_keys_in

THRESHOLD_RULES = ("youden", "f1", "accuracy")
# Results words in the ``group`` column; a data value equal to one is shown as "<value> (group)"
RESERVED_GROUPS = frozenset({OVERALL, CRITERION, *GAP_FORMS, "signed"})
RENAMED_SUFFIX = " (group)"
_PROBA = re.compile(rf"^{re.escape(PROBA_PREFIX)}(\d+)$")


class AuditWarning(UserWarning):
    """Something the reader of an audit should know (also listed in ``AuditResult.warnings``)."""


class SmallGroupWarning(AuditWarning):
    """A group is too small for its estimates to mean much."""


class DataWarning(AuditWarning):
    """Rows were dropped (missing or out-of-group values), groups renamed, or ids duplicated."""


class TwoClassWarning(AuditWarning):
    """Two-class probabilities audited with the multi-class (class-averaged) criteria."""


TWO_CLASS_NOTE = (
    "p_0/p_1 (two classes) are audited as multi-class: eopp0/eopp1/eodd average one-vs-rest over both "
    "classes, so eopp0 == eopp1 and eodd_signed == 0; for the binary (positive class) forms pass the "
    "positive-class probability as the score (--score p_1; score='p_1' in Python)"
)


@dataclass
class AuditResult:
    """Tidy Results of an audit plus the notes (why a value is NaN) and warnings it raised."""

    frame: pd.DataFrame
    notes: pd.DataFrame = field(default_factory=pd.DataFrame)
    warnings: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def keys(self) -> list[str]:
        return run_keys_in(self.frame.columns)

    def to_frame(self) -> pd.DataFrame:
        """Tidy Results: run keys + attribute, group, metric, value, ci_low, ci_high, n, note."""
        return self.frame.copy()

    def _is_group_row(self) -> pd.Series:
        attr = self.frame["attribute"]
        group = self.frame["group"]
        gap_like = group.isin([*GAP_FORMS, CRITERION])
        return (attr != OVERALL) & ~gap_like

    def by_group(self, wide: bool = True) -> pd.DataFrame:
        """Per-group values (overall included): wide (one column per metric) or tidy rows."""
        rows = self.frame[self._is_group_row() | (self.frame["attribute"] == OVERALL)]
        if not wide:
            return rows.reset_index(drop=True)
        index = [*self.keys, "attribute", "group"]
        table = rows.set_index([*index, "metric"])["value"].unstack("metric")
        order = rows.drop_duplicates(index).set_index(index).index
        table = table.reindex(index=order, columns=list(dict.fromkeys(rows["metric"])))
        table.columns.name = None
        return table

    def gaps(self) -> pd.DataFrame:
        """Gap rows (difference, ratio, worst, std, ser) and criterion rows, tidy."""
        rows = self.frame[
            self.frame["group"].isin([*GAP_FORMS, CRITERION]) & (self.frame["attribute"] != OVERALL)
        ]
        return rows.reset_index(drop=True)

    def criteria(self) -> pd.DataFrame:
        return self.frame[self.frame["group"] == CRITERION].reset_index(drop=True)

    def to_markdown(
        self, metrics: Sequence[str] | None = None, digits: int = 3, with_warnings: bool = True
    ) -> str:
        """A readable summary: per run and grouping, a table of groups x metrics with intervals."""
        return render_markdown(self, metrics, digits, with_warnings)


# ------------------------------------------------------------------------------ entry point
def audit(
    predictions: pd.DataFrame,
    attrs: Sequence[str | GroupSpec],
    label: str = Y_TRUE,
    score: str = Y_SCORE,
    threshold: float | str = 0.5,
    bootstrap: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    intersect: bool = False,
    min_group_size: int = 30,
    values: Sequence[str] | None = None,
    *,
    pred: str | None = None,
    task: str = "auto",
    n_bins: int = DEFAULT_BINS,
    val_split: str = "val",
    workers: int = 1,
    permutations: int = 1000,
    adjust: str = "holm",
) -> AuditResult:
    """Audit Predictions: per-group metrics, gaps and criteria with stratified bootstrap CIs.

    - ``attrs``: groupings, as GroupSpecs or their short form (``"sex"``, ``"fst:12-56"``,
      ``"sex*age:60"``); ``intersect=True`` adds the intersection of all of them.
    - binary tasks: ``label`` holds 0/1, ``score`` the positive-class probability; decisions are
      ``score >= threshold``, or the ``pred`` column when given. ``threshold`` may be a rule
      (``"youden"``, ``"f1"``, ``"accuracy"``) chosen per run on the rows whose ``split`` is
      ``val_split`` and applied to all splits of that run.
    - multi-class tasks: probabilities in ``p_0 .. p_{C-1}`` and/or hard decisions in ``pred``.
    - ``values``: per-sample value columns (``recon_mse``, ``latent_std``, ``elbo``) summarised
      per group (mean, median, quartiles); with no label/score they are audited alone.
    - ``bootstrap``: replicates (0: no intervals); ``ci``: interval level; ``seed``: the bootstrap
      seed (each run and grouping gets its own stream derived from it and the run's keys).
    - ``min_group_size``: groups smaller than this get a warning line.
    - ``workers``: threads computing bootstrap chunks (results do not depend on it).
    - ``permutations``: shuffles of the permutation test of every ``difference`` gap row and
      criterion row (``p_value``; 0: no tests); ``adjust``: ``holm``, ``bh`` or ``none``, the
      multiplicity adjustment (``p_adjusted``) over all tested rows of this audit (every run and
      grouping together: one family).
    """
    if not isinstance(predictions, pd.DataFrame):
        raise InputError(f"predictions must be a pandas DataFrame, got {type(predictions).__name__}")
    if bootstrap < 0:
        raise SpecError(f"bootstrap must be >= 0 replicates, got {bootstrap}")
    if permutations < 0:
        raise SpecError(f"permutations must be >= 0 (0: no permutation tests), got {permutations}")
    if adjust not in ADJUSTMENTS:
        raise SpecError(f"adjust {adjust!r}: expected one of {', '.join(ADJUSTMENTS)}")
    if not 0 < ci < 1:
        raise SpecError(f"ci must be a level in (0, 1), e.g. 0.95; got {ci}")
    if n_bins < 1:
        raise SpecError(f"n_bins must be >= 1, got {n_bins}")
    if isinstance(threshold, str) and threshold not in THRESHOLD_RULES:
        raise SpecError(f"threshold {threshold!r}: expected a number or one of {', '.join(THRESHOLD_RULES)}")
    if len(predictions) == 0:
        raise InputError("predictions: the table has no rows")  # (validate.require_rows, named)
    specs = _specs(attrs, intersect)
    data = _prepare(predictions, label, score, pred, values, task)
    keys = run_keys_in(predictions.columns)
    thresholds = _thresholds(predictions, data, keys, threshold, val_split)
    codes, data_lines, dropped = {}, _duplicate_ids(predictions, keys), {}
    for spec in specs:
        all_codes, names, drop_line, renamed = _group_codes(spec, predictions)
        codes[spec.name] = (all_codes, names)
        data_lines += [*renamed, *([drop_line] if drop_line else [])]
        if drop_line:
            dropped[spec.name] = drop_line
    for line in data_lines:
        warnings.warn(line, DataWarning, stacklevel=2)
    frames, notes, lines = [], [], []
    runs = _runs(predictions, keys)
    for key_values, positions in runs:
        run_label = ", ".join(f"{k}={v}" for k, v in zip(keys, key_values))
        run_seed = zlib.crc32(repr(tuple(map(str, key_values))).encode())
        thr = thresholds.get(_without_split(keys, key_values), threshold)
        cache: dict[str, Any] = {}
        groupings = [(OVERALL, (np.zeros(len(positions), dtype=np.int64), [OVERALL]))]
        for spec in specs:
            all_codes, names = codes[spec.name]
            groupings.append((spec.name, _present(all_codes[positions], names)))
        run_pvalues = _run_pvalues(
            data, positions, groupings, permutations, thr, n_bins, cache, workers, (seed, run_seed)
        )
        for g_index, (attribute, (run_codes, names)) in enumerate(groupings):
            where = f" in run {run_label}" if run_label else ""
            if not names:
                raise InputError(
                    f"attribute {attribute!r}: no row{where} falls in any group (all missing or excluded)"
                )
            engines = _engines(data, positions, run_codes, names, thr, n_bins, cache)
            for e_index, engine in enumerate(engines):
                stream = np.random.SeedSequence([seed, run_seed, g_index, e_index])
                rows, why = _evaluate(engine, bootstrap, ci, stream, workers)
                pvals = run_pvalues.get((g_index, e_index), {})
                ids = test_ids(rows["group"], rows["metric"], pvals)
                rows["p_value"] = pvalue_column(ids, pvals)
                rows["_test"] = [None if k is None else f"{g_index}:{e_index}:{k}" for k in ids]
                rows["attribute"] = attribute
                for k, v in zip(keys, key_values):
                    rows[k] = v
                frames.append(rows)
                for group, metric, reason in why:
                    notes.append((*key_values, attribute, group, metric, reason))
            if attribute != OVERALL:
                sizes = np.bincount(run_codes[run_codes >= 0], minlength=len(names))
                for name, size in zip(names, sizes):
                    if size < min_group_size:
                        lines.append(
                            f"group {name!r} of {attribute}{where} has n={size} < {min_group_size}: "
                            "its estimates are unreliable"
                        )
                for name in _empty_groups(specs, attribute, names):
                    lines.append(f"group {name!r} of {attribute}{where} has no rows: left out")
        if isinstance(threshold, str):
            frames.append(_threshold_row(keys, key_values, thr, len(positions)))
    for line in lines:
        warnings.warn(line, SmallGroupWarning, stacklevel=2)
    lines = data_lines + lines
    if data["task"] == "multiclass" and data.get("proba") is not None and data["n_classes"] == 2:
        lines.insert(0, TWO_CLASS_NOTE)
        warnings.warn(TWO_CLASS_NOTE, TwoClassWarning, stacklevel=2)
    note_frame = pd.DataFrame(notes, columns=[*keys, "attribute", "group", "metric", "reason"])
    frame = pd.concat(frames, ignore_index=True)
    frame["p_adjusted"], n_tests = _adjusted(frame, keys, adjust)
    frame = _with_notes(frame[[*keys, *RESULT_COLUMNS]], note_frame, keys)
    frame["n"] = frame["n"].astype(np.int64)
    for attribute, line in dropped.items():  # the count of dropped rows beside each group's n
        at = (
            (frame["attribute"] == attribute)
            & (frame["metric"] == "n")
            & ~frame["group"].isin(RESERVED_GROUPS)
        )
        frame.loc[at, "note"] = line
    options = {
        "attrs": [s.name for s in specs],
        "groups": [
            s.model_dump(mode="json", exclude_defaults=True) for s in specs
        ],  # the report redraws them
        "label": label,
        "score": score,
        "pred": pred,
        "threshold": threshold,
        "bootstrap": bootstrap,
        "ci": ci,
        "seed": seed,
        "intersect": intersect,
        "min_group_size": min_group_size,
        "values": list(values or []),
        "task": data["task"],
        "n_bins": n_bins,
        "workers": workers,
        "permutations": permutations,
        "adjust": adjust,
        "tests": n_tests,
        "data_notes": data_lines,
    }
    return AuditResult(frame=frame, notes=note_frame, warnings=lines, options=options)


# ------------------------------------------------------------------------------ helpers
def _with_notes(frame: pd.DataFrame, notes: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Results plus a ``note`` column: why the value is NaN ("" where there is nothing to say)."""
    on = [*keys, "attribute", "group", "metric"]
    if notes.empty:
        return frame.assign(note="")
    reasons = notes.drop_duplicates(on).rename(columns={"reason": "note"})
    merged = frame.merge(reasons, on=on, how="left", validate="many_to_one")
    merged["note"] = merged["note"].fillna("").astype(object)
    return merged


def _run_pvalues(data, positions, groupings, permutations, thr, n_bins, cache, workers, seeds) -> dict:
    """Permutation p-values of one run: {(grouping index, engine index): {statistic: p}}.

    The engines are built once over all the run's rows as one group (shuffles reuse their sort
    and ranks) and the groupings share the random shuffles (``fairmed.metrics.permutation``).
    """
    tested = [i for i, (attr, (_, names)) in enumerate(groupings) if attr != OVERALL and len(names) >= 2]
    if permutations == 0 or not tested:
        return {}
    every = np.zeros(len(positions), dtype=np.int64)
    codings = [(groupings[i][1][0], len(groupings[i][1][1])) for i in tested]
    out = {}
    for e_index, pooled in enumerate(_engines(data, positions, every, ["all"], thr, n_bins, cache)):
        stream = np.random.SeedSequence([*seeds, e_index, 1])
        for i, pvals in zip(tested, permutation_pvalues(pooled, codings, permutations, stream, workers)):
            out[(i, e_index)] = pvals
    return out


def _adjusted(frame: pd.DataFrame, keys: list[str], method: str) -> tuple[np.ndarray, int]:
    """``p_adjusted`` over the family of this audit: every distinct test of every run and grouping
    (rows that restate another row's statistic, e.g. FNR's gap and TPR's, count once), and the
    number of tests in that family."""
    if "_test" not in frame.columns:
        return np.full(len(frame), np.nan), 0
    tested = frame[frame["_test"].notna()]
    family = tested.drop_duplicates([*keys, "_test"])
    adjusted = pd.Series(adjust_pvalues(family["p_value"].to_numpy(dtype=float), method), index=family.index)
    ids = pd.MultiIndex.from_frame(family[[*keys, "_test"]].astype(str))
    lookup = pd.Series(adjusted.to_numpy(), index=ids)
    out = np.full(len(frame), np.nan)
    if len(tested):
        rows = pd.MultiIndex.from_frame(tested[[*keys, "_test"]].astype(str))
        out[frame.index.get_indexer(tested.index)] = lookup.reindex(rows).to_numpy()
    return out, len(family)


def _specs(attrs, intersect: bool) -> list[GroupSpec]:
    if isinstance(attrs, (str, GroupSpec)):
        attrs = [attrs]
    specs = [a if isinstance(a, GroupSpec) else GroupSpec.parse(str(a)) for a in attrs]
    if not specs:
        raise SpecError("audit needs at least one attribute (e.g. attrs=['sex'])")
    if intersect and len(specs) >= 2:
        specs.append(GroupSpec.intersection(*specs))
    names = [s.name for s in specs]
    if len(set(names)) != len(names) or OVERALL in names:
        raise SpecError(f"attribute names must be distinct and not {OVERALL!r}: {names}")
    return specs


def _proba_columns(frame: pd.DataFrame) -> list[str]:
    found = sorted((int(m.group(1)), c) for c in map(str, frame.columns) if (m := _PROBA.match(c)))
    if not found:
        return []
    ks = [k for k, _ in found]
    if ks != list(range(len(ks))):
        raise InputError(
            f"predictions: probability columns must be {PROBA_PREFIX}0 .. {PROBA_PREFIX}{{C-1}} without gaps, "
            f"got {', '.join(c for _, c in found)}"
        )
    return [c for _, c in found]


def _prepare(frame, label, score, pred, values, task) -> dict[str, Any]:
    """Validate the columns once for the whole table; arrays for the engines."""
    values = list(values or [])
    require_columns(frame, values)
    check_scalar_cells(frame, [label, score, *([pred] if pred else []), *values])
    out: dict[str, Any] = {"values": {v: as_probabilities(frame[v], v, bounded=False) for v in values}}
    proba_cols = _proba_columns(frame)
    if pred is not None:
        require_columns(frame, [pred])
    has_score = score in frame.columns
    if task == "auto":
        if has_score:
            task = "binary"
        elif proba_cols:
            task = "multiclass"
        elif pred is not None and label in frame.columns:
            labels = pd.to_numeric(frame[label], errors="coerce")
            task = "binary" if labels.isin([0, 1]).all() else "multiclass"
        elif values:
            task = "values"
        else:
            require_columns(frame, [label, score])
    out["task"] = task
    if task == "values":
        return out
    require_columns(frame, [label])
    if task == "binary":
        if pred is None:
            require_columns(frame, [score])
        out["y"] = as_binary_labels(frame[label], label)
        out["s"] = as_probabilities(frame[score], score) if has_score else None
        out["pred"] = None if pred is None else as_binary_labels(frame[pred], pred)
    elif task == "multiclass":
        if not proba_cols and pred is None:
            raise InputError(
                f"predictions: multi-class audit needs probability columns {PROBA_PREFIX}0.. or a decision column (pred=)"
            )
        n_classes = len(proba_cols) or None
        out["y"] = as_class_codes(frame[label], n_classes, label)
        out["proba"] = (
            np.column_stack([as_probabilities(frame[c], c) for c in proba_cols]) if proba_cols else None
        )
        out["pred"] = None if pred is None else as_class_codes(frame[pred], n_classes, pred)
        if n_classes is None:
            n_classes = int(max(out["y"].max(), out["pred"].max()) + 1)
        out["n_classes"] = n_classes
    else:
        raise SpecError(f"task {task!r}: expected 'auto', 'binary', 'multiclass' or 'values'")
    return out


def _runs(frame: pd.DataFrame, keys: list[str]) -> list[tuple[tuple, np.ndarray]]:
    if not keys:
        return [((), np.arange(len(frame)))]
    grouped = frame.groupby(keys, sort=False, dropna=False).indices
    return [((k,) if len(keys) == 1 else tuple(k), np.asarray(v)) for k, v in grouped.items()]


def _without_split(keys: list[str], key_values: tuple) -> tuple:
    return tuple(v for k, v in zip(keys, key_values) if k != "split")


def _thresholds(frame, data, keys, threshold, val_split) -> dict[tuple, float]:
    """Per run (ignoring the split key): the threshold chosen on the validation rows."""
    if not isinstance(threshold, str):
        return {}
    if data["task"] != "binary" or data.get("s") is None:
        raise SpecError(f"threshold={threshold!r} needs a binary task with scores")
    if "split" not in frame.columns:
        raise InputError(
            f"threshold={threshold!r} is chosen on validation rows, but there is no 'split' column"
        )
    others = [k for k in keys if k != "split"]
    is_val = (frame["split"].astype(str) == val_split).to_numpy()
    out = {}
    for key_values, positions in _runs(frame, others):
        rows = positions[is_val[positions]]
        if len(rows) == 0:
            where = ", ".join(f"{k}={v}" for k, v in zip(others, key_values)) or "the table"
            raise InputError(f"threshold={threshold!r}: no rows with split={val_split!r} for {where}")
        out[tuple(key_values)] = choose_threshold(data["y"][rows], data["s"][rows], threshold)
    return out


def _threshold_row(keys, key_values, thr, n) -> pd.DataFrame:
    row = {k: [v] for k, v in zip(keys, key_values)}
    row.update(
        attribute=[OVERALL],
        group=[OVERALL],
        metric=["threshold"],
        value=[thr],
        ci_low=[thr],
        ci_high=[thr],
        n=[n],
    )
    return pd.DataFrame(row)


def _group_codes(spec: GroupSpec, frame: pd.DataFrame) -> tuple[np.ndarray, list[str], str, list[str]]:
    """Group codes of every row (the spec is applied to the distinct attribute values only), the
    group names, a line counting the dropped rows ("" if none) and lines naming renamed groups."""
    cols = spec.attributes
    require_columns(frame, dict.fromkeys(cols), "predictions (group attributes)")
    check_scalar_cells(frame, cols)
    sub = frame[list(dict.fromkeys(cols))]
    key = sub.groupby(list(sub.columns), dropna=False, sort=False).ngroup().to_numpy()
    _, first = np.unique(key, return_index=True)
    distinct = sub.iloc[first]  # keeps the input's index: errors name the input row
    assignment = spec.assign(distinct)
    codes, names = as_codes(assignment.groups, len(distinct))
    renamed = [n for n in names if n in RESERVED_GROUPS]
    names = [f"{n}{RENAMED_SUFFIX}" if n in RESERVED_GROUPS else n for n in names]
    lines = [
        f"{spec.name}: group {n!r} is shown as '{n}{RENAMED_SUFFIX}' ({n!r} is a word of the Results table)"
        for n in renamed
    ]
    return codes[key], names, dropped_line(spec.name, assignment, key, distinct), lines


def _duplicate_ids(frame: pd.DataFrame, keys: list[str]) -> list[str]:
    """A line when an id occurs more than once in a run: each row then counts as a sample."""
    if ID not in frame.columns:
        return []
    dup = frame.duplicated([*keys, ID], keep=False).to_numpy()
    if not dup.any():
        return []
    ids = frame.loc[dup, ID].value_counts()
    return [
        f"column {ID!r}: {int(dup.sum())} rows share {len(ids)} duplicate id(s) within a run "
        f"(e.g. {ids.index[0]!r} {int(ids.iloc[0])} times); each row is counted as a separate sample"
    ]


def _present(codes: np.ndarray, names: list[str]) -> tuple[np.ndarray, list[str]]:
    counts = np.bincount(codes[codes >= 0], minlength=len(names))
    keep = np.flatnonzero(counts > 0)
    remap = np.full(len(names) + 1, -1, dtype=np.int64)
    remap[keep] = np.arange(len(keep))
    return remap[codes], [names[i] for i in keep]


def _empty_groups(specs: list[GroupSpec], attribute: str, present: list[str]) -> list[str]:
    for spec in specs:
        if spec.name == attribute:
            known = spec.group_names() or []
            return [g for g in known if g not in present]
    return []


def _engines(data, positions, codes, names, threshold, n_bins, cache: dict) -> list:
    """The engines of one (run, grouping); ``cache`` holds per-run arrays shared by groupings."""
    engines = []
    task = data["task"]
    if task == "binary":
        if "y" not in cache:
            s = None if data["s"] is None else data["s"][positions]
            pred = (s >= threshold).astype(np.int64) if data["pred"] is None else data["pred"][positions]
            order = np.lexsort((pred, np.zeros(len(pred)) if s is None else s))
            cache.update(y=data["y"][positions], s=s, pred=pred, order=order)
        engines.append(
            BinaryEngine(cache["y"], cache["pred"], codes, names, cache["s"], n_bins, cache["order"])
        )
    elif task == "multiclass":
        from fairmed.metrics.multiclass import MulticlassEngine

        proba = None if data["proba"] is None else data["proba"][positions]
        pred = None if data["pred"] is None else data["pred"][positions]
        engines.append(MulticlassEngine(data["y"][positions], codes, names, data["n_classes"], proba, pred))
    if data["values"]:
        engines.append(ValuesEngine({k: v[positions] for k, v in data["values"].items()}, codes, names))
    return engines


def bootstrap_replicates(
    engine, bootstrap: int, seed_seq: np.random.SeedSequence, workers: int = 1
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per-group (B, G) and criterion (B,) replicates of an engine's metrics (chunked, seeded)."""

    def run(rng: np.random.Generator, n_rep: int):
        return engine.evaluate(resample_counts(engine.bounds, n_rep, rng))

    outputs = map_chunks(run, bootstrap, int(engine.bounds[-1]), seed_seq, workers)
    reps = {k: np.concatenate([o[0][k] for o in outputs]) for k in outputs[0][0]}
    crit_reps = {k: np.concatenate([o[1][k] for o in outputs]) for k in outputs[0][1]}
    return reps, crit_reps


def _evaluate(engine, bootstrap: int, ci: float, seed_seq: np.random.SeedSequence, workers: int = 1):
    """Point values and bootstrap intervals of one engine -> (tidy rows without run keys, notes)."""
    bounds = engine.bounds
    n_total = int(bounds[-1])
    point, crit = engine.evaluate(np.ones((1, n_total)))
    point = {k: v[0] for k, v in point.items()}
    crit = {k: v[0] for k, v in crit.items()}
    multi = len(engine.groups) >= 2
    gaps = {m: gap_values(v, m) for m, v in point.items() if m != "n"} if multi else {}
    if bootstrap > 0:
        reps, crit_reps = bootstrap_replicates(engine, bootstrap, seed_seq, workers)
        ci_group = {k: percentile_interval(v, ci) for k, v in reps.items()}
        ci_crit = {k: percentile_interval(v, ci) for k, v in crit_reps.items()}
        ci_gap = {m: {f: percentile_interval(r, ci) for f, r in gap_values(reps[m], m).items()} for m in gaps}
    sizes = np.diff(bounds).astype(np.int64)
    cols: dict[str, list] = {c: [] for c in ("group", "metric", "value", "ci_low", "ci_high", "n")}

    def add(group, metric, value, lo, hi, n):
        cols["group"].extend(group)
        cols["metric"].extend(metric)
        cols["value"].extend(np.asarray(value, dtype=float).ravel())
        cols["ci_low"].extend(np.asarray(lo, dtype=float).ravel())
        cols["ci_high"].extend(np.asarray(hi, dtype=float).ravel())
        cols["n"].extend(n)

    nan_g = np.full(len(engine.groups), np.nan)
    if bootstrap > 0:  # proportions k / n: Wilson intervals, honest also at 0 and 1
        ci_group.update(
            {m: wilson_interval(point[m] * den, den, ci) for m, den in engine.proportions(point).items()}
        )
    for m, v in point.items():
        lo, hi = ci_group[m] if bootstrap > 0 else (nan_g, nan_g)
        add(engine.groups, [m] * len(v), v, lo, hi, sizes)
    for m, forms in gaps.items():
        for form, value in forms.items():
            lo, hi = ci_gap[m][form] if bootstrap > 0 else (np.nan, np.nan)
            add([form], [m], [value], [lo], [hi], [n_total])
    for m, value in crit.items():
        lo, hi = ci_crit[m] if bootstrap > 0 else (np.nan, np.nan)
        add([CRITERION], [m], [value], [lo], [hi], [n_total])
    return _with_mdg(pd.DataFrame(cols), point if multi else {}), engine.reasons(point)


def _with_mdg(rows: pd.DataFrame, point: dict[str, np.ndarray]) -> pd.DataFrame:
    """The ``mdg`` column: on ``difference`` rows of TPR, FPR, accuracy and AUC, the minimum gap
    this grouping could detect (80% power, alpha 0.05; :mod:`fairmed.metrics.power`), else NaN."""
    from fairmed.metrics.power import audit_mdg

    mdg = audit_mdg(point)
    where = (rows["group"] == "difference").to_numpy()
    rows["mdg"] = np.where(where, rows["metric"].map(mdg).to_numpy(dtype=float), np.nan)
    return rows


# ------------------------------------------------------------------------------ markdown
# binary first, then the multi-class additions (accuracy serves both)
DEFAULT_SHOWN = ("auc", "accuracy", "tpr", "fpr", "ppv", "selection_rate", "ece", "f1_macro", "auc_ovr")


def _fmt(value: float, lo: float, hi: float, digits: int) -> str:
    """``value [lo, hi]`` with ``digits`` decimals; a value that would show fewer than two
    significant digits (an MSE of 0.004) gets ``digits`` significant digits, its interval alike."""
    if np.isnan(value):
        return "NaN"
    small = value != 0 and abs(value) < 10.0 ** (1 - digits)
    decimals = digits - 1 - int(np.floor(np.log10(abs(value)))) if small else digits
    text = f"{value:.{decimals}f}"
    if not (np.isnan(lo) or np.isnan(hi)):
        text += f" [{lo:.{decimals}f}, {hi:.{decimals}f}]"
    return text


def md_table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub-flavoured Markdown table (header row, separator, one line per row)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def render_markdown(
    result: AuditResult, metrics: Sequence[str] | None, digits: int = 3, with_warnings: bool = True
) -> str:
    frame = result.frame
    keys = result.keys
    present = list(dict.fromkeys(frame["metric"]))
    if metrics is None:
        shown = [m for m in DEFAULT_SHOWN if m in present]
        shown += [m for m in present if m.endswith(("_mean", "_median"))]
        shown = shown or [m for m in present if m not in {"n", "threshold"}][:6]
    else:
        shown = [m for m in metrics if m in present]
    out = []
    runs = frame.groupby(keys, sort=False, dropna=False) if keys else [((), frame)]
    for key_values, run in runs:
        if keys:
            kv = key_values if isinstance(key_values, tuple) else (key_values,)
            out.append("### " + ", ".join(f"{k}={v}" for k, v in zip(keys, kv)))
        for attribute, rows in run.groupby("attribute", sort=False):
            groups = [g for g in dict.fromkeys(rows["group"]) if g != CRITERION]
            table = []
            for group in groups:
                sub = rows[rows["group"] == group].set_index("metric")
                n = sub["n"].iloc[0] if len(sub) else 0
                cells = [str(group), str(int(n)) if group not in GAP_FORMS else ""]
                for m in shown:
                    if m in sub.index:
                        r = sub.loc[m]
                        cells.append(_fmt(r["value"], r["ci_low"], r["ci_high"], digits) + _fmt_p(r))
                    else:
                        cells.append("")
                if group in GAP_FORMS and group not in ("difference", "signed", "ratio"):
                    continue
                table.append(cells)
            out.append(f"**{attribute}**\n\n" + md_table(["group", "n", *shown], table))
            crit = rows[rows["group"] == CRITERION]
            if not crit.empty:
                crows = [
                    [r["metric"], _fmt(r["value"], r["ci_low"], r["ci_high"], digits) + _fmt_p(r)]
                    for _, r in crit.iterrows()
                ]
                out.append(md_table(["criterion", f"{attribute}: value [CI]"], crows))
    if "p_adjusted" in frame.columns and frame["p_adjusted"].notna().any():
        adjust = result.options.get("adjust", "holm")
        how = {"holm": "Holm-adjusted", "bh": "Benjamini-Hochberg-adjusted", "none": "unadjusted"}[adjust]
        out.append(
            f"p: permutation test of the gap (group labels shuffled within label strata, "
            f"{result.options.get('permutations')} shuffles), {how} over all {result.options.get('tests')} tests of "
            "this audit. The difference interval (max - min) is biased upward and is not a test."
        )
    if with_warnings and result.warnings:
        out.append("\n".join(f"warning: {w}" for w in result.warnings))
    return "\n\n".join(out) + "\n"


def _fmt_p(row) -> str:
    p = row.get("p_adjusted", np.nan)
    if p is None or np.isnan(p):
        return ""
    return f" p={p:.3g}" if p >= 0.001 else " p<0.001"
