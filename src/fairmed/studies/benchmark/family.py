"""The ERM family of the benchmark: ERM and every method derived from the ERM model of one split
(post-processing, FairPrune, SCP), computed once per (configuration, seed) and cached on disk."""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from fairmed.errors import FairmedError, SpecError
from fairmed.schema import Y_SCORE, Y_TRUE
from fairmed.studies.benchmark.run import methods_of, model_spec, not_applicable, train_config
from fairmed.studies.benchmark.settings import CONV_ARCHS, POST_PROCESSING, BenchmarkSettings
from fairmed.studies.kinds import RunSpec
from fairmed.studies.spec import StudySpec


def erm_family(
    spec: StudySpec, settings: BenchmarkSettings, parts: dict, seed: int, reasons: dict
) -> pd.DataFrame:
    """ERM and every method derived from the ERM model of one split: Predictions with ``method``."""
    from fairmed.train import fit_predict

    groups = spec.groups[0] if spec.groups else None
    wanted = set(methods_of(spec))
    prune = [m for m in ("fairprune", "scp") if m in wanted and not reasons.get(m)]
    frames = []
    if prune and _has_conv(spec):
        # conv models: the channel-pruning study's own entry point trains ERM ("vanilla") and prunes it
        from fairmed.studies.pruning import PruningSettings, run_pruning

        names = (
            ["vanilla"]
            + (["fairprune"] if "fairprune" in prune else [])
            + (["scp_vanilla"] if "scp" in prune else [])
        )
        ps = PruningSettings.model_validate({**settings.pruning, "methods": names})
        result = run_pruning(
            parts["train"],
            parts["val"],
            parts["test"],
            groups=groups,
            settings=ps,
            model=spec.model or None,
            config=train_config(spec),
            seed=seed,
            label=spec.label,
        )
        preds = result.predictions.drop(columns="seed")
        preds["method"] = preds["method"].replace({"vanilla": "erm", "scp_vanilla": "scp"})
        erm = preds[preds["method"] == "erm"].drop(columns=["method", "channels"])
        frames += [preds[preds["method"] == m] for m in prune]
    else:
        erm, trained = fit_predict(
            parts["train"],
            parts["val"],
            parts["test"],
            model=spec.model or None,
            strategy="erm",
            config=train_config(spec),
            groups=groups,
            seed=seed,
            label=spec.label,
            return_model=True,
        )
        if "fairprune" in prune:  # MLP / frozen-feature heads: FairPrune on their Linear layers
            frames.append(fairprune_linear(trained, parts, settings, seed).assign(method="fairprune"))
    frames.insert(0, erm.assign(method="erm"))
    tau = float(spec.audit.threshold)
    for method in POST_PROCESSING:
        if method in wanted and not reasons.get(method):
            try:
                frames.append(post_process(erm, method, groups, settings, tau, seed).assign(method=method))
            except FairmedError as exc:  # e.g. a group without positives in val: the others still stand
                frames.append(
                    not_applicable(f"cannot fit on the ERM model's val split: {exc}").assign(method=method)
                )
    return pd.concat(frames, ignore_index=True)


def _has_conv(spec: StudySpec) -> bool:
    mspec = model_spec(spec)
    return not mspec.frozen and mspec.arch in CONV_ARCHS


def fairprune_linear(trained, parts: dict, settings: BenchmarkSettings, seed: int) -> pd.DataFrame:
    """FairPrune of a model without conv layers (every Linear weight; fairmed.mitigate.fairprune), the
    privileged group chosen as in the channel-pruning study (higher validation F1 unless named)."""
    from fairmed.mitigate.pruning import fairprune_model
    from fairmed.studies.pruning import PruningSettings, evaluator
    from fairmed.train.api import predictions_frame
    from fairmed.train.loop import predict_logits

    ps = PruningSettings.model_validate({k: v for k, v in settings.pruning.items() if k != "methods"})
    tr, va, te = (trained.data(parts[k]) for k in ("train", "val", "test"))
    base = evaluator(trained, va, te, trained.task.n_classes)(trained.model)
    names = list(trained.group_names)
    if ps.privileged is not None:
        if ps.privileged not in names:
            raise SpecError(f"benchmark.pruning.privileged {ps.privileged!r} is not a group ({names})")
        priv = names.index(ps.privileged)
    else:
        priv = 0 if base["f1_g0"] >= base["f1_g1"] else 1
    loss = lambda logits, y: trained.task.per_sample(logits, y).mean()  # noqa: E731
    model, _ = fairprune_model(
        trained.model, tr, priv, ps.fairprune_ratio, ps.fairprune_beta, ps.fairprune_batch_size, seed, loss
    )
    frames = []
    for split, data in (("val", va), ("test", te)):
        logits = predict_logits(model, data, trained.config.eval_batch_size, trained.config.amp)
        frames.append(
            predictions_frame(parts[split], trained.task.scores(logits).numpy(), trained.label, split)
        )
    return pd.concat(frames, ignore_index=True)


def post_process(
    erm: pd.DataFrame, method: str, groups, settings: BenchmarkSettings, threshold: float, seed: int = 0
) -> pd.DataFrame:
    """The ERM Predictions after per-group thresholds, reject option or calibrated equalized odds
    fitted on its ``val`` rows. Calibrated equalized odds' mixed score (drawn with ``seed``) is itself
    the post-processed ``y_score``: it stays calibrated, and ``>= threshold`` gives its decisions."""
    from fairmed.data.groups import GroupSpec
    from fairmed.mitigate.thresholds import fit_calibrated_eqodds, fit_reject_option, fit_thresholds

    spec = GroupSpec.parse(groups) if isinstance(groups, str) else GroupSpec.model_validate(groups)
    g = spec.assign(erm).groups.astype(object)
    val = (erm["split"] == "val").to_numpy()
    s, y = erm[Y_SCORE].to_numpy(dtype=float), erm[Y_TRUE].to_numpy()
    if method == "calibrated_eqodds":
        rules = fit_calibrated_eqodds(
            s[val], y[val], g[val], settings.calibrated_cost, threshold=threshold, attribute=spec.name
        )
        out = erm.copy()
        out["y_score_raw"] = s
        out[Y_SCORE] = rules.mixed_scores(s, g.to_numpy(), seed)
        return out
    if method == "thresholds":
        rules = fit_thresholds(
            s[val],
            y[val],
            g[val],
            settings.thresholds_target,
            value=settings.thresholds_value,
            randomize=False,
            tolerance=settings.thresholds_tolerance,
            attribute=spec.name,
        )
    else:
        rules = fit_reject_option(
            s[val],
            y[val],
            g[val],
            settings.reject_criterion,
            threshold=threshold,
            max_accuracy_loss=settings.reject_max_accuracy_loss,
            attribute=spec.name,
        )
    decisions = rules.predict(s, g.to_numpy())
    out = erm.copy()
    out["y_score_raw"] = s
    out[Y_SCORE] = decision_scores(s, decisions, g.fillna("").astype(str).to_numpy(), threshold)
    return out


def decision_scores(
    scores: np.ndarray, decisions: np.ndarray, groups: np.ndarray, threshold: float
) -> np.ndarray:
    """Scores whose ``>= threshold`` gives ``decisions``, monotone in ``scores`` within each group.

    Per group, the cut ``c`` between its highest rejected and lowest accepted score maps to
    ``threshold``: ``s < c -> threshold * s / c``, ``s >= c -> threshold + (1 - threshold)(s - c)/(1 - c)``
    (``c = 0`` when all are accepted, just above 1 when none is). Decisions must be monotone in the
    score within each group (deterministic thresholds, reject option).
    """
    s = np.asarray(scores, dtype=float)
    d = np.asarray(decisions).astype(bool)
    out = np.empty_like(s)
    below = np.nextafter(threshold, -np.inf)
    for name in np.unique(groups):
        m = groups == name
        pos, neg = s[m & d], s[m & ~d]
        if len(pos) and len(neg) and neg.max() >= pos.min():
            raise ValueError(f"decisions of group {name!r} are not a threshold of its scores")
        hi = pos.min() if len(pos) else 1.0 + 1e-9
        lo = neg.max() if len(neg) else 0.0
        c = hi if len(neg) == 0 else (lo + hi) / 2 if len(pos) else max(hi, lo + 1e-12)
        c = min(max(c, 0.0), 1.0 + 1e-9)
        v = s[m]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # the unused branch may overflow
            low = threshold * v / c if c > 0 else np.zeros_like(v)
            high = threshold + (1 - threshold) * (v - c) / (1 - c) if c < 1 else np.full_like(v, threshold)
        mapped = np.where(v < c, low, high)
        out[m] = np.where(d[m], np.maximum(mapped, threshold), np.minimum(mapped, below))
    return np.clip(out, 0.0, 1.0)


@lru_cache(maxsize=1)
def _code_fingerprint() -> str:
    """A hash of fairmed's source files: a code change invalidates cached families."""
    import fairmed

    root = Path(fairmed.__file__).parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def family_key(spec: StudySpec, run: RunSpec, parts: dict) -> str:
    """The cache key of one ERM family: spec, configuration, seed, split tables, code."""
    body = spec.model_dump(mode="json")
    for k in ("name", "description", "profile", "base_dir"):
        body.pop(k, None)
    h = hashlib.sha256(
        json.dumps(
            [body, run.config, run.params.get("source"), run.seed], sort_keys=True, default=str
        ).encode()
    )
    for name in sorted(parts):
        table = parts[name].table
        h.update(name.encode())
        h.update(pd.util.hash_pandas_object(table.astype(str), index=False).to_numpy().tobytes())
        arrays = [a for a in (parts[name].embeddings, parts[name].images) if a is not None]
        for a in arrays:
            h.update(np.ascontiguousarray(a).tobytes())
    h.update(_code_fingerprint().encode())
    return h.hexdigest()[:32]


def cached_family(
    spec: StudySpec, settings: BenchmarkSettings, run: RunSpec, parts: dict, reasons: dict
) -> pd.DataFrame:
    """:func:`erm_family`, computed once per key across processes (file lock) and cached on disk."""
    if not settings.cache:
        return erm_family(spec, settings, parts, run.seed, reasons)
    import fcntl

    from fairmed.io import read_table, write_table
    from fairmed.models.features import default_cache_dir

    root = Path(spec.train.get("cache_dir") or default_cache_dir()) / "benchmark"
    root.mkdir(parents=True, exist_ok=True)
    key = family_key(spec, run, parts)
    target = root / f"{key}.parquet"
    with open(root / f"{key}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the process ends, even if killed
        try:
            if target.exists():
                return read_table(target)
            family = erm_family(spec, settings, parts, run.seed, reasons)
            write_table(family, target)
            return family
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
