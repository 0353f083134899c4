"""The dashboard's index.html preloads every ES module, so the browser fetches them all at once
instead of discovering them import level by import level; a module added without a preload
line (or a preload of a module that is gone) fails here."""

from __future__ import annotations

import re
from pathlib import Path

STATIC = Path(__file__).resolve().parents[2] / "api" / "static"


def test_index_html_preloads_every_module_under_static_js() -> None:
    html = (STATIC / "index.html").read_text()
    preloaded = set(re.findall(r'<link rel="modulepreload" href="/static/([^"]+)">', html))
    entry = set(re.findall(r'<script type="module" src="/static/([^"]+)">', html))
    on_disk = {p.relative_to(STATIC).as_posix() for p in (STATIC / "js").rglob("*.js")}
    assert entry == {"js/app.js"}
    assert sorted(on_disk - preloaded - entry) == [], "modules without a modulepreload line"
    assert sorted((preloaded | entry) - on_disk) == [], "preloads of modules that do not exist"
