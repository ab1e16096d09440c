"""The benchmark's settings: its method names and families, its measures, and the ``benchmark:`` block
of the spec (mechanisms, post-processing and pruning options, the gap and test of the analysis)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from fairmed.errors import SpecError
from fairmed.train.config import STRATEGIES as TRAIN_STRATEGIES

KIND = "benchmark"
STRATEGIES = TRAIN_STRATEGIES  # every training strategy (the MEDFAIR methods included)
MITIGATIONS = ("gce", "thresholds", "reject_option", "calibrated_eqodds", "fairprune", "scp")
ERM_FAMILY = ("erm", "thresholds", "reject_option", "calibrated_eqodds", "fairprune", "scp")
POST_PROCESSING = ("thresholds", "reject_option", "calibrated_eqodds")
FAMILY = {
    "erm": "in-processing",
    "reweight": "in-processing",
    "resample": "in-processing",
    "multitask": "in-processing",
    "adversarial": "in-processing",
    "groupdro": "in-processing",
    "gce": "pre-processing",
    "thresholds": "post-processing",
    "reject_option": "post-processing",
    "calibrated_eqodds": "post-processing",
    "fairprune": "pruning",
    "scp": "pruning",
}
NOT_APPLICABLE = "not_applicable"  # the split of a method's row that says why it did not run
CONV_ARCHS = ("small_cnn", "vgg11", "resnet18", "resnet50")

# measures per run: (column, attribute kind, Results group, Results metric)
BASE_METRICS = ("accuracy", "auc", "tpr", "fpr")
CRITERIA = ("equal_opportunity", "equalized_odds", "demographic_parity")
GAPS = tuple(f"{m}_gap" for m in BASE_METRICS) + CRITERIA
HIGHER_IS_BETTER = {"accuracy": True, "auc": True, "tpr": True, "fpr": False}


class Mechanism(BaseModel):
    """One configuration: a name and the source overrides that inject the mechanism.

    ``replace_source``, ``model`` and ``train`` let one configuration run on other data with
    another model (e.g. generated images with a small CNN next to embedding configurations, so
    that SCP, which prunes conv channels, has results); every method of the configuration still
    shares its splits, seeds, model and training settings."""

    model_config = ConfigDict(extra="forbid")

    name: str
    source: dict[str, Any] = Field(default_factory=dict, description="deep-merged over the study's source")
    description: str = ""
    replace_source: bool = Field(False, description="'source' replaces the study's source instead")
    model: dict[str, Any] | None = Field(
        None, description="this configuration's model (default: the study's)"
    )
    train: dict[str, Any] = Field(default_factory=dict, description="deep-merged over the study's train")

    def run_params(self) -> dict[str, Any]:
        """The run parameters of the configuration (only the overrides it sets, so the run keys of
        source-only configurations stay what they were)."""
        out: dict[str, Any] = {"source": self.source}
        if self.replace_source:
            out["replace_source"] = True
        if self.model is not None:
            out["model"] = self.model
        if self.train:
            out["train"] = self.train
        return out


class GceSettings(BaseModel):
    """The ``gce`` method's settings (fairmed.mitigate.gce.resample_and_fit)."""

    model_config = ConfigDict(extra="forbid")

    resampling: dict[str, Any] = Field(default_factory=dict, description="ResamplingConfig fields")
    detector_loss: Literal["gce", "bce"] = "gce"
    gce_q: float = Field(0.7, gt=0.0, le=1.0)


class BenchmarkSettings(BaseModel):
    """The kind's ``benchmark:`` block."""

    model_config = ConfigDict(extra="forbid")

    mitigations: list[str] = Field(
        default_factory=lambda: list(MITIGATIONS),
        description="methods beyond the training strategies: " + ", ".join(MITIGATIONS),
    )
    mechanisms: list[Mechanism] = Field(default_factory=lambda: [Mechanism(name="data")])
    thresholds_target: Literal["equal_opportunity", "demographic_parity", "tpr", "fpr"] = "equal_opportunity"
    thresholds_value: float | None = Field(None, description="the rate of target tpr / fpr")
    thresholds_tolerance: float = Field(0.02, ge=0.0, description="largest realised gap on val")
    reject_criterion: Literal["equal_opportunity", "demographic_parity"] = "equal_opportunity"
    reject_max_accuracy_loss: float = Field(0.05, ge=0.0, le=1.0)
    calibrated_cost: Literal["fpr", "fnr", "weighted"] = Field(
        "weighted", description="calibrated_eqodds: the generalized rate (or weighted cost) to equalise"
    )
    gce: GceSettings = Field(default_factory=GceSettings)
    pruning: dict[str, Any] = Field(
        default_factory=dict,
        description="PruningSettings fields (scp, fairprune_ratio, fairprune_beta, finetune)",
    )
    gap: str = Field("equal_opportunity", description="the gap of the Pareto table, FATE and the statements")
    accuracy: Literal["accuracy", "auc"] = "accuracy"
    test: Literal["ttest", "wilcoxon"] = Field("ttest", description="paired test vs ERM over seeds")
    cache: bool = True

    @model_validator(mode="after")
    def _check(self) -> BenchmarkSettings:
        bad = [m for m in self.mitigations if m not in MITIGATIONS]
        if bad or len(set(self.mitigations)) != len(self.mitigations):
            raise SpecError(
                f"benchmark.mitigations: {self.mitigations} (expected distinct names of {MITIGATIONS})"
            )
        if self.gap not in GAPS:
            raise SpecError(f"benchmark.gap: {self.gap!r} (expected one of {', '.join(GAPS)})")
        names = [m.name for m in self.mechanisms]
        if not names or len(set(names)) != len(names):
            raise SpecError(f"benchmark.mechanisms: names must be distinct and at least one (got {names})")
        if self.pruning:
            from fairmed.studies.pruning import PruningSettings

            PruningSettings.model_validate({k: v for k, v in self.pruning.items() if k != "methods"})
        return self


class BenchmarkFields(BaseModel):
    """The kind's own top-level field: ``benchmark`` (see :class:`BenchmarkSettings`)."""

    model_config = ConfigDict(extra="forbid")

    benchmark: BenchmarkSettings = Field(default_factory=BenchmarkSettings)


LABELS = {
    "accuracy": "accuracy",
    "auc": "AUC",
    "tpr": "TPR",
    "fpr": "FPR",
    "equal_opportunity": "equal-opportunity gap (TPR difference)",
    "equalized_odds": "equalized-odds gap",
    "demographic_parity": "demographic-parity gap",
}


def label_of(measure: str) -> str:
    """A readable name of a run-table column."""
    if measure.startswith("fate_"):
        return f"FATE of the {label_of(measure[5:])}"
    for suffix, text in (("_worst", "worst-group {}"), ("_gap", "{} gap")):
        if measure.endswith(suffix):
            return text.format(LABELS.get(measure[: -len(suffix)], measure[: -len(suffix)]))
    return LABELS.get(measure, measure)
