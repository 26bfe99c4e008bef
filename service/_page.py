"""The service's web page: queue, history, engine controls and the current run, live.

``GET /`` gives the page; ``GET /static/<name>`` its script and style sheet, read from
the package (``acq/service/_web``). The page and its assets are plain files that need no
credential and nothing from the network (no CDN, no build step); the data routes the
page calls (``/api/...`` and the WebSockets) check the credential the user gives it.
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response

__all__ = ["page_router"]

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}
_HEADERS = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}


def _web() -> Traversable:
    return resources.files("acq.service") / "_web"


def _asset(name: str) -> Response:
    """The packaged file ``name`` of the page, or 404 for any other name."""
    suffix = name[name.rfind(".") :] if "." in name else ""
    found = {entry.name: entry for entry in _web().iterdir() if entry.is_file()}
    if suffix not in _TYPES or name not in found:
        raise HTTPException(404, f"{name}: no such file of the page")
    return Response(found[name].read_bytes(), media_type=_TYPES[suffix], headers=_HEADERS)


def page_router() -> APIRouter:
    """The page at ``/`` and its assets under ``/static/``; no credential needed."""
    router = APIRouter()

    @router.get("/", include_in_schema=False)
    async def page() -> Response:  # pyright: ignore[reportUnusedFunction]
        return _asset("index.html")

    @router.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> Response:  # pyright: ignore[reportUnusedFunction]
        return _asset(name)

    return router
