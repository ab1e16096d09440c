"""Study kind ``benchmark``: every fairmed mitigation on the same cohort, splits and seeds (MEDFAIR-style).

Runs: configurations x methods x seeds. A configuration is an injected bias *mechanism*: overrides
deep-merged over the study's ``source`` (e.g. a generator with dark skin rare, or with label noise in
dark skin); a real-data study has one configuration. Methods:

- training strategies (the spec's ``strategies``): ``erm``, ``reweight``, ``resample``, ``multitask``,
  ``adversarial``, ``groupdro`` — :func:`fairmed.train.fit_predict`;
- ``gce``: GCE-guided resampling (:func:`fairmed.mitigate.gce.resample_and_fit`);
- ``thresholds`` / ``reject_option`` / ``calibrated_eqodds``: post-processing of the ERM model's
  scores (:mod:`fairmed.mitigate.thresholds`, fitted on the ERM model's validation Predictions);
- ``fairprune`` / ``scp``: FairPrune and SNNL channel pruning of the ERM model
  (:func:`fairmed.studies.pruning.run_pruning`).

Every method sees the same split of a configuration and seed, and the same ``train`` settings
(model selection ``train.select`` included). The methods that start from the ERM model (ERM
itself, thresholds, reject option, calibrated equalized odds, FairPrune, SCP: the "ERM family") are computed together, once
per configuration and seed, and kept in a deterministic on-disk cache (``<cache>/benchmark/<key>
.parquet``, key = a hash of the spec, configuration, seed, split tables and fairmed's source code;
``<cache>`` = ``train.cache_dir`` / ``$FAIRMED_CACHE`` / ``~/.cache/fairmed``) behind a per-key
file lock: whichever of these runs comes first trains ERM and derives the others; the rest wait for
the lock and read. So the runner's runs stay separate (one run = one method, audited as usual) and
ERM is trained once. ``benchmark.cache: false`` recomputes the family in each of those runs instead
(same result on CPU).

Post-processed decisions enter the Predictions through ``y_score``: within each group the ERM score is
mapped monotonically so that the group's fitted threshold lands on the audit threshold (exact:
``y_score >= threshold`` reproduces the rule's decisions; the raw score stays in ``y_score_raw``).
Per-group AUCs are therefore the ERM model's; overall AUC is that of the group-recalibrated score.
Rules are deterministic (``randomize=False``): Hardt et al.'s randomised equalized-odds rules cannot be
carried by one score column (use ``fairmed postprocess`` for them). Calibrated equalized odds is
randomised too, but its output is a score (some rows take their group's base rate, drawn with the
run's seed), which is its ``y_score`` as it stands.

A method that cannot apply (SCP on an MLP or frozen-feature head: no conv layer; FairPrune/SCP with
other than two groups; post-processing and GCE on a multi-class label) returns one row with split
``not_applicable`` and a ``note``; the tables list it with its reason instead of dropping it.

``analyse`` writes ``tables/benchmark_runs`` (one row per run: accuracy, AUC, TPR, FPR overall,
worst group and gap, the criteria, FATE of each gap against ERM of the same seed),
``benchmark_summary`` (per configuration, method and measure: mean, 95 % t-interval over seeds, the
paired difference to ERM and its p-value and stars), ``benchmark_pareto`` (mean accuracy vs gap, the
Pareto front marked), ``benchmark_notes`` (methods not applicable, and why) and ``benchmark_groups``
(each configuration's test-split group sizes), ``benchmark_selection`` (each method under each
model-selection rule on validation: :mod:`.selection`) and ``benchmark_ranks`` /
``benchmark_friedman`` (average ranks over mechanisms, the Friedman test and Nemenyi's critical
difference: :mod:`.ranking`).

Modules: :mod:`.settings` (names, the spec block), :mod:`.run` (the grid and one run), :mod:`.family`
(the cached ERM family), :mod:`.analyse`, :mod:`.selection`, :mod:`.ranking`.
"""

from __future__ import annotations

from fairmed.studies.benchmark.analyse import (
    add_fate,
    analyse,
    group_sizes,
    notes_table,
    pareto_table,
    run_table,
    statements,
    summary_table,
)
from fairmed.studies.benchmark.family import cached_family, decision_scores, erm_family, post_process
from fairmed.studies.benchmark.run import applicability, execute, expand, mechanism_spec, methods_of
from fairmed.studies.benchmark.settings import (
    BASE_METRICS,
    CONV_ARCHS,
    CRITERIA,
    ERM_FAMILY,
    FAMILY,
    GAPS,
    KIND,
    MITIGATIONS,
    NOT_APPLICABLE,
    POST_PROCESSING,
    STRATEGIES,
    BenchmarkFields,
    BenchmarkSettings,
    GceSettings,
    Mechanism,
    label_of,
)
from fairmed.studies.kinds import StudyKind

STUDY_KIND = StudyKind(
    name=KIND,
    expand=expand,
    execute=execute,
    analyse=analyse,
    fields=BenchmarkFields,
    description="every fairmed mitigation on the same cohort, splits and seeds, per injected bias mechanism",
    baseline_keys=("method",),  # a method against ERM of its own mechanism
    cross_validation=True,
)

__all__ = [
    "BASE_METRICS",
    "CONV_ARCHS",
    "CRITERIA",
    "ERM_FAMILY",
    "FAMILY",
    "GAPS",
    "KIND",
    "MITIGATIONS",
    "NOT_APPLICABLE",
    "POST_PROCESSING",
    "STRATEGIES",
    "STUDY_KIND",
    "BenchmarkFields",
    "BenchmarkSettings",
    "GceSettings",
    "Mechanism",
    "add_fate",
    "analyse",
    "applicability",
    "cached_family",
    "decision_scores",
    "erm_family",
    "execute",
    "expand",
    "group_sizes",
    "label_of",
    "mechanism_spec",
    "methods_of",
    "notes_table",
    "pareto_table",
    "post_process",
    "run_table",
    "statements",
    "summary_table",
]
