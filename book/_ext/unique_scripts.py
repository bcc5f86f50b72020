"""Sphinx extension: drop repeated <script> entries from every page; load the MathJax 2 shim first.

sphinx-thebe registers its configuration script once per read of the sources; when Jupyter
Book reads them twice the page declares ``const THEBE_JS_URL`` twice, which is a JavaScript
error. Keeping the first copy of each script fixes it without changing anything else.

``mathjax2-shim.js`` (in ``book/_static``) gives MathJax 3 the ``MathJax.Hub.Queue`` call the
widget manager makes; it must run before MathJax and the widget manager, hence priority 100.
"""

from __future__ import annotations


def _unique(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for js in scripts:
        key = (getattr(js, "filename", None) or "", repr(sorted(getattr(js, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            kept.append(js)
    context["script_files"] = kept


def setup(app):
    app.connect("html-page-context", _unique, priority=1000)
    app.add_js_file("mathjax2-shim.js", priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
