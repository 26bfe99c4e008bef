"""The native ``/api/v1`` routes: the queue, its history and the engine as resources.

Guarded as the ``/api`` routes are (the same guard, a scope per route in
:data:`~._auth.ROUTE_SCOPES`). Answers are plain resources, errors are HTTP statuses with
``{"detail": "..."}`` naming the field or the rule:

* ``400`` malformed JSON; ``422`` bad input (an unknown plan, device or parameter, an
  argument of the wrong type); nothing is queued and nothing reaches the engine;
* ``404`` no queued item with that uid, no such plan;
* ``409`` a valid request the state forbids now (resume while nothing is paused, start
  a running queue, change the running item);
* ``401``/``403`` as for ``/api``.
"""

from __future__ import annotations

import typing
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response

from ._api import (
    Params,
    caller,
    checked_item,
    json_body,
    params,
    permitted,
    query,
    refuse,
    route_guard,
    status_of,
)
from ._auth import AuthError, Authorizer
from ._manager import QueueManager, Refused
from ._plans import ItemError
from ._store import UnknownItem

__all__ = ["v1_router"]

_PLACE = ("pos", "before", "after")
T = typing.TypeVar("T")


async def answer(action: Callable[[], Awaitable[T]]) -> T:
    """Run ``action``: unknown item to 404, bad input to 422, a state conflict to 409."""
    try:
        return await action()
    except UnknownItem as exc:
        raise HTTPException(404, str(exc)) from None
    except (ItemError, ValueError) as exc:
        raise HTTPException(422, str(exc)) from None
    except Refused as exc:
        raise HTTPException(409, str(exc)) from None


def v1_router(manager: QueueManager, auth: Authorizer | None = None) -> APIRouter:
    """The ``/api/v1`` routes acting on ``manager``, guarded by ``auth`` (as ``/api``)."""
    guard = route_guard(auth if auth is not None else Authorizer())
    router = APIRouter(prefix="/api/v1", dependencies=[Depends(guard)])
    _queue_routes(router, manager)
    _item_routes(router, manager)
    _engine_routes(router, manager)
    _resource_routes(router, manager)
    return router


def _queue_routes(router: APIRouter, m: QueueManager) -> None:
    @router.get("/status")
    async def status(request: Request) -> Params:  # pyright: ignore[reportUnusedFunction]
        await params(request, ())
        return await status_of(m)

    @router.get("/queue")
    async def queue(request: Request) -> Params:  # pyright: ignore[reportUnusedFunction]
        await params(request, ())
        items, running = await m.store.queue()
        return {"items": items, "running": running or None, "plan_queue_uid": m.plan_queue_uid}

    @router.post("/queue/start")
    async def start(request: Request) -> Params:  # pyright: ignore[reportUnusedFunction]
        await params(request, ())
        return await answer(_state_after(m, m.start))

    @router.post("/queue/stop")
    async def stop(request: Request) -> Params:  # pyright: ignore[reportUnusedFunction]
        await params(request, ())
        return await answer(_state_after(m, m.stop))

    @router.put("/queue/autostart")
    async def autostart(request: Request) -> Params:  # pyright: ignore[reportUnusedFunction]
        enable = (await params(request, ["enable"])).get("enable")
        if not isinstance(enable, bool):
            raise HTTPException(422, f"enable: true or false is needed, not {enable!r}")
        await m.set_autostart(enable)
        return {"enable": m.autostart}

    @router.get("/history")
    async def history(request: Request) -> Params:  # pyright: ignore[reportUnusedFunction]
        await params(request, ())
        return {"items": await m.store.history(), "plan_history_uid": m.plan_history_uid}

    @router.delete("/history", status_code=204)
    async def history_clear(request: Request) -> Response:  # pyright: ignore[reportUnusedFunction]
        await params(request, ())
        await m.clear_history()
        return Response(status_code=204)


def _state_after(m: QueueManager, action: Callable[[], None]) -> Callable[[], Awaitable[Params]]:
    async def run() -> Params:
        action()
        return {"manager_state": m.manager_state, "queue_stop_pending": m.stop_pending}

    return run


async def _items_to_add(request: Request) -> tuple[list[Any], Params]:
    """The items of a POST (an item, a list, or ``{items|item, pos|before|after}``)."""
    body = await json_body(request)
    place = query(request, _PLACE)
    if isinstance(body, dict) and ({"item", "items"} & body.keys()):
        found = await params(request, ["item", "items", *_PLACE])
        if ("item" in found) == ("items" in found):
            raise HTTPException(422, "item, items: give one of them")
        body = found.pop("items") if "items" in found else [found.pop("item")]
        place = found
    elif isinstance(body, dict):
        body = [typing.cast(Params, body)]
    if not isinstance(body, list) or not body:
        raise HTTPException(422, "items: an item {name, args, kwargs} or a list of them")
    return typing.cast(list[Any], body), place


def _item_routes(router: APIRouter, m: QueueManager) -> None:
    @router.post("/queue/items", status_code=201)
    async def add(request: Request) -> Params:  # pyright: ignore[reportUnusedFunction]
        items, place = await _items_to_add(request)
        checked = [await checked_item(request, m, f"items.{n}", i) for n, i in enumerate(items)]
        failed = [(status, why) for _, status, why in checked if status]
        if failed:  # nothing is added; every bad item is named
            status = 403 if any(code == 403 for code, _ in failed) else 422
            raise HTTPException(status, "; ".join(why for _, why in failed))
        owned = [item for item, _, _ in checked]
        added = await answer(lambda: m.add_batch(owned, *(place.get(k) for k in _PLACE)))
        return {"items": added, "qsize": (await m.store.sizes())[0]}

    @router.get("/queue/items/{uid}")
    async def get(request: Request, uid: str) -> Params:  # pyright: ignore[reportUnusedFunction]
        await params(request, ())
        items, running = await m.store.queue()
        for item in [*items, running]:
            if item.get("item_uid") == uid:
                return item
        raise HTTPException(404, f"uid: no queued or running item {uid!r}")

    @router.put("/queue/items/{uid}")
    async def update(request: Request, uid: str) -> Params:  # pyright: ignore[reportUnusedFunction]
        replace = query(request, ["replace"]).get("replace", False)
        if not isinstance(replace, bool):
            raise HTTPException(422, f"replace: true or false, not {replace!r}")
        body = await json_body(request)
        item, status, why = await checked_item(request, m, "item", body)
        if status:
            raise HTTPException(status, why)
        return await answer(lambda: m.update({**item, "item_uid": uid}, replace=replace))

    @router.delete("/queue/items/{uid}")
    async def remove(request: Request, uid: str) -> Params:  # pyright: ignore[reportUnusedFunction]
        await params(request, ())
        item, size = await answer(lambda: m.store.remove(pos=None, uid=uid))
        await m.changed_queue()
        return {"item": item, "qsize": size}

    @router.post("/queue/items/{uid}/move")
    async def move(request: Request, uid: str) -> Params:  # pyright: ignore[reportUnusedFunction]
        found = await params(request, _PLACE)
        if len(found) != 1:
            raise HTTPException(422, "pos, before, after: give exactly one of them")
        dest, before, after = (found.get(k) for k in _PLACE)
        (item,) = await answer(lambda: m.move([uid], None, dest, before, after))
        return {"item": item, "queue": [i["item_uid"] for i in (await m.store.queue())[0]]}


def _engine_routes(router: APIRouter, m: QueueManager) -> None:
    @router.post("/engine/pause")
    async def pause(request: Request) -> Params:  # pyright: ignore[reportUnusedFunction]
        option = (await params(request, ["option"])).get("option", "deferred")

        async def run() -> Params:
            m.pause(str(option))
            return {"re_state": m.RE.state.value, "pause_pending": m.pause_pending}

        return await answer(run)

    for what in ("resume", "stop", "abort", "halt"):
        router.add_api_route(f"/engine/{what}", _control_route(m, what), methods=["POST"])


def _control_route(m: QueueManager, what: Any) -> Callable[[Request], Awaitable[Params]]:
    async def route(request: Request) -> Params:
        await params(request, ())

        async def run() -> Params:
            m.control(what)
            return {"re_state": m.RE.state.value, "manager_state": m.manager_state}

        return await answer(run)

    route.__name__ = f"engine_{what}"
    return route


def _resource_routes(router: APIRouter, m: QueueManager) -> None:
    @router.get("/plans")
    async def plans(request: Request) -> Params:  # pyright: ignore[reportUnusedFunction]
        await params(request, ())
        return permitted(request, "plan", m.registry.describe_plans())

    @router.get("/plans/{name}")
    async def plan(request: Request, name: str) -> Params:  # pyright: ignore[reportUnusedFunction]
        await params(request, ())
        principal, auth = caller(request)
        if name not in m.registry.plans:
            raise HTTPException(404, f"name: no plan {name!r} is offered")
        if reason := auth.refusal(principal, "plan", name):
            raise refuse(request, AuthError(403, reason, principal.name))
        described = dict(m.registry.describe_plans()[name])
        schema = getattr(m.registry, "json_schema", None)
        if schema is not None:
            described["schema"] = await answer(_sync_value(lambda: schema(name)))
        return described

    @router.get("/devices")
    async def devices(request: Request) -> Params:  # pyright: ignore[reportUnusedFunction]
        await params(request, ())
        return permitted(request, "device", m.registry.describe_devices())


def _sync_value(action: Callable[[], Any]) -> Callable[[], Awaitable[Any]]:
    async def run() -> Any:
        return action()

    return run
