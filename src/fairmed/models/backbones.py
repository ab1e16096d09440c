"""Classifiers as ``features`` (input -> (n, feature_dim)) followed by ``head`` (-> logits).

Every model fairmed trains is a :class:`Classifier` with two parts, so that strategies can put
extra heads on the shared features (multitask, adversarial), the frozen path can cache what
``features`` computes, and pruning can walk the convolutions:

- ``small_cnn``: ``features`` is a plain ``nn.Sequential`` of blocks ``Conv2d(3x3, no bias) ->
  BatchNorm2d -> ReLU -> MaxPool2d(2)`` (one per entry of ``channels``) ending in
  ``AdaptiveAvgPool2d(1) -> Flatten``. Removing output channel ``k`` of block ``b`` means slicing
  ``features[4b]`` (conv, dim 0), ``features[4b+1]`` (batch norm) and the next conv's input
  (dim 1), or the head's ``Linear`` input after the last block.
- ``resnet18`` / ``resnet50``: the torchvision network with ``fc`` replaced by ``Identity``.
- ``vgg11``: torchvision ``features``, ``avgpool``, ``Flatten`` and the classifier without its
  last layer (4096 features).
- ``densenet121`` and any other torchvision classification model by name (``torchvision.models.
  list_models``): the network with its last ``Linear`` layer (the classifier: ``classifier``,
  ``fc``, ``heads.head``, ...) replaced by ``Identity``; the feature width is that layer's input
  width (1024 for DenseNet-121).
- ``mlp``: ``Linear(d, hidden) -> ReLU`` (``Identity`` when ``hidden=0``) on embeddings.

``head`` is ``nn.Sequential(Dropout(p), [Linear -> activation]*, Linear(..., n_out))`` with the
spec's ``head_hidden`` layers (none by default); ``head_shared`` moves those layers to the end of
``features`` (the width strategies' heads read).
Pretrained weights come only from a local torchvision ``state_dict`` file read with
``torch.load(weights_only=True)``; the classification layer is dropped and replaced for the task.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from fairmed.errors import DataError, SpecError, first_rows
from fairmed.models.spec import ModelSpec

# key prefix of the torchvision classification layer, dropped from pretrained state_dicts
_HEAD_PREFIX = {"resnet18": "fc.", "resnet50": "fc.", "vgg11": "classifier.6.", "small_cnn": "head."}


class Classifier(nn.Module):
    """``head(features(x))``; ``feature_dim`` is the width of the shared representation."""

    def __init__(self, features: nn.Module, head: nn.Module, feature_dim: int, arch: str = "") -> None:
        super().__init__()
        self.features = features
        self.head = head
        self.feature_dim = int(feature_dim)
        self.arch = arch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


_AFFINE: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}


def _affine(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """``scale = 1 / (255 std)`` and ``shift = -mean / std`` per channel, made once per device."""
    if device not in _AFFINE:
        mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float64)
        std = torch.tensor(IMAGENET_STD, dtype=torch.float64)
        scale = (1.0 / (255.0 * std)).float().view(1, 3, 1, 1).to(device)
        shift = (-mean / std).float().view(1, 3, 1, 1).to(device)
        _AFFINE[device] = (scale, shift)
    return _AFFINE[device]


def image_batch(
    pixels: torch.Tensor, augment: bool = False, generator: torch.Generator | None = None
) -> torch.Tensor:
    """uint8 NHWC -> normalised float32 NCHW: one cast-and-transpose copy, one multiply-add.

    ``(x / 255 - mean) / std`` with the ImageNet mean/std that torchvision weights expect;
    ``augment`` flips each image horizontally and/or vertically with probability 1/2.
    """
    n, h, w, _ = pixels.shape
    x = torch.empty((n, 3, h, w), dtype=torch.float32, device=pixels.device)
    x.copy_(pixels.permute(0, 3, 1, 2))
    scale, shift = _affine(pixels.device)
    x.mul_(scale).add_(shift)
    if augment:
        flips = torch.rand(n, 2, generator=generator).lt(0.5).to(x.device, non_blocking=True)
        x = torch.where(flips[:, 0].view(n, 1, 1, 1), x.flip(3), x)
        x = torch.where(flips[:, 1].view(n, 1, 1, 1), x.flip(2), x)
    return x


_ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh}


def dense_layers(
    in_dim: int, hidden: int | Sequence[int], activation: str = "relu"
) -> tuple[list[nn.Module], int]:
    """``Linear -> activation`` per hidden width (an int is one layer, 0 none) and the output width."""
    widths = ([hidden] if hidden > 0 else []) if isinstance(hidden, int) else list(hidden)
    layers: list[nn.Module] = []
    for width in widths:
        layers += [nn.Linear(in_dim, width), _ACTIVATIONS[activation]()]
        in_dim = width
    return layers, in_dim


def mlp_head(in_dim: int, n_out: int, hidden: int | Sequence[int] = 0, activation: str = "relu") -> nn.Module:
    """``Linear`` (no hidden layer) or ``Linear -> activation -> ... -> Linear``."""
    layers, width = dense_layers(in_dim, hidden, activation)
    out = nn.Linear(width, n_out)
    return nn.Sequential(*layers, out) if layers else out


def make_head(
    feature_dim: int, n_out: int, dropout: float = 0.0, hidden: Sequence[int] = (), activation: str = "relu"
) -> nn.Sequential:
    """``Dropout -> [Linear -> activation]* -> Linear``: the task head (its last Linear gives the logits)."""
    layers, width = dense_layers(feature_dim, list(hidden), activation)
    return nn.Sequential(nn.Dropout(dropout), *layers, nn.Linear(width, n_out))


def _with_head(spec: ModelSpec, features: nn.Module, dim: int, n_out: int, arch: str) -> Classifier:
    """The task head on ``features``; with ``head_shared`` its hidden layers join the features."""
    if spec.head_shared:
        layers, dim = dense_layers(dim, spec.head_hidden, spec.head_activation)
        return Classifier(
            nn.Sequential(features, *layers), make_head(dim, n_out, spec.dropout), dim, arch=arch
        )
    head = make_head(dim, n_out, spec.dropout, spec.head_hidden, spec.head_activation)
    return Classifier(features, head, dim, arch=arch)


def small_cnn_features(channels: list[int] | tuple[int, ...] = (32, 64, 128)) -> nn.Sequential:
    """Conv-BN-ReLU-MaxPool blocks then global average pooling: ~94k parameters at (32, 64, 128)."""
    layers: list[nn.Module] = []
    c_in = 3
    for c in channels:
        layers += [
            nn.Conv2d(c_in, c, 3, padding=1, bias=False),
            nn.BatchNorm2d(c),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        ]
        c_in = c
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(1)]
    return nn.Sequential(*layers)


def mlp_features(in_dim: int, hidden: int) -> tuple[nn.Module, int]:
    """The chest X-ray paper's hidden layer (``hidden`` units, ReLU), or nothing for a linear model."""
    layers, width = dense_layers(in_dim, hidden)
    return (nn.Sequential(*layers) if layers else nn.Identity()), width


def build_backbone(spec: ModelSpec, in_dim: int | None = None) -> tuple[nn.Module, int]:
    """The ``features`` part of ``spec`` and its output width (weights loaded when given)."""
    if spec.arch == "mlp":
        if in_dim is None:
            raise DataError("model 'mlp' needs embeddings (the cohort has none)")
        return mlp_features(in_dim, spec.hidden)
    if spec.arch == "small_cnn":
        net, dim, head = small_cnn_features(spec.channels), spec.channels[-1], _HEAD_PREFIX["small_cnn"]
    else:
        net, dim, head = _torchvision_features(spec.arch)
    if spec.weights is not None:
        load_weights(net, spec.weights, spec.arch, head)
    if spec.arch == "vgg11":
        net = nn.Sequential(net.features, net.avgpool, nn.Flatten(1), *list(net.classifier)[:-1])
    return net, dim


def build_model(spec: ModelSpec, n_out: int, in_dim: int | None = None) -> Classifier:
    """A fresh classifier for ``spec`` with ``n_out`` logits (``in_dim``: embedding width for mlp)."""
    features, dim = build_backbone(spec, in_dim)
    return _with_head(spec, features, dim, n_out, spec.arch)


def build_head_model(spec: ModelSpec, in_dim: int, n_out: int) -> Classifier:
    """The trainable part of a frozen run: an MLP of ``spec.hidden`` units on cached features."""
    features, dim = mlp_features(in_dim, spec.hidden)
    return _with_head(spec, features, dim, n_out, "mlp")


def _torchvision_features(arch: str) -> tuple[nn.Module, int, str]:
    """The torchvision network ``arch`` without its last ``Linear``: (net, feature width, its key prefix)."""
    from torchvision import models as tvm

    try:
        tvm.get_model_builder(arch)
    except ValueError:
        names = tvm.list_models(module=tvm)  # slow (seconds): only to word the error
        raise SpecError(
            f"model.arch: {arch!r} is neither small_cnn/mlp nor a torchvision classification model"
            f" (torchvision has {len(names)}, e.g. {', '.join(n for n in names if n[:3] in ('den', 'eff', 'con'))[:120]}...)"
        ) from None
    extra = {"aux_logits": False, "init_weights": True} if arch in ("googlenet", "inception_v3") else {}
    net = tvm.get_model(arch, weights=None, **extra)
    linears = [(name, m) for name, m in net.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise SpecError(
            f"model.arch: torchvision {arch!r} has no final Linear layer to replace with the task head"
        )
    name, last = linears[-1]
    net.set_submodule(name, nn.Identity())
    return net, last.in_features, f"{name}."


def _backbone_state(raw: object, head: str) -> dict[str, torch.Tensor] | None:
    """Keys of a torchvision (or fairmed Classifier) state_dict, without wrappers and the task layer."""
    if isinstance(raw, Mapping) and isinstance(raw.get("state_dict"), Mapping):
        raw = raw["state_dict"]
    if not isinstance(raw, Mapping) or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        return None
    state = {str(k).removeprefix("module."): v for k, v in raw.items()}
    if any(k.startswith("features.") for k in state) and any(k.startswith("head.") for k in state):
        # a saved fairmed Classifier: keep its features part
        state = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
    return {k: v for k, v in state.items() if not k.startswith(head)}


def load_weights(net: nn.Module, path: str | Path, arch: str, head: str | None = None) -> None:
    """Load a local state_dict into ``net`` (the classification layer, keys ``head``*, dropped);
    a mismatch is one line naming the file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: weights file not found")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is the user's file
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise DataError(f"{path}: cannot read weights with torch.load(weights_only=True): {first}") from exc
    state = _backbone_state(raw, _HEAD_PREFIX.get(arch, "") if head is None else head)
    if state is None:
        raise DataError(f"{path}: not a state_dict (expected a mapping of parameter names to tensors)")
    own = net.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing keys {first_rows(missing, 3)}")
        if unexpected:
            parts.append(f"unexpected keys {first_rows(unexpected, 3)}")
        if shapes:
            k = shapes[0]
            parts.append(f"shape of {k} is {tuple(state[k].shape)}, expected {tuple(own[k].shape)}")
        raise DataError(f"{path}: weights do not fit a {arch} backbone: {'; '.join(parts)}")
    net.load_state_dict(state)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
