"""API keys, scopes and user groups: every refused request changes nothing and is logged."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from acq.devices.sim import SimBeamline
from acq.plans import count, scan
from acq.service import (
    ApiKey,
    OidcProvider,
    Service,
    ServiceConfig,
    ServiceError,
    hash_api_key,
)
from acq.service._auth import ALL_SCOPES, READ_SCOPES, load_user_groups
from bluesky_queueserver_api.http.aio import REManagerAPI
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from test_queue import count_item

KEYS = {
    "reader": "reader-key-0123456789abcdef",
    "operator": "operator-key-0123456789abcdef",
    "admin": "admin-key-0123456789abcdef",
}
GROUPS: dict[str, Any] = {
    "user_groups": {
        "root": {
            "allowed_plans": [None],
            "forbidden_plans": [":^_"],
            "allowed_devices": [None],
            "forbidden_devices": [":^_:?.*"],
        },
        "users": {
            "allowed_plans": ["count"],
            "forbidden_plans": [None],
            "allowed_devices": [":?.*"],
            "forbidden_devices": [":^det2d$", "shutter"],
        },
    }
}


def _key(name: str, scopes: Any, group: str | None) -> ApiKey:
    return ApiKey(name, hash_api_key(KEYS[name], iterations=1000), scopes, group)


@pytest.fixture
def config(bl: SimBeamline, tmp_path: Path) -> ServiceConfig:
    return ServiceConfig(
        devices=bl.by_name(),
        plans={"count": count, "scan": scan},
        catalog=str(tmp_path / "catalog.db"),
        api_keys=[
            _key("reader", READ_SCOPES, "users"),
            _key("operator", ALL_SCOPES, "users"),
            _key("admin", ALL_SCOPES, None),
        ],
        user_groups=GROUPS,
    )


@pytest.fixture
async def admin(url: str) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"ApiKey {KEYS['admin']}"}
    async with httpx.AsyncClient(base_url=url, headers=headers) as client:
        yield client


async def _snapshot(admin: httpx.AsyncClient, service: Service) -> tuple[Any, ...]:
    queue = (await admin.get("/api/queue/get")).json()
    history = (await admin.get("/api/history/get")).json()
    status = (await admin.get("/api/status")).json()
    return (queue["items"], queue["plan_queue_uid"], history["items"],
            status["manager_state"], service.RE.state.value)  # fmt: skip


def _with(devices: list[str]) -> dict[str, Any]:
    return {"item": {**count_item(1), "args": [devices]}}


ITEM = {"item": count_item(1)}
MATRIX = [
    ("none", None, "GET", "/api/status", None, 401, "credentials needed"),
    ("none-add", None, "POST", "/api/queue/item/add", ITEM, 401, "credentials needed"),
    ("wrong", "not-a-key-0123456789", "POST", "/api/queue/start", {}, 401, "invalid API key"),
    ("bearer", "Bearer xyz", "POST", "/api/queue/clear", {}, 401, "unsupported"),
    ("read-add", "reader", "POST", "/api/queue/item/add", ITEM, 403, "'write:queue:edit'"),
    ("read-clear", "reader", "POST", "/api/queue/clear", {}, 403, "'write:queue:edit'"),
    ("read-start", "reader", "POST", "/api/queue/start", {}, 403, "'write:queue:control'"),
    ("read-pause", "reader", "POST", "/api/re/pause", {}, 403, "'write:plan:control'"),
    ("read-abort", "reader", "POST", "/api/re/abort", {}, 403, "'write:plan:control'"),
    ("read-hist", "reader", "POST", "/api/history/clear", {}, 403, "'write:history:edit'"),
    ("plan", "operator", "POST", "/api/queue/item/add",
     {"item": {"name": "scan", "args": [["det"], "x", 0, 1], "kwargs": {"num": 2}}},
     403, "plan 'scan' is not in allowed_plans of group 'users'"),
    ("device", "operator", "POST", "/api/queue/item/add", _with(["det2d"]),
     403, "device 'det2d' matches forbidden_devices ':^det2d$' of group 'users'"),
    ("device2", "operator", "POST", "/api/queue/item/add", _with(["det", "shutter"]),
     403, "device 'shutter' matches forbidden_devices 'shutter'"),
    ("dunder", "admin", "POST", "/api/queue/item/add",
     {"item": {"name": "__import__", "args": ["os"], "kwargs": {}}},
     403, "plan '__import__' matches forbidden_plans ':^_' of group 'root'"),
    ("inject-dev", "operator", "POST", "/api/queue/item/add", _with(["bl.x; import os"]),
     422, "unknown device 'bl.x; import os'"),
    ("inject-arg", "operator", "POST", "/api/queue/item/add",
     {"item": count_item("__import__('os').system('true')")}, 422, "num"),
    ("inject-kw", "admin", "POST", "/api/queue/item/add",
     {"item": count_item(1, __class__="x")}, 422, "__class__"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("who", "method", "path", "body", "status", "named"),
    [m[1:] for m in MATRIX],
    ids=[m[0] for m in MATRIX],
)
async def test_refused_requests_change_nothing(
    url: str, admin: httpx.AsyncClient, service: Service,
    who: str | None, method: str, path: str, body: Any, status: int, named: str,
) -> None:  # fmt: skip
    assert (await admin.post("/api/queue/item/add", json=ITEM)).json()["success"]
    before = await _snapshot(admin, service)
    headers: dict[str, str] = {}
    if who is not None:
        headers["Authorization"] = who if " " in who else f"ApiKey {KEYS.get(who, who)}"
    async with httpx.AsyncClient(base_url=url, headers=headers) as client:
        reply = await client.request(method, path, json=body)
    assert reply.status_code == status, reply.text
    assert named in reply.json()["detail"]
    assert await _snapshot(admin, service) == before
    assert before[3:] == ("idle", "idle")


async def test_the_unmodified_client_with_an_api_key_runs_an_allowed_item(url: str) -> None:
    RM = REManagerAPI(http_server_uri=url, status_polling_period=0.05)
    try:
        with pytest.raises(RM.HTTPClientError, match="401"):
            await RM.status()
        RM.set_authorization_key(api_key=KEYS["operator"])
        await RM.item_add({**count_item(2), "user": "admin", "user_group": "root"})
        with pytest.raises(RM.HTTPClientError, match="403"):
            await RM.item_add({**count_item(1), "args": [["shutter"]]})
        await RM.queue_start()
        await RM.wait_for_idle(timeout=30)
        history = (await RM.history_get())["items"]
        assert [h["result"]["exit_status"] for h in history] == ["completed"]
        assert (history[0]["user"], history[0]["user_group"]) == ("operator", "users")
        assert set((await RM.plans_allowed())["plans_allowed"]) == {"count"}
        devices = set((await RM.devices_allowed())["devices_allowed"])
        assert "det" in devices
        assert devices.isdisjoint({"det2d", "shutter"})
        RM.set_authorization_key(api_key=KEYS["reader"])
        assert (await RM.status())["items_in_history"] == 1
        with pytest.raises(RM.HTTPClientError, match="missing scope 'write:queue:control'"):
            await RM.queue_start()
    finally:
        await RM.close()


async def test_a_group_free_key_sees_every_offered_plan(admin: httpx.AsyncClient) -> None:
    plans = (await admin.get("/api/plans/allowed")).json()["plans_allowed"]
    assert set(plans) == {"count", "scan"}


async def test_a_refusal_is_logged_with_who_and_what(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    headers = {"Authorization": f"ApiKey {KEYS['reader']}"}
    with caplog.at_level(logging.WARNING, logger="acq.service"):
        async with httpx.AsyncClient(base_url=url, headers=headers) as client:
            await client.post("/api/queue/start", json={})
            await client.get("/api/status", headers={"Authorization": "ApiKey wrong"})
    messages = [r.getMessage() for r in caplog.records if r.name == "acq.service"]
    assert messages == [
        "refused POST /api/queue/start from reader: missing scope 'write:queue:control'",
        "refused GET /api/status from anonymous: invalid API key",
    ]
    assert all(KEYS["reader"] not in m and "wrong" not in m for m in messages)


async def test_anonymous_has_only_its_scopes_when_allowed(bl: SimBeamline, tmp_path: Path) -> None:
    config = ServiceConfig(
        devices=bl.by_name(), plans={"count": count}, catalog=str(tmp_path / "c.db"),
        api_keys=[_key("admin", ALL_SCOPES, None)], allow_anonymous=True,
    )  # fmt: skip
    async with (
        Service(config) as service,
        service.serving() as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        assert (await client.get("/api/status")).status_code == 200
        reply = await client.post("/api/queue/item/add", json=ITEM)
        assert reply.status_code == 403
        assert "missing scope 'write:queue:edit'" in reply.json()["detail"]
        assert (await client.get("/api/queue/get")).json()["items"] == []


def test_keys_are_stored_salted_and_hashed() -> None:
    first, second = hash_api_key(KEYS["admin"]), hash_api_key(KEYS["admin"])
    assert first != second  # a salt per key
    assert KEYS["admin"] not in first
    assert first.startswith("pbkdf2_sha256$")
    with pytest.raises(ServiceError, match="at least 16"):
        hash_api_key("short")


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"api_keys": ["plain-text-key"]}, "is not an ApiKey"),
        ({"api_keys": {"k": {"key_hash": "plain-text-key"}}}, "key_hash"),
        (
            {"api_keys": {"k": {"key_hash": hash_api_key("x" * 16), "scopes": ["root"]}}},
            "unknown root",
        ),
        (
            {"api_keys": {"k": {"key_hash": hash_api_key("x" * 16), "group": "nope"}}},
            "no user group 'nope'",
        ),
        ({"user_groups": {"g": {"allowed_plans": [":("]}}}, "allowed_plans"),
        ({"user_groups": {"g": {"allowed_planz": []}}}, "unknown allowed_planz"),
    ],
    ids=["not-a-key", "plain", "scope", "group", "regex", "list-name"],
)
def test_a_wrong_security_configuration_is_refused(changes: Any, named: str) -> None:
    with pytest.raises(ServiceError, match=named):
        ServiceConfig(**changes)


def test_queueservers_permissions_yaml_is_read(tmp_path: Path) -> None:
    path = tmp_path / "user_group_permissions.yaml"
    path.write_text(
        "user_groups:\n"
        "  users:\n"
        "    allowed_plans:\n      - ':^count'\n"
        "    forbidden_plans:\n      - null\n"
        "    allowed_devices:\n      - ':?.*'\n"
        "    forbidden_devices:\n      - ':^det2d$'\n"
        "    allowed_functions:\n      - null\n"
    )
    group = load_user_groups(path)["users"]
    assert group.refusal("plan", "count") is None
    assert group.refusal("plan", "scan") is not None
    assert group.refusal("device", "det") is None
    assert "forbidden_devices" in str(group.refusal("device", "det2d"))


# -- OIDC bearer tokens, checked against a JWKS served on loopback --------------------
ISSUER, AUDIENCE = "https://idp.example", "acq-service"


@pytest.fixture(scope="module")
def signing_keys() -> list[Any]:
    return [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(2)]


@pytest.fixture
def jwks_url(signing_keys: list[Any]) -> Iterator[str]:
    jwk = RSAAlgorithm.to_jwk(signing_keys[0].public_key(), as_dict=True)
    body = json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/jwks.json"
    server.shutdown()
    server.server_close()


def _token(key: Any, **claims: Any) -> str:
    payload = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "groups": "users",
               "exp": int(time.time()) + 300, "scope": "read:queue write:queue:edit",
               **claims}  # fmt: skip
    return jwt.encode(payload, key, algorithm="RS256", headers={"kid": "k1"})


@pytest.fixture
async def oidc_url(bl: SimBeamline, tmp_path: Path, jwks_url: str) -> AsyncIterator[str]:
    config = ServiceConfig(
        devices=bl.by_name(), plans={"count": count}, catalog=str(tmp_path / "c.db"),
        api_keys=[_key("admin", ALL_SCOPES, None)], user_groups=GROUPS,
        oidc=OidcProvider(ISSUER, AUDIENCE, jwks_url=jwks_url, group_claim="groups"),
    )  # fmt: skip
    async with Service(config) as service, service.serving() as url:
        yield url


TOKENS = [
    ("expired", {"exp": int(time.time()) - 60}, 0, 401, "Signature has expired"),
    ("audience", {"aud": "another-service"}, 0, 401, "Audience doesn't match"),
    ("issuer", {"iss": "https://evil.example"}, 0, 401, "Invalid issuer"),
    ("other-key", {}, 1, 401, "Signature verification failed"),
    ("alg-none", {}, None, 401, "invalid bearer token"),
    ("no-scope", {"scope": "read:queue"}, 0, 403, "missing scope 'write:queue:edit'"),
    ("unknown-group", {"groups": "nobody"}, 0, 403, "no user group 'nobody'"),
]


@pytest.mark.parametrize(
    ("claims", "signer", "status", "named"), [t[1:] for t in TOKENS], ids=[t[0] for t in TOKENS]
)
async def test_bad_bearer_tokens_change_nothing(
    oidc_url: str, signing_keys: list[Any],
    claims: dict[str, Any], signer: int | None, status: int, named: str,
) -> None:  # fmt: skip
    if signer is None:
        payload = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "scope": "write:queue:edit",
                   "exp": int(time.time()) + 300}  # fmt: skip
        token = jwt.encode(payload, None, algorithm="none")
    else:
        token = _token(signing_keys[signer], **claims)
    headers = {"Authorization": f"ApiKey {KEYS['admin']}"}
    async with httpx.AsyncClient(base_url=oidc_url, headers=headers) as admin:
        reply = await admin.post(
            "/api/queue/item/add", json=ITEM, headers={"Authorization": f"Bearer {token}"}
        )
        assert reply.status_code == status, reply.text
        assert named in reply.json()["detail"]
        assert (await admin.get("/api/queue/get")).json()["items"] == []
        assert (await admin.get("/api/status")).json()["manager_state"] == "idle"


async def test_a_valid_bearer_token_queues_as_its_user_within_its_group(
    oidc_url: str, signing_keys: list[Any]
) -> None:
    headers = {"Authorization": f"Bearer {_token(signing_keys[0])}"}
    async with httpx.AsyncClient(base_url=oidc_url, headers=headers) as client:
        added = (await client.post("/api/queue/item/add", json=ITEM)).json()["item"]
        assert (added["user"], added["user_group"]) == ("alice", "users")
        reply = await client.post("/api/queue/item/add", json=_with(["det2d"]))
        assert reply.status_code == 403
        assert len((await client.get("/api/queue/get")).json()["items"]) == 1


def test_oidc_needs_one_key_source_and_no_weak_algorithm() -> None:
    with pytest.raises(ServiceError, match="jwks_url or jwks"):
        OidcProvider(ISSUER, AUDIENCE)
    with pytest.raises(ServiceError, match="HS256"):
        OidcProvider(ISSUER, AUDIENCE, jwks={"keys": []}, algorithms=("RS256", "HS256"))
