"""Sphinx extension: copy a figure glued in a committed notebook to a file a page can show.

myst-nb's ``{glue:figure}`` only pastes outputs of the same document, but the introduction
(a Markdown page) shows a figure that chapter 4 computes and glues with
``myst_nb.glue("ch4_fig1", fig, display=False)``. On ``builder-inited`` this extension reads the
mapping ``igospp_notebook_figures`` from the Sphinx config (``sphinx: config:`` in
``_config.yml``)::

    igospp_notebook_figures:
      book/_generated/fig1.png: [book/chapters/04_igospp.ipynb, ch4_fig1]

(paths relative to the project root, where ``_config.yml`` is), finds in the notebook's stored
outputs the glue output of that key (a ``display_data`` output whose metadata has
``{"scrapbook": {"name": "ch4_fig1", ...}}``), decodes its PNG
(``application/papermill.record/image/png``, or plain ``image/png``) and writes it to the given
path, so that the page uses an ordinary directive::

    :::{figure} _generated/fig1.png
    :name: fig-intro
    The caption.
    :::

The file is rewritten only when its bytes change. A missing notebook, a key the notebook does
not glue or a glued value that is not a PNG stops the build with a message naming the notebook
and the key. Nothing is executed: the committed outputs are read.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

from sphinx.errors import ConfigError
from sphinx.util import logging

logger = logging.getLogger(__name__)

PNG_MIMES = ("application/papermill.record/image/png", "image/png")


def glued_png(notebook: Path, key: str, name: str | None = None) -> bytes:
    """The PNG glued under ``key`` in the stored outputs of ``notebook`` (raises ConfigError).

    ``name`` is how messages call the notebook (the path as written in the config).
    """
    name = name or str(notebook)
    if not notebook.is_file():
        raise ConfigError(f"igospp_notebook_figures: notebook {name} does not exist (key {key!r})")
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    found_other = None
    for cell in nb.get("cells", []):
        for output in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            if output.get("metadata", {}).get("scrapbook", {}).get("name") != key:
                continue
            data = output.get("data", {})
            for mime in PNG_MIMES:
                if mime in data:
                    payload = data[mime]
                    payload = "".join(payload) if isinstance(payload, list) else payload
                    return base64.b64decode(payload)
            found_other = sorted(data)
    if found_other is not None:
        raise ConfigError(f"igospp_notebook_figures: {name} glues {key!r} but not as a PNG "
                          f"(its output has {found_other}); glue a matplotlib figure")
    raise ConfigError(f"igospp_notebook_figures: {name} has no glued output {key!r} "
                      f"(rerun the notebook so that it calls myst_nb.glue({key!r}, fig, display=False))")


def write_figures(app) -> None:
    mapping = app.config.igospp_notebook_figures or {}
    root = Path(app.srcdir)
    for target, source in mapping.items():
        if not (isinstance(source, (list, tuple)) and len(source) == 2):
            raise ConfigError(f"igospp_notebook_figures: {target!r} must map to [notebook, key], not {source!r}")
        notebook, key = source
        png = glued_png(root / notebook, key, name=notebook)
        path = root / target
        if path.is_file() and path.read_bytes() == png:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png)
        logger.info("notebook_figures: %s <- %s [%s]", target, notebook, key)


def setup(app):
    app.add_config_value("igospp_notebook_figures", {}, "env", types=[dict])
    app.connect("builder-inited", write_figures)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
