r"""The objectives of the five methods, and their descent directions.

Every method minimizes a sum of signed path-averaged scores plus the regularizer of the
final mask. Written with :math:`U = \mathrm{Up}(M)`, the objectives (the line search's losses) are:

* ``mask`` and ``igos`` (one mask): :math:`\mathrm{Del}(U) + g(M)`, eq. (1) and (3); ``mask``
  uses ``S = 1``, the plain gradient;
* ``naive`` (one mask, the official ``iGOS+``): :math:`\mathrm{Del}(U) - \mathrm{Ins}(U) + g(M)`;
* ``insertion`` (one mask): :math:`-\mathrm{Ins}(U) + g(M)`;
* ``igospp`` (two masks, eq. 4):
  :math:`\mathrm{Del}(U_xU_y) - \mathrm{Ins}(U_xU_y) + \mathrm{Del}(U_x) - \mathrm{Ins}(U_y) + g(M_xM_y)`.

The descent direction of each mask is the integrated gradient of the score terms,
multiplied by ``Config.ig_scale`` (0.5 for iGOS++: the official code halves the summed
terms "to balance out the terms with the regularization terms"), plus the plain gradient
of :math:`g`. For iGOS++ this is eq. (6):

.. math::

    d_x = \tfrac12\big[\partial_{M_x}\mathrm{Del}(U_xU_y) - \partial_{M_x}\mathrm{Ins}(U_xU_y)
          + \partial_{M_x}\mathrm{Del}(U_x)\big] + \partial_{M_x} g(M_xM_y)

and symmetrically for :math:`M_y` with :math:`-\partial_{M_y}\mathrm{Ins}(U_y)`. The IG
terms use :math:`U_xU_y = \mathrm{Up}(M_x)\,\mathrm{Up}(M_y)` while :math:`g` acts on the
low-resolution product :math:`M_xM_y`, as in the authors' code.
"""

from __future__ import annotations

import torch

from igospp.composition import upsample
from igospp.config import Config
from igospp.paths import PathEngine, PathTerm
from igospp.regularizers import regularizer

__all__ = ["method_terms", "mask_product", "Objective"]


def mask_product(masks: list[torch.Tensor]) -> torch.Tensor:
    """The final mask: the elementwise product of the method's masks (``Mx * My`` for iGOS++)."""
    out = masks[0]
    for m in masks[1:]:
        out = out * m
    return out


def _terms() -> dict[str, tuple[int, tuple[PathTerm, ...]]]:
    deletion_only = (1, (PathTerm("deletion", (0,), 1.0, "Del(M)"),))
    return {
        "mask": deletion_only,
        "igos": deletion_only,
        "naive": (1, (PathTerm("deletion", (0,), 1.0, "Del(M)"), PathTerm("insertion", (0,), -1.0, "Ins(M)"))),
        "insertion": (1, (PathTerm("insertion", (0,), -1.0, "Ins(M)"),)),
        "igospp": (2, (
            PathTerm("deletion", (0, 1), 1.0, "Del(Mx*My)"),
            PathTerm("insertion", (0, 1), -1.0, "Ins(Mx*My)"),
            PathTerm("deletion", (0,), 1.0, "Del(Mx)"),
            PathTerm("insertion", (1,), -1.0, "Ins(My)"),
        )),
    }


_METHOD_TERMS = _terms()


def method_terms(method: str) -> tuple[int, tuple[PathTerm, ...]]:
    """Number of masks and the signed path terms of ``method``.

    Example:
        >>> import igospp
        >>> n, terms = igospp.method_terms("igospp")
        >>> n, [t.name for t in terms]
        (2, ['Del(Mx*My)', 'Ins(Mx*My)', 'Del(Mx)', 'Ins(My)'])
    """
    return _METHOD_TERMS[method]


class Objective:
    """The loss of one method on a batch of images, with its descent direction.

    Args:
        config: the settings (method, regularizer, ``ig_scale``...).
        engine: evaluates the path terms.
    """

    def __init__(self, config: Config, engine: PathEngine) -> None:
        self.config = config
        self.engine = engine
        self.num_masks, self.terms = method_terms(config.method)
        self.size = tuple(engine.images.shape[-2:])
        self.l1 = config.effective_l1

    def upsampled(self, masks: list[torch.Tensor]) -> torch.Tensor:
        """``(n, T, 1, H, W)``: for each term, the product of its upsampled masks."""
        ups = [upsample(m, self.size) for m in masks]
        return torch.stack([mask_product([ups[j] for j in term.masks]) for term in self.terms], dim=1)

    def regularizer(self, masks: list[torch.Tensor], index: torch.Tensor) -> torch.Tensor:
        """``(n,)`` the regularizer of the product of all masks, for the images ``index``."""
        c = self.config
        return regularizer(self.engine.images[index], mask_product(masks), l1=self.l1, l2=c.l2, smoothness=c.smoothness,
                           beta=c.tv_beta, sigma=c.btv_sigma, form=c.btv_form)

    def _signed_sum(self, values: torch.Tensor) -> torch.Tensor:
        signs = torch.tensor([t.sign for t in self.terms], dtype=values.dtype, device=values.device)
        return (values * signs).sum(dim=1)

    def direction(self, masks: list[torch.Tensor]) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        """Descent direction of every mask, with the objective at ``masks``.

        One batched pass evaluates every path term of every image (forward and backward).

        Returns:
            ``(directions, objective (B,), term_values (B, T))``. The objective is built from
            the same noisy path scores as the direction (no extra forward pass).
        """
        index = torch.arange(masks[0].shape[0], device=masks[0].device)
        with torch.enable_grad():
            leaves = [m.detach().requires_grad_(True) for m in masks]
            ups = self.upsampled(leaves)
            values, grads = self.engine.evaluate(self.terms, ups, index, grad=True)
            signs = torch.tensor([t.sign for t in self.terms], dtype=ups.dtype, device=ups.device)
            surrogate = self.config.ig_scale * (grads * ups * signs.view(1, -1, 1, 1, 1)).sum()
            reg = self.regularizer(leaves, index)
            directions = list(torch.autograd.grad(surrogate + reg.sum(), leaves))
        return directions, self._signed_sum(values) + reg.detach(), values

    def value(self, masks: list[torch.Tensor], index: torch.Tensor) -> torch.Tensor:
        """``(n,)`` the objective at ``masks`` for the images ``index``, as the line search sees it.

        Noisy path scores with fresh draws, or with the gradient pass's draws when
        ``Config.ls_common_noise``; ``Config.ls_ig_steps`` intervals when it is set.
        """
        with torch.inference_mode():
            values, _ = self.engine.evaluate(self.terms, self.upsampled(masks), index, grad=False,
                                             steps=self.config.ls_ig_steps,
                                             reuse_noise=self.config.ls_common_noise)
            return self._signed_sum(values) + self.regularizer(masks, index)
