"""Load every page of the built book in headless Chromium, offline.

Fails on: a Python traceback in a page, math left unrendered, a broken image, a widget left
unrendered, a JavaScript console error, or any request that leaves 127.0.0.1. A screenshot of
every page is kept under ``_build/screenshots/``. Runs with ``pytest tests/browser --book``
after ``make book`` (Debian's ``chromium`` at /usr/bin/chromium; Playwright's Python package
drives it, nothing is downloaded).
"""

from __future__ import annotations

import functools
import http.server
import re
import shutil
import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest

ROOT = Path(__file__).resolve().parents[2]
HTML = ROOT / "_build" / "html"
SHOTS = ROOT / "_build" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]

pytestmark = pytest.mark.browser


def _pages() -> list[str]:
    """Every page of the table of contents (the pages Jupyter Book built from _toc.yml)."""
    import yaml

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", [{"chapters": toc.get("chapters", [])}]):
        files += [c["file"] for c in part.get("chapters", [])]
    return [re.sub(r"\.(md|ipynb)$", "", f) + ".html" for f in files]


@pytest.fixture(scope="module")
def server():
    if not (HTML / "index.html").exists():
        pytest.fail("the book is not built: run `make book` first")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(HTML))
    handler.log_message = lambda *a, **k: None
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


@pytest.mark.parametrize("page_path", _pages())
def test_page_renders_offline(server, browser, page_path):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    outside, console_errors, page_errors = [], [], []

    def route(r):
        host = urlparse(r.request.url).hostname
        if host in ("127.0.0.1", None) or r.request.url.startswith(("data:", "blob:", "about:")):
            r.continue_()
        else:
            outside.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.on("console", lambda msg: console_errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda err: page_errors.append(str(err)))
    response = page.goto(f"{server}/{page_path}", wait_until="networkidle")
    assert response is not None and response.status == 200, page_path
    page.wait_for_function("() => !window.MathJax || !window.MathJax.startup || window.MathJax.startup.promise")
    page.evaluate("() => window.MathJax && window.MathJax.startup ? window.MathJax.startup.promise : null")
    page.wait_for_timeout(300)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / (page_path.replace("/", "__").replace(".html", ".png"))), full_page=True)

    assert not outside, f"requests left 127.0.0.1: {outside}"
    assert not page_errors, f"JavaScript errors: {page_errors}"
    assert not console_errors, f"console errors: {console_errors}"
    body = page.inner_text("main") if page.query_selector("main") else page.inner_text("body")
    assert "Traceback (most recent call last)" not in body, "a Python traceback is shown"
    assert page.query_selector_all(".output.traceback, .output.error") == [], "an error output is shown"
    broken = page.evaluate("() => [...document.images].filter(i => !i.complete || i.naturalWidth === 0)"
                           ".map(i => i.src)")
    assert not broken, f"broken images: {broken}"
    math = page.evaluate("() => document.querySelectorAll('.math').length")
    rendered = page.evaluate("() => document.querySelectorAll('mjx-container').length")
    assert rendered >= math, f"{math - rendered} formula(s) left unrendered"
    assert not re.search(r"\$\$|\\\(|\\\[", body), "raw TeX delimiters in the page text"
    views = page.evaluate("() => document.querySelectorAll('script[type=\"application/vnd.jupyter.widget-view+json\"]')"
                          ".length")
    if views:
        page.wait_for_selector(".jupyter-widgets", timeout=15000)
        shown = page.evaluate("() => document.querySelectorAll('.jupyter-widgets').length")
        assert shown >= views, f"{views} widget view(s) but {shown} rendered"
    context.close()
