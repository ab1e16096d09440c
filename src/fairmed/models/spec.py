"""ModelSpec: which network a run trains, as data (round-trips through YAML study specs)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from fairmed.errors import SpecError

# the named architectures; any other torchvision classification model name is accepted too
Arch = Literal["small_cnn", "resnet18", "resnet50", "vgg11", "densenet121", "mlp"]
IMAGE_ARCHS: tuple[str, ...] = ("small_cnn", "resnet18", "resnet50", "vgg11", "densenet121")
_ARCH_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class ModelSpec(BaseModel):
    """A classifier: an image backbone (or an MLP on embeddings) plus a task head.

    - ``small_cnn`` (default): conv blocks of ``channels`` (~94k parameters at 32-64-128), fast on 2 CPU cores;
    - ``resnet18`` / ``resnet50`` / ``vgg11`` / ``densenet121`` (MEDFAIR's chest X-ray backbone), or
      any other torchvision classification model by its name (``efficientnet_b0``, ``convnext_tiny``,
      ...): the torchvision architecture with its last ``Linear`` layer removed (the feature width is
      that layer's input width) and a new head for the task; ``weights`` is a local torchvision
      ``state_dict`` file (nothing is downloaded);
    - ``mlp``: the chest X-ray paper's head on embeddings, one hidden layer of ``hidden`` (196) units
      (``hidden=0``: logistic regression).

    ``frozen=True`` runs the image backbone once per cohort, caches its features on disk, and trains an
    MLP head of ``hidden`` units on them (the shared representation for multitask/adversarial heads).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    arch: str = Field(
        "small_cnn",
        description="small_cnn, resnet18, resnet50, vgg11, densenet121, mlp, or a torchvision model name",
    )
    image_size: int = Field(32, ge=8, le=1024, description="images are resized to this square size")
    weights: Path | None = Field(None, description="local torchvision state_dict (torch.load weights_only)")
    frozen: bool = Field(False, description="train a head on cached frozen backbone features")
    hidden: int = Field(196, ge=0, description="MLP hidden units (mlp arch and frozen heads); 0 = linear")
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    channels: list[int] = Field([32, 64, 128], min_length=1, description="small_cnn conv widths")

    @model_validator(mode="after")
    def _check(self) -> ModelSpec:
        if not _ARCH_NAME.match(self.arch):
            raise SpecError(
                f"model.arch: {self.arch!r} is not an architecture name (one of {', '.join(Arch.__args__)},"
                " or a torchvision model name such as efficientnet_b0)"
            )
        if self.arch == "mlp" and self.frozen:
            raise SpecError("model: 'frozen' applies to image backbones, not arch 'mlp' (already embeddings)")
        if any(c < 1 for c in self.channels):
            raise SpecError(f"model.channels must be positive, got {self.channels}")
        return self

    @property
    def on_images(self) -> bool:
        return self.arch != "mlp"
