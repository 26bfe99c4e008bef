"""What a service offers: its devices, its plans and where it keeps its queue.

A configuration is a :class:`ServiceConfig`, written in Python. ``acq serve --config
FILE`` (or :func:`load_config`) reads it from a file or a module: the name ``config``
there is a ``ServiceConfig``, or a function -- plain or ``async def`` (devices that must
connect) -- returning one::

    from acq.devices.sim import sim_beamline
    from acq.plans import count, scan
    from acq.service import ServiceConfig

    async def config() -> ServiceConfig:
        beamline = await sim_beamline()
        return ServiceConfig(devices=beamline.by_name(), plans={"count": count, "scan": scan})

Nothing outside ``devices`` and ``plans`` can run through the service.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from acq import AcqError

if TYPE_CHECKING:
    from ._auth import ApiKey, OidcProvider

__all__ = ["ServiceConfig", "ServiceError", "load_config"]


class ServiceError(AcqError):
    """The service cannot start or do what it was asked; the message says why."""


@dataclass(frozen=True)
class ServiceConfig:
    """The devices and plans a service offers, and where it stores runs and its queue.

    Attributes:
        devices: every device a plan may be given, by the name clients use.
        plans: every plan a client may queue, by name (functions returning a plan).
        catalog: the engine's catalog (``RunEngine(catalog=...)``): ``"default"``, a URL
            or a SQLite path. The queue and history are kept in the same database.
        queue_url: keep the queue and history in this database instead (a URL or a
            SQLite path); needed when ``catalog`` is None.
        api_keys: the API keys clients may send (``Authorization: ApiKey <key>``): a
            list of :class:`~acq.service.ApiKey`, or a mapping of name to an ApiKey or to
            ``{"key_hash": ..., "scopes": [...], "group": ...}``.
        allow_anonymous: serve clients that give no credentials; None (the default):
            yes when there are neither ``api_keys`` nor ``oidc`` (a trusted network).
        anonymous_scopes: what anonymous clients may do; None: everything without
            keys or ``oidc``, reading only (``read:*``) with them.
        anonymous_group: the user group of anonymous clients (None: no restriction).
        user_groups: plans and devices each group may use: a mapping, or the path of a
            file, in the shape of queueserver's ``user_group_permissions.yaml``.
        oidc: accept bearer tokens of this OIDC provider (``Authorization: Bearer``).
        md: metadata put in every run (``RE.md``).
        on_sigterm: what SIGTERM does to a running plan (``acq serve``, :func:`serve`):
            ``"pause"`` (the default) lets it go on to its next checkpoint, ``"abort"``
            stops it now. Either way its run is closed (exit_status ``"abort"``), the
            item is recorded ``aborted`` in the history and put back at the front of
            the queue, and the process exits 0.
        shutdown_timeout: seconds the plan has after SIGTERM to reach a checkpoint (or,
            with ``"abort"``, to stop); then, or at a second SIGTERM, it is aborted now.
    """

    devices: Mapping[str, Any] = field(default_factory=dict[str, Any])
    plans: Mapping[str, Callable[..., Any]] = field(default_factory=dict[str, Callable[..., Any]])
    catalog: object = "default"
    queue_url: str | None = None
    api_keys: Mapping[str, Any] | Sequence[ApiKey] = ()
    allow_anonymous: bool | None = None
    anonymous_scopes: Collection[str] | None = None
    anonymous_group: str | None = None
    user_groups: Mapping[str, Any] | str | Path | None = None
    oidc: OidcProvider | None = None
    md: Mapping[str, Any] = field(default_factory=dict[str, Any])
    on_sigterm: Literal["pause", "abort"] = "pause"
    shutdown_timeout: float = 30.0

    def __post_init__(self) -> None:
        if self.on_sigterm not in ("pause", "abort"):
            raise ServiceError(f"on_sigterm: 'pause' or 'abort', not {self.on_sigterm!r}")
        timeout: Any = self.shutdown_timeout  # a config file may give anything
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
            raise ServiceError(
                f"shutdown_timeout: a number of seconds above 0, not {self.shutdown_timeout!r}"
            )
        for name, plan in self.plans.items():
            if not callable(plan):
                raise ServiceError(f"plan {name!r} of the configuration is not callable")
        from ._auth import authorizer_for  # here: _auth imports this module

        authorizer_for(self)  # a wrong key, scope or group is refused here


async def load_config(spec: str | Path) -> ServiceConfig:
    """The :class:`ServiceConfig` named ``config`` in a Python file or an importable module.

    Raises:
        ServiceError: no such file or module, no ``config`` in it, or not a ServiceConfig.
    """
    module = _load_module(spec)
    found = getattr(module, "config", None)
    if found is None:
        raise ServiceError(f"{spec} defines no 'config' (a ServiceConfig or a function)")
    if callable(found) and not isinstance(found, ServiceConfig):
        found = found()
        if inspect.isawaitable(found):
            found = await found
    if not isinstance(found, ServiceConfig):
        raise ServiceError(f"'config' of {spec} is {type(found).__name__}, not a ServiceConfig")
    return found


def _load_module(spec: str | Path) -> Any:
    path = Path(spec)
    if path.suffix == ".py" or path.exists():
        if not path.is_file():
            raise ServiceError(f"no configuration file {path}")
        found = importlib.util.spec_from_file_location(f"_acq_service_config_{path.stem}", path)
        if found is None or found.loader is None:
            raise ServiceError(f"cannot load {path} as Python")
        module = importlib.util.module_from_spec(found)
        found.loader.exec_module(module)
        return module
    try:
        return importlib.import_module(str(spec))
    except ImportError as exc:
        raise ServiceError(f"no configuration file or module {spec!r}: {exc}") from exc
