"""The ``/api/...`` routes of bluesky-httpserver, so that its clients work unchanged.

Answers have queueserver's shapes (``{"success": true, "msg": "", ...}``). Parameters
come as a JSON object in the body, as the ``bluesky-queueserver-api`` client sends
them, or as query parameters (``GET /api/queue/item/get?pos=0``: browsers cannot send a
body with a GET). Errors:

* bad input -- malformed JSON, an unknown parameter, plan or device, an argument of the
  wrong type: ``422`` (``400`` for malformed JSON) with ``detail`` naming the field;
  nothing is queued and nothing reaches the engine;
* a valid request that cannot be done now (resume while nothing is paused): ``200``
  with ``success: false`` and ``msg`` saying why, as httpserver answers;
* no or a wrong credential: ``401``; a credential without the route's scope, or a plan
  or device its user group may not use: ``403`` naming the scope or the rule. Each
  refusal is logged (logger ``acq.service``) with who and what.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request

from ._auth import ROUTE_SCOPES, AuthError, Authorizer, Kind, Principal
from ._manager import QueueManager, Refused
from ._plans import ItemError, PlanCall

__all__ = ["api_router"]

logger = logging.getLogger("acq.service")

Params = dict[str, Any]
_LOCK = ("lock_key",)
_USER = ("user", "user_group")


async def params(request: Request, allowed: Iterable[str]) -> Params:
    """The request's parameters (body object, then query), refusing unknown ones."""
    found: Params = {}
    body = await request.body()
    if body.strip():
        try:
            decoded = json.loads(body)
        except ValueError as exc:
            raise HTTPException(400, f"malformed JSON body: {exc}") from None
        if not isinstance(decoded, dict):
            raise HTTPException(400, "the JSON body must be an object of parameters")
        found.update(decoded)  # pyright: ignore[reportUnknownArgumentType]
    for key, value in request.query_params.items():
        found[key] = _query_value(value)
    unknown = sorted(set(found) - set(allowed))
    if unknown:
        names = ", ".join(sorted(allowed)) or "none"
        raise HTTPException(422, f"{', '.join(unknown)}: unknown parameter (accepted: {names})")
    return found


def _query_value(text: str) -> Any:
    try:
        return json.loads(text)  # pos=-1 is a number; "front" stays a string
    except ValueError:
        return text


def ok(**fields: Any) -> Params:
    """A successful answer."""
    return {"success": True, "msg": "", **fields}


async def _guarded(action: Callable[[], Awaitable[Params]]) -> Params:
    """Bad input to 422 (naming the field); a refusal to ``success: false``."""
    try:
        return await action()
    except (ItemError, ValueError) as exc:
        raise HTTPException(422, str(exc)) from None
    except Refused as exc:
        return {"success": False, "msg": str(exc)}


def refuse(request: Request, error: AuthError) -> HTTPException:
    """Log a refused request (who, method, path, reason); the HTTP error to raise."""
    logger.warning("refused %s %s from %s: %s", request.method, request.url.path,
                   error.who, error.reason)  # fmt: skip
    headers = {"WWW-Authenticate": "ApiKey"} if error.status == 401 else None
    return HTTPException(error.status, error.reason, headers=headers)


def _guard(auth: Authorizer) -> Callable[[Request], Awaitable[None]]:
    """A dependency of every route: authenticate, then require the route's scope."""

    async def guard(request: Request) -> None:
        path = getattr(request.scope.get("route"), "path", request.url.path)
        try:
            principal = await auth.authenticate(request.headers.get("authorization"))
            auth.require(principal, ROUTE_SCOPES.get(path))
        except AuthError as error:
            raise refuse(request, error) from None
        request.state.principal = principal
        request.state.auth = auth

    return guard


def caller(request: Request) -> tuple[Principal, Authorizer]:
    """Who made the request (set by the guard) and the service's authorizer."""
    return request.state.principal, request.state.auth


def permitted(request: Request, kind: Kind, described: Mapping[str, Any]) -> dict[str, Any]:
    """The plans or devices of ``described`` the caller's group may use."""
    principal, auth = caller(request)
    return {k: v for k, v in described.items() if auth.refusal(principal, kind, k) is None}


def api_router(manager: QueueManager, auth: Authorizer | None = None) -> APIRouter:
    """The httpserver-compatible routes, acting on ``manager``, guarded by ``auth``.

    Without ``auth``, anonymous clients may do everything (a trusted network).
    """
    guard = _guard(auth if auth is not None else Authorizer())
    router = APIRouter(prefix="/api", dependencies=[Depends(guard)])
    _status_routes(router, manager)
    _queue_routes(router, manager)
    _item_routes(router, manager)
    _engine_routes(router, manager)
    return router


def _status_routes(router: APIRouter, m: QueueManager) -> None:
    @router.get("/status")
    @router.get("/ping")
    async def status(request: Request) -> Params:  # pyright: ignore[reportUnusedFunction]
        await params(request, ["reload", *_USER])
        return await status_of(m)

    @router.get("/plans/allowed")
    async def plans_allowed(request: Request) -> Params:  # pyright: ignore[reportUnusedFunction]
        await params(request, _USER)
        plans = permitted(request, "plan", m.registry.describe_plans())
        return ok(plans_allowed=plans, plans_allowed_uid=m.allowed_uid)

    @router.get("/devices/allowed")
    async def devices_allowed(request: Request) -> Params:  # pyright: ignore[reportUnusedFunction]
        await params(request, _USER)
        devices = permitted(request, "device", m.registry.describe_devices())
        return ok(devices_allowed=devices, devices_allowed_uid=m.allowed_uid)

    @router.post("/environment/open")
    @router.post("/environment/close")
    async def environment(request: Request) -> Params:  # pyright: ignore[reportUnusedFunction]
        await params(request, _LOCK)  # the engine lives in this process: always open
        return ok()


def _queue_routes(router: APIRouter, m: QueueManager) -> None:
    @router.get("/queue/get")
    async def queue_get(request: Request) -> Params:  # pyright: ignore[reportUnusedFunction]
        await params(request, ())
        items, running = await m.store.queue()
        return ok(items=items, running_item=running, plan_queue_uid=m.plan_queue_uid)

    @router.post("/queue/clear")
    async def queue_clear(request: Request) -> Params:  # pyright: ignore[reportUnusedFunction]
        await params(request, _LOCK)
        await m.store.clear()
        await m.changed_queue()
        return ok()

    @router.post("/queue/start")
    async def queue_start(request: Request) -> Params:  # pyright: ignore[reportUnusedFunction]
        await params(request, _LOCK)
        return await _guarded(_sync(m.start))

    @router.post("/queue/stop")
    async def queue_stop(request: Request) -> Params:  # pyright: ignore[reportUnusedFunction]
        await params(request, _LOCK)
        return await _guarded(_sync(m.stop))

    @router.get("/history/get")
    async def history_get(request: Request) -> Params:  # pyright: ignore[reportUnusedFunction]
        await params(request, ())
        return ok(items=await m.store.history(), plan_history_uid=m.plan_history_uid)

    @router.post("/history/clear")
    async def history_clear(request: Request) -> Params:  # pyright: ignore[reportUnusedFunction]
        found = await params(request, ["size", "item_uid", *_LOCK])
        if "size" in found or "item_uid" in found:
            raise HTTPException(
                422, "size, item_uid: clearing part of the history is not supported"
            )
        await m.clear_history()
        return ok()


def _item_routes(router: APIRouter, m: QueueManager) -> None:
    @router.post("/queue/item/add")
    async def item_add(request: Request) -> Params:  # pyright: ignore[reportUnusedFunction]
        found = await params(request, ["item", "pos", "before_uid", "after_uid", *_USER, *_LOCK])
        item = found.get("item")
        if not isinstance(item, dict):
            raise HTTPException(422, "item: an object {name, args, kwargs, item_type} is needed")
        if item.get("item_type", "plan") != "plan":  # pyright: ignore[reportUnknownMemberType]
            raise HTTPException(422, "item.item_type: only 'plan' items can be queued")
        owned = await _owned_item(request, m, item)  # pyright: ignore[reportUnknownArgumentType]

        async def add() -> Params:
            added = await m.add(owned, found.get("pos"), found.get("before_uid"),
                                found.get("after_uid"))  # fmt: skip
            queued, _ = await m.store.sizes()
            return ok(item=added, qsize=queued)

        return await _guarded(add)

    @router.post("/queue/item/remove")
    async def item_remove(request: Request) -> Params:  # pyright: ignore[reportUnusedFunction]
        found = await params(request, ["pos", "uid", *_LOCK])

        async def remove() -> Params:
            item, size = await m.store.remove(pos=found.get("pos"), uid=found.get("uid"))
            await m.changed_queue()
            return ok(item=item, qsize=size)

        return await _guarded(remove)

    @router.get("/queue/item/get")
    async def item_get(request: Request) -> Params:  # pyright: ignore[reportUnusedFunction]
        found = await params(request, ["pos", "uid"])
        items, _ = await m.store.queue()
        uid, pos = found.get("uid"), found.get("pos", "back")
        chosen = [i for i in items if i["item_uid"] == uid] if uid is not None else items
        if not chosen:
            return {"success": False, "msg": "Failed to get an item: not found", "item": {}}
        index = {"front": 0, "back": -1}.get(pos, pos) if uid is None else 0
        if not isinstance(index, int) or not -len(chosen) <= index < len(chosen):
            raise HTTPException(422, f"pos: no queued item at {pos!r}")
        return ok(item=chosen[index])


async def _owned_item(request: Request, m: QueueManager, item: Params) -> Params:
    """``item`` as its caller's, once its group may use its plan and devices (else 403)."""
    principal, auth = caller(request)
    name = item.get("name")
    if isinstance(name, str) and (reason := auth.refusal(principal, "plan", name)):
        raise refuse(request, AuthError(403, reason, principal.name))
    try:
        call = m.registry.check(name, item.get("args", []), item.get("kwargs", {}))
    except ItemError as exc:
        raise HTTPException(422, str(exc)) from None
    for device in _devices_of(call, m.registry.devices):
        if reason := auth.refusal(principal, "device", device):
            raise refuse(request, AuthError(403, reason, principal.name))
    return {**item, "user": principal.name, "user_group": principal.group or "primary"}


def _devices_of(call: PlanCall, devices: Mapping[str, Any]) -> set[str]:
    """The names of the configuration's devices a checked call uses (all their names)."""
    names: dict[int, list[str]] = {}
    for name, device in devices.items():
        names.setdefault(id(device), []).append(name)
    found: set[str] = set()
    pending: list[Any] = [*call.args, *call.kwargs.values()]
    while pending:
        value = pending.pop()
        if id(value) in names:
            found.update(names[id(value)])
        elif isinstance(value, list | tuple | set | frozenset):
            pending.extend(value)  # pyright: ignore[reportUnknownArgumentType]
    return found


def _engine_routes(router: APIRouter, m: QueueManager) -> None:
    @router.post("/re/pause")
    async def re_pause(request: Request) -> Params:  # pyright: ignore[reportUnusedFunction]
        found = await params(request, ["option", *_LOCK])
        return await _guarded(_sync(lambda: m.pause(str(found.get("option", "deferred")))))

    for what in ("resume", "stop", "abort", "halt"):
        router.add_api_route(f"/re/{what}", _control_route(m, what), methods=["POST"])


def _control_route(m: QueueManager, what: Any) -> Callable[[Request], Awaitable[Params]]:
    async def route(request: Request) -> Params:
        await params(request, _LOCK)
        return await _guarded(_sync(lambda: m.control(what)))

    route.__name__ = f"re_{what}"
    return route


def _sync(action: Callable[[], Any]) -> Callable[[], Awaitable[Params]]:
    async def run() -> Params:
        action()
        return ok()

    return run


async def status_of(m: QueueManager) -> Params:
    """The status queueserver gives, with the change markers its clients poll."""
    queued, history = await m.store.sizes()
    state = m.RE.state.value
    return {
        "msg": "acq service",
        "items_in_queue": queued,
        "items_in_history": history,
        "running_item_uid": m.running_item.get("item_uid"),
        "manager_state": m.manager_state,
        "queue_stop_pending": m.stop_pending,
        "queue_autostart_enabled": False,
        "worker_environment_exists": True,
        "worker_environment_state": "idle" if state == "idle" else "executing_plan",
        "worker_background_tasks": 0,
        "re_state": state,
        "ip_kernel_state": None,
        "ip_kernel_captured": None,
        "pause_pending": m.pause_pending,
        "run_list_uid": m.plan_history_uid,
        "plan_queue_uid": m.plan_queue_uid,
        "plan_history_uid": m.plan_history_uid,
        "devices_existing_uid": m.allowed_uid,
        "plans_existing_uid": m.allowed_uid,
        "devices_allowed_uid": m.allowed_uid,
        "plans_allowed_uid": m.allowed_uid,
        "plan_queue_mode": {"loop": False, "ignore_failures": False},
        "task_results_uid": m.allowed_uid,
        "lock_info_uid": m.allowed_uid,
        "lock": {"environment": False, "queue": False},
    }


def make_app(
    manager: QueueManager, lifespan: Any = None, auth: Authorizer | None = None
) -> FastAPI:
    """A FastAPI application serving ``manager`` under ``/api``, guarded by ``auth``."""
    app = FastAPI(title="acq service", lifespan=lifespan)
    app.include_router(api_router(manager, auth))
    return app
