"""What is explained: the target of each image and the score the masks act on.

A target is, as in pytorch-grad-cam, either a class index or a callable on the model's
output, so single-logit (sigmoid), multi-label and other heads work without changing
the optimizer:

* ``None``: the top-1 class of the clean image (the official behavior);
* an integer: the same class for every image (a Python or NumPy integer, or an integer
  tensor or array of shape ``()``, such as ``logits.argmax()``);
* a sequence, or an integer 1-D tensor or array, with one entry per image, each an integer
  or a callable;
* a callable ``f(output) -> scores`` mapping the model's output ``(N, K)`` to ``(N,)``.

Float and bool tensors or arrays are refused: a class index is never rounded.

For integer targets the score is the softmax probability (default, as the authors'
code) or the raw logit (``Config.score = "logit"``).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence

import numpy as np
import torch

__all__ = ["Target", "Scorer", "resolve_target", "check_model_output", "forward_clean"]

ScoreFn = Callable[[torch.Tensor], torch.Tensor]
Target = None | int | np.integer | Sequence[int | ScoreFn] | torch.Tensor | np.ndarray | ScoreFn


def check_model_output(output: object, rows: int) -> torch.Tensor:
    """Raise a clear error unless ``output`` is a floating ``(rows, K)`` tensor; return it.

    Args:
        output: what the model returned for a batch.
        rows: the batch size, ``N``.

    Raises:
        TypeError: not a tensor (a tuple, a dict), or an integer or bool tensor (predicted
            classes rather than scores).
        ValueError: not of shape ``(rows, K)``.

    Example:
        >>> check_model_output(torch.zeros(2, 5), 2).shape
        torch.Size([2, 5])
        >>> check_model_output(torch.zeros(2, dtype=torch.long), 2)
        Traceback (most recent call last):
        ...
        TypeError: the model returned an integer tensor (torch.int64); saliency needs float scores (logits)...
    """
    if not isinstance(output, torch.Tensor):
        raise TypeError(
            f"model must return a tensor of shape (batch, classes); it returned {type(output).__name__}. "
            "Wrap models that return tuples or dicts so they return the logits tensor."
        )
    if not output.is_floating_point():
        kind = "a bool" if output.dtype == torch.bool else "an integer"
        raise TypeError(
            f"the model returned {kind} tensor ({output.dtype}); saliency needs float scores (logits) that change "
            "smoothly with the image. Return the logits, not the predicted classes (e.g. drop a final argmax)."
        )
    if output.dim() != 2 or output.shape[0] != rows:
        raise ValueError(
            f"model output must have shape (batch, classes) = ({rows}, K); got {tuple(output.shape)}. "
            "Wrap the model so that it returns one row of scores per input image "
            "(e.g. flatten (B, K, 1, 1) outputs, or unsqueeze a (B,) output to (B, 1))."
        )
    return output


def _first_conv_channels(model: object) -> int | None:
    if isinstance(model, torch.nn.Module):
        for module in model.modules():
            if isinstance(module, torch.nn.modules.conv._ConvNd):
                return module.in_channels
    return None


def forward_clean(model: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor) -> torch.Tensor:
    """The model's checked output on the clean images: the first call of every entry point.

    A model that cannot take the images (another channel count, a size too small for its
    layers) fails here with a message about the images rather than a raw error from deep
    inside the model. Run it under the caller's ``torch.no_grad()`` or ``inference_mode()``.

    Args:
        model: the classifier.
        images: ``(B, C, H, W)`` batch, on the model's device and dtype.

    Returns:
        ``(B, K)`` output, checked by :func:`check_model_output`.

    Raises:
        ValueError: the model raised a ``RuntimeError`` on the images (the original is the
            ``__cause__``); out-of-memory errors pass through unchanged.

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(1))
        >>> forward_clean(model, torch.zeros(2, 3, 3, 3)).shape
        torch.Size([2, 4])
        >>> forward_clean(model, torch.zeros(2, 1, 3, 3))
        Traceback (most recent call last):
        ...
        ValueError: the model failed on the images, which have 1 channel(s) of 3 x 3 pixels...
    """
    try:
        output = model(images)
    except torch.cuda.OutOfMemoryError:
        raise
    except RuntimeError as err:
        _, channels, height, width = images.shape
        expected = _first_conv_channels(model)
        takes = f"; the model's first convolution takes {expected} channel(s)" if expected not in (None, channels) \
            else ""
        raise ValueError(
            f"the model failed on the images, which have {channels} channel(s) of {height} x {width} pixels "
            f"(shape {tuple(images.shape)}){takes}: {type(err).__name__}: {err} Check the preprocessing: give the "
            "images the channel count and a size the model takes (e.g. repeat a grey image to 3 channels, resize to "
            "the model's input size, as ModelBundle.preprocess does)."
        ) from err
    return check_model_output(output, images.shape[0])


class Scorer:
    """Turns model outputs into the scalar score ``f_c`` of each row.

    Args:
        classes: ``(B,)`` class index per image, ``-1`` where the image has a callable.
        functions: one entry per image, ``None`` or a callable ``f(output) -> (N,)``.
        score: ``"softmax"`` or ``"logit"`` for integer targets.
    """

    def __init__(self, classes: torch.Tensor, functions: list[ScoreFn | None], score: str) -> None:
        self.classes = classes
        self.functions = functions
        self.score = score
        self._all_int = all(f is None for f in functions)

    def __call__(self, output: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Scores ``(N,)`` of the rows of ``output`` ``(N, K)``, row ``i`` belonging to image ``index[i]``."""
        if self._all_int:
            return self._class_scores(output, self.classes.to(output.device)[index])
        scores = torch.empty(output.shape[0], dtype=output.dtype, device=output.device)
        for b in torch.unique(index).tolist():
            rows = (index == b).nonzero().squeeze(1)
            fn = self.functions[b]
            if fn is None:
                cls = self.classes.to(output.device)[index[rows]]
                scores[rows] = self._class_scores(output[rows], cls)
            else:
                scores[rows] = _call_score_fn(fn, output[rows])
        return scores

    def _class_scores(self, output: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        values = output.softmax(dim=1) if self.score == "softmax" else output
        return values.gather(1, classes.view(-1, 1)).squeeze(1)


def _call_score_fn(fn: ScoreFn, output: torch.Tensor) -> torch.Tensor:
    scores = fn(output)
    if not isinstance(scores, torch.Tensor) or scores.shape != (output.shape[0],):
        got = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
        raise ValueError(
            f"a callable target must map the model output {tuple(output.shape)} to one score per row, "
            f"shape ({output.shape[0]},); it returned {got}."
        )
    return scores


def _class_index(value: object, where: str) -> int:
    """``value`` as an ``int`` if it is an integer: Python, NumPy, or a tensor or array of shape ``()``."""
    if isinstance(value, (torch.Tensor, np.ndarray)) and value.ndim == 0:
        _check_integer_dtype(value, where)
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{where} must be an int class index or a callable, got {type(value).__name__} {value!r}.")
    return int(value)


def _check_integer_dtype(values: torch.Tensor | np.ndarray, where: str) -> None:
    """Refuse a float, bool or complex tensor or array of class indices: a class index is never rounded."""
    if isinstance(values, torch.Tensor):
        dtype, container = values.dtype, "tensor"
        kind = "bool" if dtype == torch.bool else "complex" if dtype.is_complex else \
            "float" if dtype.is_floating_point else None
    else:
        dtype, container = values.dtype, "array"
        kind = None if np.issubdtype(dtype, np.integer) else {"b": "bool", "c": "complex", "f": "float"}.get(
            dtype.kind, dtype.name)
    if kind is not None:
        article = "an" if kind[0] in "aeiou" else "a"
        raise TypeError(f"{where} must hold integer class indices, got {article} {kind} {container} ({dtype}); "
                        "pass e.g. logits.argmax(dim=1), or convert with .long() if the values are whole numbers.")


def _check_class(value: object, num_classes: int, where: str) -> int:
    index = _class_index(value, where)
    if not 0 <= index < num_classes:
        raise ValueError(f"{where} = {index} is out of range: the model has {num_classes} classes "
                         f"(valid indices 0..{num_classes - 1}).")
    return index


def resolve_target(target: Target, clean_output: torch.Tensor, score: str) -> Scorer:
    """Resolve a user target against the model's output on the clean images.

    Args:
        target: see the module docstring.
        clean_output: ``(B, K)`` model output on the clean images.
        score: ``"softmax"`` or ``"logit"``.

    Raises:
        TypeError: a target of the wrong type: a float (``1.5``, ``torch.tensor(1.5)``), a
            float or bool tensor or array, a string.
        ValueError: a class index out of range, a wrong number of entries, a tensor or array
            that is not 1-D.

    Returns:
        A :class:`Scorer`; its ``classes`` is the ``(B,)`` class explained per image
        (``-1`` for images with a callable target).

    Example:
        >>> import torch, igospp
        >>> out = torch.tensor([[0.0, 2.0], [1.0, 0.0]])
        >>> igospp.resolve_target(None, out, "softmax").classes        # top-1 of each image
        tensor([1, 0])
        >>> scorer = igospp.resolve_target([0, lambda o: o[:, 1]], out, "logit")
        >>> scorer.classes, scorer(out, torch.tensor([0, 1]))
        (tensor([ 0, -1]), tensor([0., 0.]))
        >>> import numpy as np
        >>> igospp.resolve_target(np.int64(1), out, "logit").classes      # NumPy integers are class indices
        tensor([1, 1])
    """
    batch, num_classes = clean_output.shape
    functions: list[ScoreFn | None] = [None] * batch
    if target is None:
        classes = clean_output.argmax(dim=1)
    elif callable(target) and not isinstance(target, torch.Tensor):
        functions = [target] * batch
        classes = torch.full((batch,), -1, dtype=torch.long)
    elif (isinstance(target, (torch.Tensor, np.ndarray)) and target.ndim == 0) or \
            (isinstance(target, numbers.Integral) and not isinstance(target, bool)):
        classes = torch.full((batch,), _check_class(target, num_classes, "target"), dtype=torch.long)
    elif isinstance(target, (Sequence, torch.Tensor, np.ndarray)) and not isinstance(target, str):
        if isinstance(target, (torch.Tensor, np.ndarray)):
            kind = "tensor" if isinstance(target, torch.Tensor) else "array"
            if target.ndim != 1:
                raise ValueError(f"a target {kind} must be 1-D with one class per image, got shape "
                                 f"{tuple(target.shape)}.")
            _check_integer_dtype(target, "target")
        items = target.tolist() if isinstance(target, (torch.Tensor, np.ndarray)) else list(target)
        if len(items) != batch:
            raise ValueError(f"target has {len(items)} entries but there are {batch} images; "
                             "give one target per image (or a single int or callable for all).")
        values = []
        for i, item in enumerate(items):
            if callable(item):
                functions[i] = item
                values.append(-1)
            else:
                values.append(_check_class(item, num_classes, f"target[{i}]"))
        classes = torch.tensor(values, dtype=torch.long)
    else:
        raise TypeError(f"target must be None, an int, a sequence with one entry per image, or a callable "
                        f"on the model output; got {type(target).__name__} {target!r}.")
    if score == "softmax" and num_classes == 1 and any(f is None for f in functions):
        raise ValueError(
            "the model has a single output, whose softmax is always 1: explain it with a callable "
            "target, e.g. target=lambda out: out[:, 0].sigmoid(), or set Config.score='logit'."
        )
    return Scorer(classes.to(clean_output.device), functions, score)
