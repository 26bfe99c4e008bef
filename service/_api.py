"""The ``/api/...`` routes of bluesky-httpserver, so that its clients work unchanged.

Answers have queueserver's shapes (``{"success": true, "msg": "", ...}``). Parameters
come as a JSON object in the body, as the ``bluesky-queueserver-api`` client sends
them, or as query parameters (``GET /api/queue/item/get?pos=0``: browsers cannot send a
body with a GET). Errors:

* bad input -- malformed JSON, an unknown parameter, plan or device, an argument of the
  wrong type, an unknown uid: ``422`` (``400`` for malformed JSON) with ``detail``
  naming the field; nothing is queued and nothing reaches the engine. A batch
  (``queue/item/add/batch``) is added whole or not at all: a bad batch gets the ``422``
  (``403`` if an item is forbidden) with queueserver's answer as well, ``results``
  giving each item's ``success`` and ``msg``;
* a valid request that cannot be done now (resume while nothing is paused): ``200``
  with ``success: false`` and ``msg`` saying why, as httpserver answers;
* no or a wrong credential: ``401``; a credential without the route's scope, or a plan
  or device its user group may not use: ``403`` naming the scope or the rule. Each
  refusal is logged (logger ``acq.service``) with who and what.
"""

from __future__ import annotations

import json
import logging
import typing
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

from ._auth import ROUTE_SCOPES, AuthError, Authorizer, Kind, Principal
from ._manager import QueueManager, Refused
from ._plans import ItemError, PlanCall

__all__ = ["api_router", "make_app"]

logger = logging.getLogger("acq.service")

Params = dict[str, Any]
_LOCK = ("lock_key",)
_USER = ("user", "user_group")


async def params(request: Request, allowed: Iterable[str]) -> Params:
    """The request's parameters (body object, then query), refusing unknown ones."""
    found: Params = {}
    decoded = await json_body(request)
    if decoded is not None:
        if not isinstance(decoded, dict):
            raise HTTPException(400, "the JSON body must be an object of parameters")
        found.update(typing.cast(Params, decoded))
    found.update(query(request))
    unknown = sorted(set(found) - set(allowed))
    if unknown:
        names = ", ".join(sorted(allowed)) or "none"
        raise HTTPException(422, f"{', '.join(unknown)}: unknown parameter (accepted: {names})")
    return found


async def json_body(request: Request) -> Any:
    """The request's decoded JSON body (None if empty); malformed JSON is a 400."""
    body = await request.body()
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except ValueError as exc:
        raise HTTPException(400, f"malformed JSON body: {exc}") from None


def query(request: Request, allowed: Iterable[str] | None = None) -> Params:
    """The query parameters, JSON values decoded; those not ``allowed`` refused (422)."""
    found = {key: _query_value(value) for key, value in request.query_params.items()}
    if allowed is not None:
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


def route_scope(method: str, path: str) -> str | None:
    """The scope a route needs: its ``"METHOD /path"`` entry of ROUTE_SCOPES, else its path's."""
    return ROUTE_SCOPES.get(f"{method.upper()} {path}", ROUTE_SCOPES.get(path))


def route_guard(auth: Authorizer) -> Callable[[Request], Awaitable[None]]:
    """A dependency of every route: authenticate, then require the route's scope."""

    async def guard(request: Request) -> None:
        path = getattr(request.scope.get("route"), "path", request.url.path)
        try:
            principal = await auth.authenticate(request.headers.get("authorization"))
            auth.require(principal, route_scope(request.method, path))
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
    guard = route_guard(auth if auth is not None else Authorizer())
    router = APIRouter(prefix="/api", dependencies=[Depends(guard)])
    _status_routes(router, manager)
    _queue_routes(router, manager)
    _item_routes(router, manager)
    _edit_routes(router, manager)
    _batch_routes(router, manager)
    _move_routes(router, manager)
    _control_routes(router, manager)
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

    @router.get("/plans/existing")
    async def plans_existing(request: Request) -> Params:  # pyright: ignore[reportUnusedFunction]
        await params(request, ())
        return ok(plans_existing=m.registry.describe_plans(), plans_existing_uid=m.allowed_uid)

    @router.get("/devices/existing")
    async def devices_existing(request: Request) -> Params:  # pyright: ignore[reportUnusedFunction]
        await params(request, ())
        devices = m.registry.describe_devices()
        return ok(devices_existing=devices, devices_existing_uid=m.allowed_uid)

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
        owned = await owned_item(request, m, plan_item(found.get("item")))

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


def _edit_routes(router: APIRouter, m: QueueManager) -> None:
    @router.post("/queue/item/update")
    async def item_update(request: Request) -> Params:  # pyright: ignore[reportUnusedFunction]
        found = await params(request, ["item", "replace", *_USER, *_LOCK])
        replace = found.get("replace", False)
        if not isinstance(replace, bool):
            raise HTTPException(422, f"replace: true or false, not {replace!r}")
        owned = await owned_item(request, m, plan_item(found.get("item")))

        async def update() -> Params:
            item = await m.update(owned, replace=replace)
            return ok(item=item, qsize=(await m.store.sizes())[0])

        return await _guarded(update)

    @router.post("/queue/item/execute")
    async def item_execute(request: Request) -> Params:  # pyright: ignore[reportUnusedFunction]
        found = await params(request, ["item", *_USER, *_LOCK])
        owned = await owned_item(request, m, plan_item(found.get("item")))

        async def execute() -> Params:
            item = await m.execute(owned)
            return ok(item=item, qsize=(await m.store.sizes())[0])

        return await _guarded(execute)


def plan_item(item: Any, field: str = "item") -> Params:
    """``item`` if it is a plan item (an object), else a 422 naming ``field``."""
    if not isinstance(item, dict):
        raise HTTPException(422, f"{field}: an object {{name, args, kwargs, item_type}} is needed")
    found = typing.cast(Params, item)
    if found.get("item_type", "plan") != "plan":
        raise HTTPException(422, f"{field}.item_type: only 'plan' items can be queued")
    return found


def _batch_routes(router: APIRouter, m: QueueManager) -> None:
    @router.post("/queue/item/add/batch", response_model=None)
    async def item_add_batch(request: Request) -> Params | JSONResponse:  # pyright: ignore[reportUnusedFunction]
        found = await params(request, ["items", "pos", "before_uid", "after_uid", *_USER, *_LOCK])
        items = found.get("items")
        if not isinstance(items, list):
            raise HTTPException(422, "items: a list of items {name, args, kwargs} is needed")
        listed = typing.cast(list[Any], items)
        checked = [await checked_item(request, m, f"items.{n}", i) for n, i in enumerate(listed)]
        failed = [(status, why) for _, status, why in checked if status]
        qsize = (await m.store.sizes())[0]
        if failed:  # all or nothing: the answer says what is wrong with each item
            return JSONResponse(
                {"detail": "; ".join(why for _, why in failed), "success": False,
                 "msg": f"Failed to add all items: validation of {len(failed)} out of "
                        f"{len(listed)} submitted items failed",
                 "qsize": qsize, "items": listed,
                 "results": [{"success": not status, "msg": why} for _, status, why in checked]},
                status_code=403 if any(status == 403 for status, _ in failed) else 422,
            )  # fmt: skip
        owned = [item for item, _, _ in checked]

        async def add() -> Params:
            added = await m.add_batch(owned, found.get("pos"), found.get("before_uid"),
                                      found.get("after_uid"))  # fmt: skip
            results = [{"success": True, "msg": ""} for _ in added]
            return ok(items=added, results=results, qsize=(await m.store.sizes())[0])

        return await _guarded(add)

    @router.post("/queue/item/remove/batch")
    async def item_remove_batch(request: Request) -> Params:  # pyright: ignore[reportUnusedFunction]
        found = await params(request, ["uids", "ignore_missing", *_LOCK])
        uids = _uids(found.get("uids"))
        ignore = found.get("ignore_missing", True)
        if not isinstance(ignore, bool):
            raise HTTPException(422, f"ignore_missing: true or false, not {ignore!r}")

        async def remove() -> Params:
            items, size = await m.store.remove_batch(uids, ignore_missing=ignore)
            await m.changed_queue()
            return ok(items=items, qsize=size)

        return await _guarded(remove)


async def checked_item(request: Request, m: QueueManager, field: str,
                   item: Any) -> tuple[Params, int, str]:  # fmt: skip
    """One item of a batch: the owned item, or a status (403, 422) and why."""
    try:
        return await owned_item(request, m, plan_item(item, field)), 0, ""
    except HTTPException as exc:
        return {}, exc.status_code, f"{field}: {exc.detail}".replace(f"{field}: {field}", field)


def _uids(value: Any, field: str = "uids") -> list[str]:
    if not isinstance(value, list) or not all(isinstance(u, str) for u in value):  # pyright: ignore[reportUnknownVariableType]
        raise HTTPException(422, f"{field}: a list of item uids is needed")
    return typing.cast(list[str], value)


def _move_routes(router: APIRouter, m: QueueManager) -> None:
    destination = ["pos_dest", "before_uid", "after_uid"]

    @router.post("/queue/item/move")
    async def item_move(request: Request) -> Params:  # pyright: ignore[reportUnusedFunction]
        found = await params(request, ["pos", "uid", *destination, *_LOCK])
        if ("pos" in found) == ("uid" in found):
            raise HTTPException(422, "pos, uid: give one of them (the item to move)")
        uid = found.get("uid")
        if "uid" in found and not isinstance(uid, str):
            raise HTTPException(422, f"uid: an item uid, not {uid!r}")

        async def move() -> Params:
            dest, before, after = (found.get(k) for k in destination)
            (item,) = await m.move(None if uid is None else [uid], found.get("pos"), dest,
                                   before, after)  # fmt: skip
            return ok(item=item, qsize=(await m.store.sizes())[0])

        return await _guarded(move)

    @router.post("/queue/item/move/batch")
    async def item_move_batch(request: Request) -> Params:  # pyright: ignore[reportUnusedFunction]
        found = await params(request, ["uids", "reorder", *destination, *_LOCK])
        uids = _uids(found.get("uids"))
        reorder = found.get("reorder", False)
        if not isinstance(reorder, bool):
            raise HTTPException(422, f"reorder: true or false, not {reorder!r}")

        async def move() -> Params:
            dest, before, after = (found.get(k) for k in destination)
            items = await m.move(uids, None, dest, before, after, reorder=reorder)
            return ok(items=items, qsize=(await m.store.sizes())[0])

        return await _guarded(move)


def _control_routes(router: APIRouter, m: QueueManager) -> None:
    @router.post("/queue/stop/cancel")
    async def queue_stop_cancel(request: Request) -> Params:  # pyright: ignore[reportUnusedFunction]
        await params(request, _LOCK)
        m.cancel_stop()
        return ok()

    @router.post("/queue/autostart")
    async def queue_autostart(request: Request) -> Params:  # pyright: ignore[reportUnusedFunction]
        found = await params(request, ["enable", *_LOCK])
        enable = found.get("enable")
        if not isinstance(enable, bool):
            raise HTTPException(422, f"enable: true or false is needed, not {enable!r}")
        return await _guarded(lambda: _done(m.set_autostart(enable)))

    @router.post("/queue/mode/set")
    async def queue_mode_set(request: Request) -> Params:  # pyright: ignore[reportUnusedFunction]
        found = await params(request, ["mode", *_LOCK])
        if "mode" not in found:
            raise HTTPException(422, "mode: needed ({loop, ignore_failures} or 'default')")
        return await _guarded(lambda: _done(m.set_mode(found["mode"])))

    @router.post("/re/runs")
    @router.get("/re/runs")
    async def re_runs(request: Request) -> Params:  # pyright: ignore[reportUnusedFunction]
        found = await params(request, ["option"])
        return runs_of(m, found.get("option", "active"))

    for option in ("active", "open", "closed"):
        router.add_api_route(f"/re/runs/{option}", _runs_route(m, option), methods=["GET"])


def _runs_route(m: QueueManager, option: str) -> Callable[[Request], Awaitable[Params]]:
    async def route(request: Request) -> Params:
        await params(request, ())
        return runs_of(m, option)

    route.__name__ = f"re_runs_{option}"
    return route


def runs_of(m: QueueManager, option: Any) -> Params:
    """``re/runs``: the runs of the running item (``active``), or the ``open``/``closed`` ones."""
    if option not in ("active", "open", "closed"):
        raise HTTPException(422, f"option: 'active', 'open' or 'closed', not {option!r}")
    runs = [r for r in m.run_list if option == "active" or r["is_open"] == (option == "open")]
    return ok(run_list=runs, run_list_uid=m.run_list_uid)


async def _done(work: Awaitable[Any]) -> Params:
    await work
    return ok()


async def owned_item(request: Request, m: QueueManager, item: Params) -> Params:
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
        "queue_autostart_enabled": m.autostart,
        "worker_environment_exists": True,
        "worker_environment_state": "idle" if state == "idle" else "executing_plan",
        "worker_background_tasks": 0,
        "re_state": state,
        "ip_kernel_state": None,
        "ip_kernel_captured": None,
        "pause_pending": m.pause_pending,
        "run_list_uid": m.run_list_uid,
        "plan_queue_uid": m.plan_queue_uid,
        "plan_history_uid": m.plan_history_uid,
        "devices_existing_uid": m.allowed_uid,
        "plans_existing_uid": m.allowed_uid,
        "devices_allowed_uid": m.allowed_uid,
        "plans_allowed_uid": m.allowed_uid,
        "plan_queue_mode": dict(m.mode),
        "task_results_uid": m.allowed_uid,
        "lock_info_uid": m.allowed_uid,
        "lock": {"environment": False, "queue": False},
    }


def make_app(
    manager: QueueManager, lifespan: Any = None, auth: Authorizer | None = None
) -> FastAPI:
    """A FastAPI application serving ``manager`` under ``/api``, guarded by ``auth``."""
    from ._v1 import v1_router  # it builds on this module's helpers

    app = FastAPI(title="acq service", lifespan=lifespan)
    app.include_router(api_router(manager, auth))
    app.include_router(v1_router(manager, auth))
    return app
