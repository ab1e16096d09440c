"""The three specs of a training run: model (ModelSpec), strategy (StrategySpec), loop (TrainConfig).

All are pydantic models with defaults that run on a 2-core CPU, so a study YAML only names
what it changes. :func:`as_spec` turns a dict, a name or a spec into a spec with a one-line
:class:`~fairmed.errors.SpecError` on bad input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from fairmed.errors import SpecError
from fairmed.models.spec import Activation, ModelSpec

AmpMode = Literal["auto", "on", "off"]
StrategyName = Literal[
    "erm", "reweight", "resample", "multitask", "adversarial", "groupdro",
    "domainind", "laftr", "cfair", "lnl", "end", "odr", "swa", "swad", "sam", "gsam",
]  # fmt: skip
# the spec entry of every strategy (its module registers the same name: fairmed.train.strategies)
STRATEGIES: tuple[str, ...] = StrategyName.__args__


class StrategySpec(BaseModel):
    """How the loss is formed (see :mod:`fairmed.train.strategies` for each strategy and its paper).

    ``loss``: per-sample loss; ``auto`` = binary cross-entropy on one logit for two classes,
    cross-entropy for more; ``ce`` = softmax cross-entropy (two logits for a binary task);
    ``gce`` = generalized cross-entropy ``(1 - p_y^q) / q`` (Zhang & Sabuncu 2018) with ``gce_q``.
    ``by_label``: the cells of ``reweight`` / ``resample`` / ``groupdro`` are group x label
    (True) or group only. ``aux_weight``: weight of the multitask second head's loss (1 = equal).
    ``adv_lambda``: the penalty lambda of ``adversarial``; ``adv_mode``: ``reversal`` (one step
    through a gradient reversal layer) or ``alternating`` (three updates per batch: task head;
    group head; encoder on ``L_task - lambda L_group``: the sex-ratio paper's optimisation).
    ``aux_hidden``: hidden layer widths of the multitask/adversarial/LNL group head (0 or [] =
    linear; an int is one layer), each followed by ``aux_activation``. ``dro_eta``: GroupDRO step size of the group
    weights; ``dro_adjust``: Sagawa's generalization adjustment C (loss + C / sqrt(n_g)).
    ``single_group``: multitask/adversarial on a training set holding one group: refuse
    (``error``) or train anyway (``allow``: the group head then has nothing to tell apart, e.g. the
    sex-ratio study's all-female / all-male compositions).

    ``balance``: cell balancing on top of any other strategy (``resample`` + ``swad`` is MEDFAIR's
    resamplingSWAD). The MEDFAIR methods' settings (defaults: MEDFAIR's ``parse_args.py``):
    ``laftr_variant`` / ``class_coeff`` / ``fair_coeff`` / ``aud_steps`` (laftr), ``cfair_mu``,
    ``lnl_lambda``, ``end_alpha`` / ``end_beta``, ``odr_lambda_e`` / ``odr_lambda_od`` /
    ``odr_gamma_e`` / ``odr_gamma_od`` / ``odr_step_size``, ``swa_start`` / ``swa_lr`` /
    ``swa_anneal_epochs``, ``swad_n_converge`` / ``swad_n_tolerance`` / ``swad_tolerance_ratio`` /
    ``swad_metric``, ``sam_rho`` / ``sam_adaptive``, ``gsam_rho`` / ``gsam_alpha`` (MEDFAIR's GSAM
    code fixes rho 0.04 -> 0.02 and alpha 0.01, not its command-line flags).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: StrategyName = "erm"
    loss: Literal["auto", "bce", "ce", "gce"] = "auto"
    gce_q: float = Field(0.7, gt=0.0, le=1.0)
    by_label: bool = True
    aux_weight: float = Field(1.0, ge=0.0)
    adv_lambda: float = Field(5.0, ge=0.0)
    adv_mode: Literal["reversal", "alternating"] = "reversal"
    aux_hidden: list[int] = Field([], description="group head hidden widths (an int: one layer, 0: none)")
    aux_activation: Activation = "relu"
    dro_eta: float = Field(0.01, gt=0.0)
    dro_adjust: float = Field(0.0, ge=0.0)
    single_group: Literal["error", "allow"] = Field(
        "error",
        description="multitask/adversarial on a training set holding one group: refuse, or train anyway"
        " (the group head then sees a constant target; the sex-ratio study's M100/F100 sets)",
    )
    balance: Literal["none", "reweight", "resample"] = "none"
    laftr_variant: Literal["dp", "eqodd", "eqopp"] = "eqodd"
    class_coeff: float = Field(1.0, ge=0.0)
    fair_coeff: float = Field(1.0, ge=0.0)
    aud_steps: int = Field(1, ge=1)
    cfair_mu: float = Field(0.1, ge=0.0)
    lnl_lambda: float = Field(0.1, ge=0.0)
    end_alpha: float = Field(0.1, ge=0.0)
    end_beta: float = Field(0.1, ge=0.0)
    odr_lambda_e: float = Field(0.1, ge=0.0)
    odr_lambda_od: float = Field(0.1, ge=0.0)
    odr_gamma_e: float = Field(0.1, gt=0.0)
    odr_gamma_od: float = Field(0.1, gt=0.0)
    odr_step_size: int = Field(20, ge=1)
    swa_start: int = Field(7, ge=1)
    swa_lr: float = Field(1e-4, gt=0.0)
    swa_anneal_epochs: int = Field(3, ge=1)
    swad_n_converge: int = Field(3, ge=1)
    swad_n_tolerance: int = Field(6, ge=1)
    swad_tolerance_ratio: float = Field(0.05, ge=0.0)
    swad_metric: Literal["loss", "worst_group_auc"] = "loss"
    sam_rho: float = Field(2.0, gt=0.0)
    sam_adaptive: bool = True
    gsam_rho: float = Field(0.04, gt=0.0)
    gsam_alpha: float = Field(0.01, ge=0.0)

    @field_validator("aux_hidden", mode="before")
    @classmethod
    def _one_layer(cls, v):
        if isinstance(v, int) and not isinstance(v, bool):
            return [v] if v > 0 else []
        return v

    @model_validator(mode="after")
    def _combination(self) -> StrategySpec:
        if any(h < 1 for h in self.aux_hidden):
            raise SpecError(f"strategy.aux_hidden: widths must be positive, got {self.aux_hidden}")
        if self.balance != "none" and self.name in ("reweight", "resample"):
            raise SpecError(
                f"strategy.balance: {self.balance!r} adds balancing to another strategy;"
                f" {self.name!r} already balances (use name: erm, balance: {self.name})"
            )
        return self


class TrainConfig(BaseModel):
    """Settings of the one training loop (:func:`fairmed.train.loop.fit`).

    ``select``: model selection on the validation set, by overall AUC (macro one-vs-rest for
    multi-class), the worst group's AUC, or the lowest validation loss; ``last`` keeps the final
    epoch's model (the validation set is still scored). ``patience``: stop after
    this many epochs without improvement (0 = never stop early). ``device``: ``auto`` = CUDA when
    present. ``amp``: mixed precision, ``auto`` on CUDA only (bfloat16 where supported, else float16
    with a grad scaler), ``on`` also on the CPU (bfloat16 autocast: worth it on CPUs with bfloat16
    units), ``off`` never; ``true``/``false`` mean ``auto``/``off``. ``augment``: random horizontal and
    vertical flips of image batches; ``skin`` the SCP code's augmentation (affine, colour jitter,
    AutoAugment, cutout, then flips; :mod:`fairmed.train.augment`). ``nesterov``: Nesterov momentum
    for SGD. ``step_size``: epochs per x0.1 of the ``step`` schedule (default epochs // 3).
    ``sampler``: ``class_balanced`` draws each epoch's rows with probability 1 / (size of the row's
    class), as a class-weighted sampler (a strategy's own sampling is then replaced). ``checkpoint_dir``: the best state is saved there atomically.
    ``cache_dir``: where frozen features (and decoded images) are cached; default
    ``$FAIRMED_CACHE`` or ``~/.cache/fairmed``. ``num_threads``: torch CPU threads during the run
    (None: 1 for MLP heads on embeddings/features on the CPU, torch's setting for images).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: int = Field(10, ge=1)
    batch_size: int = Field(64, ge=1)
    lr: float = Field(1e-3, gt=0.0)
    optimizer: Literal["adam", "sgd"] = "adam"
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    nesterov: bool = False
    weight_decay: float = Field(0.0, ge=0.0)
    scheduler: Literal["cosine", "step", "none"] = "cosine"
    step_size: int | None = Field(None, ge=1)
    sampler: Literal["uniform", "class_balanced"] = "uniform"
    patience: int = Field(0, ge=0)
    select: Literal["auc", "worst_group_auc", "loss", "last"] = "auc"
    device: str = "auto"
    amp: AmpMode = "auto"
    augment: Literal["none", "flip", "skin"] = "none"
    seed: int = 0
    checkpoint_dir: Path | None = None
    cache_dir: Path | None = None
    num_threads: int | None = Field(None, ge=1)
    eval_batch_size: int = Field(512, ge=1)

    @field_validator("amp", mode="before")
    @classmethod
    def _amp_bool(cls, v):
        return {True: "auto", False: "off"}.get(v, v) if isinstance(v, bool) else v


S = TypeVar("S", bound=BaseModel)


def as_spec(cls: type[S], value: S | dict | str | None, what: str) -> S:
    """``value`` as a ``cls`` spec: a spec, a dict of fields, a strategy/arch name, or None (defaults)."""
    if isinstance(value, cls):
        return value
    if value is None:
        value = {}
    if isinstance(value, str):
        key = "name" if cls is StrategySpec else "arch"
        value = {key: value}
    if isinstance(value, BaseModel):
        value = value.model_dump()
    if not isinstance(value, dict):
        raise SpecError(f"{what}: expected a mapping of settings, got {type(value).__name__}")
    try:
        return cls.model_validate(value)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise SpecError(f"{what}.{loc}: {err['msg']} (got {err.get('input')!r})") from None


__all__ = ["STRATEGIES", "ModelSpec", "StrategySpec", "TrainConfig", "as_spec"]
