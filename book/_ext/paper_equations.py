"""Sphinx extension: equations labelled ``eq<N>-...`` carry the paper's number N.

The book shows the paper's equations (1) to (8) and wants them numbered as in the paper. A MyST
labelled equation whose label starts with ``eq<N>-`` (regular expression ``^eq(\\d+)-``)::

    $$
    f(x) = 1
    $$ (eq4-objective)

is displayed with the number (4), and ``{eq}`eq4-objective``` renders "(4)" and links to it. The
same paper equation may be shown on several pages under different labels (``eq4-intro`` in the
introduction, ``eq4-objective`` in chapter 4): each shows (4). Any other labelled equation keeps
Sphinx's own numbering (1, 2, ... per page, counting only the equations that are not the
paper's), so a page can mix the two. When one of those local numbers equals a paper number shown
on the same page (two "(1)" on one page) the build warns, which fails the strict build.

Write no ``\\tag``: Sphinx wraps display math that contains ``\\\\`` in a ``split``
environment, where MathJax refuses it, and ``{eq}`` cannot refer to its number. Multi-line
equations use ``&`` and ``\\\\``.

This needs ``math_numfig = False`` (set in ``_config.yml``): with ``math_numfig`` on, Sphinx
numbers equations by their position in the numbered table of contents (4.1, 4.2, ...) and
ignores the numbers recorded here.

Implementation: the math domain records every labelled equation with ``note_equation`` (MyST's
``$$ ... $$ (label)``, the ``{math}`` directive and myst-nb's glued math all call it) and
``node['number']`` is what the HTML writer shows; the subclass below records N for the paper's
labels. Cross-references read the same record (``MathDomain.resolve_xref``).
"""

from __future__ import annotations

import re
from typing import Any

from docutils import nodes
from sphinx.domains.math import MathDomain
from sphinx.util import logging

PAPER_LABEL = re.compile(r"^eq(\d+)-")

logger = logging.getLogger(__name__)


class PaperMathDomain(MathDomain):
    """The math domain, with the paper's equation numbers for labels ``eq<N>-...``."""

    def note_equation(self, docname: str, labelid: str, location: Any = None) -> None:
        match = PAPER_LABEL.match(labelid)
        if match is None:
            super().note_equation(docname, labelid, location=location)
            return
        if labelid in self.equations:
            other = self.equations[labelid][0]
            logger.warning("duplicate label of equation %s, other instance in %s", labelid, other,
                           location=location)
        self.equations[labelid] = (docname, int(match.group(1)))

    def process_doc(self, env, docname: str, document: nodes.document) -> None:
        super().process_doc(env, docname, document)
        paper, local = {}, []
        for node in document.findall(nodes.math_block):
            label, number = node.get("label"), node.get("number")
            if not label or not number:
                continue
            if PAPER_LABEL.match(label):
                paper.setdefault(number, label)
            else:
                local.append((number, label, node))
        for number, label, node in local:
            if number in paper:
                logger.warning("equation %r is numbered (%s) on this page, and so is the paper's equation %r; "
                               "drop the label of the local equation or show it without a number", label,
                               number, paper[number], location=node, type="igospp", subtype="equation_number")


def _check_numfig(app, config) -> None:
    if config.math_numfig and config.numfig:
        logger.warning("paper_equations: set `math_numfig: false` in the sphinx config of _config.yml; "
                       "with it on, equations labelled eq<N>-... are numbered by section, not N")


def setup(app):
    app.add_domain(PaperMathDomain, override=True)
    app.connect("config-inited", _check_numfig)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
