"""Write docs/reference/service-api.md from the service application's OpenAPI document.

    python docs/reference/service_api.py           # rewrite the page
    python docs/reference/service_api.py --check   # exit 1 if the page is out of date

The HTTP routes come from ``app.openapi()`` of a :class:`acq.service.Service` (method,
path, summary, description), each with the scope it needs (``ROUTE_SCOPES``); the
WebSocket routes, which OpenAPI does not describe, from ``ROUTE_SCOPES`` and the
docstring of ``acq.service._ws``; the shapes of answers and errors from the docstring
of ``acq.service._api``. tests/service/test_api_reference.py fails when the committed
page differs from what this script writes.
"""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path
from typing import Any

PAGE = Path(__file__).resolve().with_name("service-api.md")
WS_PREFIX = "/api/v1/ws/"

HEADER = """\
# Service API reference

The routes of `acq serve` (`acq.service`): those of bluesky-httpserver under `/api`, so
that the unmodified `bluesky-queueserver-api` client drives the service, and WebSockets
under `/api/v1/ws`. This page is generated from the application's OpenAPI document by
`docs/reference/service_api.py`; do not edit it by hand -- change the routes, then run
`python docs/reference/service_api.py`. A running service serves the same document at
`GET /openapi.json` and an interactive page at `/docs`.

Parameters are sent as a JSON object in the request body, as `bluesky-queueserver-api`
sends them, or as query parameters (`GET /api/queue/item/get?pos=0`). Credentials go in
the `Authorization` header (`ApiKey <key>` or `Bearer <JWT>`); each route needs the
scope in its row (see [the security notes](../explanations/service-security.md)).
"""

_LITERAL = re.compile(r"``([^`]+)``")
_ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|data|attr|exc|obj):`~?([^`]+)`")


def _markdown(text: str) -> str:
    """A docstring's reST literals and roles as markdown code."""
    return _ROLE.sub(r"`\1`", _LITERAL.sub(r"`\1`", text))


def _doc_after_title(module: Any) -> str:
    """A module docstring without its first line, as markdown."""
    doc = (module.__doc__ or "").strip()
    return _markdown(doc.split("\n\n", 1)[1] if "\n\n" in doc else "").strip()


def openapi() -> dict[str, Any]:
    """The OpenAPI document of a service (an empty configuration; nothing is opened)."""
    from acq.service import Service, ServiceConfig

    service = Service(ServiceConfig(catalog=None, queue_url=":memory:"))
    return service.app.openapi()


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _http_section(document: dict[str, Any]) -> list[str]:
    from acq.service._api import route_scope

    lines = ["## HTTP routes", "", "| Method | Path | Scope | Summary |", "|---|---|---|---|"]
    details: list[str] = []
    for path in sorted(document["paths"]):
        for method, operation in sorted(document["paths"][path].items()):
            found = route_scope(method, path)  # a method's own scope, else its path's
            scope = found or ("none: refused to everyone" if path.startswith("/api") else "-")
            summary = operation.get("summary", "")
            lines.append(f"| `{method.upper()}` | `{path}` | `{scope}` | {_cell(summary)} |")
            if operation.get("description"):
                details += [f"### `{method.upper()} {path}`", "", operation["description"], ""]
    return [*lines, "", *details]


def _ws_section(scopes: dict[str, str]) -> list[str]:
    ws = importlib.import_module("acq.service._ws")
    lines = ["## WebSocket routes", "", "| Path | Scope |", "|---|---|"]
    lines += [f"| `{p}` | `{s}` |" for p, s in sorted(scopes.items()) if p.startswith(WS_PREFIX)]
    return [*lines, "", _doc_after_title(ws), ""]


def render() -> str:
    """The page's text."""
    from acq.service._auth import ROUTE_SCOPES

    document = openapi()
    api = importlib.import_module("acq.service._api")
    info = document.get("info", {})
    lines = [
        HEADER,
        f"OpenAPI {document.get('openapi', '?')}, application `{info.get('title', '?')}`.",
        "",
        *_http_section(document),
        "## Answers and errors",
        "",
        _doc_after_title(api),
        "",
        *_ws_section(ROUTE_SCOPES),
    ]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str]) -> int:
    """Rewrite the page, or with ``--check`` say whether it is up to date."""
    text = render()
    if "--check" in argv:
        if PAGE.read_text(encoding="utf-8") != text:
            print(f"{PAGE} is out of date: run python {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(text, encoding="utf-8")
    print(f"wrote {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
