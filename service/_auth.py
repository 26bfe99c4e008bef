"""Who may call the service, and what they may run: API keys, scopes and user groups.

* **API keys** are stored hashed (:func:`hash_api_key`: PBKDF2-SHA256, a salt per key);
  clients send ``Authorization: ApiKey <key>`` (as ``bluesky-queueserver-api`` does after
  ``RM.set_authorization_key(api_key=...)``). Keys are compared in constant time.
* **Scopes**, those of bluesky-httpserver, one per route (:data:`ROUTE_SCOPES`): a route
  without a scope is refused to everyone.
* **Bearer tokens** of an OIDC provider (:class:`OidcProvider`): JWTs whose signature,
  ``exp``, ``iss`` and ``aud`` are checked against the provider's JWKS (PyJWT); their
  scopes and group come from claims.
* **User groups** in the shape of queueserver's ``user_group_permissions.yaml``:
  ``allowed_plans``, ``forbidden_plans``, ``allowed_devices``, ``forbidden_devices``, each
  a list of names, ``:regex`` patterns (``re.search``; a leading ``?`` or ``+`` depth
  marker of a device pattern is ignored) or ``null`` (in an allowed list: everything; in
  a forbidden list: nothing). A missing allowed list allows nothing. The rules of a
  group named ``root`` apply to every group as well.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import importlib.util
import re
import secrets
import typing
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ._config import ServiceConfig, ServiceError

__all__ = [
    "ALL_SCOPES",
    "READ_SCOPES",
    "ROUTE_SCOPES",
    "ApiKey",
    "AuthError",
    "Authorizer",
    "OidcProvider",
    "Principal",
    "UserGroup",
    "authorizer_for",
    "hash_api_key",
    "load_user_groups",
]

Kind = Literal["plan", "device"]

ROUTE_SCOPES: dict[str, str] = {
    "/api/status": "read:status",
    "/api/ping": "read:status",
    "/api/plans/allowed": "read:resources",
    "/api/devices/allowed": "read:resources",
    "/api/environment/open": "write:manager:control",
    "/api/environment/close": "write:manager:control",
    "/api/queue/get": "read:queue",
    "/api/queue/item/get": "read:queue",
    "/api/queue/clear": "write:queue:edit",
    "/api/queue/item/add": "write:queue:edit",
    "/api/queue/item/remove": "write:queue:edit",
    "/api/queue/start": "write:queue:control",
    "/api/queue/stop": "write:queue:control",
    "/api/plans/existing": "read:resources",
    "/api/devices/existing": "read:resources",
    "/api/queue/item/add/batch": "write:queue:edit",
    "/api/queue/item/update": "write:queue:edit",
    "/api/queue/item/move": "write:queue:edit",
    "/api/queue/item/move/batch": "write:queue:edit",
    "/api/queue/item/remove/batch": "write:queue:edit",
    "/api/queue/item/execute": "write:execute",
    "/api/queue/autostart": "write:queue:control",
    "/api/queue/mode/set": "write:queue:control",
    "/api/queue/stop/cancel": "write:queue:control",
    "/api/re/runs": "read:monitor",
    **{f"/api/re/runs/{option}": "read:monitor" for option in ("active", "open", "closed")},
    "/api/history/get": "read:history",
    "/api/history/clear": "write:history:edit",
    **{f"/api/re/{what}": "write:plan:control"
       for what in ("pause", "resume", "stop", "abort", "halt")},
    "/api/v1/ws/documents": "read:monitor",  # WebSockets: httpserver's status/ws scope
    "/api/v1/ws/status": "read:monitor",
    "/api/v1/ws/progress": "read:monitor",
    "/api/v1/ws/logs": "read:console",  # as httpserver's console_output/ws
    # the native /api/v1 routes (service/_v1.py)
    "/api/v1/status": "read:status",
    "/api/v1/queue": "read:queue",
    "/api/v1/queue/items": "write:queue:edit",
    "GET /api/v1/queue/items/{uid}": "read:queue",
    "PUT /api/v1/queue/items/{uid}": "write:queue:edit",
    "DELETE /api/v1/queue/items/{uid}": "write:queue:edit",
    "/api/v1/queue/items/{uid}/move": "write:queue:edit",
    "/api/v1/queue/start": "write:queue:control",
    "/api/v1/queue/stop": "write:queue:control",
    "/api/v1/queue/autostart": "write:queue:control",
    "GET /api/v1/history": "read:history",
    "DELETE /api/v1/history": "write:history:edit",
    **{f"/api/v1/engine/{what}": "write:plan:control"
       for what in ("pause", "resume", "stop", "abort", "halt")},
    "/api/v1/plans": "read:resources",
    "/api/v1/plans/{name}": "read:resources",
    "/api/v1/devices": "read:resources",
}  # fmt: skip
"""The scope each ``/api`` route needs (bluesky-httpserver's names).

A key ``"METHOD /path"`` gives the scope of one method of a path whose methods differ."""

ALL_SCOPES = frozenset(ROUTE_SCOPES.values())
READ_SCOPES = frozenset(s for s in ALL_SCOPES if s.startswith("read:"))
_HASH = "pbkdf2_sha256"
_ITERATIONS = 100_000


def hash_api_key(key: str, *, iterations: int = _ITERATIONS) -> str:
    """The stored form of an API key: ``pbkdf2_sha256$<iterations>$<salt>$<digest>``."""
    if len(key) < 16:
        raise ServiceError("an API key needs at least 16 characters (secrets.token_urlsafe())")
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", key.encode(), salt, iterations)
    return f"{_HASH}${iterations}${salt.hex()}${digest.hex()}"


def _parse_hash(stored: str) -> tuple[int, bytes, bytes]:
    try:
        algorithm, iterations, salt, digest = stored.split("$")
        if algorithm != _HASH:
            raise ValueError(algorithm)
        return int(iterations), bytes.fromhex(salt), bytes.fromhex(digest)
    except ValueError:
        raise ServiceError(f"key_hash: not a hash made by hash_api_key ({_HASH}$...)") from None


def _verify(key: str, stored: str) -> bool:
    iterations, salt, digest = _parse_hash(stored)
    computed = hashlib.pbkdf2_hmac("sha256", key.encode(), salt, iterations)
    return hmac.compare_digest(computed, digest)


@dataclass(frozen=True)
class ApiKey:
    """One API key: its owner's name, its hash, its scopes and its user group.

    Attributes:
        name: who holds the key (in the log, and as the ``user`` of queued items).
        key_hash: :func:`hash_api_key` of the key; the key itself is never stored.
        scopes: what the key may do (see :data:`ROUTE_SCOPES`).
        group: the user group restricting its plans and devices; None: no restriction.
    """

    name: str
    key_hash: str
    scopes: Collection[str] = READ_SCOPES
    group: str | None = None

    def __post_init__(self) -> None:
        _parse_hash(self.key_hash)
        _check_scopes(self.scopes, f"api key {self.name!r}")


def _check_scopes(scopes: Collection[str], who: str) -> None:
    if isinstance(scopes, str):
        raise ServiceError(f"scopes of {who}: a collection of scopes, not one string")
    unknown = sorted(set(scopes) - ALL_SCOPES)
    if unknown:
        known = ", ".join(sorted(ALL_SCOPES))
        raise ServiceError(f"scopes of {who}: unknown {', '.join(unknown)} (known: {known})")


@dataclass(frozen=True)
class Principal:
    """Who made a request: a key's name (or ``anonymous``), its scopes and group."""

    name: str
    scopes: frozenset[str]
    group: str | None = None


class AuthError(Exception):
    """A refused request: ``status`` 401 (who?) or 403 (not allowed); ``who`` asked."""

    def __init__(self, status: int, reason: str, who: str = "anonymous") -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.who = who


Pattern = re.Pattern[str] | None


@dataclass(frozen=True)
class UserGroup:
    """The plans and devices a group may use (queueserver's four lists, compiled)."""

    name: str
    rules: Mapping[str, tuple[tuple[str | None, Pattern], ...]] = field(
        default_factory=dict[str, tuple[tuple[str | None, Pattern], ...]]
    )

    def refusal(self, kind: Kind, name: str) -> str | None:
        """Why ``name`` may not be used by this group, or None when it may."""
        for text, pattern in self.rules.get(f"forbidden_{kind}s", ()):
            if text is not None and _matches(text, pattern, name):
                return f"{kind} {name!r} matches forbidden_{kind}s {text!r} of group {self.name!r}"
        for text, pattern in self.rules.get(f"allowed_{kind}s", ()):
            if text is None or _matches(text, pattern, name):
                return None
        return f"{kind} {name!r} is not in allowed_{kind}s of group {self.name!r}"


def _matches(text: str, pattern: Pattern, name: str) -> bool:
    return pattern.search(name) is not None if pattern is not None else text == name


_LISTS = ("allowed_plans", "forbidden_plans", "allowed_devices", "forbidden_devices")
_IGNORED = ("allowed_functions", "forbidden_functions")


def _compile(group: str, key: str, entries: Any) -> tuple[tuple[str | None, Pattern], ...]:
    if entries is None:
        entries = [None]
    if not isinstance(entries, list | tuple):
        raise ServiceError(f"user_groups.{group}.{key}: a list of names or ':regex' patterns")
    compiled: list[tuple[str | None, Pattern]] = []
    for entry in entries:  # pyright: ignore[reportUnknownVariableType]
        if entry is not None and not isinstance(entry, str):
            raise ServiceError(f"user_groups.{group}.{key}: {entry!r} is not a string or null")
        pattern: Pattern = None
        if entry is not None and entry.startswith(":"):
            regex = entry[1:].lstrip("?+") if "devices" in key else entry[1:]
            try:
                pattern = re.compile(regex)
            except re.error as exc:
                raise ServiceError(f"user_groups.{group}.{key}: {entry!r}: {exc}") from None
        compiled.append((entry, pattern))
    return tuple(compiled)


def load_user_groups(source: Mapping[str, Any] | str | Path) -> dict[str, UserGroup]:
    """User groups from a ``user_group_permissions.yaml`` file or a dict of its shape."""
    data: Any = source
    if isinstance(source, str | Path):
        try:
            import yaml
        except ImportError:  # pragma: no cover -- PyYAML is not (yet) a declared dependency
            raise ServiceError("reading a user groups file needs PyYAML") from None
        data = yaml.safe_load(Path(source).read_text())
    if isinstance(data, Mapping) and "user_groups" in data:
        data = typing.cast(Mapping[str, Any], data)["user_groups"]
    if not isinstance(data, Mapping):
        raise ServiceError("user_groups: a mapping of group name to its lists")
    groups: dict[str, UserGroup] = {}
    for name, lists in typing.cast(Mapping[Any, Any], data).items():
        groups[str(name)] = _group(str(name), lists)
    return groups


def _group(name: str, lists: Any) -> UserGroup:
    if not isinstance(lists, Mapping):
        raise ServiceError(f"user_groups.{name}: a mapping of {', '.join(_LISTS)}")
    found = typing.cast(Mapping[str, Any], lists)
    unknown = sorted(set(found) - {*_LISTS, *_IGNORED})
    if unknown:
        raise ServiceError(f"user_groups.{name}: unknown {', '.join(unknown)}")
    return UserGroup(name, {key: _compile(name, key, found[key]) for key in _LISTS if key in found})


@dataclass(frozen=True)
class OidcProvider:
    """Bearer tokens (JWTs) of an OIDC provider, checked against its JWKS (needs PyJWT).

    Attributes:
        issuer: the tokens' ``iss``.
        audience: this service, as the tokens' ``aud`` names it.
        jwks_url: where the provider publishes its keys (fetched, then cached).
        jwks: the key set itself (``{"keys": [...]}``), instead of ``jwks_url``.
        algorithms: the signatures accepted (never ``none``, never HMAC).
        name_claim: the claim naming the user (log, items' ``user``).
        scopes_claim: the claim listing the scopes (a space-separated string or a list).
        group_claim: the claim naming the user group (None: no restriction).
    """

    issuer: str
    audience: str
    jwks_url: str | None = None
    jwks: Mapping[str, Any] | None = None
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    name_claim: str = "sub"
    scopes_claim: str = "scope"
    group_claim: str | None = None

    def __post_init__(self) -> None:
        if (self.jwks_url is None) == (self.jwks is None):
            raise ServiceError("oidc: give jwks_url or jwks (one of them)")
        weak = [a for a in self.algorithms if a.lower() == "none" or a.startswith("HS")]
        if weak:
            raise ServiceError(f"oidc.algorithms: {', '.join(weak)} not accepted")
        if importlib.util.find_spec("jwt") is None:
            raise ServiceError("oidc needs PyJWT: pip install 'pyjwt[crypto]'")


class _TokenChecker:
    """Checks bearer tokens of one :class:`OidcProvider` (keys fetched once, cached)."""

    def __init__(self, provider: OidcProvider) -> None:
        import jwt

        self.provider = provider
        self._client = jwt.PyJWKClient(provider.jwks_url) if provider.jwks_url else None
        self._keys = jwt.PyJWKSet.from_dict(dict(provider.jwks)) if provider.jwks else None

    def principal(self, token: str) -> Principal:
        """The token's user (raises :class:`AuthError` 401: expired, wrong audience ...)."""
        import jwt

        p = self.provider
        try:
            key = self._signing_key(token)
            claims = jwt.decode(
                token, key, algorithms=list(p.algorithms), audience=p.audience,
                issuer=p.issuer, options={"require": ["exp", "iss", "aud"]},
            )  # fmt: skip
        except jwt.PyJWTError as exc:
            raise AuthError(401, f"invalid bearer token: {exc}") from None
        granted = claims.get(p.scopes_claim, [])
        scopes = granted.split() if isinstance(granted, str) else list(granted)
        group = claims.get(p.group_claim) if p.group_claim else None
        scoped = frozenset(map(str, scopes)) & ALL_SCOPES
        name = str(claims.get(p.name_claim, "?"))
        return Principal(name, scoped, None if group is None else str(group))

    def _signing_key(self, token: str) -> Any:
        import jwt

        if self._client is not None:
            return self._client.get_signing_key_from_jwt(token).key
        assert self._keys is not None
        kid = jwt.get_unverified_header(token).get("kid")
        for key in self._keys.keys:
            if kid is None or key.key_id == kid:
                return key.key
        raise jwt.InvalidKeyError(f"no key {kid!r} in the provider's key set")


class Authorizer:
    """Checks a request's credentials and what its caller may run."""

    def __init__(
        self,
        keys: Iterable[ApiKey] = (),
        *,
        allow_anonymous: bool = True,
        anonymous_scopes: Collection[str] = ALL_SCOPES,
        anonymous_group: str | None = None,
        groups: Mapping[str, UserGroup] | None = None,
        oidc: OidcProvider | None = None,
    ) -> None:
        self.keys = tuple(keys)
        self.tokens = _TokenChecker(oidc) if oidc is not None else None
        self.groups = dict(groups or {})
        _check_scopes(anonymous_scopes, "anonymous")
        self.anonymous = (
            Principal("anonymous", frozenset(anonymous_scopes), anonymous_group)
            if allow_anonymous
            else None
        )
        for who, group in [(k.name, k.group) for k in self.keys] + [("anonymous", anonymous_group)]:
            if group is not None and group not in self.groups:
                raise ServiceError(f"{who}: no user group {group!r} in user_groups")
        self._verified: dict[bytes, ApiKey] = {}

    async def authenticate(self, header: str | None) -> Principal:
        """The caller named by an ``Authorization`` header (raises :class:`AuthError` 401)."""
        if header is None:
            if self.anonymous is None:
                raise AuthError(401, "credentials needed: send 'Authorization: ApiKey <key>'")
            return self.anonymous
        scheme, _, key = header.strip().partition(" ")
        if scheme.lower() == "bearer" and self.tokens is not None and key.strip():
            return await asyncio.to_thread(self.tokens.principal, key.strip())  # JWKS fetch
        if scheme.lower() != "apikey" or not key.strip():
            raise AuthError(401, f"unsupported authorization scheme {scheme!r}")
        found = await self._find(key.strip())
        if found is None:
            raise AuthError(401, "invalid API key")
        return Principal(found.name, frozenset(found.scopes), found.group)

    async def _find(self, key: str) -> ApiKey | None:
        memo = hashlib.sha256(key.encode()).digest()  # keys verified once, then looked up
        if memo in self._verified:
            return self._verified[memo]
        for candidate in self.keys:  # PBKDF2 off the event loop: the engine shares it
            if await asyncio.to_thread(_verify, key, candidate.key_hash):
                self._verified[memo] = candidate
                return candidate
        return None

    def require(self, principal: Principal, scope: str | None) -> None:
        """Raise :class:`AuthError` 403 unless ``principal`` has ``scope``."""
        if scope is None:
            raise AuthError(403, "this route has no scope: refused to everyone", principal.name)
        if scope not in principal.scopes:
            raise AuthError(403, f"missing scope {scope!r}", principal.name)

    def refusal(self, principal: Principal, kind: Kind, name: str) -> str | None:
        """Why ``principal``'s group may not use the plan or device ``name`` (None: it may)."""
        if principal.group is not None and principal.group not in self.groups:
            return f"no user group {principal.group!r}: {principal.name} may use nothing"
        chain = [self.groups.get("root"), self.groups.get(principal.group or "")]
        for group in chain:
            if group is not None:
                reason = group.refusal(kind, name)
                if reason is not None:
                    return reason
        return None


def _keys(entries: Any) -> list[ApiKey]:
    if isinstance(entries, Mapping):
        found: list[ApiKey] = []
        for name, entry in entries.items():  # pyright: ignore[reportUnknownVariableType]
            if isinstance(entry, ApiKey):
                found.append(entry)
            elif isinstance(entry, Mapping):
                found.append(ApiKey(str(name), **entry))  # pyright: ignore[reportUnknownArgumentType]
            else:
                raise ServiceError(f"api_keys.{name}: an ApiKey or {{key_hash, scopes, group}}")
        return found
    keys = list(entries)
    for key in keys:
        if not isinstance(key, ApiKey):
            raise ServiceError(f"api_keys: {key!r} is not an ApiKey")
    return keys


def authorizer_for(config: ServiceConfig) -> Authorizer:
    """The :class:`Authorizer` of a configuration (raises ServiceError if it is wrong).

    Without keys, anonymous clients may do everything (a trusted network) unless
    ``allow_anonymous=False``; with keys, anonymous clients are refused unless
    ``allow_anonymous=True``, and then have ``anonymous_scopes`` (default: read only).
    """
    keys = _keys(config.api_keys)
    secured = bool(keys) or config.oidc is not None
    allow = config.allow_anonymous if config.allow_anonymous is not None else not secured
    scopes = config.anonymous_scopes
    if scopes is None:
        scopes = READ_SCOPES if secured else ALL_SCOPES
    groups = load_user_groups(config.user_groups) if config.user_groups is not None else {}
    return Authorizer(keys, allow_anonymous=allow, anonymous_scopes=scopes,
                      anonymous_group=config.anonymous_group, groups=groups,
                      oidc=config.oidc)  # fmt: skip
