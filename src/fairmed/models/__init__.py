"""Models: classifiers as ``features`` + ``head`` (small CNN, ResNet, VGG, MLP) and frozen-feature caching."""

from fairmed.models.backbones import Classifier, build_backbone, build_head_model, build_model, load_weights
from fairmed.models.spec import ModelSpec

__all__ = ["Classifier", "ModelSpec", "build_backbone", "build_head_model", "build_model", "load_weights"]
