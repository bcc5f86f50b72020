"""What is explained: the target of each image and the score the masks act on.

A target is, as in pytorch-grad-cam, either a class index or a callable on the model's
output, so single-logit (sigmoid), multi-label and other heads work without changing
the optimizer:

* ``None``: the top-1 class of the clean image (the official behaviour);
* an ``int``: the same class for every image;
* a sequence (or 1-D tensor) with one entry per image, each an ``int`` or a callable;
* a callable ``f(output) -> scores`` mapping the model's output ``(N, K)`` to ``(N,)``.

For integer targets the score is the softmax probability (default, as the authors'
code) or the raw logit (``Config.score = "logit"``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

__all__ = ["Target", "Scorer", "resolve_target", "check_model_output"]

ScoreFn = Callable[[torch.Tensor], torch.Tensor]
Target = None | int | Sequence[int | ScoreFn] | torch.Tensor | ScoreFn


def check_model_output(output: object, rows: int) -> torch.Tensor:
    """Raise a clear error unless ``output`` is a ``(rows, K)`` tensor; return it."""
    if not isinstance(output, torch.Tensor):
        raise TypeError(
            f"model must return a tensor of shape (batch, classes); it returned {type(output).__name__}. "
            "Wrap models that return tuples or dicts so they return the logits tensor."
        )
    if output.dim() != 2 or output.shape[0] != rows:
        raise ValueError(
            f"model output must have shape (batch, classes) = ({rows}, K); got {tuple(output.shape)}. "
            "Wrap the model so that it returns one row of scores per input image "
            "(e.g. flatten (B, K, 1, 1) outputs, or unsqueeze a (B,) output to (B, 1))."
        )
    return output


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


def _check_class(value: int, num_classes: int, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{where} must be an int class index or a callable, got {type(value).__name__}.")
    if not 0 <= value < num_classes:
        raise ValueError(f"{where} = {value} is out of range: the model has {num_classes} classes "
                         f"(valid indices 0..{num_classes - 1}).")
    return value


def resolve_target(target: Target, clean_output: torch.Tensor, score: str) -> Scorer:
    """Resolve a user target against the model's output on the clean images.

    Args:
        target: see the module docstring.
        clean_output: ``(B, K)`` model output on the clean images.
        score: ``"softmax"`` or ``"logit"``.

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
    """
    batch, num_classes = clean_output.shape
    functions: list[ScoreFn | None] = [None] * batch
    if target is None:
        classes = clean_output.argmax(dim=1)
    elif callable(target) and not isinstance(target, torch.Tensor):
        functions = [target] * batch
        classes = torch.full((batch,), -1, dtype=torch.long)
    elif isinstance(target, torch.Tensor) and target.dim() == 0:
        classes = torch.full((batch,), _check_class(int(target), num_classes, "target"), dtype=torch.long)
    elif isinstance(target, int) and not isinstance(target, bool):
        classes = torch.full((batch,), _check_class(target, num_classes, "target"), dtype=torch.long)
    elif isinstance(target, (Sequence, torch.Tensor)) and not isinstance(target, str):
        items = target.tolist() if isinstance(target, torch.Tensor) else list(target)
        if isinstance(target, torch.Tensor) and target.dim() != 1:
            raise ValueError(f"a target tensor must be 1-D with one class per image, got shape {tuple(target.shape)}.")
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
                        f"on the model output; got {type(target).__name__}.")
    if score == "softmax" and num_classes == 1 and any(f is None for f in functions):
        raise ValueError(
            "the model has a single output, whose softmax is always 1: explain it with a callable "
            "target, e.g. target=lambda out: out[:, 0].sigmoid(), or set Config.score='logit'."
        )
    return Scorer(classes.to(clean_output.device), functions, score)
