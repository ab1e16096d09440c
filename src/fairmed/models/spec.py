"""ModelSpec: which network a run trains, as data (round-trips through YAML study specs)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from fairmed.errors import SpecError

# the named architectures; any other torchvision classification model name is accepted too
Activation = Literal["relu", "tanh"]  # of hidden layers in heads
Arch = Literal["small_cnn", "resnet18", "resnet50", "vgg11", "densenet121", "mlp"]
IMAGE_ARCHS: tuple[str, ...] = ("small_cnn", "resnet18", "resnet50", "vgg11", "densenet121")
# torchvision 0.29's classification models with a final Linear (squeezenet has none); a spec is checked
# against this list without importing torch (tests/test_backbones_torchvision.py: each one builds)
TORCHVISION_ARCHS: tuple[str, ...] = (
    "alexnet", "convnext_base", "convnext_large", "convnext_small", "convnext_tiny", "densenet121",
    "densenet161", "densenet169", "densenet201", "efficientnet_b0", "efficientnet_b1",
    "efficientnet_b2", "efficientnet_b3", "efficientnet_b4", "efficientnet_b5", "efficientnet_b6",
    "efficientnet_b7", "efficientnet_v2_l", "efficientnet_v2_m", "efficientnet_v2_s", "googlenet",
    "inception_v3", "maxvit_t", "mnasnet0_5", "mnasnet0_75", "mnasnet1_0", "mnasnet1_3",
    "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small", "regnet_x_16gf", "regnet_x_1_6gf",
    "regnet_x_32gf", "regnet_x_3_2gf", "regnet_x_400mf", "regnet_x_800mf", "regnet_x_8gf",
    "regnet_y_128gf", "regnet_y_16gf", "regnet_y_1_6gf", "regnet_y_32gf", "regnet_y_3_2gf",
    "regnet_y_400mf", "regnet_y_800mf", "regnet_y_8gf", "resnet101", "resnet152", "resnet18",
    "resnet34", "resnet50", "resnext101_32x8d", "resnext101_64x4d", "resnext50_32x4d",
    "shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0",
    "swin_b", "swin_s", "swin_t", "swin_v2_b", "swin_v2_s", "swin_v2_t", "vgg11", "vgg11_bn",
    "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn", "vit_b_16", "vit_b_32",
    "vit_h_14", "vit_l_16", "vit_l_32", "wide_resnet101_2", "wide_resnet50_2",
)  # fmt: skip


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

    ``head_hidden``: hidden layers of the task head (``[256]``: two fully connected layers, the
    sex-ratio paper's baseline head), each followed by ``head_activation``. ``head_shared``: those
    layers belong to the shared representation instead, so that a strategy's group head reads them
    (multitask: one shared hidden layer, then the task and the group outputs, the same paper's
    three fully connected layers, as its authors' code builds them).
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
    head_hidden: list[int] = Field([], description="hidden layer widths of the task head ([] = linear)")
    head_activation: Activation = "relu"
    head_shared: bool = Field(False, description="head_hidden layers are shared with strategies' group heads")

    @model_validator(mode="after")
    def _check(self) -> ModelSpec:
        if self.arch not in Arch.__args__ and self.arch not in TORCHVISION_ARCHS:
            raise SpecError(
                f"model.arch: {self.arch!r} is not a known architecture: {', '.join(Arch.__args__)}, or a"
                " torchvision classification model (efficientnet_b0, convnext_tiny, ...: models.spec.TORCHVISION_ARCHS)"
            )
        if self.arch == "mlp" and self.frozen:
            raise SpecError("model: 'frozen' applies to image backbones, not arch 'mlp' (already embeddings)")
        if any(c < 1 for c in self.channels):
            raise SpecError(f"model.channels must be positive, got {self.channels}")
        if any(h < 1 for h in self.head_hidden):
            raise SpecError(f"model.head_hidden: widths must be positive, got {self.head_hidden}")
        if self.head_shared and not self.head_hidden:
            raise SpecError(
                "model.head_shared: true needs head_hidden layers to share (e.g. head_hidden: [256])"
            )
        return self

    @property
    def on_images(self) -> bool:
        return self.arch != "mlp"
