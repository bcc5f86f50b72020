r"""Exact speed-ups for the thousands of model passes of one explanation.

An iGOS++ explanation sends ``4 S`` path images per image through the model forward and
backward at every iteration, and ``4 S`` more forward per line-search trial. Three rewrites
make each pass cheaper without changing what the model computes:

- **Batch norm folded into the convolution before it.** In eval mode a batch norm is the
  affine map :math:`y = \gamma (x - \mu) / \sqrt{\sigma^2 + \epsilon} + \beta`; applied to a
  convolution's output it is a convolution with weight :math:`W \gamma / \sqrt{\sigma^2 +
  \epsilon}` and bias :math:`(b - \mu) \gamma / \sqrt{\sigma^2 + \epsilon} + \beta`. A
  "same"-padding convolution that pads symmetrically (EfficientNet's
  ``Conv2dStaticSamePadding``) becomes a plain convolution with that padding, which saves a
  padded copy of every activation.
- **Channels-last memory** for convolutional models on 4-D inputs, where the CPU and cuDNN
  kernels are faster.
- **Activations in place** where nothing else reads their input (ReLU6 after a convolution),
  saving one activation-sized tensor per layer.

All are done on a private copy: the caller's model is never modified. Results agree with
the unmodified model to float rounding (logits within about ``1e-5`` on EfficientNet-Lite0);
:func:`accelerate` checks this on the images it is given and returns the caller's model
when the check fails or the model cannot be rewritten. The result is itself a model: pass
it to :func:`igospp.metrics.insertion_deletion` or a comparison method to reuse one
preparation across many calls.
"""

from __future__ import annotations

import copy

import torch
import torch.fx as fx
from torch.nn.utils.fusion import fuse_conv_bn_weights

from igospp.checks import untouched

__all__ = ["Accelerated", "accelerate", "streamline", "fastest_memory_format"]


class Accelerated(torch.nn.Module):
    """A model prepared for many passes by :func:`accelerate`: call it like the model.

    Calling it gives the inputs the layout ``memory_format`` and runs ``model``. It holds no
    state of its own beyond the prepared model, so it can be passed wherever a model goes;
    :func:`accelerate` returns an ``Accelerated`` it is given as it is.

    Args:
        model: the model to call (a private copy, or the caller's model unchanged).
        memory_format: the layout inputs are given in. Default ``torch.contiguous_format``.
        folded: how many batch norms were folded into convolutions. Default 0.
        in_place: how many activations run in place. Default 0.

    Example:
        >>> import torch, igospp
        >>> net = torch.nn.Linear(3, 2)
        >>> plain = igospp.Accelerated(net)
        >>> torch.equal(plain(torch.ones(1, 3)), net(torch.ones(1, 3))), plain.description
        (True, 'contiguous, 0 batch norms folded, 0 activations in place')
    """

    def __init__(self, model: torch.nn.Module, memory_format: torch.memory_format = torch.contiguous_format,
                 folded: int = 0, in_place: int = 0) -> None:
        super().__init__()
        self.model = model
        self.memory_format = memory_format
        self.folded = folded
        self.in_place = in_place
        self.training = getattr(model, "training", False)  # mirror, without touching, the model's mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``model(x)`` with ``x`` in the layout ``memory_format``."""
        return self.model(x.contiguous(memory_format=self.memory_format))

    @property
    def description(self) -> str:
        """Short text for records, e.g. ``"channels_last, 49 batch norms folded, 33 activations in place"``."""
        layout = "channels_last" if self.memory_format is torch.channels_last else "contiguous"
        return f"{layout}, {self.folded} batch norms folded, {self.in_place} activations in place"


def fastest_memory_format(model: torch.nn.Module, images: torch.Tensor) -> torch.memory_format:
    """``torch.channels_last`` for 4-D inputs of a module with 2-D convolutions, else contiguous.

    Example:
        >>> import torch, igospp
        >>> conv = torch.nn.Conv2d(3, 4, 3)
        >>> igospp.fastest_memory_format(conv, torch.zeros(1, 3, 8, 8)) is torch.channels_last
        True
        >>> mlp = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 2))
        >>> igospp.fastest_memory_format(mlp, torch.zeros(1, 3, 2, 2)) is torch.contiguous_format
        True
    """
    if images.dim() == 4 and isinstance(model, torch.nn.Module) and any(
            isinstance(m, torch.nn.Conv2d) for m in model.modules()):
        return torch.channels_last
    return torch.contiguous_format


class _ConvLeafTracer(fx.Tracer):
    """Traces into every module except convolutions and batch norms (subclasses included)."""

    def is_leaf_module(self, m: torch.nn.Module, module_qualified_name: str) -> bool:
        return isinstance(m, (torch.nn.Conv2d, torch.nn.BatchNorm2d)) or super().is_leaf_module(
            m, module_qualified_name)


def _plain_conv(conv: torch.nn.Conv2d) -> torch.nn.Conv2d:
    """``conv`` as a plain ``nn.Conv2d`` sharing its parameters, its symmetric static padding moved into it."""
    pad = getattr(conv, "static_padding", None)
    if type(conv) is torch.nn.Conv2d or pad is None:
        return conv
    if type(pad).__name__ == "Identity":
        padding = (0, 0)
    elif isinstance(pad, torch.nn.ZeroPad2d) and pad.padding[0] == pad.padding[1] and pad.padding[2] == pad.padding[3]:
        padding = (pad.padding[2], pad.padding[0])
    else:
        return conv
    if conv.padding not in ((0, 0), 0, "valid"):
        return conv
    plain = torch.nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, padding,
                            conv.dilation, conv.groups, conv.bias is not None, device="meta")
    plain.weight, plain.bias = conv.weight, conv.bias
    return plain.train(conv.training)


_ACTIVATIONS = (torch.nn.ReLU, torch.nn.ReLU6, torch.nn.Hardtanh)


def _fold(graph: fx.Graph, work: torch.nn.Module, modules: dict[str, torch.nn.Module]) -> int:
    """Fold each eval-mode batch norm fed only by a convolution into it; returns how many."""
    folded = 0
    for node in list(graph.nodes):
        bn = modules.get(node.target) if node.op == "call_module" else None
        if not isinstance(bn, torch.nn.BatchNorm2d) or bn.training or bn.running_mean is None:
            continue
        prev = node.args[0] if node.args else None
        if not (isinstance(prev, fx.Node) and prev.op == "call_module" and len(prev.users) == 1
                and isinstance(modules.get(prev.target), torch.nn.Conv2d)):
            continue
        conv = _plain_conv(modules[prev.target])
        conv.weight, conv.bias = fuse_conv_bn_weights(conv.weight, conv.bias, bn.running_mean, bn.running_var,
                                                      bn.eps, bn.weight, bn.bias)
        work.set_submodule(prev.target, conv)
        modules[prev.target] = conv
        node.replace_all_uses_with(prev)
        graph.erase_node(node)
        folded += 1
    return folded


def _inplace(graph: fx.Graph, modules: dict[str, torch.nn.Module]) -> int:
    """Make ReLU-type activations in place where their input is a convolution's output used by nothing else."""
    sites: dict[str, list[bool]] = {}
    for node in graph.nodes:
        if node.op == "call_module" and isinstance(modules.get(node.target), _ACTIVATIONS):
            prev = node.args[0] if node.args else None
            safe = (isinstance(prev, fx.Node) and prev.op == "call_module" and len(prev.users) == 1
                    and isinstance(modules.get(prev.target), torch.nn.Conv2d))
            sites.setdefault(node.target, []).append(safe)
    changed = 0
    for target, safe in sites.items():
        if all(safe) and not modules[target].inplace:
            modules[target].inplace = True
            changed += len(safe)
    return changed


def streamline(model: torch.nn.Module) -> tuple[torch.nn.Module, int, int]:
    """A copy of an eval-mode ``model`` rewritten for fast passes, computing the same function.

    Two rewrites, found by tracing the model with ``torch.fx``: each ``BatchNorm2d`` in eval
    mode whose input is only a convolution's output is folded into that convolution (see
    the module docstring), and each ReLU, ReLU6 or Hardtanh module applied only to a
    convolution's output runs in place (which saves writing a new activation tensor; the
    backward pass needs only the output of these functions). A model that cannot be traced,
    or has nothing to rewrite, comes back as it is with zero counts.

    Returns:
        ``(model, folded, in_place)``: the rewritten copy (an ``fx.GraphModule`` whose
        parameters do not require gradients), the number of batch norms folded and the
        number of activations made in place.

    Example:
        >>> import torch, igospp
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU()).eval()
        >>> fast, folded, in_place = igospp.streamline(net)
        >>> x = torch.randn(2, 3, 8, 8)
        >>> folded, in_place, torch.allclose(fast(x), net(x), atol=1e-6), net[2].inplace
        (1, 1, True, False)
    """
    if not any(isinstance(m, (torch.nn.BatchNorm2d, *_ACTIVATIONS)) for m in model.modules()):
        return model, 0, 0
    try:
        work = copy.deepcopy(model)
        graph = _ConvLeafTracer().trace(work)
    except Exception:  # a model that cannot be copied or traced runs as it is
        return model, 0, 0
    modules = dict(work.named_modules())
    folded = _fold(graph, work, modules)
    in_place = _inplace(graph, modules)
    if not folded and not in_place:
        return model, 0, 0
    out = fx.GraphModule(work, graph).eval()
    out.requires_grad_(False)
    return out, folded, in_place


def accelerate(model: torch.nn.Module, images: torch.Tensor, reference: torch.Tensor,
               *, enabled: bool = True, rtol: float = 1e-3) -> Accelerated:
    """Prepare ``model`` for many passes over images like ``images``, checking the result.

    Args:
        model: the caller's model (never modified). An :class:`Accelerated` is returned
            as it is, so a model prepared once serves many calls.
        images: ``(N, ...)`` a batch of typical inputs (the clean images).
        reference: the caller's model's output on ``images``.
        enabled: ``False`` wraps ``model`` unchanged (contiguous inputs, no rewrite), for
            callers whose ``accelerate`` option is off. Default ``True``.
        rtol: the largest accepted deviation from ``reference``, relative to its largest
            absolute value. Default ``1e-3``, a hundred times the float32 rounding seen
            on EfficientNet-Lite0 (about ``1e-5``).

    Returns:
        An :class:`Accelerated`; its ``model`` is the caller's model unchanged (and
        zero counts) when no rewrite applies, the check fails or ``enabled`` is ``False``.

    Example:
        >>> import torch, igospp
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten()).eval()
        >>> x = torch.randn(2, 3, 8, 8)
        >>> fast = igospp.accelerate(net, x, net(x))
        >>> fast.description, fast.model is net
        ('channels_last, 1 batch norms folded, 0 activations in place', False)
    """
    if isinstance(model, Accelerated):
        return model
    if not enabled:
        return Accelerated(model)
    layout = fastest_memory_format(model, images)
    fast, folded, in_place = streamline(model) if isinstance(model, torch.nn.Module) else (model, 0, 0)
    if fast is not model and layout is torch.channels_last:
        fast = fast.to(memory_format=torch.channels_last)
    reference = reference.detach()
    tolerance = rtol * max(float(reference.abs().max()), 1.0) if reference.numel() else 0.0
    candidates = [(fast, layout, folded, in_place)] if fast is not model else []
    if layout is not torch.contiguous_format:
        candidates.append((model, layout, 0, 0))
    for net, fmt, n, k in candidates:
        try:
            with untouched(model), torch.no_grad():  # the check may run the caller's model itself
                out = net(images.contiguous(memory_format=fmt))
        except RuntimeError:  # e.g. a .view() that channels-last strides do not allow
            continue
        if out.shape == reference.shape and float((out - reference).abs().max()) <= tolerance:
            return Accelerated(net, fmt, n, k)
    return Accelerated(model)
