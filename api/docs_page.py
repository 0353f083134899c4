"""The API reference at /schema, rendered here as plain HTML: no script, nothing from another
origin, so it works offline and under the same Content-Security-Policy as everything else."""

from __future__ import annotations

import json
from html import escape
from typing import Any

from litestar import Request
from litestar.openapi.plugins import OpenAPIRenderPlugin

_METHODS = ("get", "post", "put", "patch", "delete", "head", "options")


class DocsPage(OpenAPIRenderPlugin):
    """Every operation by tag: parameters, body, responses and security; schemas last."""

    def __init__(self) -> None:
        super().__init__(path=["/", "/docs"])

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        openapi_schema = json.loads(self.render_json(request, openapi_schema))  # plain data
        info = openapi_schema.get("info", {})
        by_tag: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
        for path, item in openapi_schema.get("paths", {}).items():
            for method in _METHODS:
                if method in item:
                    op = item[method]
                    for tag in op.get("tags") or ["other"]:
                        by_tag.setdefault(tag, []).append((method, path, op))
        nav = "".join(
            f'<li><a href="#tag-{escape(tag)}">{escape(tag)}</a></li>' for tag in sorted(by_tag)
        )
        sections = "".join(_tag(tag, ops) for tag, ops in sorted(by_tag.items()))
        schemas = openapi_schema.get("components", {}).get("schemas", {})
        title = escape(info.get("title", "API"))
        page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>{title} API</title><link rel="icon" href="data:,">
<link rel="stylesheet" href="/static/docs.css"></head>
<body><header><h1>{title} <small>API {escape(str(info.get("version", "")))}</small></h1>
<p>{escape(info.get("description", ""))}</p>
<p>Machine-readable: <a href="/schema/openapi.json">openapi.json</a>
 · Errors: <a href="/problems">problem types</a> · <a href="/">dashboard</a></p>
<nav aria-label="Tags"><ul>{nav}<li><a href="#schemas">schemas</a></li></ul></nav></header>
<main>{sections}<section id="schemas"><h2>Schemas</h2>{
            "".join(
                f'<h3 id="schema-{escape(name)}">{escape(name)}</h3>{_json(schema)}'
                for name, schema in sorted(schemas.items())
            )
        }</section></main></body></html>"""
        return page.encode()


def _tag(tag: str, ops: list[tuple[str, str, dict[str, Any]]]) -> str:
    return (
        f'<section id="tag-{escape(tag)}"><h2>{escape(tag)}</h2>'
        + "".join(_operation(method, path, op) for method, path, op in ops)
        + "</section>"
    )


def _operation(method: str, path: str, op: dict[str, Any]) -> str:
    anchor = escape(op.get("operationId", f"{method}-{path}"))
    parts = [
        f'<article id="{anchor}"><h3><span class="method {method}">{method.upper()}</span>'
        f" <code>{escape(path)}</code> {escape(op.get('summary', ''))}</h3>"
    ]
    if op.get("description"):
        parts.append(f"<p>{escape(op['description'])}</p>")
    security = op.get("security")
    if security:
        names = sorted({name for requirement in security for name in requirement})
        parts.append(f"<p>Authorization: {escape(', '.join(names))}</p>")
    params = op.get("parameters") or []
    if params:
        rows = "".join(
            f"<tr><td><code>{escape(p['name'])}</code></td><td>{escape(p.get('in', ''))}</td>"
            f"<td>{'yes' if p.get('required') else ''}</td>"
            f"<td>{_inline(p.get('schema', {}))}</td>"
            f"<td>{escape(p.get('description', ''))}</td></tr>"
            for p in params
        )
        parts.append(
            "<table><caption>Parameters</caption><tr><th>name</th><th>in</th><th>required</th>"
            f"<th>schema</th><th>description</th></tr>{rows}</table>"
        )
    body = op.get("requestBody")
    if body:
        for media, content in body.get("content", {}).items():
            parts.append(
                f"<details><summary>Request body ({escape(media)})</summary>"
                f"{_json(content.get('schema', {}))}</details>"
            )
    for code, response in (op.get("responses") or {}).items():
        contents: dict[str, Any] = response.get("content") or {}
        media = ", ".join(contents) or "no body"
        first: dict[str, Any] = next(iter(contents.values()), {})
        schema = first.get("schema")
        summary = f"{escape(code)}: {escape(response.get('description', ''))} ({escape(media)})"
        parts.append(
            f"<details><summary>{summary}</summary>{_json(schema)}</details>"
            if schema
            else f"<p class='response'>{summary}</p>"
        )
    parts.append("</article>")
    return "".join(parts)


def _inline(schema: dict[str, Any]) -> str:
    return f"<code>{escape(json.dumps(schema, separators=(', ', ': ')))}</code>"


def _json(schema: Any) -> str:
    return f"<pre>{escape(json.dumps(schema, indent=2, sort_keys=True))}</pre>"
