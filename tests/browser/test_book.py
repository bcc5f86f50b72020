"""Load every page of the built book in headless Chromium, offline, at 1280 x 900, and check it.

Each page is loaded once; every check is its own test, ``test_page[<page>-<check>]``, so a run
lists which page fails which check. The checks:

``offline``
    no request leaves 127.0.0.1.
``javascript``
    no JavaScript error and no console error.
``traceback``
    no Python traceback and no error output is shown.
``images``
    no broken image.
``math-rendered``
    every formula is typeset (as many ``mjx-container`` as ``.math`` elements) and no raw TeX
    delimiter (``$$``, ``\\(``, ``\\[``) is left in the text.
``widgets``
    every stored widget view is rendered.
``math-errors``
    MathJax rendered no error: no ``mjx-merror`` element, no ``data-mjx-error`` attribute, no
    "Math input error" / "Math output error" text. (A TeX error such as ``\\tag`` inside Sphinx's
    ``split`` environment still produces an ``mjx-container``, so ``math-rendered`` misses it.)
``table-pipes``
    no paragraph shows a Markdown table as text: after removing math and inline code, no ``<p>``
    contains a separator cell (``|---|``, ``| :--: |``) or a line that starts and ends with ``|``
    and has at least two cells. This is what a pipe table in a CommonMark-rendered
    ``text/markdown`` output looks like.
``wide-math``
    no display formula is cut off, or sticks out of the content column. The rule: take the
    formula's ink (the box of its ``mjx-math``) and walk up from its ``mjx-container`` to the
    ``article``. An ancestor with ``overflow-x: hidden`` or ``clip`` must contain the ink (else
    "clipped"). An ancestor with ``overflow-x: auto`` or ``scroll`` is a scrolling box: ink to
    the right of it can be scrolled into view, ink to its left cannot (a scroll box starts at its
    left edge), so the ink must not start left of it; from there on, what is shown is the part
    of the ink inside that box. At the end, what is shown must lie within the article's content
    box (1 px tolerance everywhere). So a formula wider than the column passes only when it
    scrolls sideways inside its own box that has ``overflow-x: auto`` or ``scroll`` and fits
    the column, as ``book/_static/igospp.css`` arranges for display math; chapters should
    still break long equations over lines.
``figure-captions``
    every ``<figure>`` has a non-empty ``<figcaption>``, and every image a notebook cell outputs
    (an ``img`` under a ``.cell_output``, not inside a Jupyter widget) is inside such a figure
    (myst-nb's ``mystnb: figure: caption`` cell metadata, or a glued figure).
``code-width``
    no code cell's source scrolls sideways: a ``pre`` in a ``.cell_input`` whose ``scrollWidth``
    exceeds its ``clientWidth``; the message names each line longer than what fits.

Collapsed ``<details>`` (hidden cell inputs or outputs) are opened before the last two checks.
``test_code_line_length`` measures how many characters of code fit on one line of a code cell
(the content width of the ``pre`` over the width of a character of its monospace font) and
checks that ``book/ruff.toml``'s ``line-length`` (which ``ruff check book`` applies to the
chapters) is no longer. ``test_checks_catch_faults`` injects one fault per new check into a
built page and makes sure each check reports it, and that a wide formula in a normal
``div.math`` scrolls instead of being reported.

A screenshot of every page is kept under ``_build/screenshots/``. Runs with
``pytest tests/browser --book`` after ``make book`` (Debian's ``chromium`` at /usr/bin/chromium;
Playwright's Python package drives it, nothing is downloaded). ``IGOSPP_BOOK_ROOT=/path`` checks
another Jupyter Book project (its ``_toc.yml`` and ``_build/html``) instead of this one.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import threading
import tomllib
from pathlib import Path
from urllib.parse import urlparse

import pytest

ROOT = Path(__file__).resolve().parents[2]
BOOK = Path(os.environ.get("IGOSPP_BOOK_ROOT", ROOT)).resolve()
HTML = BOOK / "_build" / "html"
SHOTS = BOOK / "_build" / "screenshots"
RUFF_TOML = ROOT / "book" / "ruff.toml"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
VIEWPORT = {"width": 1280, "height": 900}
CHECKS = ["offline", "javascript", "traceback", "images", "math-rendered", "widgets",
          "math-errors", "table-pipes", "wide-math", "figure-captions", "code-width"]

pytestmark = pytest.mark.browser


def _pages() -> list[str]:
    """Every page of the table of contents (the pages Jupyter Book built from _toc.yml)."""
    import yaml

    toc = yaml.safe_load((BOOK / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", [{"chapters": toc.get("chapters", [])}]):
        files += [c["file"] for c in part.get("chapters", [])]
    return [re.sub(r"\.(md|ipynb)$", "", f) + ".html" for f in files]


# The checks that read the laid-out page: one function, run after MathJax has finished.
# Returns {check: [problem, ...]} for the five layout checks, plus codeFit: the characters that
# fit on a line of the first code cell shown (null on a page without code cells).
LAYOUT_JS = r"""
() => {
  const article = document.querySelector('article.bd-article') || document.querySelector('main') || document.body;
  const short = (s, n = 90) => {
    s = (s || '').replace(/\s+/g, ' ').trim();
    return s.length > n ? s.slice(0, n) + '...' : s;
  };
  const texOf = (el) => {
    try {
      const items = window.MathJax.startup.document.getMathItemsWithin(el);
      if (items.length) return short(items[0].math, 70);
    } catch (e) { /* no MathJax document: fall back to the element's text */ }
    return short(el.textContent, 70);
  };
  const describe = (el) => el.tagName.toLowerCase() + (el.className && typeof el.className === 'string'
    ? '.' + el.className.trim().split(/\s+/).join('.') : '');
  const cellSource = (el) => {
    const cell = el.closest('.cell');
    const pre = cell && cell.querySelector('.cell_input pre');
    return pre ? short(pre.textContent.split('\n').find(l => l.trim()) || '', 60) : '(source not shown)';
  };
  const out = {'math-errors': [], 'table-pipes': [], 'wide-math': [], 'figure-captions': [], 'code-width': [],
               codeFit: null};

  // math-errors
  const reported = new Set();
  for (const el of document.querySelectorAll('mjx-merror, [data-mjx-error]')) {
    const where = el.closest('mjx-container') || el;       // one message per formula
    if (reported.has(where)) continue;
    reported.add(where);
    const err = el.getAttribute('data-mjx-error') || short(el.textContent);
    out['math-errors'].push(`${err} in ` + (where === el ? describe(el) : texOf(where)));
  }
  for (const el of document.querySelectorAll('article *')) {
    if (el.children.length === 0 && /Math (input|output|processing) error/.test(el.textContent))
      out['math-errors'].push(short(el.textContent));
  }

  // table-pipes
  const SEP = /\|\s*:?[-\u2013\u2014]+:?\s*\|/;   // Sphinx's SmartQuotes turns --- into an em dash
  const ROW = /^\s*\|([^|\n]*\|){2,}\s*$/m;
  for (const p of article.querySelectorAll('p')) {
    const c = p.cloneNode(true);
    c.querySelectorAll('mjx-container, .math, code, script, style').forEach(e => e.remove());
    const text = c.textContent;
    if (SEP.test(text) || ROW.test(text)) out['table-pipes'].push(short(text));
  }

  // wide-math
  const acs = getComputedStyle(article), ar = article.getBoundingClientRect();
  const colL = ar.left + parseFloat(acs.paddingLeft), colR = ar.right - parseFloat(acs.paddingRight);
  for (const c of article.querySelectorAll('mjx-container[display="true"]')) {
    const ink = c.querySelector('mjx-math');
    if (!ink) continue;
    const m = ink.getBoundingClientRect();
    if (m.width === 0) continue;                     // not displayed (collapsed)
    let L = m.left, R = m.right, why = null;
    for (let a = c; a && a !== article; a = a.parentElement) {
      const ox = getComputedStyle(a).overflowX;
      if (ox === 'visible') continue;
      const r = a.getBoundingClientRect();
      if (ox === 'auto' || ox === 'scroll') {
        if (L < r.left - 1) {
          why = `starts ${Math.round(r.left - L)} px left of its scrolling box <${describe(a)}>, out of reach`;
          break;
        }
        L = Math.max(L, r.left); R = Math.min(R, r.right);
      } else if (L < r.left - 1 || R > r.right + 1) {
        why = `${Math.round(m.width)} px wide, clipped by <${describe(a)}> ` +
              `(overflow-x: ${ox}, ${Math.round(r.width)} px)`;
        break;
      }
    }
    if (!why && (L < colL - 1 || R > colR + 1))
      why = `${Math.round(m.width)} px wide, sticks out of the ${Math.round(colR - colL)} px content column`;
    if (why) out['wide-math'].push(`${why}: ${texOf(c)}`);
  }

  // figure-captions and code-width read collapsed content too
  document.querySelectorAll('details').forEach(d => { d.open = true; });
  const captioned = (f) => { const fc = f && f.querySelector('figcaption'); return !!(fc && fc.textContent.trim()); };
  for (const f of article.querySelectorAll('figure')) {
    if (!captioned(f)) {
      const img = f.querySelector('img');
      out['figure-captions'].push(`<figure${f.id ? ' id=' + f.id : ''}> without a caption` +
                                  (img ? ` (${img.getAttribute('src').split('/').pop().slice(0, 40)})` : ''));
    }
  }
  for (const img of article.querySelectorAll('.cell_output img')) {
    if (img.closest('.jupyter-widgets, .widget-area, .jp-OutputArea')) continue;
    if (!captioned(img.closest('figure')))
      out['figure-captions'].push(`cell output image without a captioned figure, cell: ${cellSource(img)}`);
  }

  // code-width
  for (const pre of article.querySelectorAll('.cell_input pre')) {
    if (pre.clientWidth === 0) continue;
    const cs = getComputedStyle(pre);
    const probe = document.createElement('span');
    probe.textContent = '0'.repeat(100);
    pre.appendChild(probe);
    const charWidth = probe.getBoundingClientRect().width / 100;
    probe.remove();
    const inner = pre.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight);
    const fit = Math.floor(inner / charWidth + 1e-6);
    if (out.codeFit === null) out.codeFit = fit;
    if (pre.scrollWidth <= pre.clientWidth + 1) continue;
    const lines = pre.textContent.replace(/\n$/, '').split('\n');
    const long = lines.map((l, i) => [i + 1, l]).filter(([, l]) => l.length > fit);
    const where = `cell "${short(lines.find(l => l.trim()) || '', 40)}"`;
    if (!long.length) out['code-width'].push(`${where} scrolls sideways (${pre.scrollWidth} > ${pre.clientWidth} px)`);
    for (const [n, l] of long)
      out['code-width'].push(`${where} line ${n}: ${l.length} characters > ${fit}: ${short(l, 100)}`);
  }
  return out;
}
"""

WAIT_FOR_MATHJAX = "() => window.MathJax && window.MathJax.startup ? window.MathJax.startup.promise : null"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # no line per request on stderr
        pass


@pytest.fixture(scope="module")
def server():
    if not (HTML / "index.html").exists():
        pytest.fail("the book is not built: run `make book` first")
    handler = functools.partial(_QuietHandler, directory=str(HTML))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is not installed (apt-get install chromium); `make test` installs it")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield browser
        browser.close()


def _open(browser, url: str):
    """A new 1280 x 900 page at ``url``, offline, with MathJax finished; returns (context, page, log)."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    log = {"outside": [], "console": [], "page": []}

    def route(r):
        host = urlparse(r.request.url).hostname
        if host in ("127.0.0.1", None) or r.request.url.startswith(("data:", "blob:", "about:")):
            r.continue_()
        else:
            log["outside"].append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.on("console", lambda msg: log["console"].append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda err: log["page"].append(str(err)))
    response = page.goto(url, wait_until="networkidle")
    log["status"] = response.status if response is not None else None
    page.wait_for_function("() => !window.MathJax || !window.MathJax.startup || window.MathJax.startup.promise")
    page.evaluate(WAIT_FOR_MATHJAX)
    page.wait_for_timeout(300)
    return context, page, log


def _inspect(server, browser, page_path: str) -> dict:
    """Load one page and run every check: {check: [problem, ...]} plus codeFit."""
    context, page, log = _open(browser, f"{server}/{page_path}")
    found = {check: [] for check in CHECKS}
    if log["status"] != 200:
        found["offline"].append(f"HTTP status {log['status']}")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / (page_path.replace("/", "__").replace(".html", ".png"))), full_page=True)

    found["offline"] += [f"request left 127.0.0.1: {u}" for u in log["outside"]]
    found["javascript"] += [f"JavaScript error: {e}" for e in log["page"]]
    found["javascript"] += [f"console error: {e}" for e in log["console"]]
    body = page.inner_text("main") if page.query_selector("main") else page.inner_text("body")
    if "Traceback (most recent call last)" in body:
        found["traceback"].append("a Python traceback is shown")
    if page.query_selector_all(".output.traceback, .output.error"):
        found["traceback"].append("an error output is shown")
    broken = page.evaluate("() => [...document.images].filter(i => !i.complete || i.naturalWidth === 0)"
                           ".map(i => i.src)")
    found["images"] += [f"broken image: {src}" for src in broken]
    math = page.evaluate("() => document.querySelectorAll('.math').length")
    rendered = page.evaluate("() => document.querySelectorAll('mjx-container').length")
    if rendered < math:
        found["math-rendered"].append(f"{math - rendered} formula(s) left unrendered")
    if re.search(r"\$\$|\\\(|\\\[", body):
        found["math-rendered"].append("raw TeX delimiters in the page text")
    views = page.evaluate("() => document.querySelectorAll('script[type=\"application/vnd.jupyter.widget-view+json\"]')"
                          ".length")
    if views:
        try:
            page.wait_for_selector(".jupyter-widgets", timeout=15000)
        except Exception:  # a timeout: the count below reports it
            pass
        shown = page.evaluate("() => document.querySelectorAll('.jupyter-widgets').length")
        if shown < views:
            found["widgets"].append(f"{views} widget view(s) but {shown} rendered")
    layout = page.evaluate(LAYOUT_JS)
    for check in ("math-errors", "table-pipes", "wide-math", "figure-captions", "code-width"):
        found[check] += layout[check]
    found["codeFit"] = layout["codeFit"]
    context.close()
    return found


@pytest.fixture(scope="module")
def inspected(server, browser):
    """``inspected(page_path)``: the checks' findings for one page, each page loaded once."""
    cache: dict[str, dict] = {}

    def get(page_path: str) -> dict:
        if page_path not in cache:
            cache[page_path] = _inspect(server, browser, page_path)
        return cache[page_path]

    return get


@pytest.mark.parametrize("check", CHECKS)
@pytest.mark.parametrize("page_path", _pages())
def test_page(inspected, page_path, check):
    problems = inspected(page_path)[check]
    assert not problems, f"{page_path} fails {check}:\n  " + "\n  ".join(problems)


def test_code_line_length(inspected):
    """book/ruff.toml's line-length is at most the characters that fit on a code-cell line at 1280 px."""
    fits = {p: inspected(p)["codeFit"] for p in _pages()}
    fits = {p: f for p, f in fits.items() if f is not None}
    assert fits, "no page shows a code cell"
    narrowest = min(fits.values())
    line_length = tomllib.loads(RUFF_TOML.read_text())["line-length"]
    assert line_length <= narrowest, (f"book/ruff.toml has line-length = {line_length}, but only {narrowest} "
                                      f"characters fit on a code-cell line at 1280 px: {fits}")


# One fault per new check, injected into a built page; each marked "igospp-fault" where it can be.
INJECT_JS = r"""
async () => {
  const article = document.querySelector('article.bd-article') || document.querySelector('main') || document.body;
  const add = (html) => {
    const d = document.createElement('div');
    d.innerHTML = html;
    article.appendChild(d);
    return d;
  };
  const wide = Array.from({length: 70}, (_, i) => `\\alpha_{${i}}`).join(' + ');
  const maths = [
    add('<div class="math notranslate nohighlight">\\[\\begin{split}a = b \\tag{9}\\end{split}\\]</div>'),
    add('<div style="overflow: hidden; width: 300px"><div style="width: 3000px">' +
        '<div class="math notranslate nohighlight">' +
        `\\[x_{igosppclipped} = ${wide}\\]</div></div></div>`),
    add(`<div class="math notranslate nohighlight">\\[y_{igosppscrolls} = ${wide}\\]</div>`),
    add(`<div class="math notranslate nohighlight">\\[z_{igosppscrolls} = ${wide} \\tag{10}\\]</div>`),
  ];
  add('<p>| method | igospp-fault |\n|---|---|\n| iGOS++ | 0.1 |</p>');
  add('<figure id="igospp-fault-figure"><img src="data:image/gif;base64,R0lGODlhAQABAAAAACw="></figure>');
  add('<div class="cell"><div class="cell_input"><pre>igospp_fault = 1</pre></div>' +
      '<div class="cell_output"><img src="data:image/gif;base64,R0lGODlhAQABAAAAACw="></div></div>');
  add('<div class="cell"><div class="cell_input"><div class="highlight"><pre>igospp_fault_long_line = "' +
      'x'.repeat(200) + '"\nshort = 2</pre></div></div></div>');
  await window.MathJax.typesetPromise(maths);
}
"""


def test_checks_catch_faults(server, browser):
    """Each new check reports a fault injected into a built page; wide math in div.math scrolls.

    The wide formulas in a plain ``div.math``, one of them with a ``\\tag`` (MathJax's
    ``width="full"`` layout, which book/_static/igospp.css lets shrink), must scroll and pass.
    """
    page_path = _pages()[0]
    context, page, _ = _open(browser, f"{server}/{page_path}")
    before = page.evaluate(LAYOUT_JS)
    page.evaluate(INJECT_JS)
    page.wait_for_timeout(300)
    after = page.evaluate(LAYOUT_JS)
    context.close()
    new = {check: [p for p in after[check] if p not in before[check]] for check in
           ("math-errors", "table-pipes", "wide-math", "figure-captions", "code-width")}
    assert any("tag" in p for p in new["math-errors"]), new["math-errors"]
    assert any("igospp-fault" in p for p in new["table-pipes"]), new["table-pipes"]
    assert any("igosppclipped" in p and "clipped by" in p for p in new["wide-math"]), new["wide-math"]
    assert not any("igosppscrolls" in p for p in new["wide-math"]), new["wide-math"]
    assert any("igospp-fault-figure" in p for p in new["figure-captions"]), new["figure-captions"]
    assert any("igospp_fault = 1" in p for p in new["figure-captions"]), new["figure-captions"]
    assert any("line 1: 227 characters" in p for p in new["code-width"]), new["code-width"]
    assert not any("line 2" in p for p in new["code-width"]), new["code-width"]
