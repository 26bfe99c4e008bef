"""acq: asyncio-native experiment orchestration and data acquisition.

``result = await RE(plan, **md)`` runs a plan on the caller's event loop and turns what
it measures into event-model documents for subscribers.
"""

from __future__ import annotations

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
