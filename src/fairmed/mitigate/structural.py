"""Structural channel pruning: remove a conv's output channels and the inputs that read them.

A *prunable site* is a ``Conv2d`` whose output channels reach exactly one consumer through
channel-wise operations only, so that removing channel ``k`` means slicing

- the conv's ``weight`` (and ``bias``) along dim 0,
- its ``BatchNorm2d`` (``weight``, ``bias``, ``running_mean``, ``running_var``) when it has one,
- the consumer: the next ``Conv2d``'s ``weight`` along dim 1, or the ``Linear`` after
  ``AdaptiveAvgPool2d -> Flatten`` along the ``s`` input columns ``k*s ... k*s+s-1`` (``s`` = the
  pooled output size, 1 for fairmed's small CNN and 7x7 = 49 for VGG).

Which convs are prunable:

- ``small_cnn`` and ``vgg11`` (plain chains of conv/BN/ReLU/pool): every conv; the last one feeds
  the first ``Linear`` (small CNN: the head; VGG: the first classifier layer).
- ``resnet18`` / ``resnet50``: in every residual block, the convs whose outputs stay inside the
  block (BasicBlock ``conv1 -> bn1 -> relu -> conv2``; Bottleneck ``conv1`` and ``conv2``) are
  sliced; the block's last conv (BasicBlock ``conv2``, Bottleneck ``conv3``) adds into the residual
  stream shared by every block, so it cannot be sliced alone: it is a *masked* site. Pruning a
  masked channel zeroes the conv's weights for it and its BatchNorm's weight and bias (the
  channel's contribution to the residual sum is then exactly 0, as a channel mask; the authors'
  code masks the conv weights with ``torch.nn.utils.prune``), and ``*_prune_mask`` buffers keep
  them at zero through fine-tuning (:func:`keep_zeros`). A masked site's ``channels`` counts the
  live channels. The "last convolutional layer" of ResNet-18 is thus ``layer4.1.conv2`` (the
  paper's), with ``layer4.1.conv1`` the one before it.

When the last conv of a small CNN is pruned, the shared features (``feature_dim``) get narrower:
every head that reads them is sliced along with the classifier (the strategy heads passed as
``heads``). Pruning edits the modules in place (new, smaller ``Parameter`` objects: rebuild any optimizer
afterwards) and keeps a per-weight mask buffer (``prune_mask``, from FairPrune) in step with its
weight. :func:`mask_channels` gives the same function with the channels zeroed instead (a
forward hook), which the tests compare against.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

# operations that act on each channel separately (a zero channel stays a zero channel)
_CHANNELWISE = (nn.ReLU, nn.MaxPool2d, nn.AvgPool2d, nn.Dropout, nn.Dropout2d, nn.Identity)


@dataclass
class PruneSite:
    """One prunable conv: where its channels go (``per_channel`` consumer inputs per channel)."""

    name: str
    conv: nn.Conv2d
    bn: nn.BatchNorm2d | None
    consumer: nn.Module | None
    per_channel: int = 1
    masked: bool = False  # channels are zeroed in place (residual output), not sliced

    @property
    def channels(self) -> int:
        return len(self.live()) if self.masked else self.conv.out_channels

    def live(self) -> Tensor:
        """Indices of the conv's output channels still in use (all of them for a sliced site)."""
        n = self.conv.out_channels
        mask = getattr(self.conv, "weight_prune_mask", None)
        if not self.masked or mask is None:
            return torch.arange(n)
        return torch.nonzero(mask.reshape(n, -1).any(1).cpu()).reshape(-1)

    @property
    def output(self) -> nn.Module:
        """The module whose output is the channel's activation (BN if present, else the conv)."""
        return self.bn if self.bn is not None else self.conv


def _leaves(module: nn.Module, prefix: str) -> list[tuple[str, nn.Module]]:
    return [
        (f"{prefix}.{n}" if n else prefix, m) for n, m in module.named_modules() if not list(m.children())
    ]


def _pooled_size(pool: nn.AdaptiveAvgPool2d) -> int:
    size = pool.output_size
    sizes = (size, size) if isinstance(size, int) else tuple(size)
    if any(s is None for s in sizes):
        raise ValueError("adaptive pooling with a None output size cannot be pruned structurally")
    return int(sizes[0]) * int(sizes[1])


def _chain_sites(leaves: Sequence[tuple[str, nn.Module]]) -> list[PruneSite]:
    """Sites of a plain chain (small CNN, VGG): each conv up to the next conv or Linear."""
    sites = []
    for i, (name, conv) in enumerate(leaves):
        if not isinstance(conv, nn.Conv2d) or conv.groups != 1:
            continue
        bn, per_channel = None, 1
        for _, nxt in leaves[i + 1 :]:
            if isinstance(nxt, nn.BatchNorm2d) and bn is None:
                bn = nxt
            elif isinstance(nxt, nn.AdaptiveAvgPool2d):
                per_channel = _pooled_size(nxt)
            elif isinstance(nxt, (nn.Conv2d, nn.Linear)):
                if isinstance(nxt, nn.Conv2d) and nxt.groups != 1:
                    break
                sites.append(PruneSite(name, conv, bn, nxt, per_channel))
                break
            elif isinstance(nxt, (nn.Flatten, *_CHANNELWISE)):
                continue
            else:  # anything else mixes channels in ways we do not slice
                break
    return sites


def _resnet_sites(net: nn.Module, prefix: str) -> list[PruneSite]:
    from torchvision.models.resnet import BasicBlock, Bottleneck

    sites = []
    for name, block in net.named_modules():
        full = f"{prefix}.{name}" if prefix else name
        if isinstance(block, BasicBlock):
            sites.append(PruneSite(f"{full}.conv1", block.conv1, block.bn1, block.conv2))
            sites.append(PruneSite(f"{full}.conv2", block.conv2, block.bn2, None, masked=True))
        elif isinstance(block, Bottleneck):
            sites.append(PruneSite(f"{full}.conv1", block.conv1, block.bn1, block.conv2))
            sites.append(PruneSite(f"{full}.conv2", block.conv2, block.bn2, block.conv3))
            sites.append(PruneSite(f"{full}.conv3", block.conv3, block.bn3, None, masked=True))
    return sites


def prunable_sites(model: nn.Module) -> list[PruneSite]:
    """The prunable convs of a fairmed ``Classifier`` (or a bare chain / torchvision ResNet), in order."""
    from torchvision.models.resnet import ResNet

    features = getattr(model, "features", None)
    if isinstance(features, ResNet):
        return _resnet_sites(features, "features")
    if isinstance(model, ResNet):
        return _resnet_sites(model, "")
    leaves = _leaves(model, "")
    sites = _chain_sites([(n.removeprefix("."), m) for n, m in leaves])
    if not sites:
        raise ValueError(f"no prunable convolution found in {type(model).__name__}")
    return sites


def find_site(model: nn.Module, layer: str | int = -1) -> PruneSite:
    """A site by index into :func:`prunable_sites` (``-1`` = the last, the paper's default) or name."""
    sites = prunable_sites(model)
    if isinstance(layer, int) or (isinstance(layer, str) and layer.lstrip("-").isdigit()):
        index = int(layer)
        if not -len(sites) <= index < len(sites):
            raise IndexError(f"layer index {index} out of range: the model has {len(sites)} prunable convs")
        return sites[index]
    for site in sites:
        if site.name == layer:
            return site
    names = ", ".join(s.name for s in sites)
    raise KeyError(f"no prunable conv named {layer!r}; prunable: {names}")


def _slice_param(module: nn.Module, attr: str, index: Tensor, dim: int) -> None:
    """Replace ``module.attr`` by its slice along ``dim`` (a Parameter stays a Parameter)."""
    old = getattr(module, attr)
    if old is None:
        return
    new = old.detach().index_select(dim, index.to(old.device)).clone()
    if isinstance(old, nn.Parameter):
        setattr(module, attr, nn.Parameter(new, requires_grad=old.requires_grad))
    else:
        setattr(module, attr, new)
    mask = getattr(module, f"{attr}_prune_mask", None)
    if mask is not None:
        module.register_buffer(f"{attr}_prune_mask", mask.index_select(dim, index.to(mask.device)).clone())
        keep_zeros(module, attr)


def keep_zeros(module: nn.Module, attr: str = "weight") -> None:
    """Zero the gradient of ``module.attr`` where its ``<attr>_prune_mask`` buffer is 0.

    With zero gradients from the start, SGD (with momentum and weight decay) and Adam leave a
    zeroed weight at exactly zero, so unstructured pruning (FairPrune) survives fine-tuning.
    """
    param = getattr(module, attr)
    param.register_hook(lambda g, m=module, a=attr: g * getattr(m, f"{a}_prune_mask").to(g.dtype))


def prune_channels(
    model: nn.Module, site: PruneSite | str | int, remove: Iterable[int], heads: Iterable[nn.Module] = ()
) -> Tensor:
    """Remove output channels ``remove`` of ``site`` structurally; returns the kept indices.

    When the site feeds the classifier's head (the model's shared features get narrower), the
    ``heads`` (e.g. a multitask or adversarial strategy, whose group head reads the same features)
    have their reading ``Linear`` sliced the same way (:func:`feature_readers`).
    """
    if not isinstance(site, PruneSite):
        site = find_site(model, site)
    drop = torch.as_tensor(sorted({int(c) for c in remove}), dtype=torch.long)
    n = site.conv.out_channels
    if len(drop) and (drop.min() < 0 or drop.max() >= n):
        raise IndexError(f"{site.name}: channel index out of range 0..{n - 1}")
    keep_mask = torch.ones(n, dtype=torch.bool)
    keep_mask[drop] = False
    if site.masked:
        keep_mask[[c for c in range(n) if c not in set(site.live().tolist())]] = False
    keep = torch.nonzero(keep_mask).reshape(-1)
    if len(keep) == 0:
        raise ValueError(f"{site.name}: cannot remove all {n} channels")
    if site.masked:
        _mask_out(site, keep_mask)
        return keep
    _slice_param(site.conv, "weight", keep, 0)
    _slice_param(site.conv, "bias", keep, 0)
    site.conv.out_channels = len(keep)
    if site.bn is not None:
        for attr in ("weight", "bias", "running_mean", "running_var"):
            _slice_param(site.bn, attr, keep, 0)
        site.bn.num_features = len(keep)
    consumer = site.consumer
    if isinstance(consumer, nn.Conv2d):
        _slice_param(consumer, "weight", keep, 1)
        consumer.in_channels = len(keep)
    else:
        s = site.per_channel
        cols = (keep[:, None] * s + torch.arange(s)[None, :]).reshape(-1)
        _slice_param(consumer, "weight", cols, 1)
        consumer.in_features = len(cols)
        head = getattr(model, "head", None)
        if isinstance(head, nn.Module) and any(consumer is m for m in head.modules()):
            _narrow_readers(heads, model.feature_dim, cols)
            model.feature_dim = len(keep)  # a Classifier's shared representation got narrower
    return keep


def _zero_with_mask(module: nn.Module, attr: str, channel_mask: Tensor) -> None:
    """Zero ``module.attr`` outside ``channel_mask`` (dim 0) and keep it zero: its ``<attr>_prune_mask``
    buffer (combined with a FairPrune mask already there) and the gradient hook."""
    param = getattr(module, attr)
    shape = (-1,) + (1,) * (param.dim() - 1)
    mask = channel_mask.to(param.device, param.dtype).view(shape).expand_as(param).clone()
    old = getattr(module, f"{attr}_prune_mask", None)
    if old is not None:
        mask = mask * old.to(mask.dtype)
    with torch.no_grad():
        param.mul_(mask)
    had_hook = old is not None
    module.register_buffer(f"{attr}_prune_mask", mask)
    if not had_hook:
        keep_zeros(module, attr)


def _mask_out(site: PruneSite, keep_mask: Tensor) -> None:
    """A masked site's pruning: the conv's weights (and bias) and its BN's weight and bias of the
    dropped channels become zero, so the channel adds exactly 0 to the residual sum."""
    _zero_with_mask(site.conv, "weight", keep_mask)
    if site.conv.bias is not None:
        _zero_with_mask(site.conv, "bias", keep_mask)
    if site.bn is not None:
        _zero_with_mask(site.bn, "weight", keep_mask)
        _zero_with_mask(site.bn, "bias", keep_mask)


def feature_readers(module: nn.Module, width: int) -> list[nn.Linear]:
    """The ``Linear`` layers of ``module`` that read a ``width``-wide shared representation: the
    first ``Linear`` of each child (a strategy's group head, or a head behind gradient reversal)."""
    readers = []
    for child in module.children():
        first = next((m for m in child.modules() if isinstance(m, nn.Linear)), None)
        if first is not None and first.in_features == width:
            readers.append(first)
    return readers


def _narrow_readers(heads: Iterable[nn.Module], width: int, cols: Tensor) -> None:
    """Slice the input columns of every extra head reading the narrowed features (``cols`` kept)."""
    for owner in heads:
        for lin in feature_readers(owner, width):
            _slice_param(lin, "weight", cols, 1)
            lin.in_features = len(cols)
        if getattr(owner, "feature_dim", None) == width:
            owner.feature_dim = len(cols)


def mask_channels(site: PruneSite, remove: Iterable[int]) -> torch.utils.hooks.RemovableHandle:
    """Zero output channels ``remove`` of ``site`` (after its BN) with a forward hook (the reference)."""
    mask = torch.ones(site.channels)
    mask[list(remove)] = 0.0

    def hook(_module, _inputs, output):
        return output * mask.to(output.device, output.dtype).view(1, -1, 1, 1)

    return site.output.register_forward_hook(hook)


def count_channels(model: nn.Module) -> dict[str, int]:
    """Output channels in use of every prunable site (the "channels left" of a pruning run)."""
    return {s.name: s.channels for s in prunable_sites(model)}
