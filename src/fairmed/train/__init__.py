"""Training: one loop (:mod:`.loop`), pluggable strategies (:mod:`.strategies`), Cohorts in, Predictions out.

The call studies use is :func:`fit_predict`; :func:`train_model` returns the trained model
(predict further cohorts, fine-tune); :func:`fit` is the loop itself on tensors.
"""

from fairmed.models.spec import ModelSpec
from fairmed.train.api import Trained, fit_predict, model_inputs, predictions_frame, train_model
from fairmed.train.config import STRATEGIES, StrategySpec, TrainConfig, as_spec
from fairmed.train.data import TensorData, group_codes, tensor_data
from fairmed.train.loop import FitResult, fit, predict_logits, resolve_device
from fairmed.train.strategies import Strategy, Task, make_strategy

__all__ = [
    "STRATEGIES",
    "FitResult",
    "ModelSpec",
    "Strategy",
    "StrategySpec",
    "Task",
    "TensorData",
    "TrainConfig",
    "Trained",
    "as_spec",
    "fit",
    "fit_predict",
    "group_codes",
    "make_strategy",
    "model_inputs",
    "predict_logits",
    "predictions_frame",
    "resolve_device",
    "tensor_data",
    "train_model",
]
