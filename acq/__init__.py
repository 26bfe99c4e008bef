"""acq: asyncio-native experiment orchestration and data acquisition.

``result = await RE(plan, **md)`` runs a plan on the caller's event loop and turns what
it measures into event-model documents for subscribers.

Each name loads its module on first use (PEP 562): ``import acq`` alone costs almost
nothing (the engine pulls in bluesky's exception classes, event-model, numpy and
pydantic, ~0.3 s), so ``acq --help`` and a script that only reads the catalog start fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_names

if TYPE_CHECKING:
    from ._dispatch import CallbackError, Subscription
    from ._engine import RunEngine
    from ._errors import (
        AcqError,
        AcqInternalError,
        DeviceError,
        FailedStatus,
        IllegalMessageSequence,
        MetadataError,
        PlanError,
        RequestAbort,
        RequestStop,
        RunAborted,
        RunEngineInterrupted,
        StateError,
        SubscriberError,
        UnknownCommandError,
        WaitTimeoutError,
    )
    from ._msg import Msg
    from ._persistent import PersistentDict
    from ._plan import Plan, PlanFinished, PlanStack, Return, as_plan
    from ._result import RunResult
    from ._state import State
    from ._uid import EventUids

__all__ = [
    "RunEngine",
    "Msg",
    "PersistentDict",
    "Return",
    "Plan",
    "PlanStack",
    "PlanFinished",
    "as_plan",
    "RunResult",
    "State",
    "Subscription",
    "CallbackError",
    "EventUids",
    # errors
    "AcqError",
    "AcqInternalError",
    "DeviceError",
    "FailedStatus",
    "IllegalMessageSequence",
    "MetadataError",
    "PlanError",
    "RequestAbort",
    "RequestStop",
    "RunAborted",
    "RunEngineInterrupted",
    "StateError",
    "SubscriberError",
    "UnknownCommandError",
    "WaitTimeoutError",
]

_MODULE_OF: dict[str, str] = {
    "CallbackError": "_dispatch",
    "Subscription": "_dispatch",
    "RunEngine": "_engine",
    "Msg": "_msg",
    "PersistentDict": "_persistent",
    "Plan": "_plan",
    "PlanFinished": "_plan",
    "PlanStack": "_plan",
    "Return": "_plan",
    "as_plan": "_plan",
    "RunResult": "_result",
    "State": "_state",
    "EventUids": "_uid",
    **dict.fromkeys(
        [
            "AcqError",
            "AcqInternalError",
            "DeviceError",
            "FailedStatus",
            "IllegalMessageSequence",
            "MetadataError",
            "PlanError",
            "RequestAbort",
            "RequestStop",
            "RunAborted",
            "RunEngineInterrupted",
            "StateError",
            "SubscriberError",
            "UnknownCommandError",
            "WaitTimeoutError",
        ],
        "_errors",
    ),
}


__getattr__, __dir__ = lazy_names(__name__, _MODULE_OF)
